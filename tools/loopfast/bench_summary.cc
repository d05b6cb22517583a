// The pooled results of a `loopfast bench` run (bench_summary.h).
#include "bench_summary.h"

#include <algorithm>

#include "bench_output.h"

namespace loopfast::tool::bench {
namespace {

// The median of one MemoryCost field over trials.
double MedianOf(const std::vector<MemoryCost> &costs, double MemoryCost::*field) {
  std::vector<double> values;
  for (const MemoryCost &cost : costs) values.push_back(cost.*field);
  std::sort(values.begin(), values.end());
  return PercentileOfSorted(values, 0.5);
}

}  // namespace

LatencyPercentiles PercentilesOf(std::vector<double> latencies_ns) {
  std::sort(latencies_ns.begin(), latencies_ns.end());
  LatencyPercentiles p;
  p.p50 = PercentileOfSorted(latencies_ns, 0.5) / 1e3;
  p.p90 = PercentileOfSorted(latencies_ns, 0.9) / 1e3;
  p.p99 = PercentileOfSorted(latencies_ns, 0.99) / 1e3;
  p.p999 = PercentileOfSorted(latencies_ns, 0.999) / 1e3;
  p.max = latencies_ns.empty() ? 0 : latencies_ns.back() / 1e3;
  return p;
}

void AddTrial(const Trial &trial, PathSummary *summary) {
  PathSummary &s = *summary;
  s.sorted_latencies_ns.insert(s.sorted_latencies_ns.end(), trial.latencies_ns.begin(),
                               trial.latencies_ns.end());
  s.rates.push_back(trial.rate);
  s.cpu_seconds += trial.cpu_seconds;
  s.cpu_operations += trial.cpu_operations;
  if (trial.memory.measured) s.memory_trials.push_back(trial.memory);
  ++s.trials;
}

void Finalize(PathSummary *summary) {
  std::sort(summary->sorted_latencies_ns.begin(), summary->sorted_latencies_ns.end());
  summary->latency = PercentilesOf(summary->sorted_latencies_ns);  // sorting again is cheap
  std::vector<double> rates = summary->rates;
  std::sort(rates.begin(), rates.end());
  summary->median_rate = PercentileOfSorted(rates, 0.5);
  summary->min_rate = rates.empty() ? 0 : rates.front();
  summary->max_rate = rates.empty() ? 0 : rates.back();
  MemoryCost &memory = summary->memory;
  memory.measured = !summary->memory_trials.empty();
  for (double MemoryCost::*field :
       {&MemoryCost::available, &MemoryCost::pss, &MemoryCost::pss_shmem, &MemoryCost::slab,
        &MemoryCost::unreclaimable_slab, &MemoryCost::shmem, &MemoryCost::page_tables})
    memory.*field = MedianOf(summary->memory_trials, field);
}

}  // namespace loopfast::tool::bench
