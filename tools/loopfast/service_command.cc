// `loopfast service`: run a systemd service under loopfast. Daemons do not inherit LD_PRELOAD
// from a shell, so `enable` writes a drop-in, /etc/systemd/system/UNIT.d/loopfast.conf, whose
// Environment= lines are exactly what `loopfast run` with the same options sets (launch.h);
// `disable` removes that file (and the UNIT.d directory if it is left empty); `status` shows it.
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "commands.h"
#include "launch.h"
#include "loopfast/loopfast.h"

namespace loopfast::tool {
namespace {

constexpr const char *kCommand = "loopfast service";
// The drop-in's first line: `disable` removes only a file that starts with it.
constexpr const char *kMarker = "# Written by `loopfast service enable`";
constexpr const char *kDropInName = "loopfast.conf";

void ServiceUsage(FILE *out) {
  std::fprintf(
      out,
      "NAME\n"
      "    loopfast service - run a systemd service under loopfast\n"
      "\n"
      "SYNOPSIS\n"
      "    loopfast service enable [--root DIR] [--library PATH] [--no-reload] UNIT\n"
      "                            [RUN OPTIONS]\n"
      "    loopfast service disable [--root DIR] [--no-reload] UNIT\n"
      "    loopfast service status [--root DIR] UNIT\n"
      "\n"
      "DESCRIPTION\n"
      "    Services started by systemd do not inherit LD_PRELOAD from a shell. `enable`\n"
      "    writes the drop-in /etc/systemd/system/UNIT.d/loopfast.conf, which gives the\n"
      "    unit's processes the environment `loopfast run RUN OPTIONS` would give them: the\n"
      "    library preloaded by its absolute path, the switch on by default, and one\n"
      "    LOOPFAST_* variable per option. Enabling again with the same options changes\n"
      "    nothing; with other options it replaces the file. `disable` removes exactly that\n"
      "    file, and UNIT.d if nothing else is in it. `status` shows the drop-in and the\n"
      "    options it stands for. UNIT without a suffix means UNIT.service.\n"
      "\n"
      "    Unless --root or --no-reload is given, enable and disable run `systemctl\n"
      "    daemon-reload` when systemd is running; restart the unit to apply the change.\n"
      "\n"
      "OPTIONS\n"
      "    --root DIR              work on the file system under DIR (packagers, tests, images)\n"
      "                            instead of /; never reloads systemd\n"
      "    --library PATH          preload this library (an absolute path) instead of the one\n"
      "                            this tool uses\n"
      "    --no-reload             do not run `systemctl daemon-reload`\n"
      "    RUN OPTIONS             every option of `loopfast run` (--include-port, --log, ...);\n"
      "                            a relative --log-file is made absolute (units start in /)\n"
      "    -h, --help              this text\n"
      "\n"
      "EXIT STATUS\n"
      "    0 on success (status: the drop-in is there), 1 on failure (status: it is not),\n"
      "    2 for a usage error.\n"
      "\n"
      "EXAMPLES\n"
      "    loopfast service enable redis-server --log info && systemctl restart redis-server\n"
      "    loopfast service status redis-server\n"
      "    loopfast service disable redis-server && systemctl restart redis-server\n"
      "\n"
      "SEE ALSO\n"
      "    loopfast run --help, systemd.exec(5), systemd.unit(5) (drop-ins)\n");
}

struct Options {
  std::string verb;
  std::string unit;
  std::string root;  // "" is /
  std::string library;
  bool reload = true;
  RunVariables variables;
};

// "redis" -> "redis.service"; "" when the name cannot be a service unit's.
std::string ServiceUnitName(const std::string &name) {
  if (name.empty() || name.size() > 240 || name[0] == '.' || name[0] == '-') return "";
  for (const char c : name) {
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == ':' || c == '_' || c == '.' || c == '@' ||
                         c == '-' || c == '\\';
    if (!allowed) return "";
  }
  const size_t dot = name.rfind('.');
  if (dot == std::string::npos) return name + ".service";
  if (name.compare(dot, std::string::npos, ".service") != 0) return "";
  return dot == 0 ? "" : name;
}

// A value as systemd reads it inside a double-quoted Environment= assignment: backslash and
// quote escaped, '%' doubled (specifiers). Newlines cannot be expressed and are refused earlier.
std::string Quoted(const std::string &assignment) {
  std::string out = "\"";
  for (const char c : assignment) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '%') out += '%';
    out += c;
  }
  return out + "\"";
}

// A path for a unit, which starts in / unless it says otherwise.
std::string Absolute(const std::string &path) {
  if (path.empty() || path[0] == '/') return path;
  char cwd[PATH_MAX];
  if (getcwd(cwd, sizeof cwd) == nullptr) return path;
  return std::string(cwd) + "/" + path;
}

std::string DropInDirectory(const Options &options) {
  return options.root + "/etc/systemd/system/" + options.unit + ".d";
}

std::string DropInPath(const Options &options) {
  return DropInDirectory(options) + "/" + kDropInName;
}

// The equivalent command line, for the drop-in's comment and for `status`.
std::string RunCommandLine(const std::vector<RunVariable> &variables) {
  struct Flag {
    const char *variable;
    const char *option;
  };
  static const Flag kFlags[] = {
      {"LOOPFAST_SPIN_US", "--spin-us"},
      {"LOOPFAST_LOG", "--log"},
      {"LOOPFAST_LOG_FILE", "--log-file"},
      {"LOOPFAST_INCLUDE_PORTS", "--include-port"},
      {"LOOPFAST_EXCLUDE_PORTS", "--exclude-port"},
      {"LOOPFAST_INCLUDE_ADDRESSES", "--include-address"},
      {"LOOPFAST_EXCLUDE_ADDRESSES", "--exclude-address"},
      {"LOOPFAST_DISABLE", "--disable"},
  };
  std::string line = "loopfast run";
  for (const RunVariable &variable : variables) {
    for (const Flag &flag : kFlags) {
      if (variable.name != flag.variable) continue;
      line += std::string(" ") + flag.option;
      if (variable.name != "LOOPFAST_DISABLE") line += " " + variable.value;
    }
  }
  return line + " -- <the unit's programs>";
}

std::string DropInText(const Options &options, const std::vector<RunVariable> &variables) {
  std::ostringstream text;
  text << kMarker << " (loopfast " << loopfast_version() << ").\n"
       << "# `loopfast service disable " << options.unit << "` removes it. The unit's programs\n"
       << "# get the environment of: " << RunCommandLine(variables) << "\n"
       << "[Service]\n"
       << "Environment=" << Quoted("LD_PRELOAD=" + options.library) << "\n"
       << "Environment=" << Quoted(std::string(kDefaultOnVariable) + "=1") << "\n";
  for (const RunVariable &variable : variables) {
    text << "Environment=" << Quoted(variable.name + "=" + variable.value) << "\n";
  }
  return text.str();
}

bool ReadFile(const std::string &path, std::string *text) {
  std::ifstream file(path);
  if (!file) return false;
  std::ostringstream content;
  content << file.rdbuf();
  *text = content.str();
  return true;
}

// mkdir -p, each new directory 0755.
bool MakeDirectories(const std::string &path) {
  for (size_t slash = 1; slash != std::string::npos;) {
    slash = path.find('/', slash + 1);
    const std::string prefix = path.substr(0, slash);
    if (mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      std::fprintf(stderr, "%s: cannot create %s: %s\n", kCommand, prefix.c_str(),
                   std::strerror(errno));
      return false;
    }
  }
  return true;
}

// Written whole or not at all: a temporary file in the same directory, renamed over.
bool WriteFileAtomically(const std::string &path, const std::string &text) {
  std::string temporary = path + ".XXXXXX";
  const int fd = mkstemp(temporary.data());
  if (fd < 0) {
    std::fprintf(stderr, "%s: cannot write %s: %s\n", kCommand, path.c_str(), std::strerror(errno));
    return false;
  }
  bool ok = fchmod(fd, 0644) == 0 &&
            write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            fsync(fd) == 0;
  const int saved = errno;
  ok = close(fd) == 0 && ok;
  if (ok && rename(temporary.c_str(), path.c_str()) == 0) return true;
  std::fprintf(stderr, "%s: cannot write %s: %s\n", kCommand, path.c_str(),
               std::strerror(ok ? errno : saved));
  unlink(temporary.c_str());
  return false;
}

bool SystemdRunning() { return access("/run/systemd/system", F_OK) == 0; }

void Reload(const Options &options) {
  if (!options.root.empty() || !options.reload || !SystemdRunning()) return;
  std::fflush(nullptr);
  const pid_t child = fork();
  if (child == 0) {
    execlp("systemctl", "systemctl", "daemon-reload", static_cast<char *>(nullptr));
    _exit(127);
  }
  int status = 0;
  if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "%s: `systemctl daemon-reload` failed; run it yourself\n", kCommand);
  }
}

int Enable(Options *options) {
  if (options->library.empty()) options->library = LibraryPath();
  if (options->library[0] != '/') {
    std::fprintf(stderr, "%s: the library path must be absolute: %s\n", kCommand,
                 options->library.c_str());
    return 2;
  }
  if (access((options->root + options->library).c_str(), R_OK) != 0) {
    std::fprintf(stderr, "%s: warning: %s%s is not there; the unit's programs will not load it\n",
                 kCommand, options->root.c_str(), options->library.c_str());
  }
  std::vector<RunVariable> variables;
  for (RunVariable variable : options->variables.all()) {
    if (variable.name == "LOOPFAST_LOG_FILE") variable.value = Absolute(variable.value);
    for (const std::string *text : {&variable.value, &options->library}) {
      if (text->find_first_of("\n\r") != std::string::npos) {
        std::fprintf(stderr, "%s: a value cannot hold a line break\n", kCommand);
        return 2;
      }
    }
    variables.push_back(variable);
  }
  const std::string path = DropInPath(*options);
  const std::string text = DropInText(*options, variables);
  std::string existing;
  if (ReadFile(path, &existing)) {
    if (existing == text) {
      std::printf("%s: unchanged, %s\n", options->unit.c_str(), path.c_str());
      return 0;
    }
    if (existing.rfind(kMarker, 0) != 0) {
      std::fprintf(stderr, "%s: %s was not written by loopfast; not replacing it\n", kCommand,
                   path.c_str());
      return 1;
    }
  }
  if (!MakeDirectories(DropInDirectory(*options)) || !WriteFileAtomically(path, text)) return 1;
  std::printf("%s: wrote %s\n", options->unit.c_str(), path.c_str());
  Reload(*options);
  if (options->root.empty()) {
    std::printf("restart the unit to apply: systemctl restart %s\n", options->unit.c_str());
  }
  return 0;
}

int Disable(const Options &options) {
  const std::string path = DropInPath(options);
  std::string existing;
  if (!ReadFile(path, &existing)) {
    std::printf("%s: not enabled (no %s)\n", options.unit.c_str(), path.c_str());
    return 0;
  }
  if (existing.rfind(kMarker, 0) != 0) {
    std::fprintf(stderr, "%s: %s was not written by loopfast; not removing it\n", kCommand,
                 path.c_str());
    return 1;
  }
  if (unlink(path.c_str()) != 0) {
    std::fprintf(stderr, "%s: cannot remove %s: %s\n", kCommand, path.c_str(),
                 std::strerror(errno));
    return 1;
  }
  rmdir(DropInDirectory(options).c_str());  // only if empty: other drop-ins stay
  std::printf("%s: removed %s\n", options.unit.c_str(), path.c_str());
  Reload(options);
  if (options.root.empty()) {
    std::printf("restart the unit to apply: systemctl restart %s\n", options.unit.c_str());
  }
  return 0;
}

int Status(const Options &options) {
  const std::string path = DropInPath(options);
  std::string text;
  if (!ReadFile(path, &text)) {
    std::printf("%s: not enabled (no %s)\n", options.unit.c_str(), path.c_str());
    return 1;
  }
  const bool ours = text.rfind(kMarker, 0) == 0;
  std::printf("%s: %s\n  drop-in: %s\n", options.unit.c_str(),
              ours ? "enabled" : "a loopfast.conf drop-in not written by loopfast", path.c_str());
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("Environment=", 0) == 0) std::printf("  %s\n", line.c_str());
  }
  if (options.root.empty() && SystemdRunning()) {
    std::printf("  (if the unit was running before this was written: systemctl restart %s)\n",
                options.unit.c_str());
  }
  return ours ? 0 : 1;
}

}  // namespace

int ServiceCommand(int argc, char **argv) {
  if (argc < 2 || std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "--help") == 0) {
    ServiceUsage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  Options options;
  options.verb = argv[1];
  if (options.verb != "enable" && options.verb != "disable" && options.verb != "status") {
    std::fprintf(stderr, "%s: unknown action '%s'\n", kCommand, options.verb.c_str());
    ServiceUsage(stderr);
    return 2;
  }
  std::string unit;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "-h" || arg == "--help") {
      ServiceUsage(stdout);
      return 0;
    } else if (arg == "--root" && has_value) {
      options.root = argv[++i];
      while (options.root.size() > 1 && options.root.back() == '/') options.root.pop_back();
      if (options.root == "/") options.root.clear();
    } else if (arg == "--library" && has_value && options.verb == "enable") {
      options.library = argv[++i];
    } else if (arg == "--no-reload" && options.verb != "status") {
      options.reload = false;
    } else if (options.verb == "enable" &&
               ParseRunOption(kCommand, argc, argv, &i, &options.variables)) {
      continue;
    } else if (arg.empty() || arg[0] == '-' || !unit.empty()) {
      std::fprintf(stderr, "%s %s: unexpected '%s'\n", kCommand, options.verb.c_str(), arg.c_str());
      ServiceUsage(stderr);
      return 2;
    } else {
      unit = arg;
    }
  }
  options.unit = ServiceUnitName(unit);
  if (options.unit.empty()) {
    std::fprintf(
        stderr, "%s: %s\n", kCommand,
        unit.empty() ? "which unit?" : ("'" + unit + "' is not a service unit name").c_str());
    return 2;
  }
  if (options.verb == "enable") return Enable(&options);
  if (options.verb == "disable") return Disable(options);
  return Status(options);
}

}  // namespace loopfast::tool
