// Output of `loopfast bench` beyond the text table: a small JSON writer and a self-contained SVG
// latency chart. No third-party code: the tool must build wherever the library does.
#ifndef LOOPFAST_TOOLS_BENCH_OUTPUT_H_
#define LOOPFAST_TOOLS_BENCH_OUTPUT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace loopfast::tool {

// Streams JSON into a string, indented, commas placed by the writer. The caller keeps the
// structure balanced (Begin/End pairs, Key before each object member).
class JsonWriter {
 public:
  void BeginObject() { Open('{'); }
  void EndObject() { Close('}'); }
  void BeginArray() { Open('['); }
  void EndArray() { Close(']'); }
  void Key(std::string_view key);
  void String(std::string_view value);
  void Number(double value);  // not finite: null (JSON has no NaN or infinity)
  void Integer(uint64_t value);
  void Bool(bool value);
  void Null();
  const std::string &text() const { return out_; }

 private:
  void BeforeValue();
  void Open(char bracket);
  void Close(char bracket);
  void AppendQuoted(std::string_view text);

  std::string out_;
  std::vector<bool> empty_;  // per open container: nothing written into it yet
  bool after_key_ = false;
};

struct LatencySeries {
  std::string label;              // e.g. "fast path"
  std::string color;              // CSS colour
  std::vector<double> sorted_ns;  // latencies, ascending
};

struct LatencyChart {
  std::string title;
  std::vector<LatencySeries> series;
};

// One CDF panel per chart, stacked, log-scale x axis in microseconds.
std::string LatencySvg(std::string_view heading, const std::vector<LatencyChart> &charts);

// The value at fraction `p` (0 to 1) of an ascending sample, by nearest rank; 0 when empty.
double PercentileOfSorted(const std::vector<double> &sorted, double p);

// Writes `text` to `path` ("-": stdout). False (errno set) on failure.
bool WriteTextFile(const std::string &path, const std::string &text);

}  // namespace loopfast::tool

#endif  // LOOPFAST_TOOLS_BENCH_OUTPUT_H_
