// Helpers for end-to-end tests: real sockets, real processes (fork), and the kernel's own view
// of a connection.
#ifndef LOOPFAST_TESTS_TEST_SUPPORT_H_
#define LOOPFAST_TESTS_TEST_SUPPORT_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace loopfast::test {

// An owned descriptor: closed when it goes (or at reset), unless released first. Move-only.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd &&other) noexcept : fd_(other.release()) {}
  Fd &operator=(Fd &&other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  Fd(const Fd &) = delete;
  Fd &operator=(const Fd &) = delete;

  int get() const { return fd_; }
  // Gives the descriptor up without closing it (to close it by hand and check the result).
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  // Closes the descriptor held (if any) and takes `fd` instead.
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// A pipe (close-on-exec), both ends owned; both -1 when it could not be made.
struct Pipe {
  Fd read;
  Fd write;
  Pipe();
};

struct Endpoint {
  int family = AF_INET;
  std::string address = "127.0.0.1";
  uint16_t port = 0;
};

// A TCP listener on `address` (port 0: ephemeral), switch set as asked. Fails the test on error.
int Listen(int family, const std::string &address, bool fast, uint16_t *port, int backlog = 128);
// A connected TCP socket to `endpoint`, switch set as asked before connect.
int Connect(const Endpoint &endpoint, bool fast);
// A TCP socket, switch set, not connected.
int TcpSocket(int family, bool fast);

// The same, for children and for ports that may be closed for a moment: they report failure
// (-1) instead of failing the test. IPv4 only. TryConnect bounds the socket's calls (Bound);
// TryListen retries a busy port briefly.
int TryConnect(const char *address, uint16_t port, bool fast, int timeout_ms = 10000);
int TryListen(const char *address, uint16_t port, bool fast, bool reuseport = false,
              int backlog = 128);
sockaddr_in Loopback4(uint16_t port, const char *address = "127.0.0.1");
uint16_t PortOf(int fd);  // the local port of an IPv4 socket
// The same on the loopback address of either family (127.0.0.1, ::1), the switch set first, then
// SO_RCVBUF when `rcvbuf` > 0; no timeouts, no retries; -1 with errno on error.
int TryListenLoopback(int family, bool fast, uint16_t *port, int rcvbuf = 0);
int TryConnectLoopback(int family, uint16_t port, bool fast, int rcvbuf = 0);
// accept4 (close-on-exec) once poll says a connection waits, within `timeout_ms`; -1 with errno
// (ETIMEDOUT when none came). Retries after EINTR.
int AcceptWithin(int listener, int timeout_ms);

// What the kernel carried as data on this connection, from TCP_INFO: data segments in and out
// plus payload bytes sent. Zero exactly when the kernel connection carried no data.
uint64_t KernelDataTraffic(int fd);
// "fast" when loopfast says fast and the kernel carried no data bytes; "kernel" when loopfast
// says kernel; anything else is a description of the contradiction.
std::string ObservedPath(int fd);

// One byte each way settles the rendezvous on both ends of a connection made in this process;
// then both ends must show the path asked for (ObservedPath). Fails the test otherwise.
void Settle(int client, int server, bool fast);

// Both ends of one connection in this process; closed when it goes.
struct ConnectedPair {
  int client = -1;
  int server = -1;
  ConnectedPair() = default;
  ~ConnectedPair();
  ConnectedPair(const ConnectedPair &) = delete;
  ConnectedPair &operator=(const ConnectedPair &) = delete;
};
// A listener on 127.0.0.1, a connection through it, accepted and settled (Settle) on the path
// asked for; the listener is closed again. Fails the test on error.
void MakeConnectedPair(bool fast, ConnectedPair *pair);
// The same through `listener` (bound to 127.0.0.1:`port`), which stays open.
void AcceptPair(int listener, uint16_t port, bool fast, ConnectedPair *pair);

// A listener on 127.0.0.1 and a client connected to it that it has not accepted yet (a
// "pending client": connect has returned, no I/O since), both with the switch as asked.
struct PendingClient {
  uint16_t port = 0;
  Fd listener;
  Fd client;
  // accept() on the listener.
  Fd Accept() const;
};
// Fails the test on error. `listener_bound_ms` > 0: accept() waits at most that long (Bound).
void MakePendingClient(PendingClient *pending, bool fast = true, int listener_bound_ms = 3000,
                       int backlog = 128);

// A listener here on 127.0.0.1 and a client in a child process: the child connects (switch as
// asked), runs `body` on its descriptor and exits with what it returns (2 when it could not
// connect). Forked before anything of the connection exists here.
struct ClientProcess {
  uint16_t port = 0;
  Fd listener;
  pid_t pid = -1;
};
void StartClientProcess(ClientProcess *process, const std::function<int(int fd)> &body,
                        bool fast = true);

// Every blocking call on `fd` returns within `ms` (EAGAIN): no test waits forever.
void Bound(int fd, int ms = 10000);
// The listener channel's abstract address for `port`, computed as the protocol documents it
// (independently of the library's own code).
socklen_t ChannelOf(uint16_t port, struct sockaddr_un *channel);
// True when the read end of a "done" pipe says stop (its writers closed it, or wrote).
bool Stopped(int done_fd);
// CLOCK_MONOTONIC in milliseconds.
int64_t NowMs();

bool WriteAll(int fd, const void *data, size_t size);
bool ReadAll(int fd, void *data, size_t size);
// Sends `size` pattern bytes of stream `seed` on `from` (from a thread), reads and checks them
// on `to`.
bool CarriesExactly(int from, int to, uint64_t seed, size_t size);
// Deterministic test data: byte i of stream `seed`.
uint8_t PatternByte(uint64_t seed, uint64_t i);
std::vector<uint8_t> Pattern(uint64_t seed, uint64_t offset, size_t size);

// Drops root for good (no supplementary groups, group `uid`, user `uid`), then becomes
// dumpable again as a program its user started with exec is (otherwise the kernel would hide
// the process's /proc entries from its own user). False on any failure.
bool BecomeUser(uid_t uid);

// Runs `body` in a child process; its return value is the child's exit status.
pid_t Spawn(const std::function<int()> &body);
// Waits up to `timeout_ms` for the child; returns its exit status, or -1 (killed on timeout
// or by a signal).
int Reap(pid_t pid, int timeout_ms = 60000);
// The same without failing the test: the child's wait status (waitpid), -1 when waitpid failed;
// *hung when it was killed (SIGKILL) on the timeout.
int WaitStatus(pid_t pid, int timeout_ms, bool *hung);
// cat with `in` as its standard input and `out` as its standard output (posix_spawn, so no
// fork of this process); -1 on failure.
pid_t SpawnCat(int in, int out);
// What `command` (run by sh) writes to its standard output; *status: its pclose status (-1 when
// it could not start), when asked.
std::string Output(const std::string &command, int *status = nullptr);

// Leaves this process only `spare_kib` of address space beyond what it maps now (RLIMIT_AS):
// no ring can be mapped any more. False when the limit cannot be set.
bool LeaveLittleAddressSpace(long spare_kib = 8 * 1024);

// Descriptors open in this process (for leak checks).
int OpenDescriptorCount();
// What the library might leave in the file system (guarantee 5: nothing). A snapshot of the
// entries of /dev/shm and /tmp named like the library's own objects ("loopfast...": its
// memfds, its abstract channels), taken when constructed; New() lists the ones that appeared
// since, as "/tmp/name". Whatever was there before (a build directory, a downloaded tarball,
// another checkout's files) is not the library's doing and is not counted.
class LeftoverFiles {
 public:
  LeftoverFiles();
  std::vector<std::string> New() const;
  // Every such entry there is now, whoever made it and when (what the check once counted).
  static std::vector<std::string> AllNamedLikeTheLibrary();

 private:
  std::vector<std::pair<std::string, ino_t>> before_;  // sorted
};

}  // namespace loopfast::test

#endif  // LOOPFAST_TESTS_TEST_SUPPORT_H_
