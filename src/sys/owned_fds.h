// Descriptors loopfast opened for itself and keeps across calls: doorbells, rendezvous
// channels, shadow epoll sets. Programs that close "every other descriptor" (close_range,
// closefrom, a loop over /proc/self/fd) or dup2 onto a number they did not open must not take
// them away: the interposer asks here and leaves these alone.
//
// Thread rules: any thread; lock-free. The set is process memory, so a forked child inherits it
// together with the descriptors; exec drops both (every owned descriptor is close-on-exec).
#ifndef LOOPFAST_SYS_OWNED_FDS_H_
#define LOOPFAST_SYS_OWNED_FDS_H_

#include <sys/types.h>

namespace loopfast::sys {

// Marks `fd` as loopfast's (negative descriptors are ignored).
void Own(int fd);
// Moves a descriptor loopfast just made out of the program's way: to a number at or above the
// soft RLIMIT_NOFILE when the hard limit leaves room (the soft limit is raised for that one
// call), where it costs the program none of the descriptors it may open; else to a number
// above its usual range (from half the soft limit, at most 4096, up). Either way the program's
// own descriptors get the numbers they would get on kernel TCP: programs size tables by them
// (wrk's event loop refuses descriptors above 10 + 3 x its connections, select() stops at
// FD_SETSIZE). Returns the descriptor to use from now on: the new one, or `fd` itself when no
// higher number is free (or `fd` is negative); close-on-exec either way. Keeps errno.
[[nodiscard]] int MoveHigh(int fd);
// MoveHigh for a descriptor loopfast can do without: when it cannot go above the program's
// range (the process is near its descriptor limit), it is closed and -1 returned (EMFILE), so
// that loopfast never takes a number the program could have used. Keeps errno otherwise.
[[nodiscard]] int TakeHigh(int fd);
// The first number MoveHigh tries (0 when it leaves descriptors where they are).
int HighBase();
// Unmarks and really closes `fd`, keeping errno. For every descriptor loopfast closes itself.
void CloseOwned(int fd);
bool IsOwned(int fd);
// The smallest owned descriptor in [from, to], or -1.
int NextOwned(unsigned from, unsigned to);

// True in the child of a vfork() before it execs or exits: it shares this process's memory
// (loopfast's tables included) but not its descriptors, so it must not change the tables. One
// system call; for the rare calls that would (dup2 onto, or close of, a tracked descriptor).
bool InVforkChild();

// This process's id without a system call (NoteForkChild updates it in a forked child).
pid_t ThisProcess();
// The fork handler: this process's pid is new.
void NoteForkChild();

}  // namespace loopfast::sys

#endif  // LOOPFAST_SYS_OWNED_FDS_H_
