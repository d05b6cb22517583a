// `loopfast bench`: the fast path beside kernel TCP and a Unix-domain socket, in one run.
//
// Each trial forks a server process; server and client run on different CPUs. Trials of the
// three paths are interleaved (fast, kernel, unix, fast, ...) so that all see the same machine.
// Every fast trial checks that its connections really were fast (loopfast says so, and the
// kernel connection carried no data bytes); every kernel and unix trial that they were not.
//
// This file is the run itself: pick the workload, run its trials, pool and report them. The
// parts: bench_options (command line), bench_workload with bench_rr, bench_stream_conn and
// bench_many (the workloads), bench_process and bench_socket (servers, children, connections),
// bench_memory (memory per connection), bench_summary and bench_report (results and output).
#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench_context.h"
#include "bench_options.h"
#include "bench_output.h"
#include "bench_process.h"
#include "bench_report.h"
#include "bench_summary.h"
#include "bench_types.h"
#include "bench_workload.h"
#include "commands.h"

namespace loopfast::tool {
namespace bench {

std::unique_ptr<Workload> MakeWorkload(const std::string &mode, BenchContext &context) {
  if (mode == "rr") return MakeRrWorkload(context);
  if (mode == "stream") return MakeStreamWorkload(context);
  if (mode == "conn") return MakeConnWorkload(context);
  if (mode == "many") return MakeManyWorkload(context);
  return nullptr;
}

namespace {

// Every trial of the run: each parameter, round and path in turn. Trials come back in `trials`,
// pooled per parameter in `results`; false if any failed.
bool RunTrials(BenchContext &context, Workload &workload, const Options &options,
               const std::vector<size_t> &parameters, std::vector<Trial> *trials,
               std::vector<ParameterSummary> *results) {
  bool ok = true;
  for (const size_t parameter : parameters) {
    ParameterSummary result;
    result.parameter = parameter;
    for (int round = 1; round <= options.rounds; ++round) {
      for (const Kind kind : kKinds) {
        std::string label = options.mode;
        if (parameter != 0) label += ", " + DescribeParameter(options, parameter);
        label += std::string(", ") + Name(kind) + ", round " + std::to_string(round);
        context.progress.BeginTrial(std::move(label));
        context.path_mismatch = false;
        Trial trial = workload.Run(kind, options, parameter);
        trial.path_verified = !context.path_mismatch;
        context.progress.EndTrial();
        trial.kind = kind;
        trial.parameter = parameter;
        trial.round = round;
        if (!trial.ok) {
          std::fprintf(stderr, "loopfast bench: %s trial %d failed\n", Name(kind), round);
          ok = false;
        } else {
          AddTrial(trial, &result.paths[IndexOf(kind)]);
        }
        trial.latency = PercentilesOf(trial.latencies_ns);
        trial.latencies_ns = {};  // pooled above; the trial keeps its percentiles
        trials->push_back(std::move(trial));
      }
    }
    for (PathSummary &path : result.paths) Finalize(&path);
    results->push_back(std::move(result));
  }
  return ok;
}

}  // namespace
}  // namespace bench

int BenchCommand(int argc, char **argv) {
  using namespace bench;
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    BenchUsage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  Options options;
  if (!ParseOptions(argc, argv, &options)) return 2;
  BenchContext context;
  const std::unique_ptr<Workload> workload = MakeWorkload(options.mode, context);
  if (workload == nullptr) {
    BenchUsage(stderr);
    return 2;
  }
  const std::vector<size_t> parameters = workload->Parameters(options);
  if (!workload->Prepare(options)) return 1;
  signal(SIGPIPE, SIG_IGN);
  PinToCpu(0);
  context.progress.Start(options.progress,
                         parameters.size() * size_t(options.rounds) * size_t(kKindCount));

  std::vector<Trial> trials;
  std::vector<ParameterSummary> results;
  bool ok = RunTrials(context, *workload, options, parameters, &trials, &results);

  PrintTable(options.json_path == "-" ? stderr : stdout, options, results);
  if (!options.json_path.empty() &&
      !WriteTextFile(options.json_path, BenchJson(options, trials, results, ok))) {
    std::fprintf(stderr, "loopfast bench: writing %s: %s\n", options.json_path.c_str(),
                 std::strerror(errno));
    ok = false;
  }
  if (!options.svg_path.empty()) {
    if (!WriteTextFile(options.svg_path, BenchSvg(options, results))) {
      std::fprintf(stderr, "loopfast bench: writing %s: %s\n", options.svg_path.c_str(),
                   std::strerror(errno));
      ok = false;
    } else if (options.json_path != "-") {
      std::printf("latency distribution: %s\n", options.svg_path.c_str());
    }
  }
  return ok ? 0 : 1;
}

}  // namespace loopfast::tool
