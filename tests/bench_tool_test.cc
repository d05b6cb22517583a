// `loopfast bench` end to end: every mode with tiny counts, its JSON checked against the
// loopfast-bench/1 schema (docs/performance.md) and its values checked for sense: every trial
// present and on the path it names, percentiles ordered, ratios positive, the fast path faster
// than kernel TCP where it must be. The tool runs as a child process, as a user would run it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace {

// ---- a small JSON reader (the test needs no third-party library, like the tool) ----

struct Json {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject } type = Type::kNull;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<Json> array;
  std::map<std::string, Json> object;

  bool Has(const std::string &key) const { return object.count(key) != 0; }
  const Json &operator[](const std::string &key) const {
    static const Json missing;
    const auto it = object.find(key);
    return it == object.end() ? missing : it->second;
  }
};

class JsonReader {
 public:
  explicit JsonReader(const std::string &text) : text_(text) {}

  // Parses the whole text; false on any syntax error or trailing garbage.
  bool Parse(Json *out) {
    if (!Value(out, 0)) return false;
    SkipSpace();
    return position_ == text_.size();
  }

 private:
  void SkipSpace() {
    while (position_ < text_.size() && std::strchr(" \t\r\n", text_[position_]) != nullptr)
      ++position_;
  }
  bool Consume(const char *literal) {
    const size_t length = std::strlen(literal);
    if (text_.compare(position_, length, literal) != 0) return false;
    position_ += length;
    return true;
  }
  bool StringValue(std::string *out) {
    if (!Consume("\"")) return false;
    while (position_ < text_.size()) {
      const char c = text_[position_++];
      if (c == '"') return true;
      if (c != '\\') {
        *out += c;
        continue;
      }
      if (position_ >= text_.size()) return false;
      const char escaped = text_[position_++];
      if (escaped == 'u') {
        if (position_ + 4 > text_.size()) return false;
        *out += char(std::strtol(text_.substr(position_, 4).c_str(), nullptr, 16));
        position_ += 4;
      } else {
        *out += escaped == 'n' ? '\n' : escaped == 't' ? '\t' : escaped;
      }
    }
    return false;
  }
  bool Value(Json *out, int depth) {
    if (depth > 64) return false;
    SkipSpace();
    if (position_ >= text_.size()) return false;
    const char c = text_[position_];
    if (c == '{') {
      out->type = Json::Type::kObject;
      ++position_;
      SkipSpace();
      if (Consume("}")) return true;
      for (;;) {
        SkipSpace();
        std::string key;
        if (!StringValue(&key)) return false;
        SkipSpace();
        if (!Consume(":")) return false;
        if (out->object.count(key) != 0) return false;  // duplicate keys: a writer bug
        if (!Value(&out->object[key], depth + 1)) return false;
        SkipSpace();
        if (Consume("}")) return true;
        if (!Consume(",")) return false;
      }
    }
    if (c == '[') {
      out->type = Json::Type::kArray;
      ++position_;
      SkipSpace();
      if (Consume("]")) return true;
      for (;;) {
        out->array.emplace_back();
        if (!Value(&out->array.back(), depth + 1)) return false;
        SkipSpace();
        if (Consume("]")) return true;
        if (!Consume(",")) return false;
      }
    }
    if (c == '"') {
      out->type = Json::Type::kString;
      return StringValue(&out->string);
    }
    if (Consume("true")) {
      out->type = Json::Type::kBool;
      out->boolean = true;
      return true;
    }
    if (Consume("false")) {
      out->type = Json::Type::kBool;
      return true;
    }
    if (Consume("null")) return true;
    const char *begin = text_.c_str() + position_;
    char *end = nullptr;
    out->number = std::strtod(begin, &end);
    if (end == begin) return false;
    out->type = Json::Type::kNumber;
    position_ += size_t(end - begin);
    return true;
  }

  const std::string &text_;
  size_t position_ = 0;
};

// ---- running the tool ----

struct RunResult {
  int exit_code = -1;
  std::string out;
};

// Runs `loopfast bench ARGS...`, stdout captured, stderr passed through (progress, errors).
RunResult RunBench(const std::vector<std::string> &args) {
  std::vector<std::string> words = {LOOPFAST_TOOL, "bench"};
  words.insert(words.end(), args.begin(), args.end());
  int out_pipe[2];
  RunResult result;
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return result;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out_pipe[1], 1);
    std::vector<char *> argv;
    for (std::string &word : words) argv.push_back(word.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out_pipe[1]);
  char buffer[65536];
  for (;;) {  // ends at EOF: the tool exited (ctest's timeout bounds a hang)
    const ssize_t n = read(out_pipe[0], buffer, sizeof buffer);
    if (n > 0)
      result.out.append(buffer, size_t(n));
    else if (!(n < 0 && errno == EINTR))
      break;
  }
  close(out_pipe[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::string TempPath(const char *suffix) {
  return std::string("/tmp/lfbench-test-") + std::to_string(getpid()) + suffix;
}

// Removes its file when it goes, whether the test passed or not.
struct TempFile {
  explicit TempFile(const char *suffix) : path(TempPath(suffix)) {}
  ~TempFile() { unlink(path.c_str()); }
  TempFile(const TempFile &) = delete;
  TempFile &operator=(const TempFile &) = delete;
  const std::string path;
};

std::string ReadFile(const std::string &path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// ---- the schema ----

bool IsNumber(const Json &value) { return value.type == Json::Type::kNumber; }

void ExpectLatency(const Json &latency, const std::string &where) {
  ASSERT_EQ(latency.type, Json::Type::kObject) << where << ": latency_us";
  double previous = 0;
  for (const char *key : {"p50", "p90", "p99", "p99_9", "max"}) {
    ASSERT_TRUE(IsNumber(latency[key])) << where << ": latency_us." << key;
    EXPECT_GT(latency[key].number, 0) << where << ": latency_us." << key;
    EXPECT_GE(latency[key].number, previous) << where << ": latency_us." << key << " out of order";
    previous = latency[key].number;
  }
}

// Checks the whole document for `mode`, `parameters` (rr sizes, stream write sizes; {0}
// otherwise) and `rounds`, and returns it.
Json CheckDocument(const std::string &text, const std::string &mode,
                   const std::vector<double> &parameters, int rounds) {
  Json doc;
  EXPECT_TRUE(JsonReader(text).Parse(&doc)) << "not JSON:\n" << text.substr(0, 2000);
  EXPECT_EQ(doc["schema"].string, "loopfast-bench/1");
  EXPECT_EQ(doc["mode"].string, mode);
  EXPECT_EQ(doc["ok"].type, Json::Type::kBool);
  EXPECT_TRUE(doc["ok"].boolean);
  EXPECT_EQ(doc["loopfast_version"].type, Json::Type::kString);
  EXPECT_EQ(doc["host"]["kernel"].type, Json::Type::kString);
  EXPECT_GE(doc["host"]["cpus"].number, 1);
  EXPECT_TRUE(doc["host"].Has("spin_us_env"));
  EXPECT_EQ(doc["options"]["rounds"].number, rounds);
  EXPECT_TRUE(IsNumber(doc["options"]["count"]));
  EXPECT_TRUE(IsNumber(doc["options"]["bytes"]));
  EXPECT_TRUE(IsNumber(doc["options"]["read_size"]));
  EXPECT_TRUE(IsNumber(doc["options"]["connections"]));
  EXPECT_TRUE(IsNumber(doc["options"]["processes"]));
  for (const char *key : {"rate", "cpu_per_operation", "latency", "memory"})
    EXPECT_EQ(doc["units"][key].type, Json::Type::kString) << "units." << key;

  const bool has_latency = mode == "rr" || mode == "many";
  const char *kPaths[] = {"fast", "kernel", "unix"};
  const Json &trials = doc["trials"];
  EXPECT_EQ(trials.type, Json::Type::kArray);
  EXPECT_EQ(trials.array.size(), parameters.size() * size_t(rounds) * 3);
  for (size_t i = 0; i < trials.array.size(); ++i) {
    const Json &trial = trials.array[i];
    const std::string where = "trial " + std::to_string(i);
    EXPECT_EQ(trial["index"].number, double(i)) << where;
    // Interleaved: fast, kernel, unix, fast, ... ; parameters in the order given.
    EXPECT_EQ(trial["path"].string, kPaths[i % 3]) << where;
    EXPECT_EQ(trial["parameter"].number, parameters[i / (3 * size_t(rounds))]) << where;
    EXPECT_EQ(trial["round"].number, double((i / 3) % size_t(rounds) + 1)) << where;
    EXPECT_TRUE(trial["ok"].boolean) << where;
    EXPECT_TRUE(trial["path_verified"].boolean) << where << " (" << trial["path"].string << ")";
    for (const char *key : {"operations", "seconds", "rate", "cpu_seconds", "cpu_per_operation"}) {
      EXPECT_TRUE(IsNumber(trial[key])) << where << ": " << key;
      EXPECT_GT(trial[key].number, 0) << where << ": " << key;
    }
    if (has_latency) {
      ExpectLatency(trial["latency_us"], where);
    } else {
      EXPECT_TRUE(trial.Has("latency_us")) << where;
      EXPECT_EQ(trial["latency_us"].type, Json::Type::kNull) << where;
    }
    // many: an object (checked by the many tests); other modes: null, never left out.
    EXPECT_TRUE(trial.Has("memory_kib_per_connection")) << where;
    if (mode != "many") {
      EXPECT_EQ(trial["memory_kib_per_connection"].type, Json::Type::kNull) << where;
    }
  }

  const Json &results = doc["results"];
  EXPECT_EQ(results.type, Json::Type::kArray);
  EXPECT_EQ(results.array.size(), parameters.size());
  for (size_t i = 0; i < results.array.size(); ++i) {
    const Json &result = results.array[i];
    const std::string where = "result " + std::to_string(i);
    EXPECT_EQ(result["parameter"].number, parameters[i]) << where;
    for (const char *path : kPaths) {
      const Json &summary = result["paths"][path];
      EXPECT_EQ(summary["trials"].number, rounds) << where << " " << path;
      for (const char *key : {"median_rate", "min_rate", "max_rate", "cpu_per_operation"})
        EXPECT_GT(summary[key].number, 0) << where << " " << path << ": " << key;
      EXPECT_LE(summary["min_rate"].number, summary["median_rate"].number) << where << " " << path;
      EXPECT_LE(summary["median_rate"].number, summary["max_rate"].number) << where << " " << path;
      if (has_latency) ExpectLatency(summary["latency_us"], where + " " + path);
    }
    EXPECT_TRUE(result.Has("memory_ratio_vs_kernel")) << where;
    EXPECT_TRUE(result.Has("memory_accounted_ratio_vs_kernel")) << where;
    for (const char *path : {"fast", "unix"}) {
      EXPECT_TRUE(IsNumber(result["ratio_vs_kernel"][path])) << where << " " << path;
      EXPECT_GT(result["ratio_vs_kernel"][path].number, 0) << where << " " << path;
    }
  }
  return doc;
}

TEST(BenchTool, RrWithSizesJsonAndSvg) {
  const TempFile json_file(".json"), svg_file(".svg");
  const std::string &json_path = json_file.path, &svg_path = svg_file.path;
  const RunResult run = RunBench({"rr", "--size", "1,512", "--count", "300", "--rounds", "2",
                                  "--json", json_path, "--svg", svg_path, "--no-progress"});
  ASSERT_EQ(run.exit_code, 0) << run.out;
  EXPECT_NE(run.out.find("p99.9 (us)"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("unix socket"), std::string::npos) << run.out;
  // Values are checked for shape, never for speed: speed is the benchmark's to measure.
  CheckDocument(ReadFile(json_path), "rr", {1, 512}, 2);
  const std::string svg = ReadFile(svg_path);
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("<svg xmlns='http://www.w3.org/2000/svg'"), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  size_t polylines = 0;
  for (size_t at = svg.find("<polyline"); at != std::string::npos;
       at = svg.find("<polyline", at + 1))
    ++polylines;
  EXPECT_EQ(polylines, 6u) << "one curve per path and size";
  EXPECT_EQ(svg.find("nan"), std::string::npos);
}

TEST(BenchTool, StreamJsonOnStdoutIsCleanJson) {
  const RunResult run = RunBench(
      {"stream", "--write-size", "4K,64K", "--bytes", "4M", "--rounds", "1", "--json", "-"});
  ASSERT_EQ(run.exit_code, 0);
  const Json doc = CheckDocument(run.out, "stream", {4096, 65536}, 1);
  EXPECT_EQ(doc["units"]["cpu_per_operation"].string, "s/GB");
  EXPECT_EQ(doc["options"]["bytes"].number, 4 * 1024 * 1024);
}

TEST(BenchTool, ConnJson) {
  const RunResult run =
      RunBench({"conn", "--count", "50", "--rounds", "1", "--json", "-", "--no-progress"});
  ASSERT_EQ(run.exit_code, 0);
  CheckDocument(run.out, "conn", {0}, 1);
}

TEST(BenchTool, ManyJsonAndSvg) {
  const TempFile svg_file("-many.svg");
  const std::string &svg_path = svg_file.path;
  const RunResult run = RunBench({"many", "--connections", "20", "--count", "1000", "--rounds", "1",
                                  "--json", "-", "--svg", svg_path, "--no-progress"});
  ASSERT_EQ(run.exit_code, 0);
  const Json doc = CheckDocument(run.out, "many", {0}, 1);
  EXPECT_EQ(doc["options"]["connections"].number, 20);
  for (const Json &trial : doc["trials"].array) EXPECT_EQ(trial["operations"].number, 1000);
  EXPECT_NE(ReadFile(svg_path).find("</svg>"), std::string::npos);
}

TEST(BenchTool, ManyWithAThousandConnections) {
  const RunResult run = RunBench({"many", "--connections", "1000", "--count", "3000", "--rounds",
                                  "1", "--json", "-", "--no-progress"});
  ASSERT_EQ(run.exit_code, 0);
  const Json doc = CheckDocument(run.out, "many", {0}, 1);
  EXPECT_EQ(doc["options"]["connections"].number, 1000);
}

// `many --processes`: the connections spread over 2 client and 2 server processes, and the
// memory report: every per-connection figure present for every trial and path.
TEST(BenchTool, ManyOverProcessesReportsMemory) {
  const RunResult run = RunBench({"many", "--connections", "200", "--processes", "2", "--count",
                                  "2000", "--rounds", "1", "--json", "-", "--no-progress"});
  ASSERT_EQ(run.exit_code, 0);
  const Json doc = CheckDocument(run.out, "many", {0}, 1);
  EXPECT_EQ(doc["options"]["connections"].number, 200);
  EXPECT_EQ(doc["options"]["processes"].number, 2);
  EXPECT_EQ(doc["units"]["memory"].string, "KiB/connection");
  const char *kFields[] = {"mem_available",      "pss",   "pss_shmem",   "slab",
                           "slab_unreclaimable", "shmem", "page_tables", "accounted"};
  auto expect_memory = [&](const Json &memory, const std::string &path, const std::string &where) {
    ASSERT_EQ(memory.type, Json::Type::kObject) << where;
    for (const char *field : kFields)
      EXPECT_TRUE(IsNumber(memory[field])) << where << ": " << field;
    // System-wide deltas (slab, shmem, page tables, MemAvailable) move with whatever else runs
    // (the suite runs tests in parallel): presence only. The benchmark's own processes' memory
    // is theirs alone: the fast path's ends map at least its header page.
    EXPECT_GT(memory["pss"].number, 0) << where;
    if (path == "fast") EXPECT_GT(memory["pss_shmem"].number, 0) << where;
  };
  for (const Json &trial : doc["trials"].array) {
    EXPECT_TRUE(trial["path_verified"].boolean);
    expect_memory(trial["memory_kib_per_connection"], trial["path"].string,
                  "trial " + trial["path"].string);
  }
  const Json &result = doc["results"].array.at(0);
  for (const char *path : {"fast", "kernel", "unix"})
    expect_memory(result["paths"][path]["memory_kib_per_connection"], path,
                  std::string("result ") + path);
  for (const char *path : {"fast", "unix"}) {
    EXPECT_TRUE(IsNumber(result["memory_ratio_vs_kernel"][path])) << path;
    EXPECT_TRUE(IsNumber(result["memory_accounted_ratio_vs_kernel"][path])) << path;
  }
}

// Paced: each rate a parameter; requests go out on schedule, so no trial runs faster than its
// rate (how much slower a loaded host makes it is the benchmark's to measure, not this test's),
// and the CPU ratio to kernel TCP is reported.
TEST(BenchTool, RrPacedOverSeveralConnections) {
  const RunResult run = RunBench({"rr", "--rate", "500,2000", "--count", "200", "--connections",
                                  "3", "--rounds", "1", "--json", "-", "--no-progress"});
  ASSERT_EQ(run.exit_code, 0);
  const Json doc = CheckDocument(run.out, "rr", {500, 2000}, 1);
  EXPECT_EQ(doc["options"]["connections"].number, 3);
  ASSERT_EQ(doc["options"]["rates"].array.size(), 2u);
  for (const Json &trial : doc["trials"].array) {
    EXPECT_EQ(trial["operations"].number, 200);
    EXPECT_LE(trial["rate"].number, trial["parameter"].number * 1.05) << trial["path"].string;
  }
  for (const Json &result : doc["results"].array) {
    for (const char *path : {"fast", "unix"})
      EXPECT_GT(result["cpu_ratio_vs_kernel"][path].number, 0) << path;
  }
}

TEST(BenchTool, ManyPaced) {
  const RunResult run = RunBench({"many", "--connections", "50", "--rate", "3000", "--count", "600",
                                  "--rounds", "1", "--json", "-", "--no-progress"});
  ASSERT_EQ(run.exit_code, 0);
  const Json doc = CheckDocument(run.out, "many", {3000}, 1);
  for (const Json &trial : doc["trials"].array) {
    EXPECT_EQ(trial["operations"].number, 600);
    EXPECT_LE(trial["rate"].number, 3000 * 1.05) << trial["path"].string;
  }
}

TEST(BenchTool, RejectsBadCommandLines) {
  EXPECT_EQ(RunBench({"rr", "--size", "0"}).exit_code, 2);
  EXPECT_EQ(RunBench({"rr", "--size", "1,,2"}).exit_code, 2);
  EXPECT_EQ(RunBench({"stream", "--svg", "/dev/null"}).exit_code, 2);
  EXPECT_EQ(RunBench({"nosuchmode"}).exit_code, 2);
  EXPECT_EQ(RunBench({"rr", "--processes", "2"}).exit_code, 2);
  EXPECT_EQ(RunBench({"many", "--connections", "2", "--processes", "3"}).exit_code, 2);
  EXPECT_EQ(RunBench({"stream", "--rate", "100"}).exit_code, 2);
  EXPECT_EQ(RunBench({"rr", "--rate", "100", "--size", "1,2"}).exit_code, 2);
  EXPECT_EQ(RunBench({"rr", "--rate", "0"}).exit_code, 2);
  EXPECT_EQ(RunBench({"conn", "--connections", "4"}).exit_code, 2);
  const RunResult help = RunBench({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char *word : {"rr", "stream", "conn", "many", "--json", "--svg", "--connections",
                           "--processes", "--rate"})
    EXPECT_NE(help.out.find(word), std::string::npos) << word;
}

}  // namespace
