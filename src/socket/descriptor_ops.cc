// Descriptor-level calls: close, dup and its relatives, close_range/closefrom, and what exec
// and spawn mean for fast sockets. A descriptor copy shares the Socket (and an epoll set);
// loopfast's own descriptors (sys/owned_fds.h) are never the program's to close or replace.
#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "config/config.h"
#include "socket/fd_table.h"
#include "socket/socket_ops.h"
#include "sys/owned_fds.h"
#include "sys/real_calls.h"

namespace loopfast::ops {
namespace {

FdTable &Table() { return FdTable::Instance(); }
const sys::RealCalls &Real() { return sys::Real(); }

void Release(int fd) {
  if (std::shared_ptr<Socket> socket = Table().Remove(fd)) ReleaseDescriptor(socket, fd);
}

// Sockets that posix_spawn file actions dup2 into the child, by file-actions object.
struct SpawnDup2s {
  std::mutex mutex;
  std::map<const void *, std::vector<int>> sources;
};
SpawnDup2s &Spawns() {
  static auto *spawns = new SpawnDup2s;  // never destroyed: spawns may run from exit handlers
  return *spawns;
}

// Moves every socket that `inherited` says the new image keeps.
template <typename Inherited>
void MoveInherited(Inherited inherited) {
  std::vector<std::pair<int, std::shared_ptr<Socket>>> moving;
  Table().ForEach([&](int fd, const std::shared_ptr<Socket> &socket) {
    if (inherited(fd)) moving.emplace_back(fd, socket);
  });
  for (auto &[fd, socket] : moving) MoveToKernel(*socket, fd);
}

bool KeptAcrossExec(int fd) {
  const int flags = Real().fcntl(fd, F_GETFD, 0);
  return flags >= 0 && (flags & FD_CLOEXEC) == 0;
}

}  // namespace

int Close(int fd) {
  if (IsTracked(fd) && sys::InVforkChild()) return Real().close(fd);  // the parent's table
  if (std::shared_ptr<Socket> socket = Table().Remove(fd)) {
    ReleaseDescriptor(socket, fd);
    return Real().close(fd);
  }
  if (sys::IsOwned(fd)) {
    // A program closing "everything else" (a loop over /proc/self/fd): it cannot have meant
    // loopfast's doorbells or channels, which are close-on-exec anyway.
    Log(LogLevel::kDebug, "close(%d): loopfast's own descriptor, kept", fd);
    return 0;
  }
  ForgetEpoll(fd);  // one atomic load unless loopfast keeps epoll sets
  return Real().close(fd);
}

void ShareDescriptor(int fd, int copy) {
  if (std::shared_ptr<Socket> socket = Table().Get(fd)) {
    socket->descriptors.fetch_add(1, std::memory_order_relaxed);
    Table().Set(copy, socket);
  }
  AliasEpoll(fd, copy);
}

int Dup(int fd) {
  const int copy = Real().dup(fd);
  if (copy >= 0) ShareDescriptor(fd, copy);
  return copy;
}

int Dup3(int fd, int fd2, int flags, bool is_dup2) {
  if (fd == fd2) return is_dup2 ? Real().dup2(fd, fd2) : Real().dup3(fd, fd2, flags);
  // A vfork child shares the parent's tables, not its descriptors: nothing to note here.
  if ((IsTracked(fd) || IsTracked(fd2)) && sys::InVforkChild()) {
    return is_dup2 ? Real().dup2(fd, fd2) : Real().dup3(fd, fd2, flags);
  }
  // Check the source first: dup2 with a bad source must leave fd2 untouched.
  if (Real().fcntl(fd, F_GETFD, 0) < 0) return -1;
  if (sys::IsOwned(fd2)) {
    // Replacing a doorbell would send loopfast's wake-ups into the program's file. Linux
    // documents EBUSY for dup2/dup3 onto a descriptor that is not ready to be replaced.
    Log(LogLevel::kInfo, "dup2 onto %d refused: loopfast's own descriptor", fd2);
    errno = EBUSY;
    return -1;
  }
  Release(fd2);
  ForgetEpoll(fd2);
  const int ret = is_dup2 ? Real().dup2(fd, fd2) : Real().dup3(fd, fd2, flags);
  if (ret >= 0) ShareDescriptor(fd, ret);
  return ret;
}

int CloseRange(unsigned first, unsigned last, int flags) {
  // Marking close-on-exec touches nothing of ours (ours already are); bad arguments get the
  // kernel's own error.
  if (first > last || (flags & ~CLOSE_RANGE_UNSHARE) != 0) {
    return Real().close_range(first, last, flags);
  }
  std::vector<int> closing;
  Table().ForEach([&](int fd, const std::shared_ptr<Socket> &) {
    if (static_cast<unsigned>(fd) >= first && static_cast<unsigned>(fd) <= last) {
      closing.push_back(fd);
    }
  });
  for (int fd : closing) Release(fd);
  ForgetEpollRange(static_cast<int>(std::min<unsigned>(first, INT32_MAX)),
                   static_cast<int>(std::min<unsigned>(last, INT32_MAX)));
  // Close the range around loopfast's own descriptors.
  unsigned from = first;
  for (;;) {
    const int owned = sys::NextOwned(from, last);
    const unsigned upto = owned < 0 ? last : static_cast<unsigned>(owned) - 1;
    if (owned < 0 || static_cast<unsigned>(owned) > from) {
      if (Real().close_range(from, upto, flags) != 0) return -1;
    }
    if (owned < 0 || static_cast<unsigned>(owned) == last) return 0;
    from = static_cast<unsigned>(owned) + 1;
  }
}

void CloseFrom(int first) {
  if (first < 0) return;
  (void)CloseRange(static_cast<unsigned>(first), ~0u, 0);
}

void BeforeExec() { MoveInherited(KeptAcrossExec); }

void BeforeSpawn(const void *file_actions) {
  std::vector<int> dup2_sources;
  if (file_actions != nullptr) {
    std::lock_guard<std::mutex> guard(Spawns().mutex);
    auto found = Spawns().sources.find(file_actions);
    if (found != Spawns().sources.end()) dup2_sources = found->second;
  }
  MoveInherited([&](int fd) {
    for (int source : dup2_sources) {
      if (source == fd) return true;
    }
    return KeptAcrossExec(fd);
  });
}

void BeforePassing(const void *control, size_t length) {
  struct msghdr message {};
  message.msg_control = const_cast<void *>(control);
  message.msg_controllen = length;
  std::vector<int> passed;
  for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header != nullptr;
       header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS ||
        header->cmsg_len < CMSG_LEN(0)) {
      continue;
    }
    // A header may claim more than the copy holds (a truncated or forged message).
    const auto *data = reinterpret_cast<const uint8_t *>(CMSG_DATA(header));
    const auto *end = static_cast<const uint8_t *>(control) + length;
    if (data > end) break;
    const size_t count = std::min<size_t>((header->cmsg_len - CMSG_LEN(0)) / sizeof(int),
                                          static_cast<size_t>(end - data) / sizeof(int));
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, data + i * sizeof(int), sizeof fd);
      passed.push_back(fd);
    }
  }
  const int saved_errno = errno;
  MoveInherited(
      [&](int fd) { return std::find(passed.begin(), passed.end(), fd) != passed.end(); });
  errno = saved_errno;
}

void NoteSpawnDup2(const void *file_actions, int fd) {
  if (!IsTracked(fd)) return;
  std::lock_guard<std::mutex> guard(Spawns().mutex);
  Spawns().sources[file_actions].push_back(fd);
}

void ForgetSpawnActions(const void *file_actions) {
  std::lock_guard<std::mutex> guard(Spawns().mutex);
  Spawns().sources.erase(file_actions);
}

}  // namespace loopfast::ops
