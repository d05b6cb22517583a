// Local attackers (issue 15, points 1, 2, 3 and 5): another user of the host tries to make a
// loopfast process write where the attacker chooses (the environment of a setuid program;
// links and files planted in directories everyone may write), to forge lines in its log, and
// to send escape sequences to the terminal of whoever runs `loopfast stat`.
//
// Real programs as real users: a tiny program linked with libloopfast
// (tests/tools/local_probe.c) that this file compiles at run time, with a copy of the library,
// into a directory every user may enter (a setuid-root copy too), run as root, as 65534 and as
// 65533. Needs root; skipped otherwise.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.h"

namespace loopfast::test {
namespace {

namespace fs = std::filesystem;

constexpr uid_t kRoot = 0;
constexpr uid_t kVictim = 65534;    // nobody
constexpr uid_t kAttacker = 65533;  // another unprivileged user

// ---- files and text ----

// A directory under /tmp that every user may enter (0755, root's), removed at the end.
class Scratch {
 public:
  Scratch() {
    char pattern[] = "/tmp/lf-attack.XXXXXX";
    if (mkdtemp(pattern) != nullptr) path_ = pattern;
    if (!path_.empty()) chmod(path_.c_str(), 0755);
  }
  ~Scratch() {
    if (!path_.empty()) fs::remove_all(path_);
  }
  Scratch(const Scratch &) = delete;
  Scratch &operator=(const Scratch &) = delete;
  const std::string &path() const { return path_; }
  std::string File(const std::string &name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

bool Exists(const std::string &path) {
  struct stat info {};
  return lstat(path.c_str(), &info) == 0;
}

std::string Contents(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void MakeFile(const std::string &path, const std::string &text, uid_t owner, mode_t mode) {
  std::ofstream(path, std::ios::binary) << text;
  ASSERT_EQ(chown(path.c_str(), owner, owner), 0) << path;
  ASSERT_EQ(chmod(path.c_str(), mode), 0) << path;
}

void MakeDirectory(const std::string &path, uid_t owner, mode_t mode) {
  ASSERT_EQ(mkdir(path.c_str(), 0700), 0) << path;
  ASSERT_EQ(chown(path.c_str(), owner, owner), 0) << path;
  ASSERT_EQ(chmod(path.c_str(), mode), 0) << path;
}

// `text` for a failure message: what a terminal would act on as \xNN (a failing test must not
// do to the reader's terminal what it checks loopfast does not), at most 600 bytes.
std::string Printable(const std::string &text) {
  std::string out;
  for (const char c : text.substr(0, 600)) {
    const auto b = static_cast<unsigned char>(c);
    if ((b >= 0x20 && b < 0x7f) || b == '\n') {
      out += c;
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", b);
      out += hex;
    }
  }
  return text.size() > 600 ? out + "..." : out;
}

std::vector<std::string> Lines(const std::string &text) {
  std::vector<std::string> lines;
  std::stringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

int LinesContaining(const std::string &text, const std::string &needle) {
  int count = 0;
  for (const std::string &line : Lines(text)) count += line.find(needle) != std::string::npos;
  return count;
}

// What a terminal or a log reader could act on: a control character other than the line
// ends ('\n'), DEL, a C1 control, or bytes that are not well-formed UTF-8. "" when clean, else
// where and what.
std::string FirstUnsafeByte(const std::string &text) {
  for (size_t i = 0; i < text.size(); ++i) {
    const auto b = static_cast<unsigned char>(text[i]);
    const std::string where = "byte " + std::to_string(i) + " (0x" + [&] {
      char hex[3];
      std::snprintf(hex, sizeof hex, "%02x", b);
      return std::string(hex);
    }() + ")";
    if ((b < 0x20 && b != '\n') || b == 0x7f) return where + ": a control character";
    if (b < 0x80) continue;
    const size_t length = b >= 0xf0 && b <= 0xf4 ? 4 : b >= 0xe0 ? 3 : b >= 0xc2 ? 2 : 0;
    if (length == 0 || b > 0xf4 || i + length > text.size()) return where + ": not UTF-8";
    uint32_t code_point = b & (0x7f >> length);
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xc0) != 0x80) return where + ": not UTF-8";
      code_point = (code_point << 6) | (next & 0x3f);
    }
    const uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code_point < smallest[length] || code_point > 0x10ffff ||
        (code_point >= 0xd800 && code_point <= 0xdfff)) {
      return where + ": not UTF-8";
    }
    if (code_point <= 0x9f) return where + ": a C1 control";
    i += length - 1;
  }
  return "";
}

// ---- the probe: built once per test process ----

// libloopfast and the probe linked against that copy (absolute RUNPATH: a setuid program
// ignores LD_LIBRARY_PATH and $ORIGIN), in a directory every user may enter; and a setuid-root
// copy of the probe.
struct ProbeBuild {
  Scratch directory;
  std::string probe, setuid_probe, error;

  ProbeBuild() {
    if (directory.path().empty()) {
      error = "mkdtemp failed";
      return;
    }
    const std::string library = directory.File("libloopfast.so.0");
    std::error_code copy_error;
    fs::copy_file(LOOPFAST_LIBRARY, library, copy_error);
    if (copy_error) {
      error = "copying the library: " + copy_error.message();
      return;
    }
    chmod(library.c_str(), 0755);
    probe = directory.File("local_probe");
    const std::string command = std::string(LOOPFAST_C_COMPILER) + " -O1 -o " + probe + " " +
                                LOOPFAST_SOURCE_DIR "/tests/tools/local_probe.c -I" +
                                LOOPFAST_SOURCE_DIR "/include " + library + " -Wl,-rpath," +
                                directory.path() + " 2>&1";
    FILE *compiler = popen(command.c_str(), "r");
    char buffer[512];
    std::string output;
    while (compiler != nullptr && std::fgets(buffer, sizeof buffer, compiler) != nullptr) {
      output += buffer;
    }
    if (compiler == nullptr || pclose(compiler) != 0) {
      error = "compiling the probe failed: " + command + "\n" + output;
      return;
    }
    const std::string setuid_directory = directory.File("setuid");
    setuid_probe = setuid_directory + "/local_probe";
    if (mkdir(setuid_directory.c_str(), 0755) != 0 ||
        !fs::copy_file(probe, setuid_probe, copy_error) || chown(setuid_probe.c_str(), 0, 0) != 0 ||
        chmod(setuid_probe.c_str(), 04755) != 0) {
      error = "making the setuid copy failed";
    }
  }
};

const ProbeBuild &Build() {
  static const ProbeBuild build;
  return build;
}

#define REQUIRE_ROOT_AND_PROBE()                                                     \
  do {                                                                               \
    if (geteuid() != 0) GTEST_SKIP() << "needs root to run programs as other users"; \
    ASSERT_EQ(Build().error, "");                                                    \
  } while (0)

// A program started as `uid` (root: as this process is) with exactly `environment`; its
// standard output is read line by line, its standard error collected, and closing its
// standard input ends a --hold probe.
class Program {
 public:
  Program(uid_t uid, const std::vector<std::string> &argv,
          const std::vector<std::string> &environment) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return;
    err_ = memfd_create("local-attacker-stderr", MFD_CLOEXEC);
    std::vector<char *> args, env;
    for (const std::string &arg : argv) args.push_back(const_cast<char *>(arg.c_str()));
    for (const std::string &value : environment) env.push_back(const_cast<char *>(value.c_str()));
    args.push_back(nullptr);
    env.push_back(nullptr);
    std::fflush(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(err_, 2) < 0) _exit(126);
      if (uid != kRoot && (setgroups(0, nullptr) != 0 || setgid(uid) != 0 || setuid(uid) != 0)) {
        _exit(125);
      }
      execve(args[0], args.data(), env.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    stdin_ = in[1];
    stdout_ = fdopen(out[0], "r");
  }
  ~Program() {
    Finish();
    if (err_ >= 0) close(err_);
  }
  Program(const Program &) = delete;
  Program &operator=(const Program &) = delete;

  // The next line of its standard output ("" at its end; a 20 s bound).
  std::string Line() {
    if (stdout_ == nullptr) return "";
    pollfd ready = {fileno(stdout_), POLLIN, 0};
    if (poll(&ready, 1, 20000) != 1) return "";
    char line[1024];
    if (std::fgets(line, sizeof line, stdout_) == nullptr) return "";
    std::string text(line);
    if (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
  }

  // Closes its standard input, waits for it (30 s at most) and returns its exit status.
  int Finish() {
    if (stdin_ >= 0) close(stdin_);
    stdin_ = -1;
    if (pid_ > 0) {
      status_ = Reap(pid_, 30000);
      pid_ = -1;
    }
    if (stdout_ != nullptr) std::fclose(stdout_);
    stdout_ = nullptr;
    return status_;
  }

  // Its standard error so far.
  std::string Errors() const {
    std::string text;
    char buffer[4096];
    off_t offset = 0;
    for (ssize_t n; (n = pread(err_, buffer, sizeof buffer, offset)) > 0; offset += n) {
      text.append(buffer, static_cast<size_t>(n));
    }
    return text;
  }

 private:
  pid_t pid_ = -1;
  int stdin_ = -1, err_ = -1;
  FILE *stdout_ = nullptr;
  int status_ = -1;
};

// One field of the probe's report line: Field("secure=1 euid=0 ...", "euid") is "0".
std::string Field(const std::string &line, const std::string &name) {
  const size_t at = line.find(name + "=");
  if (at == std::string::npos) return "";
  const size_t start = at + name.size() + 1;
  return line.substr(start, line.find(' ', start) - start);
}

struct ProbeRun {
  std::string report, errors;
  int status = -1;
};

// Runs the probe (once, no --hold) as `uid` with `environment`.
ProbeRun RunProbe(uid_t uid, const std::vector<std::string> &environment, bool setuid = false) {
  Program program(uid, {setuid ? Build().setuid_probe : Build().probe}, environment);
  ProbeRun run;
  run.report = program.Line();
  run.status = program.Finish();
  run.errors = program.Errors();
  return run;
}

// ---- point 1: a setuid program ----

// An unprivileged user runs a setuid-root program linked with libloopfast, with
// LOOPFAST_LOG_FILE and LOOPFAST_CAPTURE naming files in a directory only root may write and a
// port list holding a newline and a passwd-shaped line. Before issue 15 the program created the log
// file there with that line in it verbatim, appended to an existing root file, and wrote the
// program's payload into a new root-owned capture file.
TEST(LocalAttackerTest, ASetuidProgramIgnoresItsCallersFileAndWideningSettings) {
  REQUIRE_ROOT_AND_PROBE();
  struct statvfs volume {};
  ASSERT_EQ(statvfs(Build().directory.path().c_str(), &volume), 0);
  if ((volume.f_flag & ST_NOSUID) != 0) GTEST_SKIP() << "/tmp is mounted nosuid";
  Scratch scratch;
  const std::string root_only = scratch.File("root-only");
  ASSERT_NO_FATAL_FAILURE(MakeDirectory(root_only, kRoot, 0755));
  const std::string existing = root_only + "/existing.log";
  ASSERT_NO_FATAL_FAILURE(MakeFile(existing, "original\n", kRoot, 0644));
  const std::string created_log = root_only + "/created.log";
  const std::string created_pcap = root_only + "/created.pcap";
  const std::string passwd_line = "evil::0:0:root:/root:/bin/sh";

  // The narrowing list is malformed: the program says so (on stderr, escaped) and stays off
  // the fast path; the log file is not the caller's to choose.
  const ProbeRun malformed =
      RunProbe(kVictim,
               {"LOOPFAST_LOG=debug", "LOOPFAST_LOG_FILE=" + created_log,
                "LOOPFAST_CAPTURE=" + created_pcap, "LOOPFAST_EXCLUDE_PORTS=1\n" + passwd_line},
               /*setuid=*/true);
  ASSERT_EQ(malformed.status, 0) << Printable(malformed.errors);
  if (Field(malformed.report, "secure") != "1") {
    GTEST_SKIP() << "the setuid copy did not run in secure execution here: " << malformed.report;
  }
  EXPECT_EQ(Field(malformed.report, "euid"), "0");
  EXPECT_EQ(Field(malformed.report, "ruid"), std::to_string(kVictim));
  EXPECT_EQ(Field(malformed.report, "path"), "kernel") << "a narrowing setting is still honoured";
  EXPECT_FALSE(Exists(created_log)) << Printable(Contents(created_log));
  EXPECT_EQ(Lines(malformed.errors).size(), 1u) << Printable(malformed.errors);
  EXPECT_EQ(LinesContaining(malformed.errors, "LOOPFAST_EXCLUDE_PORTS=\"1\\x0a" + passwd_line), 1)
      << Printable(malformed.errors);
  EXPECT_EQ(FirstUnsafeByte(malformed.errors), "");

  // A fast connection with every widening setting: nothing is appended to the existing root
  // file, no capture file appears, and debug is not honoured (stderr stays quiet).
  const ProbeRun widening = RunProbe(
      kVictim,
      {"LOOPFAST_LOG=debug", "LOOPFAST_LOG_FILE=" + existing, "LOOPFAST_CAPTURE=" + created_pcap,
       "LOOPFAST_CAPTURE_PORTS=1-65535", "LOOPFAST_DEFAULT=1", "LOOPFAST_SPIN_US=1000000"},
      /*setuid=*/true);
  ASSERT_EQ(widening.status, 0) << Printable(widening.errors);
  EXPECT_EQ(Field(widening.report, "path"), "fast") << Printable(widening.report);
  EXPECT_TRUE(Contents(existing) == "original\n")
      << "appended to: " << Printable(Contents(existing));
  EXPECT_FALSE(Exists(created_pcap)) << "the capture file was created";
  EXPECT_TRUE(widening.errors.empty()) << Printable(widening.errors);

  // What only narrows still works in a setuid program.
  const ProbeRun disabled = RunProbe(kVictim, {"LOOPFAST_DISABLE=1"}, /*setuid=*/true);
  EXPECT_EQ(Field(disabled.report, "path"), "kernel") << Printable(disabled.report);
}

// ---- point 2: planted links and files ----

// Links and a file planted by user 65533 in a world-writable sticky directory of its own and in
// a /tmp-like one of root's; root and user 65534 log and capture to those names. Before issue 15,
// root followed the link in the attacker's directory and appended its log to a root file (and so
// would any process where fs.protected_symlinks is 0, in /tmp too).
TEST(LocalAttackerTest, PlantedLinksAndFilesInSharedDirectoriesAreRefused) {
  REQUIRE_ROOT_AND_PROBE();
  Scratch scratch;
  const std::string root_only = scratch.File("root-only"), victims = scratch.File("victims");
  const std::string theirs = scratch.File("theirs"), shared = scratch.File("tmp");
  ASSERT_NO_FATAL_FAILURE(MakeDirectory(root_only, kRoot, 0755));
  ASSERT_NO_FATAL_FAILURE(MakeDirectory(victims, kVictim, 0755));
  ASSERT_NO_FATAL_FAILURE(MakeDirectory(theirs, kAttacker, 01777));
  ASSERT_NO_FATAL_FAILURE(MakeDirectory(shared, kRoot, 01777));
  const std::string root_file = root_only + "/precious", victim_file = victims + "/precious";
  ASSERT_NO_FATAL_FAILURE(MakeFile(root_file, "root's\n", kRoot, 0644));
  ASSERT_NO_FATAL_FAILURE(MakeFile(victim_file, "the victim's\n", kVictim, 0600));

  // The attacker plants, as itself.
  const pid_t attacker = Spawn([&] {
    if (setgroups(0, nullptr) != 0 || setgid(kAttacker) != 0 || setuid(kAttacker) != 0) return 1;
    const std::pair<std::string, std::string> links[] = {{root_file, theirs + "/root.log"},
                                                         {root_file, theirs + "/root.pcap"},
                                                         {root_file, shared + "/root.log"},
                                                         {victim_file, theirs + "/victim.log"},
                                                         {victim_file, shared + "/victim.pcap"}};
    for (const auto &[target, link] : links) {
      if (symlink(target.c_str(), link.c_str()) != 0) return 2;
    }
    // A file of its own where root will capture: it would read root's traffic.
    const int planted = open((shared + "/planted.pcap").c_str(), O_CREAT | O_WRONLY, 0666);
    if (planted < 0 || fchmod(planted, 0666) != 0) return 3;
    close(planted);
    return 0;
  });
  ASSERT_EQ(Reap(attacker), 0);

  struct Case {
    const char *who;
    uid_t uid;
    std::string log, capture;
  };
  const Case cases[] = {
      {"root, the attacker's directory", kRoot, theirs + "/root.log", theirs + "/root.pcap"},
      {"root, a /tmp-like directory", kRoot, shared + "/root.log", shared + "/planted.pcap"},
      {"a third user", kVictim, theirs + "/victim.log", shared + "/victim.pcap"},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.who);
    const ProbeRun run = RunProbe(c.uid, {"LOOPFAST_LOG=info", "LOOPFAST_LOG_FILE=" + c.log,
                                          "LOOPFAST_CAPTURE=" + c.capture});
    ASSERT_EQ(run.status, 0) << Printable(run.errors);
    EXPECT_EQ(Field(run.report, "path"), "fast") << "the connection itself is not affected";
    EXPECT_TRUE(Contents(root_file) == "root's\n") << Printable(Contents(root_file));
    EXPECT_TRUE(Contents(victim_file) == "the victim's\n") << Printable(Contents(victim_file));
    EXPECT_TRUE(Contents(shared + "/planted.pcap").empty())
        << "written to the attacker's file: " << Printable(Contents(shared + "/planted.pcap"));
    EXPECT_EQ(LinesContaining(run.errors, "not logging to \"" + c.log + "\""), 1)
        << Printable(run.errors);
    EXPECT_EQ(LinesContaining(run.errors, "no capture to \"" + c.capture + "\""), 1)
        << Printable(run.errors);
    EXPECT_EQ(FirstUnsafeByte(run.errors), "");
  }

  // In a directory of its own the victim logs and captures as before; the capture is 0600.
  const std::string own_log = victims + "/own.log", own_pcap = victims + "/own.pcap";
  const ProbeRun own = RunProbe(kVictim, {"LOOPFAST_LOG=info", "LOOPFAST_LOG_FILE=" + own_log,
                                          "LOOPFAST_CAPTURE=" + own_pcap});
  EXPECT_EQ(Field(own.report, "path"), "fast");
  EXPECT_TRUE(own.errors.empty()) << Printable(own.errors);
  EXPECT_EQ(LinesContaining(Contents(own_log), "loaded: explicit API"), 1)
      << Printable(Contents(own_log));
  struct stat info {};
  ASSERT_EQ(stat(own_pcap.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0600u);
  EXPECT_EQ(info.st_uid, kVictim);
  EXPECT_GT(info.st_size, 24) << "header and records";
}

// ---- point 3: forged log lines ----

// Values from the environment with newlines, escape sequences and bytes that are not UTF-8:
// each event stays one line, the value escaped. Before issue 15 the newline started a line of the
// attacker's own ("loopfast[1]: forged ...") in the log.
TEST(LocalAttackerTest, MalformedEnvironmentValuesAreLoggedEscapedOnOneLine) {
  REQUIRE_ROOT_AND_PROBE();
  Scratch scratch;
  const std::string log = scratch.File("app.log");
  const ProbeRun list = RunProbe(
      kRoot, {"LOOPFAST_LOG_FILE=" + log,
              "LOOPFAST_EXCLUDE_PORTS=80\nloopfast[1]: forged\x1b[2J\xff\x7f\\x0a\xc2\x9b"});
  ASSERT_EQ(list.status, 0) << Printable(list.errors);
  const std::string logged = Contents(log);
  EXPECT_EQ(Lines(logged).size(), 1u) << Printable(logged);
  EXPECT_EQ(LinesContaining(logged,
                            "LOOPFAST_EXCLUDE_PORTS=\"80\\x0aloopfast[1]: "
                            "forged\\x1b[2J\\xff\\x7f\\x5cx0a\\xc2\\x9b\" is malformed"),
            1)
      << Printable(logged);
  EXPECT_EQ(FirstUnsafeByte(logged), "");

  // A capture path with a newline and an escape sequence (its directory does not exist).
  const std::string capture_log = scratch.File("capture.log");
  const std::string capture = scratch.File("no such\n\x1b[31mdir/x.pcap");
  const ProbeRun bad_capture =
      RunProbe(kRoot, {"LOOPFAST_LOG_FILE=" + capture_log, "LOOPFAST_CAPTURE=" + capture});
  ASSERT_EQ(bad_capture.status, 0) << Printable(bad_capture.errors);
  const std::string capture_logged = Contents(capture_log);
  EXPECT_EQ(Lines(capture_logged).size(), 1u) << Printable(capture_logged);
  EXPECT_EQ(LinesContaining(capture_logged, "no capture to \"" + scratch.File("no such") +
                                                "\\x0a\\x1b[31mdir/x.pcap\""),
            1)
      << Printable(capture_logged);
  EXPECT_EQ(FirstUnsafeByte(capture_logged), "");

  // A log path that cannot be opened, itself with escapes: said once on stderr, escaped.
  const ProbeRun bad_log =
      RunProbe(kRoot, {"LOOPFAST_LOG_FILE=" + scratch.File("missing\x1b]0;title\x07/app.log"),
                       "LOOPFAST_INCLUDE_PORTS=x\ny"});
  ASSERT_EQ(bad_log.status, 0) << Printable(bad_log.errors);
  EXPECT_EQ(Lines(bad_log.errors).size(), 2u) << Printable(bad_log.errors);
  EXPECT_EQ(LinesContaining(bad_log.errors, "not logging to \"" + scratch.File("missing") +
                                                "\\x1b]0;title\\x07/app.log\""),
            1)
      << Printable(bad_log.errors);
  EXPECT_EQ(LinesContaining(bad_log.errors, "LOOPFAST_INCLUDE_PORTS=\"x\\x0ay\""), 1)
      << Printable(bad_log.errors);
  EXPECT_EQ(FirstUnsafeByte(bad_log.errors), "");
}

// ---- point 5: terminal escapes in `loopfast stat` ----

// A process of another user names itself with escape sequences (set the title, clear the
// screen), DEL, a byte that is not UTF-8 and a C1 CSI, and holds a fast connection; root runs
// `loopfast stat`. Before issue 15 the text output carried the escapes raw to root's terminal and
// the JSON held a raw DEL and invalid UTF-8.
TEST(LocalAttackerTest, StatShowsAHostileProcessNameEscaped) {
  REQUIRE_ROOT_AND_PROBE();
  // ESC ] 0 ; x BEL, ESC [ 2 J, DEL, 0xff, U+009B: 14 bytes (a name holds 15).
  const std::string hostile_hex = "1b5d303b78071b5b324a7fffc29b";
  Program holder(kVictim, {Build().probe, "--name", hostile_hex, "--hold"}, {});
  const std::string report = holder.Line();
  ASSERT_EQ(Field(report, "path"), "fast") << report << Printable(holder.Errors());
  const std::string pid = Field(report, "pid");

  int status = -1;
  const std::string text = Output(std::string(LOOPFAST_TOOL) + " stat --pid " + pid, &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(FirstUnsafeByte(text), "") << Printable(text);
  EXPECT_GE(LinesContaining(text, "\\x1b]0;x\\x07\\x1b[2J\\x7f\\xff\\xc2\\x9b[" + pid + "]"), 2)
      << Printable(text);  // the connection's two ends, both in this process

  const std::string json_file = "/tmp/lf-attack-stat-" + std::to_string(getpid()) + ".json";
  Output(std::string(LOOPFAST_TOOL) + " stat --json --pid " + pid + " > " + json_file, &status);
  EXPECT_EQ(status, 0);
  const std::string json = Contents(json_file);
  EXPECT_EQ(FirstUnsafeByte(json), "") << Printable(json);
  // Valid JSON and schema, and the name as it decodes: every control escaped, 0xff replaced.
  const std::string schema_check =
      "python3 " LOOPFAST_SOURCE_DIR "/tests/stat_schema_check.py " LOOPFAST_SOURCE_DIR
      "/docs/stat.md";
  const std::string first_name =
      "python3 -c 'import json, sys; "
      "print(ascii(json.loads(sys.stdin.buffer.read().decode())[\"sockets\"][0][\"program\"]))'";
  const std::string checked =
      Output(schema_check + " < " + json_file + " > /dev/null && " + first_name + " < " + json_file,
             &status);
  EXPECT_EQ(status, 0) << Printable(checked);
  EXPECT_EQ(checked, "'\\x1b]0;x\\x07\\x1b[2J\\x7f\\ufffd\\x9b'\n");
  unlink(json_file.c_str());
  EXPECT_EQ(holder.Finish(), 0);
}

}  // namespace
}  // namespace loopfast::test
