// The connections of `loopfast bench` (bench_socket.h).
#include "bench_socket.h"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "bench_process.h"
#include "loopfast/loopfast.h"

namespace loopfast::tool::bench {
namespace {

socklen_t UnixAddress(pid_t server_pid, struct sockaddr_un *address) {
  *address = {};
  address->sun_family = AF_UNIX;
  const int length = std::snprintf(address->sun_path + 1, sizeof address->sun_path - 1,
                                   "lfbench-%d", int(server_pid));
  return socklen_t(offsetof(struct sockaddr_un, sun_path) + 1 + size_t(length));
}

int NewSocket(Kind kind) {
  if (kind == Kind::kUnix) {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) Die("socket");
    return fd;
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket");
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (loopfast_set_fast_path(fd, kind == Kind::kFast ? 1 : 0) != 0) Die("SIO_LOOPBACK_FAST_PATH");
  return fd;
}

// The kernel's own count of data on this connection: data segments both ways + payload bytes.
uint64_t KernelDataTraffic(int fd) {
  struct tcp_info info {};
  socklen_t length = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return UINT64_MAX;
  // Data segments only: the handshake's SYN and the closing FIN count in the byte counters.
  return uint64_t(info.tcpi_data_segs_in) + info.tcpi_data_segs_out + info.tcpi_bytes_sent;
}

bool CheckPathOnce(int fd, Kind kind) {
  const int path = loopfast_path_of(fd);
  if (kind == Kind::kUnix) {
    if (path == LOOPFAST_PATH_FAST) {
      std::fprintf(stderr, "loopfast bench: a unix socket reports the fast path\n");
      return false;
    }
    return true;
  }
  const uint64_t kernel_bytes = KernelDataTraffic(fd);
  if (kind == Kind::kFast && (path != LOOPFAST_PATH_FAST || kernel_bytes != 0)) {
    std::fprintf(stderr,
                 "loopfast bench: expected a fast connection: path %d (%s), kernel bytes %llu\n",
                 path, loopfast_fallback_reason(fd), static_cast<unsigned long long>(kernel_bytes));
    return false;
  }
  if (kind == Kind::kKernel && (path == LOOPFAST_PATH_FAST || kernel_bytes == 0)) {
    std::fprintf(stderr, "loopfast bench: expected kernel TCP, got path %d, kernel bytes %llu\n",
                 path, static_cast<unsigned long long>(kernel_bytes));
    return false;
  }
  return true;
}

// Moves exactly `size` bytes by `call` (recv or send), retrying on EINTR; false on EOF or an
// error.
template <typename Byte, typename Call>
bool TransferAll(Byte *bytes, size_t size, Call call) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = call(bytes + done, size - done);
    if (n > 0) {
      done += size_t(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

int Listen(Kind kind, uint16_t *port) {
  const int fd = NewSocket(kind);
  const int backlog = 4096;
  if (kind == Kind::kUnix) {
    struct sockaddr_un address;
    const socklen_t length = UnixAddress(getpid(), &address);
    if (bind(fd, reinterpret_cast<sockaddr *>(&address), length) != 0) Die("bind");
    if (listen(fd, backlog) != 0) Die("listen");
    *port = 0;
    return fd;
  }
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in address {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr *>(&address), sizeof address) != 0) Die("bind");
  if (listen(fd, backlog) != 0) Die("listen");
  socklen_t length = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr *>(&address), &length);
  *port = ntohs(address.sin_port);
  return fd;
}

int Connect(Kind kind, const ServerProcess &server) {
  const int fd = NewSocket(kind);
  struct sockaddr_storage storage {};
  socklen_t length = 0;
  if (kind == Kind::kUnix) {
    length = UnixAddress(server.pid, reinterpret_cast<sockaddr_un *>(&storage));
  } else {
    auto *address = reinterpret_cast<sockaddr_in *>(&storage);
    address->sin_family = AF_INET;
    address->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address->sin_port = htons(server.port);
    length = sizeof *address;
  }
  for (int attempt = 0; connect(fd, reinterpret_cast<sockaddr *>(&storage), length) != 0;
       ++attempt) {
    if (errno != EINTR || attempt > 1000) Die("connect");
  }
  return fd;
}

bool ReadAll(int fd, void *buffer, size_t size) {
  return TransferAll(static_cast<char *>(buffer), size,
                     [fd](char *at, size_t left) { return recv(fd, at, left, 0); });
}

bool WriteAll(int fd, const void *buffer, size_t size) {
  return TransferAll(static_cast<const char *>(buffer), size, [fd](const char *at, size_t left) {
    return send(fd, at, left, MSG_NOSIGNAL);
  });
}

bool CheckPath(BenchContext &context, int fd, Kind kind) {
  const bool ok = CheckPathOnce(fd, kind);
  if (!ok) context.path_mismatch = true;
  return ok;
}

}  // namespace loopfast::tool::bench
