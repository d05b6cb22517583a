// The reports of a `loopfast bench` run: the text table (with the memory table of `many`), the
// JSON document (schema loopfast-bench/1) and the SVG latency chart. The JSON writer and the
// chart drawing themselves are in bench_output.h.
#ifndef LOOPFAST_TOOLS_BENCH_REPORT_H_
#define LOOPFAST_TOOLS_BENCH_REPORT_H_

#include <cstdio>
#include <string>
#include <vector>

#include "bench_summary.h"
#include "bench_types.h"

namespace loopfast::tool::bench {

void PrintTable(FILE *out, const Options &options, const std::vector<ParameterSummary> &results);

// Every trial and the summary; `ok`: the run as a whole succeeded.
std::string BenchJson(const Options &options, const std::vector<Trial> &trials,
                      const std::vector<ParameterSummary> &results, bool ok);

// The latency distribution of rr and many, a CDF panel per parameter.
std::string BenchSvg(const Options &options, const std::vector<ParameterSummary> &results);

}  // namespace loopfast::tool::bench

#endif  // LOOPFAST_TOOLS_BENCH_REPORT_H_
