// Process control for `loopfast bench`: a trial's server forked onto CPU 1 (the client stays on
// CPU 0), waiting for a child with a deadline and adding its CPU time, moving bytes over pipes
// to a child with a deadline, and the descriptor limit a process needs for its connections.
#ifndef LOOPFAST_TOOLS_BENCH_PROCESS_H_
#define LOOPFAST_TOOLS_BENCH_PROCESS_H_

#include <sys/types.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>

#include "bench_context.h"
#include "bench_socket.h"
#include "bench_types.h"

namespace loopfast::tool::bench {

// Says what failed, with errno, and exits the process with status 1.
[[noreturn]] void Die(const char *what);

void PinToCpu(int cpu);

// CPU time of this process so far (user + system), in seconds.
double ClientCpu();

// A server's exit status when one of its connections took the wrong path.
constexpr int kExitPathMismatch = 3;

// Forks a server on CPU 1 that runs `serve(listener)`; returns once it listens. The server
// exits with kExitPathMismatch when its copy of `context` saw a connection on the wrong path,
// with 1 when `serve` failed.
template <typename Serve>
ServerProcess StartServer(BenchContext &context, Kind kind, Serve serve) {
  int ready[2];
  if (pipe(ready) != 0) Die("pipe");
  std::fflush(nullptr);  // nothing buffered may be written twice
  const pid_t pid = fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    close(ready[0]);
    PinToCpu(1);
    uint16_t port = 0;
    const int listener = Listen(kind, &port);
    if (write(ready[1], &port, sizeof port) != sizeof port) _exit(1);
    close(ready[1]);
    const bool served = serve(listener);
    _exit(context.path_mismatch ? kExitPathMismatch : served ? 0 : 1);
  }
  close(ready[1]);
  uint16_t port = 0;
  if (read(ready[0], &port, sizeof port) != sizeof port) Die("server start");
  close(ready[0]);
  return {pid, port};
}

// Waits for a child (a server, or a `many` client); adds its CPU time. False if it failed
// (context->path_mismatch set if it saw a connection on the wrong path).
// A child still running this long after the trial's client side finished is stuck: killed.
// When the rest of the trial failed (`others_ok` false) the child may be left waiting: it is
// killed at once.
bool FinishChild(BenchContext &context, pid_t pid, bool others_ok, double *cpu_seconds);

// Moves exactly `size` bytes over a pipe, giving up at `deadline_ns`; reports progress at
// `progress_fraction` of the trial while it waits (children have progress disabled).
bool PipeTransfer(BenchContext &context, int fd, void *buffer, size_t size, bool writing,
                  uint64_t deadline_ns, double progress_fraction);

// A `many` process holds one end of each of its connections: one descriptor for a fast end, as
// for kernel TCP (its session's few are shared), plus a few for sessions, pipes and epoll.
// Raises the soft limit to the hard one and checks it is enough.
bool RaiseDescriptorLimit(size_t connections_per_process);

}  // namespace loopfast::tool::bench

#endif  // LOOPFAST_TOOLS_BENCH_PROCESS_H_
