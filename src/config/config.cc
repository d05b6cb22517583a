// Process-wide settings and the log (config.h): reading the environment once, secure execution,
// and writing one escaped line per event to stderr or LOOPFAST_LOG_FILE.
#include "config/config.h"

#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/escape.h"
#include "base/output_file.h"
#include "sys/owned_fds.h"

namespace loopfast {
namespace {

constexpr size_t kLineBytes = 512;

bool Truthy(const char *value) {
  return value != nullptr && (std::strcmp(value, "1") == 0 || std::strcmp(value, "on") == 0 ||
                              std::strcmp(value, "yes") == 0 || std::strcmp(value, "true") == 0);
}

const char *GetEnv(const char *name) { return std::getenv(name); }

// "loopfast[pid]: message\n" with one raw write: stdio could re-enter the interposer or be
// locked by the interrupted code. The message is escaped as a line (a value a caller forgot
// to escape still cannot start a line of its own) and cut to fit, never inside an escape.
void WriteLineV(int fd, const char *format, va_list args) {
  char message[kLineBytes];
  const int length = std::vsnprintf(message, sizeof message, format, args);
  if (length < 0) return;
  char line[kLineBytes];
  size_t n = static_cast<size_t>(
      std::snprintf(line, sizeof line, "loopfast[%d]: ", static_cast<int>(getpid())));
  const size_t message_length = std::min(static_cast<size_t>(length), sizeof message - 1);
  n += EscapeInto({message, message_length}, EscapeStyle::kLine, line + n, sizeof line - n - 1);
  line[n++] = '\n';
  (void)!syscall(SYS_write, fd, line, n);
}

void WriteLine(int fd, const char *format, ...) __attribute__((format(printf, 2, 3)));
void WriteLine(int fd, const char *format, ...) {
  va_list args;
  va_start(args, format);
  WriteLineV(fd, format, args);
  va_end(args);
}

int LogFd() {
  static const int fd = [] {
    const char *path = WideningSetting("LOOPFAST_LOG_FILE");
    if (path == nullptr || *path == '\0') return 2;
    const char *refusal = nullptr;
    const Result<int> opened = OpenOutputFile(path, OutputMode::kAppend, 0644, &refusal);
    if (!opened.ok()) {
      WriteLine(2, "not logging to \"%s\": %s; logging to stderr", EscapeText(path).c_str(),
                refusal != nullptr ? refusal : std::strerror(opened.error()));
      return 2;
    }
    // Out of the program's way, and kept when it closes "every other descriptor": a number it
    // reuses must not receive log lines.
    const int log_fd = sys::MoveHigh(opened.value());
    sys::Own(log_fd);
    return log_fd;
  }();
  return fd;
}

}  // namespace

bool SecureExecution() {
  static const bool secure = getauxval(AT_SECURE) != 0;
  return secure;
}

const char *WideningSetting(const char *name) {
  return SecureExecution() ? nullptr : std::getenv(name);
}

Config ParseConfig(const char *(*lookup)(const char *name), bool secure_execution) {
  Config config;
  config.disabled = Truthy(lookup("LOOPFAST_DISABLE"));
  if (!secure_execution) {
    config.default_on = Truthy(lookup("LOOPFAST_DEFAULT"));
    // A number fixes the budget; anything else ("auto", unset, malformed) keeps the adaptive
    // default.
    if (const char *spin = lookup("LOOPFAST_SPIN_US"); spin != nullptr && *spin != '\0') {
      char *end = nullptr;
      const unsigned long us = std::strtoul(spin, &end, 10);
      if (end != nullptr && *end == '\0' && us <= 1000000) {
        config.spin_ns = uint32_t(us) * 1000;
        config.spin_adaptive = false;
      }
    }
  }
  if (const char *level = lookup("LOOPFAST_LOG"); level != nullptr) {
    LogLevel asked = config.log_level;
    if (std::strcmp(level, "off") == 0) asked = LogLevel::kOff;
    if (std::strcmp(level, "error") == 0) asked = LogLevel::kError;
    if (std::strcmp(level, "info") == 0) asked = LogLevel::kInfo;
    if (std::strcmp(level, "debug") == 0) asked = LogLevel::kDebug;
    // A privileged program tells the user who started it no more than by default.
    if (!secure_execution || asked < config.log_level) config.log_level = asked;
  }
  return config;
}

const Config &GetConfig() {
  static const Config config = ParseConfig(GetEnv, SecureExecution());
  return config;
}

void Log(LogLevel level, const char *format, ...) {
  if (static_cast<int>(level) > static_cast<int>(GetConfig().log_level)) return;
  const int saved_errno = errno;
  const int fd = LogFd();
  va_list args;
  va_start(args, format);
  WriteLineV(fd, format, args);
  va_end(args);
  errno = saved_errno;
}

}  // namespace loopfast
