// Socket options, ioctl, fcntl and the explicit API's switch: what the program sets is kept where
// the fast path needs it, and what the fast path cannot honour moves the connection to kernel
// TCP first (transparent mode) or fails with EOPNOTSUPP (explicit API). docs/options.md.
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "config/config.h"
#include "loopfast/loopfast.h"
#include "socket/option_table.h"
#include "socket/socket_internal.h"
#include "socket/socket_ops.h"
#include "socket/socket_stat.h"

namespace loopfast::ops {
namespace {

constexpr int kMarkerSafeRcvbuf = 128 * 1024;

int ReadSysctl(const char *path, int fallback) {
  int value = fallback;
  if (FILE *file = std::fopen(path, "re")) {
    if (std::fscanf(file, "%d", &value) != 1) value = fallback;
    std::fclose(file);
  }
  return value;
}

// O_ASYNC / FIOASYNC: SIGIO comes from the kernel socket's own traffic, which a fast connection
// does not have. Transparent mode moves the socket to kernel TCP first; the explicit API says
// EOPNOTSUPP. Returns false (errno set) when the call must fail.
bool AllowSignalDrivenIo(Socket &socket, int fd) {
  if (!WouldBeFast(socket)) return true;
  if (socket.opted_in_explicitly.load(std::memory_order_relaxed)) {
    errno = EOPNOTSUPP;
    return false;
  }
  GoKernel(socket, fd, reason::kSignalDrivenIo);
  return true;
}

bool IsHopOption(int level, int name) {
  return (level == IPPROTO_IP && name == IP_TTL) ||
         (level == IPPROTO_IPV6 && name == IPV6_UNICAST_HOPS);
}

}  // namespace

int KernelStyleRcvbuf(int value) {
  static const int rmem_max = ReadSysctl("/proc/sys/net/core/rmem_max", 212992);
  const long doubled = 2L * std::min(value, rmem_max);
  return static_cast<int>(std::max<long>(doubled, 2304));
}

int SetSockOpt(Socket &socket, int fd, int level, int name, const void *value, socklen_t length) {
  if (value == nullptr) return Real().setsockopt(fd, level, name, value, length);
  if (ClassOf(level, name) == OptionClass::kNeedsKernel && WouldBeFast(socket)) {
    const OptionInfo *info = FindOption(level, name);
    if (socket.opted_in_explicitly.load(std::memory_order_relaxed)) {
      Log(LogLevel::kInfo, "setsockopt(%s): not supported on the fast path",
          info != nullptr ? info->option_name : "unknown option");
      errno = EOPNOTSUPP;
      return -1;
    }
    // Before the option takes effect: the kernel applies it to kernel TCP alone.
    Log(LogLevel::kInfo, "setsockopt(%s, %s): %s", info != nullptr ? info->level_name : "?",
        info != nullptr ? info->option_name : "unknown option", reason::kOptionNeedsKernel);
    GoKernel(socket, fd, reason::kOptionNeedsKernel);
  }
  std::lock_guard<std::mutex> guard(socket.mutex);
  ProgramOptions &options = socket.options;
  int int_value = 0;
  if (length >= sizeof(int)) std::memcpy(&int_value, value, sizeof int_value);
  // While the client marker is on, the program's TTL waits (a fast connection keeps the marker:
  // its kernel connection carries no data; it is applied when the socket leaves the fast path).
  if (options.marker_on && length >= sizeof(int) && IsHopOption(level, name)) {
    if (int_value != -1 && (int_value < (name == IP_TTL ? 1 : 0) || int_value > 255)) {
      errno = EINVAL;
      return -1;
    }
    (name == IP_TTL ? options.ttl : options.hops) = int_value;
    return 0;
  }
  // A fast listener's MSS is its marker; the program's value is kept for when it stops.
  if (socket.listener && level == IPPROTO_TCP && name == TCP_MAXSEG && length >= sizeof(int)) {
    options.maxseg = int_value;
    return 0;
  }
  const int ret = Real().setsockopt(fd, level, name, value, length);
  if (ret != 0 || level != SOL_SOCKET) {
    if (ret == 0 && level == IPPROTO_IP && name == IP_TTL) options.ttl = int_value;
    if (ret == 0 && level == IPPROTO_IPV6 && name == IPV6_UNICAST_HOPS) options.hops = int_value;
    return ret;
  }
  // SO_*TIMEO_NEW take a struct __kernel_sock_timeval: two 64-bit fields, as timeval here.
  static_assert(sizeof(struct timeval) == 16 && sizeof(time_t) == 8);
  const bool receive_timeout = name == SO_RCVTIMEO || name == SO_RCVTIMEO_NEW;
  const bool send_timeout = name == SO_SNDTIMEO || name == SO_SNDTIMEO_NEW;
  if ((receive_timeout || send_timeout) && length >= sizeof(struct timeval)) {
    std::memcpy(receive_timeout ? &options.recv_timeout : &options.send_timeout, value,
                sizeof(struct timeval));
  } else if (name == SO_RCVBUF || name == SO_RCVBUFFORCE) {
    options.rcvbuf = int_value;
    if (socket.listener && int_value < kMarkerSafeRcvbuf) {
      // A fast listener keeps its window large enough for its marker (see rcvbuf_raised).
      Real().setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kMarkerSafeRcvbuf, sizeof kMarkerSafeRcvbuf);
      options.rcvbuf_raised = true;
    } else {
      options.rcvbuf_raised = false;
    }
  }
  return ret;
}

int GetSockOpt(Socket &socket, int fd, int level, int name, void *value, socklen_t *length) {
  // A program polling SO_ERROR after a non-blocking connect moves the connection along.
  if (level == SOL_SOCKET && name == SO_ERROR) MakeProgress(socket, fd);
  const int ret = Real().getsockopt(fd, level, name, value, length);
  if (ret != 0 || value == nullptr || *length < sizeof(int)) return ret;
  std::lock_guard<std::mutex> guard(socket.mutex);
  const ProgramOptions &options = socket.options;
  int reported = 0;
  if (level == SOL_SOCKET && name == SO_RCVBUF && options.rcvbuf_raised &&
      socket.stage.load(std::memory_order_relaxed) != Stage::kKernel) {
    reported = KernelStyleRcvbuf(options.rcvbuf);
  } else if (options.marker_on && level == IPPROTO_IP && name == IP_TTL) {
    static const int default_ttl = ReadSysctl("/proc/sys/net/ipv4/ip_default_ttl", 64);
    reported = options.ttl >= 0 ? options.ttl : default_ttl;
  } else if (options.marker_on && level == IPPROTO_IPV6 && name == IPV6_UNICAST_HOPS) {
    static const int default_hops = ReadSysctl("/proc/sys/net/ipv6/conf/all/hop_limit", 64);
    reported = options.hops >= 0 ? options.hops : default_hops;
  } else {
    return ret;
  }
  std::memcpy(value, &reported, sizeof reported);
  return ret;
}

int Ioctl(Socket &socket, int fd, unsigned long request, void *argument) {
  MakeProgress(socket, fd);
  FastConnection *fast = socket.fast.load(std::memory_order_acquire);
  if (fast != nullptr && (request == FIONREAD || request == SIOCOUTQ || request == SIOCOUTQNSD)) {
    if (argument == nullptr) {
      errno = EFAULT;
      return -1;
    }
    const size_t bytes = request == FIONREAD ? fast->ReadableBytes() : fast->UnsentBytes();
    if (bytes == 0 && request == FIONREAD) return Real().ioctl(fd, request, argument);
    const int value = static_cast<int>(std::min<size_t>(bytes, INT32_MAX));
    std::memcpy(argument, &value, sizeof value);
    return 0;
  }
  if (request == FIOASYNC && argument != nullptr) {
    int on = 0;
    std::memcpy(&on, argument, sizeof on);
    if (on != 0 && !AllowSignalDrivenIo(socket, fd)) return -1;
  }
  const int ret = Real().ioctl(fd, request, argument);
  if (ret == 0 && request == FIONBIO && argument != nullptr) {
    int on;
    std::memcpy(&on, argument, sizeof on);
    socket.nonblocking.store(on != 0, std::memory_order_relaxed);
  }
  return ret;
}

int Fcntl(Socket *socket, int fd, int command, long argument) {
  if (socket != nullptr && command == F_SETFL && (argument & O_ASYNC) != 0) {
    if (!AllowSignalDrivenIo(*socket, fd)) return -1;
  }
  const int ret = Real().fcntl(fd, command, argument);
  if (ret < 0) return ret;
  if (command == F_DUPFD || command == F_DUPFD_CLOEXEC) {
    ShareDescriptor(fd, ret);
    return ret;
  }
  if (socket != nullptr && command == F_SETFL) {
    socket->nonblocking.store((argument & O_NONBLOCK) != 0, std::memory_order_relaxed);
  }
  return ret;
}

int SetFastPath(int fd, bool enable) {
  if (Real().fcntl(fd, F_GETFD, 0) < 0) return -1;  // EBADF
  struct stat info;
  if (fstat(fd, &info) != 0) return -1;
  if (!S_ISSOCK(info.st_mode)) {
    errno = ENOTSOCK;
    return -1;
  }
  std::shared_ptr<Socket> socket = Table().Get(fd);
  if (!socket) socket = Adopt(fd);
  if (!socket) {
    errno = EINVAL;  // a socket, but not a TCP one
    return -1;
  }
  if (GetConfig().disabled && enable) {
    errno = EOPNOTSUPP;
    return -1;
  }
  std::lock_guard<std::mutex> guard(socket->mutex);
  switch (socket->stage.load(std::memory_order_relaxed)) {
    case Stage::kUndecided: {
      struct sockaddr_storage peer {};
      socklen_t length = sizeof peer;
      if (getpeername(fd, reinterpret_cast<struct sockaddr *>(&peer), &length) == 0) {
        errno = EISCONN;
        return -1;
      }
      socket->opted_in.store(enable, std::memory_order_relaxed);
      socket->opted_in_explicitly.store(enable, std::memory_order_relaxed);
      return 0;
    }
    case Stage::kListening:
      if (socket->listener && socket->listener->has_accepted) {
        errno = EBUSY;
        return -1;
      }
      socket->opted_in.store(enable, std::memory_order_relaxed);
      socket->opted_in_explicitly.store(enable, std::memory_order_relaxed);
      if (enable && !socket->listener) EnableListenerForApi(*socket, fd);
      if (!enable) DisableListener(*socket, fd);
      return 0;
    case Stage::kConnecting:
      errno = EALREADY;
      return -1;
    default:
      errno = EISCONN;
      return -1;
  }
}

int PathOf(int fd) {
  std::shared_ptr<Socket> socket = Table().Get(fd);
  if (!socket) {
    if (Real().fcntl(fd, F_GETFD, 0) < 0) return -1;
    return LOOPFAST_PATH_NONE;
  }
  MakeProgress(*socket, fd);
  switch (socket->stage.load(std::memory_order_acquire)) {
    case Stage::kFast:
      return socket->fast.load(std::memory_order_acquire)->UsesKernel() ? LOOPFAST_PATH_KERNEL
                                                                        : LOOPFAST_PATH_FAST;
    case Stage::kKernel:
      return LOOPFAST_PATH_KERNEL;
    default:
      return LOOPFAST_PATH_NONE;
  }
}

const char *FallbackReason(int fd) {
  std::shared_ptr<Socket> socket = Table().Get(fd);
  if (!socket) return "";
  std::lock_guard<std::mutex> guard(socket->mutex);
  return ReportedFallbackReason(*socket);
}

}  // namespace loopfast::ops
