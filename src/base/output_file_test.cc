#include "base/output_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace loopfast {
namespace {

constexpr uid_t kOtherUser = 65533;  // an unprivileged user that is not this process

// A private directory of this process's user (mkdtemp: 0700), removed at the end.
class TempDirectory {
 public:
  TempDirectory() {
    char pattern[] = "/tmp/lfoutXXXXXX";
    path_ = mkdtemp(pattern) != nullptr ? pattern : "";
  }
  ~TempDirectory() {
    if (!path_.empty()) std::system(("rm -rf '" + path_ + "'").c_str());
  }
  const std::string &path() const { return path_; }
  std::string File(const std::string &name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string Contents(const std::string &path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteFile(const std::string &path, const std::string &text) { std::ofstream(path) << text; }

struct Opened {
  int fd = -1;
  int error = 0;
  const char *refusal = nullptr;
};

Opened Open(const std::string &path, OutputMode mode = OutputMode::kAppend) {
  Opened opened;
  const Result<int> result = OpenOutputFile(path.c_str(), mode, 0600, &opened.refusal);
  if (result.ok()) {
    opened.fd = result.value();
  } else {
    opened.error = result.error();
  }
  return opened;
}

bool Root() { return geteuid() == 0; }

TEST(OutputFileTest, CreatesWithTheModeAskedAndAppends) {
  TempDirectory directory;
  const std::string path = directory.File("app.log");
  const mode_t old_mask = umask(022);
  Opened first = Open(path);
  umask(old_mask);
  ASSERT_GE(first.fd, 0) << std::strerror(first.error);
  struct stat info {};
  ASSERT_EQ(fstat(first.fd, &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0600u);
  EXPECT_NE(fcntl(first.fd, F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_EQ(fcntl(first.fd, F_GETFL) & (O_APPEND | O_NONBLOCK), O_APPEND);
  ASSERT_EQ(write(first.fd, "one\n", 4), 4);
  close(first.fd);
  Opened second = Open(path);
  ASSERT_GE(second.fd, 0);
  ASSERT_EQ(write(second.fd, "two\n", 4), 4);
  close(second.fd);
  EXPECT_EQ(Contents(path), "one\ntwo\n");
  Opened truncated = Open(path, OutputMode::kTruncate);
  ASSERT_GE(truncated.fd, 0);
  close(truncated.fd);
  EXPECT_EQ(Contents(path), "");
}

TEST(OutputFileTest, RelativePathsAndLinksInSafeDirectoriesWork) {
  TempDirectory directory;
  ASSERT_EQ(mkdir(directory.File("real").c_str(), 0700), 0);
  ASSERT_EQ(symlink("real", directory.File("alias").c_str()), 0);
  char cwd[4096];
  ASSERT_NE(getcwd(cwd, sizeof cwd), nullptr);
  ASSERT_EQ(chdir(directory.path().c_str()), 0);
  Opened opened = Open("alias/./x.log");
  Opened dotted = Open("real/../real/y.log");
  ASSERT_EQ(chdir(cwd), 0);
  ASSERT_GE(opened.fd, 0) << std::strerror(opened.error);
  ASSERT_GE(dotted.fd, 0) << std::strerror(dotted.error);
  close(opened.fd);
  close(dotted.fd);
  EXPECT_EQ(access(directory.File("real/x.log").c_str(), F_OK), 0);
  EXPECT_EQ(access(directory.File("real/y.log").c_str(), F_OK), 0);
  Opened missing = Open(directory.File("no/such/dir.log"));
  EXPECT_EQ(missing.error, ENOENT);
  EXPECT_EQ(missing.refusal, nullptr);
  EXPECT_EQ(Open("").error, ENOENT);
  EXPECT_EQ(Open(directory.path() + "/").error, EISDIR);
}

TEST(OutputFileTest, ASymbolicLinkAsTheFileIsRefusedAndItsTargetUntouched) {
  TempDirectory directory;
  const std::string target = directory.File("precious");
  WriteFile(target, "keep\n");
  ASSERT_EQ(symlink(target.c_str(), directory.File("app.log").c_str()), 0);
  ASSERT_EQ(symlink(directory.File("absent").c_str(), directory.File("dangling.log").c_str()), 0);
  for (const OutputMode mode : {OutputMode::kAppend, OutputMode::kTruncate}) {
    const Opened opened = Open(directory.File("app.log"), mode);
    EXPECT_EQ(opened.fd, -1);
    EXPECT_EQ(opened.error, ELOOP);
    EXPECT_STREQ(opened.refusal, kRefusedSymlink);
  }
  EXPECT_EQ(Contents(target), "keep\n");
  const Opened dangling = Open(directory.File("dangling.log"));
  EXPECT_STREQ(dangling.refusal, kRefusedSymlink);
  EXPECT_NE(access(directory.File("absent").c_str(), F_OK), 0) << "created through the link";
}

TEST(OutputFileTest, AFifoWithoutAReaderIsAnErrorNotAHang) {
  TempDirectory directory;
  ASSERT_EQ(mkfifo(directory.File("fifo").c_str(), 0600), 0);
  const Opened opened = Open(directory.File("fifo"));
  EXPECT_EQ(opened.error, ENXIO);
  EXPECT_EQ(opened.refusal, nullptr);
}

// Directories another user may write, and what others planted in them (needs root to make
// another user's directory and files).
TEST(OutputFileTest, ADirectoryOthersMayWriteIsRefusedUnlessItIsOurs) {
  if (!Root()) GTEST_SKIP() << "needs root to make another user's directory";
  TempDirectory directory;
  const std::string open_dir = directory.File("open");
  ASSERT_EQ(mkdir(open_dir.c_str(), 0777), 0);
  ASSERT_EQ(chmod(open_dir.c_str(), 01777), 0);
  ASSERT_EQ(chown(open_dir.c_str(), kOtherUser, kOtherUser), 0);
  const Opened opened = Open(open_dir + "/app.log");
  EXPECT_EQ(opened.error, EPERM);
  EXPECT_STREQ(opened.refusal, kRefusedOpenDirectory);
  EXPECT_NE(access((open_dir + "/app.log").c_str(), F_OK), 0) << "created anyway";
  // Our own world-writable sticky directory (as /tmp is root's) is fine.
  ASSERT_EQ(chown(open_dir.c_str(), 0, 0), 0);
  const Opened ours = Open(open_dir + "/app.log");
  ASSERT_GE(ours.fd, 0) << std::strerror(ours.error);
  close(ours.fd);
}

TEST(OutputFileTest, AnotherUsersFileIsRefusedUntouched) {
  if (!Root()) GTEST_SKIP() << "needs root to make another user's file";
  TempDirectory directory;
  const std::string path = directory.File("theirs.log");
  WriteFile(path, "theirs\n");
  ASSERT_EQ(chown(path.c_str(), kOtherUser, kOtherUser), 0);
  for (const OutputMode mode : {OutputMode::kAppend, OutputMode::kTruncate}) {
    const Opened opened = Open(path, mode);
    EXPECT_EQ(opened.error, EPERM);
    EXPECT_STREQ(opened.refusal, kRefusedOtherOwner);
  }
  EXPECT_EQ(Contents(path), "theirs\n") << "appended to or truncated";
}

// Makes `link` -> `target` as `uid` (a forked child that drops root).
bool SymlinkAs(uid_t uid, const std::string &target, const std::string &link) {
  const pid_t child = fork();
  if (child < 0) return false;
  if (child == 0) {
    const bool ok =
        setgid(uid) == 0 && setuid(uid) == 0 && symlink(target.c_str(), link.c_str()) == 0;
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  return waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// A directory on the way that is a link in a world-writable directory: another user's link in
// a sticky directory of root's (the /tmp/x -> /etc attack), any link in another user's
// world-writable directory (its owner may replace even ours), also when a link reached first
// leads there. Only our own link in root's or our sticky directory is followed.
TEST(OutputFileTest, ALinkedDirectoryInADirectoryOthersMayWriteIsRefused) {
  if (!Root()) GTEST_SKIP() << "needs root to make another user's link";
  TempDirectory directory;
  ASSERT_EQ(chmod(directory.path().c_str(), 0755), 0);  // the other user must reach in
  const std::string roots = directory.File("roots");    // like /tmp
  const std::string theirs = directory.File("theirs");  // another user's, world-writable
  const std::string precious = directory.File("precious");
  for (const std::string &made : {roots, theirs}) {
    ASSERT_EQ(mkdir(made.c_str(), 0777), 0);
    ASSERT_EQ(chmod(made.c_str(), 01777), 0);
  }
  ASSERT_EQ(chown(theirs.c_str(), kOtherUser, kOtherUser), 0);
  ASSERT_EQ(mkdir(precious.c_str(), 0700), 0);
  ASSERT_TRUE(SymlinkAs(kOtherUser, precious, roots + "/planted"));
  ASSERT_TRUE(SymlinkAs(kOtherUser, precious, theirs + "/planted"));
  ASSERT_EQ(symlink(precious.c_str(), (theirs + "/mine").c_str()), 0);
  ASSERT_EQ(symlink((roots + "/planted").c_str(), directory.File("via").c_str()), 0);
  for (const std::string &path : {roots + "/planted/app.log", theirs + "/planted/app.log",
                                  theirs + "/mine/app.log", directory.File("via/app.log")}) {
    SCOPED_TRACE(path);
    const Opened opened = Open(path);
    EXPECT_EQ(opened.error, EPERM);
    EXPECT_STREQ(opened.refusal, kRefusedLinkedDirectory);
    EXPECT_NE(access((precious + "/app.log").c_str(), F_OK), 0) << "followed the link";
  }
  ASSERT_EQ(symlink(precious.c_str(), (roots + "/mine").c_str()), 0);
  const Opened mine = Open(roots + "/mine/app.log");
  ASSERT_GE(mine.fd, 0) << std::strerror(mine.error);
  close(mine.fd);
  EXPECT_EQ(access((precious + "/app.log").c_str(), F_OK), 0);
}

}  // namespace
}  // namespace loopfast
