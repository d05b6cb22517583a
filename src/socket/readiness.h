// Readiness of one tracked socket, as poll(2) would report it for a kernel TCP socket in the
// same state, and the kernel descriptors to sleep on until it may change.
//
// A fast connection's bytes never touch its kernel socket, so its readiness comes from the
// rings; once a direction has ended (shutdown, close, reset, a departed peer), the kernel
// socket's own state is the answer, as it is for the data calls. Sockets on any other path
// are asked of the kernel.
//
// The sleep protocol: look, prepare (take the edges that woke the last sleep, announce), look
// again, and only then sleep on the descriptors PrepareWait() names. A fast socket names its
// session's bell (wait/bell.h: an eventfd that must be registered edge-triggered, in the epoll
// shadow or the thread's WakeSet, never read) and its kernel socket (the peer's FIN or reset).
//
// Thread rules: any thread.
#ifndef LOOPFAST_SOCKET_READINESS_H_
#define LOOPFAST_SOCKET_READINESS_H_

#include <poll.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "socket/socket.h"

namespace loopfast::readiness {

// True when loopfast, not the kernel, must answer readiness questions for this socket (it is
// fast, or may still become fast).
bool Decides(const Socket &socket);

struct State {
  short events = 0;      // poll(2) bits, restricted to `wanted` plus POLLERR|POLLHUP
  short all_events = 0;  // unrestricted (edge triggering notices every change)
  // Edge triggering on a fast socket (see EdgeFired): input ever arrived and consumed, and
  // how often a send found no room.
  uint64_t in_sequence = 0;
  uint64_t in_consumed = 0;
  uint64_t no_space = 0;
  // Bytes the kernel connection ever received, once input comes from it (a moved connection):
  // each arrival is a new edge, as on kernel TCP.
  uint64_t kernel_in = 0;
  // For the order of epoll's reports (ready_queue.h): when the peer's last write into the empty
  // ring made it readable (CLOCK_MONOTONIC; 0: unknown). Input in the ring only.
  uint64_t in_ready_ns = 0;
};

// What an edge-triggered watcher remembers between looks.
struct EdgeMemory {
  bool looked = false;
  short all_events = 0;
  uint64_t in_sequence = 0;
  uint64_t no_space = 0;
  uint64_t kernel_in = 0;
};

// True when `now` is a new edge after `memory` (then updated), as kernel TCP raises them:
// input that arrives after everything seen was read, room after a send found none, and any
// readiness bit that was not there before (end of stream, reset, hang-up).
bool EdgeFired(const State &now, EdgeMemory *memory);

// Current readiness of `fd` for the poll(2) events in `wanted`. Only looks: a caller that may
// hold a connecting socket moves it along first (ops::MakeProgress), as poll and epoll do.
State Look(Socket &socket, int fd, short wanted);

// Asks the peer of a fast socket to stamp when its input becomes ready (State::in_ready_ns),
// for a caller that orders by it (epoll). True once asked (the socket is fast), for good.
bool WantInputStamps(Socket &socket);
// State::in_sequence alone, cheaply (0 for a socket that is not fast): whether the peer wrote
// since a look.
uint64_t InputSequence(const Socket &socket);

// Up to kMaxWaitFds descriptors to sleep on; events as poll(2) takes them.
inline constexpr int kMaxWaitFds = 3;
struct WaitFd {
  int fd = -1;
  short events = 0;
  bool edge = false;  // only a change matters (the kernel socket stays readable at its end)
  bool bell = false;  // a bell: edge-triggered in an epoll instance, never polled directly
};
// Announces the sleep (see above; not when `announce` is false: an epoll set announces through
// change hints) and names what to sleep on. Returns how many were written. A fast socket's
// announcement counts the caller among its side's sleepers: `announced` receives its session,
// which EndWait() takes once the sleep is over (or did not happen).
int PrepareWait(Socket &socket, int fd, short wanted, WaitFd *out, bool announce = true,
                std::vector<std::shared_ptr<session::Session>> *announced = nullptr);
// A readiness call that had to wait ended with `socket` ready: counted on its `loopfast stat`
// slot as answered while spinning or after a sleep (docs/stat.md, "How waits end").
void CountWait(Socket &socket, bool slept);

// The end of a sleep announced through these sessions (change_hints.h, EndSleep).
void EndWait(std::vector<std::shared_ptr<session::Session>> *announced);

// For an epoll set: a fast socket's session and slot, whose change hints (session/
// change_hints.h) name it from now on whenever it changes; no session when the socket cannot be
// watched that way (not fast, or a session this process did not make: a forked child's).
struct Watched {
  std::shared_ptr<session::Session> session;
  uint32_t slot = 0;
};
// `wanted`: the poll(2) events watched (input, output or both directions).
Watched WatchChanges(Socket &socket, short wanted);

// A sleep woke on the socket's kernel descriptor (a FIN or reset may have come): the next Look
// asks the kernel whether the peer is gone.
void NoteKernelChanged(Socket &socket);

}  // namespace loopfast::readiness

#endif  // LOOPFAST_SOCKET_READINESS_H_
