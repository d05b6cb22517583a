// Google Benchmark of what the interposer adds to one `send` (issue 18): the descriptor lookup
// and the dispatch, on one thread and on eight at once, each thread with its own descriptor (a
// lock shared by all descriptors shows as eight threads costing more than one).
//
// Every variant makes a call that moves no bytes, so the figure is the per-call path and not
// the ring or the TCP stack:
// - untracked: a TCP socket loopfast never saw (made by the raw system call), not connected:
//   the lookup, then libc's send, which fails with EPIPE;
// - tracked_kernel: the same kind of socket made through socket(), so loopfast tracks it (not
//   connected yet, it stays on the kernel path): lookup, dispatch, the same failing send;
// - tracked_fast: a zero-byte send on a fast connection: lookup, dispatch and the fast path's
//   checks, no system call.
// The process links the library, so send() is the interposer's, as in a program.
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "loopfast/loopfast.h"

namespace {

// Connected TCP pair on 127.0.0.1 that took the fast path; false if it could not be made.
bool FastPair(int *client, int *server) {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0 || loopfast_set_fast_path(listener, 1) != 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  *client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool ok = bind(listener, reinterpret_cast<sockaddr *>(&address), sizeof address) == 0 &&
            listen(listener, 1) == 0 &&
            getsockname(listener, reinterpret_cast<sockaddr *>(&address), &length) == 0 &&
            *client >= 0 && loopfast_set_fast_path(*client, 1) == 0 &&
            connect(*client, reinterpret_cast<sockaddr *>(&address), sizeof address) == 0;
  *server = ok ? accept4(listener, nullptr, nullptr, SOCK_CLOEXEC) : -1;
  close(listener);
  char byte = 'x';
  ok = ok && *server >= 0 && send(*client, &byte, 1, MSG_NOSIGNAL) == 1 &&
       recv(*server, &byte, 1, 0) == 1 && send(*server, &byte, 1, MSG_NOSIGNAL) == 1 &&
       recv(*client, &byte, 1, 0) == 1;
  return ok && loopfast_path_of(*client) == LOOPFAST_PATH_FAST;
}

enum class Kind { kUntracked, kTrackedKernel, kTrackedFast };

void SendOnce(benchmark::State &state, Kind kind) {
  int fd = -1;
  int other = -1;
  switch (kind) {
    case Kind::kUntracked:
      fd = static_cast<int>(syscall(SYS_socket, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      break;
    case Kind::kTrackedKernel:
      fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      break;
    case Kind::kTrackedFast:
      if (!FastPair(&fd, &other)) {
        state.SkipWithError("the connection did not take the fast path");
        return;
      }
      break;
  }
  if (fd < 0) {
    state.SkipWithError("no socket");
    return;
  }
  const char byte = 'x';
  const size_t length = kind == Kind::kTrackedFast ? 0 : 1;
  const ssize_t expected = kind == Kind::kTrackedFast ? 0 : -1;  // EPIPE: not connected
  for (auto _ : state) {
    const ssize_t n = send(fd, &byte, length, MSG_NOSIGNAL);
    if (n != expected) {
      state.SkipWithError("send did not answer as expected");
      break;
    }
    benchmark::DoNotOptimize(n);
  }
  close(fd);
  if (other >= 0) close(other);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));  // calls
}

void BM_SendUntracked(benchmark::State &state) { SendOnce(state, Kind::kUntracked); }
void BM_SendTrackedKernel(benchmark::State &state) { SendOnce(state, Kind::kTrackedKernel); }
void BM_SendTrackedFast(benchmark::State &state) { SendOnce(state, Kind::kTrackedFast); }

BENCHMARK(BM_SendUntracked)->Threads(1)->Threads(8)->UseRealTime();
BENCHMARK(BM_SendTrackedKernel)->Threads(1)->Threads(8)->UseRealTime();
BENCHMARK(BM_SendTrackedFast)->Threads(1)->Threads(8)->UseRealTime();

}  // namespace
