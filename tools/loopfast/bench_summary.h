// The results of a `loopfast bench` run, pooled: per parameter and path, the trials' latencies,
// rates, CPU and memory, their percentiles and medians, and the ratios against kernel TCP that
// the table and the JSON report.
#ifndef LOOPFAST_TOOLS_BENCH_SUMMARY_H_
#define LOOPFAST_TOOLS_BENCH_SUMMARY_H_

#include <cstddef>
#include <string>
#include <vector>

#include "bench_types.h"

namespace loopfast::tool::bench {

// Percentiles of a trial's latencies (ns in, microseconds out).
LatencyPercentiles PercentilesOf(std::vector<double> latencies_ns);

// All trials of one path at one parameter (size), pooled.
struct PathSummary {
  std::vector<double> sorted_latencies_ns;
  std::vector<double> rates;  // per trial
  double cpu_seconds = 0;
  double cpu_operations = 0;
  size_t trials = 0;
  LatencyPercentiles latency;
  double median_rate = 0, min_rate = 0, max_rate = 0;
  std::vector<MemoryCost> memory_trials;  // many: of each trial that measured it
  MemoryCost memory;  // many: per field, the median over memory_trials (MemAvailable is noisy)
  // CPU seconds per operation (rr, conn, many) or per byte (stream).
  double CpuPerOperation() const { return cpu_operations > 0 ? cpu_seconds / cpu_operations : 0; }
};

// Pools a successful trial into `summary`.
void AddTrial(const Trial &trial, PathSummary *summary);
// Once every trial is added: sorts the latencies and takes the percentiles and medians.
void Finalize(PathSummary *summary);

struct ParameterSummary {
  size_t parameter = 0;
  PathSummary paths[kKindCount];
  // Times faster than kernel TCP: rr, p50 latency; stream, conn, many, median rate.
  double RatioVsKernel(const std::string &mode, Kind kind) const {
    const PathSummary &path = paths[IndexOf(kind)];
    const PathSummary &kernel = paths[IndexOf(Kind::kKernel)];
    if (mode == "rr") return path.latency.p50 > 0 ? kernel.latency.p50 / path.latency.p50 : 0;
    return kernel.median_rate > 0 ? path.median_rate / kernel.median_rate : 0;
  }
  // CPU per operation over kernel TCP's (lower is cheaper); 0 when kernel TCP's is unknown.
  double CpuRatioVsKernel(Kind kind) const {
    const double kernel = paths[IndexOf(Kind::kKernel)].CpuPerOperation();
    return kernel > 0 ? paths[IndexOf(kind)].CpuPerOperation() / kernel : 0;
  }
  // many: the path's memory per connection over kernel TCP's (median MemAvailable drops); 0
  // when either was not measured or kernel TCP's is not positive.
  double MemoryRatioVsKernel(Kind kind) const {
    const MemoryCost &path = paths[IndexOf(kind)].memory;
    const MemoryCost &kernel = paths[IndexOf(Kind::kKernel)].memory;
    if (!path.measured || !kernel.measured || kernel.available <= 0) return 0;
    return path.available / kernel.available;
  }
  // The same for MemoryCost::Accounted().
  double AccountedMemoryRatioVsKernel(Kind kind) const {
    const MemoryCost &path = paths[IndexOf(kind)].memory;
    const MemoryCost &kernel = paths[IndexOf(Kind::kKernel)].memory;
    if (!path.measured || !kernel.measured || kernel.Accounted() <= 0) return 0;
    return path.Accounted() / kernel.Accounted();
  }
};

}  // namespace loopfast::tool::bench

#endif  // LOOPFAST_TOOLS_BENCH_SUMMARY_H_
