// Opening a file that loopfast writes for the user who runs it (the log, a pcap capture)
// without letting another local user choose what gets written where. A root program told to
// log to /tmp/app.log must not follow a symbolic link another user planted there (into
// /etc/passwd), append to a file another user made there (and reads), or block on a FIFO.
//
// The rules, checked on descriptors (no window between a check and the open):
//   - the last component is opened with O_NOFOLLOW: a symbolic link there is refused;
//   - the directory it is in must not be writable by others (S_IWOTH) unless this process's
//     effective user owns it: in a /tmp-like directory anyone may plant the name first;
//   - on the way to that directory, a symbolic link that sits in a world-writable directory
//     is refused (it may be another user's, as /tmp/x -> /etc would be), unless the directory
//     is sticky and both the link and the directory are the process's own (or root's
//     directory, as /tmp): nobody else may have replaced it. The path is resolved one
//     component at a time, the links' targets included, so each link is judged by the
//     directory it sits in;
//   - an existing file must belong to the process's effective user;
//   - the open does not block (O_NONBLOCK until the checks are done): a FIFO nobody reads
//     is an error, not a hang.
// A new file gets `create_mode` (less the umask). An existing file is truncated only after
// the checks passed.
//
// Thread rules: any thread. Makes raw system calls only (syscall(2)), so that inside the
// interposer nothing re-enters it; allocates (std::string) while it walks the path.
#ifndef LOOPFAST_BASE_OUTPUT_FILE_H_
#define LOOPFAST_BASE_OUTPUT_FILE_H_

#include <sys/types.h>

#include "base/result.h"

namespace loopfast {

enum class OutputMode {
  kAppend,    // O_APPEND: records from several processes never interleave
  kTruncate,  // start empty
};

// Refusals, as fixed strings for a message (the path is the caller's to add, escaped).
inline constexpr const char *kRefusedSymlink = "it is a symbolic link";
inline constexpr const char *kRefusedOpenDirectory =
    "its directory may be written by other users (world-writable, owned by someone else)";
inline constexpr const char *kRefusedLinkedDirectory =
    "a directory on its path is a symbolic link in a directory other users may write";
inline constexpr const char *kRefusedOtherOwner = "the file belongs to another user";

// Opens `path` for writing (close-on-exec; O_APPEND for kAppend) under the rules above and
// returns the descriptor. On failure, an errno; `*refusal` (when given) is then one of the
// kRefused* strings when a rule refused the file (errno ELOOP for a link, EPERM otherwise), or
// nullptr for an ordinary error (ENOENT, EACCES, ENXIO for a FIFO without a reader, ...).
Result<int> OpenOutputFile(const char *path, OutputMode mode, mode_t create_mode,
                           const char **refusal);

}  // namespace loopfast

#endif  // LOOPFAST_BASE_OUTPUT_FILE_H_
