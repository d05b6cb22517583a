// The command line of `loopfast bench` (bench_options.h).
#include "bench_options.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <vector>

namespace loopfast::tool::bench {
namespace {

bool ParseSize(const char *text, size_t *out) {
  char *end = nullptr;
  errno = 0;
  const unsigned long long value = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *text == '-') return false;
  size_t multiplier = 1;
  if (*end == 'K' || *end == 'k')
    multiplier = 1024, ++end;
  else if (*end == 'M' || *end == 'm')
    multiplier = 1024 * 1024, ++end;
  else if (*end == 'G' || *end == 'g')
    multiplier = size_t{1} << 30, ++end;
  if (*end != '\0' || value == 0 || value > (size_t{1} << 40) / multiplier) return false;
  *out = size_t(value) * multiplier;
  return true;
}

bool ParseSizeList(const char *text, std::vector<size_t> *out) {
  out->clear();
  std::string list = text;
  size_t begin = 0;
  while (begin <= list.size() && out->size() < 64) {
    const size_t comma = std::min(list.find(',', begin), list.size());
    size_t value = 0;
    if (!ParseSize(list.substr(begin, comma - begin).c_str(), &value)) return false;
    out->push_back(value);
    begin = comma + 1;
  }
  return !out->empty() && begin > list.size();
}

}  // namespace

void BenchUsage(FILE *out) {
  std::fprintf(
      out,
      "usage: loopfast bench rr|stream|conn|many [OPTIONS]\n"
      "\n"
      "Measures the fast path, kernel TCP and a Unix-domain socket in one run: server and\n"
      "client in separate processes on separate CPUs, trials interleaved (fast, kernel, unix,\n"
      "fast, ...). Every fast trial checks that its connections were really fast, every other\n"
      "trial that they were not. Ratios are against kernel TCP measured in the same run.\n"
      "\n"
      "Modes:\n"
      "  rr      request/response latency: p50/p90/p99/p99.9 per message size, CPU us per\n"
      "          transaction.  --size LIST (1), --count N round trips (20000),\n"
      "          --connections N (1): one transaction at a time, on each connection in turn\n"
      "  stream  one-way throughput: GB/s and CPU s/GB per write size.\n"
      "          --write-size LIST (64K), --read-size BYTES (the write size), --bytes N (1G)\n"
      "  conn    connect + 1-byte exchange + close rate.  --count N connections (5000)\n"
      "  many    --connections N (100) concurrent connections doing 1-byte request/response,\n"
      "          client and server each one epoll loop: transactions/s, latency percentiles,\n"
      "          CPU us per transaction, and memory per connection (MemAvailable drop, PSS,\n"
      "          slab, shmem, page tables) with all open.  --count N transactions (200000),\n"
      "          --processes P (1): the connections spread over P client and P server processes\n"
      "          (a fast end holds one descriptor, as kernel TCP: 10,000 connections in one\n"
      "          client and one server process need a limit of about 10,100)\n"
      "\n"
      "Options:\n"
      "  --rate LIST      rr, many: paced, LIST transactions per second (all connections\n"
      "                   together), each rate a row; a trial lasts about 2 s unless --count\n"
      "                   is given. Requests go out on schedule (open loop) whatever the\n"
      "                   answers do; how a server at ordinary load behaves, and what its\n"
      "                   waiting costs\n"
      "  --rounds R       trials per path and parameter (5)\n"
      "  --json FILE      every trial and the summary as JSON (schema loopfast-bench/1, see\n"
      "                   docs/performance.md); '-' writes it to stdout and the table to stderr\n"
      "  --svg FILE       latency distribution (CDF per path, log-scale us) as SVG (rr, many)\n"
      "  --no-progress    no progress lines on stderr (otherwise one every ~2 s)\n"
      "  -h, --help       this text\n"
      "\n"
      "LIST is comma-separated, e.g. --size 1,64,1K,16K. Sizes take K, M and G suffixes\n"
      "(powers of 1024). The wait policy comes from the environment (LOOPFAST_SPIN_US), as for\n"
      "programs.\n");
}

bool ParseOptions(int argc, char **argv, Options *options) {
  options->mode = argv[1];
  if (options->mode == "conn") options->count = 5000;
  if (options->mode == "many") options->count = 200000;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--no-progress") {
      options->progress = false;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "loopfast bench: %s needs a value\n", arg.c_str());
      return false;
    }
    const char *value_text = argv[++i];
    if (arg == "--json") {
      options->json_path = value_text;
      continue;
    }
    if (arg == "--svg") {
      options->svg_path = value_text;
      continue;
    }
    if (arg == "--rate") {
      if (!ParseSizeList(value_text, &options->rates)) {
        std::fprintf(stderr, "loopfast bench: --rate needs positive rates, comma-separated\n");
        return false;
      }
      continue;
    }
    if (arg == "--size" || arg == "--write-size") {
      if (!ParseSizeList(value_text, arg == "--size" ? &options->sizes : &options->write_sizes)) {
        std::fprintf(stderr, "loopfast bench: %s needs positive sizes, comma-separated\n",
                     arg.c_str());
        return false;
      }
      continue;
    }
    size_t value = 0;
    if (!ParseSize(value_text, &value)) {
      std::fprintf(stderr, "loopfast bench: %s needs a positive number\n", arg.c_str());
      return false;
    }
    if (arg == "--count")
      options->count = value, options->count_given = true;
    else if (arg == "--read-size")
      options->read_size = value;
    else if (arg == "--bytes")
      options->bytes = value;
    else if (arg == "--rounds")
      options->rounds = int(std::min<size_t>(value, 1000));
    else if (arg == "--connections")
      options->connections = std::min<size_t>(value, 100000);
    else if (arg == "--processes")
      options->processes = value;
    else {
      std::fprintf(stderr, "loopfast bench: unknown option '%s'\n", arg.c_str());
      return false;
    }
  }
  if (options->connections == 0) options->connections = options->mode == "many" ? 100 : 1;
  if (options->connections != 1 && options->mode != "many" && options->mode != "rr") {
    std::fprintf(stderr, "loopfast bench: --connections is for rr and many only\n");
    return false;
  }
  if (options->Paced() && options->mode != "rr" && options->mode != "many") {
    std::fprintf(stderr, "loopfast bench: --rate is for rr and many only\n");
    return false;
  }
  if (options->Paced() && options->sizes.size() != 1) {
    std::fprintf(stderr, "loopfast bench: with --rate, one --size\n");
    return false;
  }
  if (options->processes > 64 || options->processes > options->connections) {
    std::fprintf(stderr, "loopfast bench: --processes must be at most 64 and --connections\n");
    return false;
  }
  if (options->processes != 1 && options->mode != "many") {
    std::fprintf(stderr, "loopfast bench: --processes is for many only\n");
    return false;
  }
  if (!options->svg_path.empty() && options->mode != "rr" && options->mode != "many") {
    std::fprintf(stderr, "loopfast bench: --svg draws latency, for rr and many only\n");
    return false;
  }
  return true;
}

std::string DescribeParameter(const Options &options, size_t parameter) {
  const std::string &mode = options.mode;
  if (options.Paced()) return std::to_string(parameter) + " transactions/s";
  if (mode == "rr") return std::to_string(parameter) + " B messages";
  if (mode == "stream") return std::to_string(parameter) + " B writes";
  return "";
}

}  // namespace loopfast::tool::bench
