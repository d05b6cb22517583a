// Google Benchmark micro-benchmarks of the rendezvous: a whole connection's life in one process
// (connect, accept, optionally one byte each way, close both ends), fast path beside kernel
// TCP. The process links the library, so every socket call goes through the interposer, as in a
// program; the kernel variant opts out, which measures the interposer's cost on that path too.
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

#include "loopfast/loopfast.h"

namespace {

enum class Path : int64_t { kKernel = 0, kFast = 1 };

bool ReadAll(int fd, void *buffer, size_t size) {
  auto *bytes = static_cast<char *>(buffer);
  for (size_t done = 0; done < size;) {
    const ssize_t n = recv(fd, bytes + done, size - done, 0);
    if (n > 0)
      done += size_t(n);
    else if (!(n < 0 && errno == EINTR))
      return false;
  }
  return true;
}

bool WriteAll(int fd, const void *buffer, size_t size) {
  const auto *bytes = static_cast<const char *>(buffer);
  for (size_t done = 0; done < size;) {
    const ssize_t n = send(fd, bytes + done, size - done, MSG_NOSIGNAL);
    if (n > 0)
      done += size_t(n);
    else if (!(n < 0 && errno == EINTR))
      return false;
  }
  return true;
}

int TcpSocket(Path path) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (loopfast_set_fast_path(fd, path == Path::kFast ? 1 : 0) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// A listener on 127.0.0.1, ephemeral port; -1 on failure.
int Listen(Path path, sockaddr_in *address) {
  const int fd = TcpSocket(path);
  if (fd < 0) return -1;
  *address = {};
  address->sin_family = AF_INET;
  address->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof *address;
  if (bind(fd, reinterpret_cast<sockaddr *>(address), sizeof *address) != 0 ||
      listen(fd, 128) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr *>(address), &length) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// One connection's life; `exchange`: one byte each way (settles the rendezvous on both ends).
// Returns the path the client ended on (LOOPFAST_PATH_*), or -1 on an error.
int ConnectionCycle(int listener, const sockaddr_in &address, Path path, bool exchange) {
  const int client = TcpSocket(path);
  if (client < 0) return -1;
  if (connect(client, reinterpret_cast<const sockaddr *>(&address), sizeof address) != 0) {
    close(client);
    return -1;
  }
  const int server = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (server < 0) {
    close(client);
    return -1;
  }
  bool ok = true;
  if (exchange) {
    char byte = 'x';
    ok = WriteAll(client, &byte, 1) && ReadAll(server, &byte, 1) && WriteAll(server, &byte, 1) &&
         ReadAll(client, &byte, 1);
  }
  const int observed = loopfast_path_of(client);
  close(client);
  close(server);
  return ok ? observed : -1;
}

void RunCycles(benchmark::State &state, bool exchange) {
  const Path path = static_cast<Path>(state.range(0));
  state.SetLabel(path == Path::kFast ? "fast path" : "kernel TCP");
  sockaddr_in address{};
  const int listener = Listen(path, &address);
  if (listener < 0) {
    state.SkipWithError("cannot listen on 127.0.0.1");
    return;
  }
  // One checked connection first: a "fast" figure from kernel connections would mislead.
  const int expected = path == Path::kFast ? LOOPFAST_PATH_FAST : LOOPFAST_PATH_KERNEL;
  if (ConnectionCycle(listener, address, path, /*exchange=*/true) != expected) {
    close(listener);
    state.SkipWithError(path == Path::kFast ? "the connection did not take the fast path"
                                            : "the connection did not take kernel TCP");
    return;
  }
  for (auto _ : state) {
    if (ConnectionCycle(listener, address, path, exchange) < 0) {
      state.SkipWithError("connection cycle failed");
      break;
    }
  }
  close(listener);
  state.SetItemsProcessed(int64_t(state.iterations()));  // connections
}

// connect + accept + close on both ends, no data.
void BM_ConnectAcceptClose(benchmark::State &state) { RunCycles(state, /*exchange=*/false); }
BENCHMARK(BM_ConnectAcceptClose)
    ->ArgName("fast")
    ->Arg(int64_t(Path::kFast))
    ->Arg(int64_t(Path::kKernel))
    ->UseRealTime();

// The same with one byte each way: the rendezvous is complete on both ends before the close.
void BM_ConnectExchangeClose(benchmark::State &state) { RunCycles(state, /*exchange=*/true); }
BENCHMARK(BM_ConnectExchangeClose)
    ->ArgName("fast")
    ->Arg(int64_t(Path::kFast))
    ->Arg(int64_t(Path::kKernel))
    ->UseRealTime();

}  // namespace
