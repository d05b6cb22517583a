// For unit tests (fast_connection_test.cc, peer_stall_test.cc, scribble_test.cc): both ends of
// one fast connection in this process: a slot of a test arena (session/test_arena.h) bound for both
// ends, and a loopback TCP connection standing in for the kernel connection (the peer's death shows
// there). A forked child may take either end.
#ifndef LOOPFAST_FAST_TEST_PAIR_H_
#define LOOPFAST_FAST_TEST_PAIR_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <memory>

#include "fast/fast_connection.h"
#include "session/test_arena.h"

namespace loopfast::fasttest {

// A loopback TCP connection: [0] the server's end, [1] the client's; -1 on failure.
inline void KernelConnection(int kernel[2]) {
  kernel[0] = kernel[1] = -1;
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (listener < 0 ||
      bind(listener, reinterpret_cast<struct sockaddr *>(&address), sizeof address) != 0 ||
      listen(listener, 1) != 0 ||
      getsockname(listener, reinterpret_cast<struct sockaddr *>(&address), &length) != 0) {
    if (listener >= 0) close(listener);
    return;
  }
  kernel[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(kernel[1], reinterpret_cast<struct sockaddr *>(&address), sizeof address) == 0) {
    kernel[0] = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  }
  close(listener);
}

inline constexpr uint32_t kPairSlot = 5;
inline constexpr uint64_t kPairCookie = 1000 + kPairSlot;  // TestArena::BoundSlot's cookie

struct Pair {
  session::TestArena arena;
  std::unique_ptr<FastConnection> server;
  std::unique_ptr<FastConnection> client;
  int kernel[2] = {-1, -1};  // [0] the server's kernel socket, [1] the client's
  explicit Pair(uint32_t limit) {
    const uint32_t slot = arena.BoundSlot(kPairSlot, limit);
    server = std::move(FastConnection::Open(arena.server, slot, limit).value());
    client = std::move(FastConnection::Open(arena.client, slot, limit).value());
    KernelConnection(kernel);
  }
  ~Pair() {
    if (kernel[0] >= 0) close(kernel[0]);
    if (kernel[1] >= 0) close(kernel[1]);
  }
  Pair(const Pair &) = delete;
  Pair &operator=(const Pair &) = delete;
  bool ok() const { return server && client && kernel[0] >= 0 && kernel[1] >= 0; }
  // In the parent after fork: the child has the client end (and its kernel socket).
  void ParentKeepsServer() {
    if (kernel[1] >= 0) close(kernel[1]);
    kernel[1] = -1;
  }
  // The slot as the client (the peer that may write anything there) maps it.
  session::Slot *slot() const { return arena.client->arena().slot(kPairSlot); }
};

inline SendCall SendWith(bool nonblocking, long timeout_us) {
  SendCall call;
  call.nonblocking = nonblocking;
  call.wait.timeout = {timeout_us / 1000000, timeout_us % 1000000};
  return call;
}

inline RecvCall RecvWith(bool nonblocking, long timeout_us) {
  RecvCall call;
  call.nonblocking = nonblocking;
  call.wait.timeout = {timeout_us / 1000000, timeout_us % 1000000};
  return call;
}

inline uint64_t NowNs() {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return uint64_t(now.tv_sec) * 1000000000u + uint64_t(now.tv_nsec);
}

}  // namespace loopfast::fasttest

#endif  // LOOPFAST_FAST_TEST_PAIR_H_
