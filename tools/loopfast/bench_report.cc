// The reports of a `loopfast bench` run (bench_report.h).
#include "bench_report.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

#include "bench_output.h"
#include "loopfast/loopfast.h"

namespace loopfast::tool::bench {
namespace {

constexpr const char *kSchema = "loopfast-bench/1";

// A ratio, or "n/a" when it could not be computed (kernel TCP's figure not positive: noise).
std::string RatioText(double ratio) {
  if (ratio <= 0) return "n/a";
  char text[32];
  std::snprintf(text, sizeof text, "%.2fx", ratio);
  return text;
}

void PrintMemoryTable(FILE *out, const Options &options, const ParameterSummary &result) {
  std::fprintf(out,
               "\nmemory per connection, KiB, both ends, all %zu open after a warm-up exchange; "
               "median over rounds\n(MemAvailable is system-wide and noisy). MemAvail: its drop, "
               "the total. Accounted: PSS +\nSUnreclaim + PageTables. PSS (shm): the bench "
               "processes' (its shared-memory part). Slab,\nSUnreclaim, Shmem, PageTables: "
               "/proc/meminfo deltas. Ratios to kernel TCP:\nMemAvail:k of the drops, Acc.:k of "
               "the accounted totals\n",
               options.connections);
  std::fprintf(out, "%-11s %8s %9s %8s %7s %7s %10s %7s %10s %9s %11s\n", "path", "MemAvail",
               "Accounted", "PSS", "(shm)", "Slab", "SUnreclaim", "Shmem", "PageTables",
               "MemAvail:k", "Acc.:k");
  for (const Kind kind : kKinds) {
    const MemoryCost &m = result.paths[IndexOf(kind)].memory;
    if (!m.measured) {
      std::fprintf(out, "%-11s not measured\n", Name(kind));
      continue;
    }
    std::fprintf(out, "%-11s %8.2f %9.2f %8.2f %7.2f %7.2f %10.2f %7.2f %10.2f %9s %11s\n",
                 Name(kind), m.available, m.Accounted(), m.pss, m.pss_shmem, m.slab,
                 m.unreclaimable_slab, m.shmem, m.page_tables,
                 RatioText(result.MemoryRatioVsKernel(kind)).c_str(),
                 RatioText(result.AccountedMemoryRatioVsKernel(kind)).c_str());
  }
}

void WriteLatencyJson(JsonWriter *json, const LatencyPercentiles &l) {
  json->BeginObject();
  json->Key("p50");
  json->Number(l.p50);
  json->Key("p90");
  json->Number(l.p90);
  json->Key("p99");
  json->Number(l.p99);
  json->Key("p99_9");
  json->Number(l.p999);
  json->Key("max");
  json->Number(l.max);
  json->EndObject();
}

// many: KiB per connection; null when not measured (other modes, a failed trial).
void WriteMemoryJson(JsonWriter *json, const MemoryCost &m) {
  if (!m.measured) {
    json->Null();
    return;
  }
  json->BeginObject();
  json->Key("mem_available");
  json->Number(m.available);
  json->Key("pss");
  json->Number(m.pss);
  json->Key("pss_shmem");
  json->Number(m.pss_shmem);
  json->Key("slab");
  json->Number(m.slab);
  json->Key("slab_unreclaimable");
  json->Number(m.unreclaimable_slab);
  json->Key("shmem");
  json->Number(m.shmem);
  json->Key("page_tables");
  json->Number(m.page_tables);
  json->Key("accounted");
  json->Number(m.Accounted());
  json->EndObject();
}

// CPU per operation in the unit the mode reports: µs per transaction/connection, s per GB.
double CpuInReportedUnit(const std::string &mode, double cpu_seconds, double operations) {
  if (operations <= 0) return 0;
  return mode == "stream" ? cpu_seconds / operations * 1e9 : cpu_seconds / operations * 1e6;
}

}  // namespace

void PrintTable(FILE *out, const Options &options, const std::vector<ParameterSummary> &results) {
  const std::string &mode = options.mode;
  std::fprintf(out,
               "loopfast bench %s (%d rounds per path, paths interleaved, server and client on "
               "separate CPUs)\n",
               mode.c_str(), options.rounds);
  if (mode == "rr") {
    if (options.Paced()) {
      std::fprintf(out,
                   "%zu B messages over %zu connection(s), paced: --rate per second (%s per "
                   "trial);\nvs kernel: kernel p50 / path p50; CPU:k: CPU per transaction / "
                   "kernel TCP's (both processes)\n",
                   options.sizes.front(), options.connections,
                   options.count_given ? (std::to_string(options.count) + " transactions").c_str()
                                       : "about 2 s");
    } else {
      std::fprintf(out,
                   "%zu round trips per trial over %zu connection(s); vs kernel: kernel p50 / "
                   "path p50;\nCPU:k: CPU per transaction / kernel TCP's (both processes)\n",
                   options.count, options.connections);
    }
    std::fprintf(out, "%9s %-11s %10s %10s %10s %11s %13s %7s %10s\n",
                 options.Paced() ? "rate (/s)" : "size (B)", "path", "p50 (us)", "p90 (us)",
                 "p99 (us)", "p99.9 (us)", "CPU us/trans", "CPU:k", "vs kernel");
  } else if (mode == "stream") {
    std::fprintf(
        out, "%zu bytes per trial, read size %s; vs kernel: median GB/s ratio\n", options.bytes,
        options.read_size != 0 ? std::to_string(options.read_size).c_str() : "= write size");
    std::fprintf(out, "%10s %-11s %12s %10s %10s %10s\n", "write (B)", "path", "median GB/s",
                 "min GB/s", "CPU s/GB", "vs kernel");
  } else if (mode == "conn") {
    std::fprintf(out, "%zu connections per trial (connect, 1-byte exchange, close)\n",
                 options.count);
    std::fprintf(out, "%-11s %14s %12s %10s\n", "path", "median conn/s", "CPU us/conn",
                 "vs kernel");
  } else {
    std::fprintf(out,
                 "%zu concurrent connections over %zu client and %zu server processes, 1-byte "
                 "transactions (%s per trial%s);\nvs kernel: median trans/s ratio; CPU:k: CPU "
                 "per transaction / kernel TCP's\n",
                 options.connections, options.processes, options.processes,
                 options.Paced() && !options.count_given
                     ? "about 2 s"
                     : (std::to_string(options.count) + " transactions").c_str(),
                 options.Paced() ? ", paced: --rate per second, all connections together" : "");
    std::fprintf(out, "%9s %-11s %12s %10s %10s %10s %11s %13s %7s %10s\n",
                 options.Paced() ? "rate (/s)" : "", "path", "trans/s", "p50 (us)", "p90 (us)",
                 "p99 (us)", "p99.9 (us)", "CPU us/trans", "CPU:k", "vs kernel");
  }
  for (const ParameterSummary &result : results) {
    for (const Kind kind : kKinds) {
      const PathSummary &s = result.paths[IndexOf(kind)];
      const double ratio = result.RatioVsKernel(mode, kind);
      const LatencyPercentiles &l = s.latency;
      if (s.trials == 0) {
        if (mode == "rr" || mode == "stream") std::fprintf(out, "%10zu ", result.parameter);
        std::fprintf(out, "%-11s every trial failed\n", Name(kind));
        continue;
      }
      if (mode == "rr") {
        std::fprintf(out, "%9zu %-11s %10.2f %10.2f %10.2f %11.2f %13.2f %7s %9.2fx\n",
                     result.parameter, Name(kind), l.p50, l.p90, l.p99, l.p999,
                     s.CpuPerOperation() * 1e6, RatioText(result.CpuRatioVsKernel(kind)).c_str(),
                     ratio);
      } else if (mode == "stream") {
        std::fprintf(out, "%10zu %-11s %12.2f %10.2f %10.3f %9.2fx\n", result.parameter, Name(kind),
                     s.median_rate / 1e9, s.min_rate / 1e9, s.CpuPerOperation() * 1e9, ratio);
      } else if (mode == "conn") {
        std::fprintf(out, "%-11s %14.0f %12.2f %9.2fx\n", Name(kind), s.median_rate,
                     s.CpuPerOperation() * 1e6, ratio);
      } else {
        const std::string rate = options.Paced() ? std::to_string(result.parameter) : "";
        std::fprintf(out, "%9s %-11s %12.0f %10.2f %10.2f %10.2f %11.2f %13.2f %7s %9.2fx\n",
                     rate.c_str(), Name(kind), s.median_rate, l.p50, l.p90, l.p99, l.p999,
                     s.CpuPerOperation() * 1e6, RatioText(result.CpuRatioVsKernel(kind)).c_str(),
                     ratio);
      }
    }
    if (mode == "many") PrintMemoryTable(out, options, result);
  }
}

std::string BenchJson(const Options &options, const std::vector<Trial> &trials,
                      const std::vector<ParameterSummary> &results, bool ok) {
  const std::string &mode = options.mode;
  const bool has_latency = mode == "rr" || mode == "many";
  JsonWriter json;
  json.BeginObject();
  json.Key("schema");
  json.String(kSchema);
  json.Key("mode");
  json.String(mode);
  json.Key("ok");
  json.Bool(ok);
  json.Key("loopfast_version");
  json.String(loopfast_version());
  json.Key("host");
  json.BeginObject();
  struct utsname name {};
  uname(&name);
  json.Key("kernel");
  json.String(name.release);
  json.Key("cpus");
  json.Integer(uint64_t(sysconf(_SC_NPROCESSORS_ONLN)));
  json.Key("spin_us_env");
  if (const char *spin = std::getenv("LOOPFAST_SPIN_US"))
    json.String(spin);
  else
    json.Null();
  json.EndObject();
  json.Key("options");
  json.BeginObject();
  json.Key("rounds");
  json.Integer(uint64_t(options.rounds));
  json.Key("count");
  json.Integer(options.count);
  json.Key("parameters");
  json.BeginArray();
  for (const ParameterSummary &result : results) json.Integer(result.parameter);
  json.EndArray();
  json.Key("bytes");
  json.Integer(options.bytes);
  json.Key("read_size");
  json.Integer(options.read_size);
  json.Key("connections");
  json.Integer(options.connections);
  json.Key("rates");  // transactions per second, the parameters of a paced run; empty: unpaced
  json.BeginArray();
  for (const size_t rate : options.rates) json.Integer(rate);
  json.EndArray();
  json.Key("processes");
  json.Integer(mode == "many" ? options.processes : 1);
  json.EndObject();
  json.Key("units");
  json.BeginObject();
  json.Key("rate");
  json.String(mode == "stream" ? "bytes/s" : mode == "conn" ? "connections/s" : "transactions/s");
  json.Key("cpu_per_operation");
  json.String(mode == "stream" ? "s/GB" : mode == "conn" ? "us/connection" : "us/transaction");
  json.Key("latency");
  json.String("us");
  json.Key("memory");
  json.String("KiB/connection");
  json.EndObject();

  json.Key("trials");
  json.BeginArray();
  for (size_t i = 0; i < trials.size(); ++i) {
    const Trial &trial = trials[i];
    json.BeginObject();
    json.Key("index");
    json.Integer(i);
    json.Key("path");
    json.String(Tag(trial.kind));
    json.Key("parameter");
    json.Integer(trial.parameter);
    json.Key("round");
    json.Integer(uint64_t(trial.round));
    json.Key("ok");
    json.Bool(trial.ok);
    json.Key("path_verified");
    json.Bool(trial.path_verified);
    json.Key("operations");
    json.Number(trial.operations);
    json.Key("seconds");
    json.Number(trial.seconds);
    json.Key("rate");
    json.Number(trial.rate);
    json.Key("cpu_seconds");
    json.Number(trial.cpu_seconds);
    json.Key("cpu_per_operation");
    json.Number(CpuInReportedUnit(mode, trial.cpu_seconds, trial.cpu_operations));
    json.Key("latency_us");
    if (has_latency && trial.ok)
      WriteLatencyJson(&json, trial.latency);
    else
      json.Null();
    json.Key("memory_kib_per_connection");
    WriteMemoryJson(&json, trial.memory);
    json.EndObject();
  }
  json.EndArray();

  json.Key("results");
  json.BeginArray();
  for (const ParameterSummary &result : results) {
    json.BeginObject();
    json.Key("parameter");
    json.Integer(result.parameter);
    json.Key("paths");
    json.BeginObject();
    for (const Kind kind : kKinds) {
      const PathSummary &s = result.paths[IndexOf(kind)];
      json.Key(Tag(kind));
      json.BeginObject();
      json.Key("trials");
      json.Integer(s.trials);
      json.Key("median_rate");
      json.Number(s.median_rate);
      json.Key("min_rate");
      json.Number(s.min_rate);
      json.Key("max_rate");
      json.Number(s.max_rate);
      json.Key("cpu_per_operation");
      json.Number(CpuInReportedUnit(mode, s.cpu_seconds, s.cpu_operations));
      json.Key("latency_us");
      if (has_latency)
        WriteLatencyJson(&json, s.latency);
      else
        json.Null();
      json.Key("memory_kib_per_connection");
      WriteMemoryJson(&json, s.memory);
      json.EndObject();
    }
    json.EndObject();
    // {"fast": ratio, "unix": ratio}, or null where the mode has none.
    auto ratios = [&](const char *key, bool present, auto ratio_of) {
      json.Key(key);
      if (!present) {
        json.Null();
        return;
      }
      json.BeginObject();
      for (const Kind kind : {Kind::kFast, Kind::kUnix}) {
        json.Key(Tag(kind));
        json.Number(ratio_of(kind));
      }
      json.EndObject();
    };
    ratios("ratio_vs_kernel", true, [&](Kind kind) { return result.RatioVsKernel(mode, kind); });
    ratios("cpu_ratio_vs_kernel", mode != "stream",
           [&](Kind kind) { return result.CpuRatioVsKernel(kind); });
    ratios("memory_ratio_vs_kernel", mode == "many",
           [&](Kind kind) { return result.MemoryRatioVsKernel(kind); });
    ratios("memory_accounted_ratio_vs_kernel", mode == "many",
           [&](Kind kind) { return result.AccountedMemoryRatioVsKernel(kind); });
    json.EndObject();
  }
  json.EndArray();
  json.EndObject();
  return json.text();
}

std::string BenchSvg(const Options &options, const std::vector<ParameterSummary> &results) {
  std::vector<LatencyChart> charts;
  for (const ParameterSummary &result : results) {
    LatencyChart chart;
    if (options.mode == "rr") {
      chart.title = "request/response, " + std::to_string(result.parameter) + "-byte messages";
    } else {
      chart.title =
          std::to_string(options.connections) + " concurrent connections, 1-byte request/response";
    }
    for (const Kind kind : kKinds) {
      chart.series.push_back(
          {Name(kind), Color(kind), result.paths[IndexOf(kind)].sorted_latencies_ns});
    }
    charts.push_back(std::move(chart));
  }
  char heading[160];
  std::snprintf(heading, sizeof heading,
                "loopfast bench %s: latency distribution (%d rounds per path, loopfast %s)",
                options.mode.c_str(), options.rounds, loopfast_version());
  return LatencySvg(heading, charts);
}

}  // namespace loopfast::tool::bench
