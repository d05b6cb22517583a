// The workloads of `loopfast bench` behind one interface: rr (request/response), stream
// (one-way throughput), conn (connection rate) and many (concurrent connections, with their
// memory). One trial runs one path; the bench loop interleaves the paths and rounds. Also what
// the workloads share: the pacer of --rate and the `many` echo server rr uses too.
#ifndef LOOPFAST_TOOLS_BENCH_WORKLOAD_H_
#define LOOPFAST_TOOLS_BENCH_WORKLOAD_H_

#include <sys/prctl.h>
#include <time.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bench_context.h"
#include "bench_types.h"

namespace loopfast::tool::bench {

class Workload {
 public:
  explicit Workload(BenchContext &context) : context_(context) {}
  virtual ~Workload() = default;
  Workload(const Workload &) = delete;
  Workload &operator=(const Workload &) = delete;

  // The parameters a run measures, a row of results each: rr message sizes, stream write
  // sizes, or (paced) rates; {0} for a mode without one.
  virtual std::vector<size_t> Parameters(const Options &) const { return {0}; }
  // Checks the run can go ahead before any trial; false (having said why) when it cannot.
  virtual bool Prepare(const Options &) { return true; }
  // One trial of `kind` at `parameter`.
  virtual Trial Run(Kind kind, const Options &options, size_t parameter) = 0;

 protected:
  BenchContext &context_;
};

// The workload of `mode` ("rr", "stream", "conn", "many"); nullptr for another.
std::unique_ptr<Workload> MakeWorkload(const std::string &mode, BenchContext &context);
std::unique_ptr<Workload> MakeRrWorkload(BenchContext &context);
std::unique_ptr<Workload> MakeStreamWorkload(BenchContext &context);
std::unique_ptr<Workload> MakeConnWorkload(BenchContext &context);
std::unique_ptr<Workload> MakeManyWorkload(BenchContext &context);

// The `many` server: one epoll loop over the listener and every connection, echoing bytes.
bool ServeMany(BenchContext &context, int listener, Kind kind, size_t connections);
// The last byte a client of ServeMany (`many`, rr with several connections) sends on each
// connection: the server closes first. (Not the client first: in loopfast 0.1.0 an epoll_wait on a
// set holding 64 or more fast connections whose peer has closed spins forever, and the server's set
// would be that set.)
constexpr char kManyQuit = 'q';

// Sleeps until `when_ns` (NowNs() clock); returns at once when that has passed.
inline void SleepUntilNs(uint64_t when_ns) {
  const struct timespec at = {time_t(when_ns / 1000000000u), long(when_ns % 1000000000u)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, nullptr) == EINTR) {
  }
}

// When paced transactions start: every 1/rate seconds from the first, as a load generator
// sends (open loop), so that a slow answer does not slow the requests down. A schedule more
// than `kMaxBehind` intervals late restarts from now rather than bursting to catch up.
class Pacer {
 public:
  static constexpr uint64_t kMaxBehind = 10;
  // rate 0: unpaced, Next() returns at once.
  explicit Pacer(double rate) : interval_ns_(rate > 0 ? uint64_t(1e9 / rate) : 0) {
    if (interval_ns_ != 0) prctl(PR_SET_TIMERSLACK, 1UL);  // sleep to the microsecond
  }
  bool paced() const { return interval_ns_ != 0; }
  uint64_t interval_ns() const { return interval_ns_; }
  // The time the next transaction is due (NowNs() clock); 0 when unpaced.
  uint64_t Due(uint64_t now) {
    if (interval_ns_ == 0) return 0;
    if (next_ns_ == 0 || now > next_ns_ + kMaxBehind * interval_ns_) next_ns_ = now;
    return next_ns_;
  }
  void Issued() { next_ns_ += interval_ns_; }
  // Waits until the next transaction is due.
  void AwaitNext() {
    if (interval_ns_ == 0) return;
    SleepUntilNs(Due(NowNs()));
    Issued();
  }

 private:
  uint64_t interval_ns_;
  uint64_t next_ns_ = 0;
};

}  // namespace loopfast::tool::bench

#endif  // LOOPFAST_TOOLS_BENCH_WORKLOAD_H_
