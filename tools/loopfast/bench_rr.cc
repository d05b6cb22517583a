// `loopfast bench rr`: request/response latency, one transaction at a time, over one connection
// or several in turn; paced at a rate with --rate (bench_workload.h).
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "bench_process.h"
#include "bench_socket.h"
#include "bench_workload.h"

namespace loopfast::tool::bench {
namespace {

// rr: 1-byte (or --size) request/response, one transaction at a time, over --connections
// connections in turn; paced at the parameter's rate with --rate. One connection: the server
// is a blocking loop; several: one epoll loop (ServeMany).
class RrWorkload : public Workload {
 public:
  using Workload::Workload;

  std::vector<size_t> Parameters(const Options &options) const override {
    return options.Paced() ? options.rates : options.sizes;
  }

  Trial Run(Kind kind, const Options &options, size_t parameter) override {
    const size_t size = options.SizeOf(parameter);
    const size_t count = options.CountFor(parameter);
    const size_t connections = options.connections;
    const size_t warmup = std::min<size_t>(count / 10 + 1, 1000) + connections;
    ServerProcess server = StartServer(context_, kind, [&](int listener) {
      if (connections > 1) return ServeMany(context_, listener, kind, connections);
      const int fd = accept(listener, nullptr, nullptr);
      if (fd < 0) return false;
      std::vector<char> buffer(size);
      for (size_t i = 0; i < count + warmup; ++i) {
        if (!ReadAll(fd, buffer.data(), size) || !WriteAll(fd, buffer.data(), size)) return false;
      }
      const bool ok = CheckPath(context_, fd, kind);
      close(fd);
      return ok;
    });
    Trial trial;
    const double cpu_before = ClientCpu();
    std::vector<int> fds;
    for (size_t i = 0; i < connections; ++i) fds.push_back(Connect(kind, server));
    std::vector<char> buffer(size, 'x');
    trial.latencies_ns.reserve(count);
    Pacer pacer(options.RateOf(parameter));
    uint64_t start = 0;
    // The warm-up (one exchange on each connection first) runs at the measured pace, so that a
    // wait policy that learns has learnt it when the clock starts.
    for (size_t i = 0; i < warmup + count && trial.ok; ++i) {
      pacer.AwaitNext();
      const int fd = fds[i % connections];
      const uint64_t t0 = NowNs();
      if (!WriteAll(fd, buffer.data(), size) || !ReadAll(fd, buffer.data(), size)) {
        trial.ok = false;
        break;
      }
      const uint64_t t1 = NowNs();
      if (i == warmup) start = t0;
      if (i < warmup) continue;
      trial.latencies_ns.push_back(double(t1 - t0));
      context_.progress.Poll(t1, double(i - warmup) / double(count));
    }
    trial.seconds = double(NowNs() - start) / 1e9;
    trial.operations = double(count);
    trial.cpu_operations = double(count + warmup);
    trial.rate = trial.operations / trial.seconds;
    for (const int fd : fds) {
      trial.ok = CheckPath(context_, fd, kind) && trial.ok;
      if (connections > 1 && trial.ok) {
        char quit = kManyQuit;  // ServeMany closes first: see kManyQuit
        trial.ok = WriteAll(fd, &quit, 1) && recv(fd, &quit, 1, 0) == 0;
      }
      close(fd);
    }
    trial.cpu_seconds = ClientCpu() - cpu_before;
    trial.ok = FinishChild(context_, server.pid, trial.ok, &trial.cpu_seconds) && trial.ok;
    return trial;
  }
};

}  // namespace

std::unique_ptr<Workload> MakeRrWorkload(BenchContext &context) {
  return std::make_unique<RrWorkload>(context);
}

}  // namespace loopfast::tool::bench
