// Messages with descriptors over connected Unix SEQPACKET sockets, and the channel names.
#ifndef LOOPFAST_SESSION_UNIX_MESSAGES_H_
#define LOOPFAST_SESSION_UNIX_MESSAGES_H_

#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <cstdint>

#include "base/result.h"

namespace loopfast::session {

inline constexpr int kMaxMessageFds = 4;

// The abstract name a listener group binds for TCP port `port`: "\0loopfast.v2.<port>".
socklen_t ChannelAddress(uint16_t port, struct sockaddr_un *address);

// Sends one message and up to kMaxMessageFds descriptors; never blocks, never raises SIGPIPE.
Status SendMessage(int fd, const void *bytes, size_t size, const int *fds, int fd_count);

// Receives one message of at most `capacity` bytes. Descriptors arrive close-on-exec in
// `fds` (up to kMaxMessageFds; `*fd_count` says how many); any beyond that, and any on a
// truncated message, are closed. Returns the message size (0 at end-of-file) or an errno
// (EINTR included: a blocking caller reports it as the program's own call would).
Result<size_t> ReceiveMessage(int fd, void *bytes, size_t capacity, int *fds, int *fd_count,
                              bool blocking, int extra_flags = 0);

// Closes `count` descriptors, keeping errno.
void CloseAll(const int *fds, int count);

}  // namespace loopfast::session

#endif  // LOOPFAST_SESSION_UNIX_MESSAGES_H_
