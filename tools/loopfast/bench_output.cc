// JSON and SVG output of `loopfast bench` (bench_output.h).
#include "bench_output.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>

namespace loopfast::tool {

void JsonWriter::BeforeValue() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (empty_.empty()) return;
  if (!empty_.back()) out_ += ',';
  empty_.back() = false;
  out_ += '\n';
  out_.append(2 * empty_.size(), ' ');
}

void JsonWriter::Open(char bracket) {
  BeforeValue();
  out_ += bracket;
  empty_.push_back(true);
}

void JsonWriter::Close(char bracket) {
  const bool was_empty = empty_.empty() || empty_.back();
  if (!empty_.empty()) empty_.pop_back();
  if (!was_empty) {
    out_ += '\n';
    out_.append(2 * empty_.size(), ' ');
  }
  out_ += bracket;
  if (empty_.empty()) out_ += '\n';
}

void JsonWriter::AppendQuoted(std::string_view text) {
  out_ += '"';
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out_ += '\\';
      out_ += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", unsigned(c));
      out_ += escaped;
    } else {
      out_ += c;
    }
  }
  out_ += '"';
}

void JsonWriter::Key(std::string_view key) {
  BeforeValue();
  AppendQuoted(key);
  out_ += ": ";
  after_key_ = true;
}

void JsonWriter::String(std::string_view value) {
  BeforeValue();
  AppendQuoted(value);
}

void JsonWriter::Number(double value) {
  BeforeValue();
  if (!std::isfinite(value)) {
    out_ += "null";
    return;
  }
  char text[40];
  std::snprintf(text, sizeof text, "%.9g", value);
  out_ += text;
}

void JsonWriter::Integer(uint64_t value) {
  BeforeValue();
  out_ += std::to_string(value);
}

void JsonWriter::Bool(bool value) {
  BeforeValue();
  out_ += value ? "true" : "false";
}

void JsonWriter::Null() {
  BeforeValue();
  out_ += "null";
}

namespace {

std::string Format(const char *format, double a, double b = 0, double c = 0, double d = 0) {
  char text[256];
  std::snprintf(text, sizeof text, format, a, b, c, d);
  return text;
}

std::string XmlEscape(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '&')
      out += "&amp;";
    else if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else
      out += c;
  }
  return out;
}

// Microseconds with the digits that matter at that scale: 0.48, 52.3, 2901.
std::string Micros(double us) { return Format(us < 10 ? "%.2f" : us < 100 ? "%.1f" : "%.0f", us); }

// Chart geometry (pixels).
constexpr double kWidth = 860;
constexpr double kHeadingHeight = 44;
constexpr double kPanelHeight = 360;
constexpr double kPlotLeft = 70;
constexpr double kPlotRight = 600;
constexpr double kPlotTop = 40;      // within a panel
constexpr double kPlotBottom = 300;  // within a panel
constexpr size_t kPointsPerSeries = 600;

void DrawPanel(const LatencyChart &chart, double top, std::string *svg) {
  double low_us = 1e30, high_us = 0;
  for (const LatencySeries &series : chart.series) {
    if (series.sorted_ns.empty()) continue;
    low_us = std::min(low_us, series.sorted_ns.front() / 1e3);
    high_us = std::max(high_us, series.sorted_ns.back() / 1e3);
  }
  if (high_us <= 0) return;
  low_us = std::max(low_us, 0.01);
  high_us = std::max(high_us, low_us);
  // Whole decades, so the grid lines land on 0.1, 1, 10, ... microseconds.
  const int first_decade = int(std::floor(std::log10(low_us)));
  int last_decade = int(std::ceil(std::log10(high_us)));
  if (last_decade <= first_decade) last_decade = first_decade + 1;
  const double y0 = top + kPlotTop, y1 = top + kPlotBottom;
  auto x_of = [&](double us) {
    const double position =
        (std::log10(std::max(us, 0.01)) - first_decade) / double(last_decade - first_decade);
    return kPlotLeft + std::clamp(position, 0.0, 1.0) * (kPlotRight - kPlotLeft);
  };
  auto y_of = [&](double fraction) { return y1 - fraction * (y1 - y0); };

  *svg += "<text x='" + Format("%.0f", kPlotLeft) + "' y='" + Format("%.0f", top + 24) +
          "' font-size='15' font-weight='bold'>" + XmlEscape(chart.title) + "</text>\n";
  // Grid: decades (labelled) and their 2..9 multiples (faint).
  for (int decade = first_decade; decade <= last_decade; ++decade) {
    const double value = std::pow(10.0, decade);
    const double x = x_of(value);
    *svg += Format("<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#bbb'/>\n", x, y0, x, y1);
    *svg += Format("<text x='%.1f' y='%.1f' font-size='12' text-anchor='middle'>", x, y1 + 16) +
            Format(value < 1 ? "%.2g" : "%.0f", value) + "</text>\n";
    for (int multiple = 2; multiple <= 9 && decade < last_decade; ++multiple) {
      const double minor = x_of(value * multiple);
      *svg += Format("<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#eee'/>\n", minor, y0,
                     minor, y1);
    }
  }
  for (const double fraction : {0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0}) {
    const double y = y_of(fraction);
    *svg += Format("<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#ddd'/>\n", kPlotLeft, y,
                   kPlotRight, y);
    if (fraction != 0.99)  // too close to 1.0 to label on a linear axis
      *svg += Format("<text x='%.1f' y='%.1f' font-size='12' text-anchor='end'>%.0f%%</text>\n",
                     kPlotLeft - 6, y + 4, fraction * 100);
  }
  *svg += Format("<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='none' stroke='#444'/>\n",
                 kPlotLeft, y0, kPlotRight - kPlotLeft, y1 - y0);
  *svg += Format("<text x='%.1f' y='%.1f' font-size='13' text-anchor='middle'>",
                 (kPlotLeft + kPlotRight) / 2, y1 + 36) +
          "latency (µs, log scale)</text>\n";
  *svg += Format(
      "<text x='18' y='%.1f' font-size='13' text-anchor='middle' "
      "transform='rotate(-90 18 %.1f)'>fraction of transactions at or below</text>\n",
      (y0 + y1) / 2, (y0 + y1) / 2);

  double legend_y = y0 + 8;
  for (const LatencySeries &series : chart.series) {
    const std::vector<double> &sorted = series.sorted_ns;
    if (sorted.empty()) continue;
    *svg += "<polyline fill='none' stroke-width='2' stroke='" + series.color + "' points='";
    for (size_t k = 0; k < kPointsPerSeries; ++k) {
      const double fraction = double(k) / double(kPointsPerSeries - 1);
      const double value_us = PercentileOfSorted(sorted, fraction) / 1e3;
      *svg += Format("%.1f,%.1f ", x_of(value_us), y_of(fraction));
    }
    *svg += "'/>\n";
    *svg += Format("<rect x='%.1f' y='%.1f' width='14' height='4' ", kPlotRight + 16, legend_y) +
            "fill='" + series.color + "'/>\n";
    *svg += Format("<text x='%.1f' y='%.1f' font-size='13'>", kPlotRight + 36, legend_y + 6) +
            XmlEscape(series.label) + "</text>\n";
    *svg += Format("<text x='%.1f' y='%.1f' font-size='11' fill='#444'>", kPlotRight + 36,
                   legend_y + 21) +
            "p50 " + Micros(PercentileOfSorted(sorted, 0.5) / 1e3) + " µs, p99 " +
            Micros(PercentileOfSorted(sorted, 0.99) / 1e3) + " µs" + "</text>\n";
    *svg += Format("<text x='%.1f' y='%.1f' font-size='11' fill='#444'>", kPlotRight + 36,
                   legend_y + 35) +
            "p99.9 " + Micros(PercentileOfSorted(sorted, 0.999) / 1e3) +
            Format(" µs, n=%.0f", double(sorted.size())) + "</text>\n";
    legend_y += 54;
  }
}

}  // namespace

std::string LatencySvg(std::string_view heading, const std::vector<LatencyChart> &charts) {
  const double height = kHeadingHeight + kPanelHeight * double(std::max<size_t>(charts.size(), 1));
  std::string svg = "<?xml version='1.0' encoding='UTF-8'?>\n";
  svg += Format("<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' height='%.0f' ", kWidth,
                height) +
         Format("viewBox='0 0 %.0f %.0f' font-family='sans-serif'>\n", kWidth, height);
  svg += "<rect width='100%' height='100%' fill='white'/>\n";
  svg +=
      "<text x='16' y='28' font-size='17' font-weight='bold'>" + XmlEscape(heading) + "</text>\n";
  for (size_t i = 0; i < charts.size(); ++i) {
    DrawPanel(charts[i], kHeadingHeight + kPanelHeight * double(i), &svg);
  }
  svg += "</svg>\n";
  return svg;
}

double PercentileOfSorted(const std::vector<double> &sorted, double p) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, size_t(p * double(sorted.size() - 1) + 0.5))];
}

bool WriteTextFile(const std::string &path, const std::string &text) {
  if (path == "-") {
    const bool ok = std::fwrite(text.data(), 1, text.size(), stdout) == text.size();
    return std::fflush(stdout) == 0 && ok;
  }
  FILE *file = std::fopen(path.c_str(), "we");
  if (file == nullptr) return false;
  const bool written = std::fwrite(text.data(), 1, text.size(), file) == text.size();
  const int saved = errno;
  const bool closed = std::fclose(file) == 0;
  if (!written) errno = saved;
  return written && closed;
}

}  // namespace loopfast::tool
