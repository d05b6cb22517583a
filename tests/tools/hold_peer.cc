// A plain program (it does not link loopfast) that holds many connections at once, for the
// descriptor tests: run it under `loopfast run` (or LD_PRELOAD), and with the descriptor limit
// the test gives it (prlimit), since loopfast reads the limit when the program starts.
//
//   hold_peer listen --count N [--bytes B]
//       prints "port P", accepts connections and holds them: N of them, or with N = 0 until
//       the client has closed its first connection (it does so only when it has read every
//       echo, so every connection it made was accepted by then). On each it reads an 8-byte
//       index and B bytes of that index's pattern, checks them and echoes them.
//   hold_peer connect PORT --count N [--bytes B]
//       opens N connections (0: until socket() or connect() fails with EMFILE or ENFILE, at
//       most 4096), writing the index and B pattern bytes on each at once; then reads every
//       echo, checks it, and closes them all (the first one first).
// Once it holds them all, each prints one line
//   "ok connections=N fast=F exact=E emfile=none|socket|connect|accept fds=D others=LIST"
// (fast: loopfast says fast and the kernel's TCP_INFO shows no data on the connection; exact:
// every byte as sent; fds: entries in /proc/self/fd; others: "fd:what,..." for descriptors
// that are neither stdio, its connections, nor the /proc/self/fd it holds to count them, or
// "none"). The listener then waits for the end of every connection. Any failure:
// "FAIL what (errno ...)", exit 1.
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

[[noreturn]] void Fail(const std::string &what) {
  std::printf("FAIL %s (errno %d %s)\n", what.c_str(), errno, std::strerror(errno));
  std::fflush(stdout);
  std::exit(1);
}

uint8_t PatternByte(uint64_t index, uint64_t i) {
  return static_cast<uint8_t>((i * 131 + index * 7 + (i >> 9)) % 251);
}

bool Transfer(int fd, void *data, size_t size, bool sending) {
  auto *at = static_cast<char *>(data);
  while (size > 0) {
    const ssize_t n = sending ? send(fd, at, size, MSG_NOSIGNAL) : recv(fd, at, size, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    at += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// Fast as loopfast says it, and no data on the kernel connection.
bool Fast(int fd) {
  using PathFn = int (*)(int);
  auto path_of = reinterpret_cast<PathFn>(dlsym(RTLD_DEFAULT, "loopfast_path_of"));
  if (path_of == nullptr || path_of(fd) != 2) return false;
  tcp_info info{};
  socklen_t length = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return false;
  return info.tcpi_data_segs_in == 0 && info.tcpi_data_segs_out == 0 && info.tcpi_bytes_sent == 0;
}

// /proc/self/fd, opened when the program starts (at its limit it could not open it any more).
DIR *fd_dir = nullptr;

// How many descriptors are open, and which ones are not among `mine`, with what they are.
std::string Descriptors(const std::vector<int> &mine) {
  int count = 0;
  std::string others;
  rewinddir(fd_dir);
  while (dirent *entry = readdir(fd_dir)) {
    if (entry->d_name[0] == '.') continue;
    const int fd = std::atoi(entry->d_name);
    ++count;
    if (fd <= 2 || fd == dirfd(fd_dir)) continue;
    bool listed = false;
    for (const int m : mine) listed = listed || m == fd;
    if (listed) continue;
    char target[128] = {};
    (void)!readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), target, sizeof target - 1);
    others += (others.empty() ? "" : ",") + std::to_string(fd) + ":" + target;
  }
  return "fds=" + std::to_string(count) + " others=" + (others.empty() ? "none" : others);
}

void Bound(int fd) {
  const timeval ten = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &ten, sizeof ten);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &ten, sizeof ten);
}

}  // namespace

int main(int argc, char **argv) {
  alarm(60);  // a hang becomes a failure
  fd_dir = opendir("/proc/self/fd");
  if (fd_dir == nullptr) Fail("opendir /proc/self/fd");
  if (argc < 2) Fail("usage: hold_peer listen|connect [PORT] [--count N] [--bytes B]");
  const bool listening = std::strcmp(argv[1], "listen") == 0;
  int next = listening ? 2 : 3;
  if (!listening && argc < 3) Fail("connect needs a port");
  long count = 0;
  size_t bytes = 1024;
  for (int i = next; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--count") == 0) {
      count = std::atol(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--bytes") == 0) {
      bytes = static_cast<size_t>(std::atol(argv[i + 1]));
    } else {
      Fail(std::string("unknown option ") + argv[i]);
    }
  }
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<int> fds;
  std::string emfile = "none";
  std::vector<uint8_t> buffer(bytes);
  long exact = 0;
  long fast = 0;
  if (listening) {
    const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0 || bind(listener, reinterpret_cast<sockaddr *>(&address), sizeof address) ||
        listen(listener, 4096) != 0) {
      Fail("listen");
    }
    socklen_t length = sizeof address;
    getsockname(listener, reinterpret_cast<sockaddr *>(&address), &length);
    std::printf("port %u\n", ntohs(address.sin_port));
    std::fflush(stdout);
    while (count == 0 || static_cast<long>(fds.size()) < count) {
      pollfd wait[2] = {{listener, POLLIN, 0}, {fds.empty() ? -1 : fds[0], POLLIN, 0}};
      if (poll(wait, 2, 10000) <= 0) Fail("10 s without a connection");
      if (wait[1].revents != 0) break;  // the client is done (count 0)
      const int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
        emfile = "accept";
        break;
      }
      if (fd < 0) Fail("accept " + std::to_string(fds.size()));
      Bound(fd);
      uint64_t index = 0;
      if (!Transfer(fd, &index, sizeof index, false) ||
          !Transfer(fd, buffer.data(), bytes, false)) {
        Fail("read from connection " + std::to_string(fds.size()));
      }
      bool same = true;
      for (size_t i = 0; i < bytes; ++i) same = same && buffer[i] == PatternByte(index, i);
      exact += same;
      if (!Transfer(fd, buffer.data(), bytes, true)) Fail("echo");
      fast += Fast(fd);
      fds.push_back(fd);
    }
    std::vector<int> mine = fds;
    mine.push_back(listener);
    std::printf("ok connections=%zu fast=%ld exact=%ld emfile=%s %s\n", fds.size(), fast, exact,
                emfile.c_str(), Descriptors(mine).c_str());
    std::fflush(stdout);
    for (const int fd : fds) {  // every connection stays open until its client closes it
      char end;
      if (recv(fd, &end, 1, 0) != 0) Fail("end of stream");
      close(fd);
    }
    return 0;
  }
  address.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[2])));
  const long most = count > 0 ? count : 4096;
  while (static_cast<long>(fds.size()) < most) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 && count == 0 && (errno == EMFILE || errno == ENFILE)) {
      emfile = "socket";
      break;
    }
    if (fd < 0) Fail("socket " + std::to_string(fds.size()));
    Bound(fd);
    if (connect(fd, reinterpret_cast<sockaddr *>(&address), sizeof address) != 0) {
      if (count == 0 && (errno == EMFILE || errno == ENFILE)) {
        emfile = "connect";
        close(fd);
        break;
      }
      Fail("connect " + std::to_string(fds.size()));
    }
    const uint64_t index = fds.size();
    for (size_t i = 0; i < bytes; ++i) buffer[i] = PatternByte(index, i);
    if (!Transfer(fd, const_cast<uint64_t *>(&index), sizeof index, true) ||
        !Transfer(fd, buffer.data(), bytes, true)) {
      Fail("send on connection " + std::to_string(index));
    }
    fds.push_back(fd);
  }
  for (size_t index = 0; index < fds.size(); ++index) {
    if (!Transfer(fds[index], buffer.data(), bytes, false)) {
      Fail("echo of connection " + std::to_string(index));
    }
    bool same = true;
    for (size_t i = 0; i < bytes; ++i) same = same && buffer[i] == PatternByte(index, i);
    exact += same;
  }
  for (const int fd : fds) fast += Fast(fd);
  std::printf("ok connections=%zu fast=%ld exact=%ld emfile=%s %s\n", fds.size(), fast, exact,
              emfile.c_str(), Descriptors(fds).c_str());
  std::fflush(stdout);
  for (const int fd : fds) close(fd);
  return 0;
}
