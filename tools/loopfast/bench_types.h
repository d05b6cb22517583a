// The vocabulary of `loopfast bench`, shared by its parts: the options of a run, the three paths
// it compares (Kind), and what one trial measured (Trial, with its latency percentiles and, for
// `many`, its memory cost per connection).
#ifndef LOOPFAST_TOOLS_BENCH_TYPES_H_
#define LOOPFAST_TOOLS_BENCH_TYPES_H_

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

namespace loopfast::tool::bench {

struct Options {
  std::string mode;
  std::vector<size_t> sizes = {1};                // rr message sizes
  size_t count = 20000;                           // rr round trips, conn connections, many
                                                  // transactions, per trial
  std::vector<size_t> write_sizes = {64 * 1024};  // stream write sizes
  size_t read_size = 0;            // stream read size; 0: the write size (as iperf3 does)
  size_t bytes = size_t{1} << 30;  // stream bytes per trial
  size_t connections = 0;          // concurrent connections; 0: the mode's default (rr 1, many 100)
  size_t processes = 1;            // many: client processes (and as many server processes)
  // rr, many: transactions per second, each list entry a parameter of its own; empty: unpaced.
  std::vector<size_t> rates;
  bool count_given = false;  // --count was given (paced runs otherwise size trials by time)
  int rounds = 5;
  std::string json_path;  // "" none, "-" stdout
  std::string svg_path;
  bool progress = true;

  bool Paced() const { return !rates.empty(); }
  // rr and many take their rate as the trial's parameter when paced, rr its message size
  // otherwise.
  size_t SizeOf(size_t parameter) const { return Paced() ? sizes.front() : parameter; }
  double RateOf(size_t parameter) const { return Paced() ? double(parameter) : 0; }
  // Paced trials last about two seconds unless --count says otherwise.
  size_t CountFor(size_t parameter) const {
    return Paced() && !count_given ? std::max<size_t>(200, 2 * parameter) : count;
  }
};

enum class Kind { kFast, kKernel, kUnix };
constexpr Kind kKinds[] = {Kind::kFast, Kind::kKernel, Kind::kUnix};
constexpr int kKindCount = 3;
inline int IndexOf(Kind kind) { return static_cast<int>(kind); }
inline const char *Name(Kind kind) {
  return kind == Kind::kFast ? "fast path" : kind == Kind::kKernel ? "kernel TCP" : "unix socket";
}
inline const char *Tag(Kind kind) {
  return kind == Kind::kFast ? "fast" : kind == Kind::kKernel ? "kernel" : "unix";
}
inline const char *Color(Kind kind) {
  return kind == Kind::kFast ? "#1f77b4" : kind == Kind::kKernel ? "#d62728" : "#2ca02c";
}

struct LatencyPercentiles {
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;  // microseconds
};

// many: what the open connections cost, KiB per connection (both ends), from the difference
// between a snapshot before any connection was made and one with all open and warmed up.
struct MemoryCost {
  bool measured = false;
  double available = 0;           // drop of MemAvailable, system-wide: the honest total
  double pss = 0, pss_shmem = 0;  // the bench processes' summed PSS, and its shared-memory part
  double slab = 0, unreclaimable_slab = 0, shmem = 0, page_tables = 0;  // /proc/meminfo deltas
  // The parts MemAvailable cannot reclaim, summed: PSS (shared memory included) + unreclaimable
  // slab + page tables. Far less noisy than the MemAvailable drop at a few thousand
  // connections, and close to it at 10,000.
  double Accounted() const { return pss + unreclaimable_slab + page_tables; }
};

struct Trial {
  Kind kind = Kind::kFast;
  size_t parameter = 0;              // rr: message size; stream: write size; conn, many: 0
  int round = 0;                     // 1-based
  std::vector<double> latencies_ns;  // rr, many: one per timed transaction
  double rate = 0;                   // operations (rr, conn, many) or bytes (stream) per second
  double operations = 0;             // timed transactions / connections; stream: bytes
  double cpu_operations = 0;         // what CPU time is divided by (includes warm-up transactions)
  double seconds = 0;                // timed part
  double cpu_seconds = 0;            // both processes, whole trial
  LatencyPercentiles latency;        // rr, many: of latencies_ns
  bool ok = true;
  bool path_verified = true;  // every connection checked took the path of `kind`
  MemoryCost memory;          // many only
};

}  // namespace loopfast::tool::bench

#endif  // LOOPFAST_TOOLS_BENCH_TYPES_H_
