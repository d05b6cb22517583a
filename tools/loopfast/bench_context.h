// The state a `loopfast bench` run carries from trial to trial, passed explicitly (no globals):
// the progress reporter and the flag that a connection took the wrong path. The bench forks its
// servers and `many` clients, and each process works on its own copy of the context: a child
// disables its progress (the parent reports) and reports a wrong path by its exit status.
#ifndef LOOPFAST_TOOLS_BENCH_CONTEXT_H_
#define LOOPFAST_TOOLS_BENCH_CONTEXT_H_

#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>

namespace loopfast::tool::bench {

inline uint64_t NowNs() {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return uint64_t(now.tv_sec) * 1000000000u + uint64_t(now.tv_nsec);
}

// Reports on stderr every ~2 s while a run lasts: how far it is and what it is doing. Polled
// from the measuring loops (no thread: the bench forks, and a thread could hold a lock then).
class Progress {
 public:
  void Start(bool enabled, size_t total_trials) {
    enabled_ = enabled;
    total_trials_ = std::max<size_t>(total_trials, 1);
    start_ns_ = NowNs();
    next_report_ns_ = start_ns_ + kIntervalNs;
  }
  void BeginTrial(std::string label) { label_ = std::move(label); }
  void EndTrial() { ++done_trials_; }
  // `fraction`: how much of the current trial is done.
  void Poll(uint64_t now_ns, double fraction) {
    if (!enabled_ || now_ns < next_report_ns_) return;
    next_report_ns_ = now_ns + kIntervalNs;
    const double done =
        (double(done_trials_) + std::clamp(fraction, 0.0, 1.0)) / double(total_trials_);
    const double elapsed = double(now_ns - start_ns_) / 1e9;
    std::fprintf(stderr, "loopfast bench: %3.0f%%, trial %zu/%zu (%s), %.0f s elapsed", done * 100,
                 done_trials_ + 1, total_trials_, label_.c_str(), elapsed);
    if (done > 0.02) std::fprintf(stderr, ", ~%.0f s left", elapsed / done - elapsed);
    std::fputc('\n', stderr);
  }

 private:
  static constexpr uint64_t kIntervalNs = 2000000000u;
  bool enabled_ = false;
  size_t total_trials_ = 1;
  size_t done_trials_ = 0;
  uint64_t start_ns_ = 0;
  uint64_t next_report_ns_ = 0;
  std::string label_;
};

struct BenchContext {
  Progress progress;
  // Set when CheckPath finds a connection on the wrong path in this process, or when
  // FinishChild sees a child exit with kExitPathMismatch. Cleared before each trial.
  bool path_mismatch = false;
};

}  // namespace loopfast::tool::bench

#endif  // LOOPFAST_TOOLS_BENCH_CONTEXT_H_
