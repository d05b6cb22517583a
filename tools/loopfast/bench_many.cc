// `loopfast bench many`: N concurrent connections over P client and P server processes, each
// client and server one epoll loop, 1-byte request/response (paced with --rate); the memory the
// open connections cost is measured by the parent between steps of a conversation over pipes
// (bench_workload.h). Its server, ServeMany, also serves rr with several connections.
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <vector>

#include "bench_memory.h"
#include "bench_process.h"
#include "bench_socket.h"
#include "bench_workload.h"

namespace loopfast::tool::bench {
namespace {

// No progress for this long in a `many` trial: something is stuck; fail rather than hang.
constexpr uint64_t kStallNs = 20000000000u;

}  // namespace

// The `many` server (bench_workload.h): echoes every byte but the closing kManyQuit.
bool ServeMany(BenchContext &context, int listener, Kind kind, size_t connections) {
  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return false;
  struct epoll_event event {};
  event.events = EPOLLIN;
  event.data.fd = listener;
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listener, &event) != 0) return false;
  size_t accepted = 0, closed = 0;
  bool ok = true;
  bool path_complaint = false;  // one message, not a thousand
  uint64_t last_activity = NowNs();
  std::vector<struct epoll_event> events(256);
  char buffer[512];
  while (closed < connections) {
    const int ready = epoll_wait(epoll_fd, events.data(), int(events.size()), 1000);
    if (ready < 0 && errno != EINTR) return false;
    if (ready <= 0) {
      if (NowNs() - last_activity > kStallNs) return false;
      continue;
    }
    last_activity = NowNs();
    for (int i = 0; i < ready; ++i) {
      const int fd = events[size_t(i)].data.fd;
      if (fd == listener) {
        const int connection = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (connection < 0) return false;
        event.data.fd = connection;
        if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, connection, &event) != 0) return false;
        if (++accepted == connections) epoll_ctl(epoll_fd, EPOLL_CTL_DEL, listener, nullptr);
        continue;
      }
      const ssize_t n = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
      if (n > 0 && buffer[n - 1] != kManyQuit) {
        ok = WriteAll(fd, buffer, size_t(n)) && ok;
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) ok = false;  // the client says kManyQuit before it closes
      if (!path_complaint && !CheckPath(context, fd, kind)) path_complaint = true;
      epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
      close(fd);
      ++closed;
    }
  }
  close(epoll_fd);
  return ok && !path_complaint;
}

namespace {

// ---- `many`: P client processes, each with its own server process ----
//
// Each client/server pair has its own listener rather than P workers sharing one: accept on a
// shared listener would spread connections unevenly, so no worker would know how many to expect
// (it closes when all its connections are done) and a busy one could exceed its descriptor
// limit; with a listener each, every pair carries exactly its share.

// One pair's part of a `many` trial.
struct ManyShare {
  size_t connections = 0;
  size_t count = 0;  // timed transactions
  double rate = 0;   // transactions per second; 0: unpaced
};

// The parent's side of a `many` client process.
struct ManyClient {
  pid_t pid = 0;
  int command_fd = -1;  // parent → client: kStepConnect, kStepGo
  int report_fd = -1;   // client → parent: kStepReady, kStepConnected, then a ManyReport
};

// Steps of the conversation between the parent and a `many` client, one byte each. The
// parent takes its memory snapshots between them: before any connection, and with all open.
constexpr char kStepReady = 'r';      // client: set up, nothing connected yet
constexpr char kStepConnect = 'c';    // parent: connect and warm up every connection
constexpr char kStepConnected = 'k';  // client: all connected and warmed up
constexpr char kStepFailed = 'f';     // client: could not
constexpr char kStepGo = 'g';         // parent: run the timed part

// What a client sends at the end, followed by `latencies` doubles (ns).
struct ManyReport {
  uint64_t ok = 0;
  uint64_t start_ns = 0, end_ns = 0;  // CLOCK_MONOTONIC: comparable across processes
  uint64_t completed = 0;
  uint64_t latencies = 0;
};

constexpr uint64_t kManySetupNs = 60000000000u;     // forking and setting up the clients
constexpr uint64_t kManyConnectNs = 300000000000u;  // connecting and warming up
constexpr uint64_t kManyTimedNs = 1800000000000u;   // the timed part (clients detect stalls)

bool SendStep(BenchContext &context, int fd, char step) {
  return PipeTransfer(context, fd, &step, 1, true, NowNs() + kManySetupNs, 0);
}

bool AwaitStep(BenchContext &context, int fd, char expected, uint64_t deadline_ns,
               double progress_fraction) {
  char step = 0;
  return PipeTransfer(context, fd, &step, 1, false, deadline_ns, progress_fraction) &&
         step == expected;
}

// A `many` client process: its connections, each with one 1-byte request outstanding at a
// time, driven by one epoll loop; latency is send to reply, queueing in both loops included.
[[noreturn]] void ManyClientMain(BenchContext &context, Kind kind, const ServerProcess &server,
                                 const ManyShare &share, int command_fd, int report_fd) {
  context.progress = Progress{};  // the parent reports progress
  PinToCpu(0);
  const size_t connections = share.connections;
  if (!RaiseDescriptorLimit(connections)) _exit(1);
  // Allocated before the parent's first snapshot, so that only the connections are measured.
  std::vector<int> fds;
  fds.reserve(connections);
  std::vector<uint64_t> sent_at(connections, 0);
  std::vector<double> latencies_ns;
  latencies_ns.reserve(share.count);
  std::vector<struct epoll_event> events(256);
  if (!SendStep(context, report_fd, kStepReady) ||
      !AwaitStep(context, command_fd, kStepConnect, NowNs() + kManySetupNs, 0))
    _exit(1);

  bool ok = true;
  for (size_t i = 0; i < connections; ++i) fds.push_back(Connect(kind, server));
  // Warm-up: one exchange per connection settles every rendezvous before memory is measured
  // and before the clock starts.
  char byte = 'x';
  for (const int fd : fds) ok = WriteAll(fd, &byte, 1) && ReadAll(fd, &byte, 1) && ok;
  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) Die("epoll_create1");
  for (size_t i = 0; i < connections && ok; ++i) {
    struct epoll_event event {};
    event.events = EPOLLIN;
    event.data.u64 = i;
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fds[i], &event) != 0) Die("epoll_ctl");
  }
  if (!SendStep(context, report_fd, ok ? kStepConnected : kStepFailed) ||
      !AwaitStep(context, command_fd, kStepGo, NowNs() + kManyConnectNs, 0))
    _exit(1);

  const size_t count = share.count;
  const uint64_t start = NowNs();
  size_t issued = 0, completed = 0;
  uint64_t last_activity = start;
  Pacer pacer(share.rate);
  std::vector<size_t> idle;  // paced: connections with no request outstanding, in turn
  if (pacer.paced()) {
    for (size_t i = connections; i > 0; --i) idle.push_back(i - 1);
  } else {
    for (size_t i = 0; i < connections && issued < count && ok; ++i, ++issued) {
      sent_at[i] = NowNs();
      ok = WriteAll(fds[i], &byte, 1);
    }
  }
  size_t next_idle = 0;
  while ((completed < issued || (pacer.paced() && issued < count)) && ok) {
    // Paced: every request now due goes out on the next idle connection (none idle: later).
    uint64_t now = NowNs();
    while (pacer.paced() && issued < count && !idle.empty() && now >= pacer.Due(now)) {
      next_idle = next_idle % idle.size();
      const size_t i = idle[next_idle];
      idle[next_idle] = idle.back();
      idle.pop_back();
      sent_at[i] = now;
      ok = WriteAll(fds[i], &byte, 1) && ok;
      ++issued;
      ++next_idle;
      pacer.Issued();
      now = NowNs();
    }
    struct timespec wait = {1, 0};
    if (pacer.paced() && issued < count && !idle.empty()) {
      const uint64_t due = pacer.Due(now);
      const uint64_t left = due > now ? due - now : 0;
      wait = {time_t(left / 1000000000u), long(left % 1000000000u)};
    }
    const int ready = epoll_pwait2(epoll_fd, events.data(), int(events.size()), &wait, nullptr);
    now = NowNs();
    if (ready < 0 && errno != EINTR) Die("epoll_wait");
    if (ready <= 0) {
      if (completed < issued && now - last_activity > kStallNs) {
        std::fprintf(stderr, "loopfast bench: many: no reply for %.0f s\n", kStallNs / 1e9);
        ok = false;
      }
      continue;
    }
    last_activity = now;
    for (int k = 0; k < ready && ok; ++k) {
      const size_t i = size_t(events[size_t(k)].data.u64);
      const ssize_t n = recv(fds[i], &byte, 1, MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n != 1) {
        ok = false;
        break;
      }
      const uint64_t received = NowNs();
      latencies_ns.push_back(double(received - sent_at[i]));
      ++completed;
      if (pacer.paced()) {
        idle.push_back(i);
      } else if (issued < count) {
        sent_at[i] = received;  // unpaced: the next request at once, on the same connection
        ok = WriteAll(fds[i], &byte, 1);
        ++issued;
      }
    }
  }
  ManyReport report;
  report.start_ns = start;
  report.end_ns = NowNs();
  report.completed = completed;
  report.latencies = latencies_ns.size();
  close(epoll_fd);
  bool path_ok = true;
  for (const int fd : fds) {
    if (path_ok) path_ok = CheckPath(context, fd, kind);
    if (ok) {
      // Ask the server to close, and see it do so (EOF, bounded), before closing this end.
      const struct timeval limit = {int(kStallNs / 1000000000u), 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
      char end = kManyQuit;
      if (!WriteAll(fd, &end, 1) || recv(fd, &end, 1, 0) != 0) ok = false;
    }
    close(fd);
  }
  report.ok = ok && path_ok;
  const uint64_t deadline = NowNs() + kManySetupNs;
  const bool sent = PipeTransfer(context, report_fd, &report, sizeof report, true, deadline, 0) &&
                    PipeTransfer(context, report_fd, latencies_ns.data(),
                                 latencies_ns.size() * sizeof(double), true, deadline, 0);
  _exit(context.path_mismatch ? kExitPathMismatch : sent && report.ok ? 0 : 1);
}

// `many`: N connections over P client processes (CPU 0) and P server processes (CPU 1), each
// pair carrying N/P connections and count/P timed transactions. Memory is measured by the
// parent, which holds no connection: before any is made, and with all open and warmed up.
Trial RunMany(BenchContext &context, Kind kind, const Options &options, size_t parameter) {
  const size_t processes = options.processes;
  std::vector<ManyShare> shares(processes);
  for (size_t i = 0; i < processes; ++i) {
    shares[i].connections =
        options.connections / processes + (i < options.connections % processes ? 1 : 0);
    const size_t count = options.CountFor(parameter);
    shares[i].count = count / processes + (i < count % processes ? 1 : 0);
    shares[i].rate = options.RateOf(parameter) / double(processes);
  }
  std::vector<ServerProcess> servers;
  for (const ManyShare &share : shares) {
    servers.push_back(StartServer(context, kind, [&](int listener) {
      context.progress = Progress{};
      return RaiseDescriptorLimit(share.connections) &&
             ServeMany(context, listener, kind, share.connections);
    }));
  }
  std::vector<ManyClient> clients;
  for (size_t i = 0; i < processes; ++i) {
    int command[2], report[2];
    if (pipe2(command, O_CLOEXEC) != 0 || pipe2(report, O_CLOEXEC) != 0) Die("pipe");
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid < 0) Die("fork");
    if (pid == 0) {
      for (const ManyClient &other : clients) {  // so that each client sees its own EOF
        close(other.command_fd);
        close(other.report_fd);
      }
      close(command[1]);
      close(report[0]);
      ManyClientMain(context, kind, servers[i], shares[i], command[0], report[1]);
    }
    close(command[0]);
    close(report[1]);
    clients.push_back({pid, command[1], report[0]});
  }
  std::vector<pid_t> pids;
  for (const ServerProcess &server : servers) pids.push_back(server.pid);
  for (const ManyClient &client : clients) pids.push_back(client.pid);

  Trial trial;
  bool ok = true;
  const uint64_t setup_deadline = NowNs() + kManySetupNs;
  for (const ManyClient &client : clients)
    ok = ok && AwaitStep(context, client.report_fd, kStepReady, setup_deadline, 0);
  MemorySnapshot before;
  if (ok) {
    AwaitQuietMemory();
    before = TakeMemorySnapshot(pids);
  }
  for (const ManyClient &client : clients)
    ok = ok && SendStep(context, client.command_fd, kStepConnect);
  const uint64_t connect_deadline = NowNs() + kManyConnectNs;
  for (const ManyClient &client : clients)
    ok = ok && AwaitStep(context, client.report_fd, kStepConnected, connect_deadline, 0.1);
  if (ok) {
    AwaitQuietMemory();
    trial.memory = CostPerConnection(before, TakeMemorySnapshot(pids), options.connections);
  }
  for (const ManyClient &client : clients) ok = ok && SendStep(context, client.command_fd, kStepGo);

  uint64_t start = UINT64_MAX, end = 0, completed = 0;
  const uint64_t timed_deadline = NowNs() + kManyTimedNs;
  const size_t count = options.CountFor(parameter);
  trial.latencies_ns.reserve(count);
  for (const ManyClient &client : clients) {
    ManyReport report;
    if (!ok ||
        !PipeTransfer(context, client.report_fd, &report, sizeof report, false, timed_deadline,
                      0.5) ||
        report.latencies > count) {
      ok = false;
      break;
    }
    const size_t already = trial.latencies_ns.size();
    trial.latencies_ns.resize(already + report.latencies);
    if (!PipeTransfer(context, client.report_fd, trial.latencies_ns.data() + already,
                      report.latencies * sizeof(double), false, timed_deadline, 0.5)) {
      ok = false;
      break;
    }
    ok = report.ok != 0 && ok;
    start = std::min(start, report.start_ns);
    end = std::max(end, report.end_ns);
    completed += report.completed;
  }
  for (const ManyClient &client : clients) {
    close(client.command_fd);  // a client still waiting for a step sees EOF and exits
    close(client.report_fd);
  }
  trial.seconds = end > start ? double(end - start) / 1e9 : 0;
  trial.operations = double(completed);
  trial.cpu_operations = double(completed + options.connections);
  trial.rate = trial.seconds > 0 ? trial.operations / trial.seconds : 0;
  // Clients first: a server ends when its client has closed every connection.
  for (const ManyClient &client : clients)
    ok = FinishChild(context, client.pid, ok, &trial.cpu_seconds) && ok;
  for (const ServerProcess &server : servers)
    ok = FinishChild(context, server.pid, ok, &trial.cpu_seconds) && ok;
  trial.ok = ok;
  return trial;
}

class ManyWorkload : public Workload {
 public:
  using Workload::Workload;

  std::vector<size_t> Parameters(const Options &options) const override {
    return options.Paced() ? options.rates : std::vector<size_t>{0};
  }

  bool Prepare(const Options &options) override {
    // The children check again, each for its own share.
    const size_t largest_share = (options.connections + options.processes - 1) / options.processes;
    return RaiseDescriptorLimit(largest_share);
  }

  Trial Run(Kind kind, const Options &options, size_t parameter) override {
    return RunMany(context_, kind, options, parameter);
  }
};

}  // namespace

std::unique_ptr<Workload> MakeManyWorkload(BenchContext &context) {
  return std::make_unique<ManyWorkload>(context);
}

}  // namespace loopfast::tool::bench
