// `loopfast bench stream` (one-way throughput over one connection) and `loopfast bench conn`
// (connect, 1-byte exchange and close, one connection after another): the two workloads that
// measure a rate and no latency (bench_workload.h).
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "bench_process.h"
#include "bench_socket.h"
#include "bench_workload.h"

namespace loopfast::tool::bench {
namespace {

class StreamWorkload : public Workload {
 public:
  using Workload::Workload;

  std::vector<size_t> Parameters(const Options &options) const override {
    return options.write_sizes;
  }

  Trial Run(Kind kind, const Options &options, size_t write_size) override {
    const size_t total = options.bytes;
    ServerProcess server = StartServer(context_, kind, [&](int listener) {
      const int fd = accept(listener, nullptr, nullptr);
      if (fd < 0) return false;
      std::vector<char> buffer(options.read_size != 0 ? options.read_size : write_size);
      size_t received = 0;
      while (received < total) {
        const ssize_t n = recv(fd, buffer.data(), std::min(buffer.size(), total - received), 0);
        if (n <= 0) return false;
        received += size_t(n);
      }
      const char done = 1;
      const bool ok = WriteAll(fd, &done, 1) && CheckPath(context_, fd, kind);
      close(fd);
      return ok;
    });
    Trial trial;
    const double cpu_before = ClientCpu();
    const int fd = Connect(kind, server);
    std::vector<char> buffer(write_size, 'x');
    const uint64_t start = NowNs();
    size_t sent = 0;
    size_t writes = 0;
    while (sent < total && trial.ok) {
      const size_t chunk = std::min(write_size, total - sent);
      trial.ok = WriteAll(fd, buffer.data(), chunk);
      sent += chunk;
      if (++writes % 64 == 0) context_.progress.Poll(NowNs(), double(sent) / double(total));
    }
    char done = 0;
    trial.ok = trial.ok && ReadAll(fd, &done, 1);
    trial.seconds = double(NowNs() - start) / 1e9;
    trial.operations = double(total);
    trial.cpu_operations = double(total);
    trial.rate = double(total) / trial.seconds;  // bytes per second
    trial.ok = CheckPath(context_, fd, kind) && trial.ok;
    close(fd);
    trial.cpu_seconds = ClientCpu() - cpu_before;
    trial.ok = FinishChild(context_, server.pid, trial.ok, &trial.cpu_seconds) && trial.ok;
    return trial;
  }
};

class ConnWorkload : public Workload {
 public:
  using Workload::Workload;

  Trial Run(Kind kind, const Options &options, size_t) override {
    const size_t count = options.count;
    ServerProcess server = StartServer(context_, kind, [&](int listener) {
      bool ok = true;
      for (size_t i = 0; i < count; ++i) {
        const int fd = accept(listener, nullptr, nullptr);
        if (fd < 0) return false;
        char byte;
        ok = ReadAll(fd, &byte, 1) && WriteAll(fd, &byte, 1) && ok;
        if (i == 0) ok = CheckPath(context_, fd, kind) && ok;
        close(fd);
      }
      return ok;
    });
    Trial trial;
    const double cpu_before = ClientCpu();
    const uint64_t start = NowNs();
    bool path_ok = true;  // a wrong path fails the trial, but the server still gets its count
    for (size_t i = 0; i < count && trial.ok; ++i) {
      const int fd = Connect(kind, server);
      char byte = 'x';
      trial.ok = WriteAll(fd, &byte, 1) && ReadAll(fd, &byte, 1);
      if (i == 0) path_ok = CheckPath(context_, fd, kind);
      close(fd);
      if (i % 16 == 0) context_.progress.Poll(NowNs(), double(i) / double(count));
    }
    trial.seconds = double(NowNs() - start) / 1e9;
    trial.operations = double(count);
    trial.cpu_operations = double(count);
    trial.rate = double(count) / trial.seconds;  // connections per second
    trial.cpu_seconds = ClientCpu() - cpu_before;
    trial.ok =
        FinishChild(context_, server.pid, trial.ok, &trial.cpu_seconds) && trial.ok && path_ok;
    return trial;
  }
};

}  // namespace

std::unique_ptr<Workload> MakeStreamWorkload(BenchContext &context) {
  return std::make_unique<StreamWorkload>(context);
}

std::unique_ptr<Workload> MakeConnWorkload(BenchContext &context) {
  return std::make_unique<ConnWorkload>(context);
}

}  // namespace loopfast::tool::bench
