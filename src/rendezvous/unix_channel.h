// Messages with descriptors over connected Unix SEQPACKET sockets, and the channel names.
#ifndef LOOPFAST_RENDEZVOUS_UNIX_CHANNEL_H_
#define LOOPFAST_RENDEZVOUS_UNIX_CHANNEL_H_

#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <cstdint>

#include "base/result.h"

namespace loopfast::rendezvous {

inline constexpr int kMaxMessageFds = 3;

// The abstract address of the channel of TCP port `port` in this network namespace.
socklen_t ChannelAddress(uint16_t port, struct sockaddr_un *address);

// Sends one message and up to kMaxMessageFds descriptors; never blocks, never raises SIGPIPE.
Status SendMessage(int fd, const void *bytes, size_t size, const int *fds, int fd_count);

// Receives one message of at most `capacity` bytes. Descriptors arrive close-on-exec in
// `fds` (up to kMaxMessageFds; `*fd_count` says how many); any beyond that, and any on a
// truncated message, are closed. Returns the message size (0 at end-of-file) or an errno
// (EINTR included: a blocking caller reports it as the program's own call would).
Result<size_t> ReceiveMessage(int fd, void *bytes, size_t capacity, int *fds, int *fd_count,
                              bool blocking);

// Closes `count` descriptors, keeping errno.
void CloseAll(const int *fds, int count);

}  // namespace loopfast::rendezvous

#endif  // LOOPFAST_RENDEZVOUS_UNIX_CHANNEL_H_
