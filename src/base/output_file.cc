// The implementation of output_file.h (what it is for is said there).
#include "base/output_file.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace loopfast {
namespace {

// Links followed on one path before giving up, as the kernel's own limit.
constexpr int kMaxLinks = 40;

int OpenAt(int directory, const char *name, int flags, mode_t mode = 0) {
  return static_cast<int>(syscall(SYS_openat, directory, name, flags | O_CLOEXEC, mode));
}

bool Stat(int fd, struct stat *info) { return syscall(SYS_fstat, fd, info) == 0; }

void Close(int fd) {
  const int saved_errno = errno;
  if (fd >= 0) syscall(SYS_close, fd);
  errno = saved_errno;
}

// A directory in which another user could create, rename or remove entries.
bool OthersMayWrite(const struct stat &directory) {
  return (directory.st_mode & S_IWOTH) != 0 && directory.st_uid != geteuid();
}

// A link in a world-writable directory may have been planted or replaced by anyone, unless
// the directory is sticky (only an entry's owner and the directory's may replace it) and both
// are us or root: then it is ours as we left it.
bool LinkMayBeFollowed(const struct stat &directory, const struct stat &link) {
  if ((directory.st_mode & S_IWOTH) == 0) return true;
  const uid_t me = geteuid();
  return (directory.st_mode & S_ISVTX) != 0 && link.st_uid == me &&
         (directory.st_uid == me || directory.st_uid == 0);
}

class Descriptor {
 public:
  Descriptor() = default;
  ~Descriptor() { Close(fd_); }
  Descriptor(const Descriptor &) = delete;
  Descriptor &operator=(const Descriptor &) = delete;
  void Reset(int fd) {
    Close(fd_);
    fd_ = fd;
  }
  int Release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

// Opens the directory `path` names (O_PATH) one component at a time, each with O_NOFOLLOW, and
// resolves each symbolic link met on the way itself, so that every link is judged by the
// directory it sits in. `*info` receives the directory's stat.
Result<int> OpenDirectory(std::string path, struct stat *info, const char **refusal) {
  Descriptor directory;
  directory.Reset(OpenAt(AT_FDCWD, path.starts_with('/') ? "/" : ".", O_PATH | O_DIRECTORY));
  if (directory.get() < 0 || !Stat(directory.get(), info)) return Errno{errno};
  int links = 0;
  while (!path.empty()) {
    const size_t slash = path.find('/');
    const std::string name = path.substr(0, slash);
    path.erase(0, slash == std::string::npos ? path.size() : slash + 1);
    if (name.empty() || name == ".") continue;
    Descriptor next;
    next.Reset(OpenAt(directory.get(), name.c_str(), O_PATH | O_NOFOLLOW));
    struct stat next_info {};
    if (next.get() < 0 || !Stat(next.get(), &next_info)) return Errno{errno};
    if (S_ISLNK(next_info.st_mode)) {
      if (!LinkMayBeFollowed(*info, next_info)) {
        *refusal = kRefusedLinkedDirectory;
        return Errno{EPERM};
      }
      if (++links > kMaxLinks) return Errno{ELOOP};
      char target[PATH_MAX];
      const long length = syscall(SYS_readlinkat, next.get(), "", target, sizeof target);
      if (length < 0) return Errno{errno};
      if (length == 0 || static_cast<size_t>(length) >= sizeof target) return Errno{ENAMETOOLONG};
      path.insert(0, 1, '/');
      path.insert(0, target, static_cast<size_t>(length));  // the link's target, then the rest
      if (target[0] == '/') {
        directory.Reset(OpenAt(AT_FDCWD, "/", O_PATH | O_DIRECTORY));
        if (directory.get() < 0 || !Stat(directory.get(), info)) return Errno{errno};
      }
      continue;
    }
    if (!S_ISDIR(next_info.st_mode)) return Errno{ENOTDIR};
    directory.Reset(next.Release());
    *info = next_info;
  }
  return directory.Release();
}

}  // namespace

Result<int> OpenOutputFile(const char *path, OutputMode mode, mode_t create_mode,
                           const char **refusal) {
  const char *ignored = nullptr;
  if (refusal == nullptr) refusal = &ignored;
  *refusal = nullptr;
  const std::string whole = path == nullptr ? "" : path;
  if (whole.empty()) return Errno{ENOENT};
  const size_t slash = whole.rfind('/');
  const std::string name = slash == std::string::npos ? whole : whole.substr(slash + 1);
  const std::string directory_path = slash == std::string::npos ? "."
                                     : slash == 0               ? "/"
                                                                : whole.substr(0, slash);
  if (name.empty()) return Errno{EISDIR};

  struct stat directory_info {};
  Result<int> opened_directory = OpenDirectory(directory_path, &directory_info, refusal);
  if (!opened_directory.ok()) return opened_directory;
  Descriptor directory;
  directory.Reset(opened_directory.value());
  if (OthersMayWrite(directory_info)) {
    *refusal = kRefusedOpenDirectory;
    return Errno{EPERM};
  }

  // No O_TRUNC yet: a file that is not ours is refused untouched.
  const int flags =
      O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | (mode == OutputMode::kAppend ? O_APPEND : 0);
  Descriptor file;
  file.Reset(OpenAt(directory.get(), name.c_str(), flags, create_mode));
  if (file.get() < 0) {
    if (errno == ELOOP) *refusal = kRefusedSymlink;
    return Errno{errno};
  }
  struct stat file_info {};
  if (!Stat(file.get(), &file_info)) return Errno{errno};
  if (file_info.st_uid != geteuid()) {
    *refusal = kRefusedOtherOwner;
    return Errno{EPERM};
  }
  if (mode == OutputMode::kTruncate && S_ISREG(file_info.st_mode) &&
      syscall(SYS_ftruncate, file.get(), 0) != 0) {
    return Errno{errno};
  }
  const long status_flags = syscall(SYS_fcntl, file.get(), F_GETFL);
  if (status_flags < 0 || syscall(SYS_fcntl, file.get(), F_SETFL, status_flags & ~O_NONBLOCK) < 0) {
    return Errno{errno};
  }
  return file.Release();
}

}  // namespace loopfast
