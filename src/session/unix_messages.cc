// The implementation of unix_messages.h (what it is for is said there).
#include "session/unix_messages.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "sys/owned_fds.h"
#include "sys/real_calls.h"

namespace loopfast::session {

socklen_t ChannelAddress(uint16_t port, struct sockaddr_un *address) {
  std::memset(address, 0, sizeof *address);
  address->sun_family = AF_UNIX;
  // Abstract name (leading NUL): per network namespace, never a file to clean up.
  const int n = std::snprintf(address->sun_path + 1, sizeof address->sun_path - 1, "loopfast.v2.%u",
                              static_cast<unsigned>(port));
  return static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

void CloseAll(const int *fds, int count) {
  for (int i = 0; i < count; ++i) sys::CloseOwned(fds[i]);
}

Status SendMessage(int fd, const void *bytes, size_t size, const int *fds, int fd_count) {
  if (fd_count < 0 || fd_count > kMaxMessageFds) return Errno{EINVAL};
  struct iovec iov = {const_cast<void *>(bytes), size};
  struct msghdr message {};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxMessageFds)];
  if (fd_count > 0) {
    message.msg_control = control;
    message.msg_controllen = CMSG_SPACE(sizeof(int) * fd_count);
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&message);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fd_count);
    std::memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * fd_count);
  }
  ssize_t n;
  do {
    n = sys::Real().sendmsg(fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Errno{errno};
  if (static_cast<size_t>(n) != size) return Errno{EPROTO};
  return {};
}

Result<size_t> ReceiveMessage(int fd, void *bytes, size_t capacity, int *fds, int *fd_count,
                              bool blocking, int extra_flags) {
  *fd_count = 0;
  struct iovec iov = {bytes, capacity};
  struct msghdr message {};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  // Room for more descriptors than we accept, so extras are received (and closed), not leaked
  // into a truncated control buffer.
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * 16)];
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  // EINTR is returned, not retried: a blocking caller reports it as the program's recv would.
  const ssize_t n = sys::Real().recvmsg(
      fd, &message, MSG_CMSG_CLOEXEC | (blocking ? 0 : MSG_DONTWAIT) | extra_flags);
  if (n < 0) return Errno{errno};
  bool ok = (message.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) == 0;
  for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&message); cmsg != nullptr;
       cmsg = CMSG_NXTHDR(&message, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int received;
      std::memcpy(&received, CMSG_DATA(cmsg) + i * sizeof(int), sizeof received);
      if (*fd_count < kMaxMessageFds) {
        fds[(*fd_count)++] = received;
      } else {
        ok = false;
        CloseAll(&received, 1);
      }
    }
  }
  if (!ok) {
    CloseAll(fds, *fd_count);
    *fd_count = 0;
    return Errno{EPROTO};
  }
  return static_cast<size_t>(n);
}

}  // namespace loopfast::session
