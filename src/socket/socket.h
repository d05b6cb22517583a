// What loopfast knows about one open TCP socket (shared by every descriptor that refers to it:
// dup, dup2, fcntl F_DUPFD, and the same descriptor in threads).
//
// A socket goes through stages, each with its own state: undecided (created, options), then
// connecting (a non-blocking connect under way, holding its claim), listening (with its
// listener group when fast), and finally fast (a FastConnection) or kernel TCP. The fast data
// path never takes `mutex`: it uses the FastConnection, which has its own per-direction locks.
#ifndef LOOPFAST_SOCKET_SOCKET_H_
#define LOOPFAST_SOCKET_SOCKET_H_

#include <sys/time.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "fast/fast_connection.h"
#include "session/client_session.h"
#include "session/listener_group.h"
#include "stat/registry_layout.h"

namespace loopfast {

// Where a socket is in its life (not the public loopfast::Path, which is what the API reports).
enum class Stage : uint8_t {
  kUndecided,   // not connected or listening yet
  kListening,   // a listener (fast listeners have a group)
  kConnecting,  // opted-in connect() under way (non-blocking or interrupted), its slot claimed
  kFast,        // data moves through shared memory
  kKernel,      // ordinary kernel TCP, for good
};

// Why an opted-in socket took kernel TCP, shown by the API, the log and stat. Compared by address:
// arrays, so that each has one address in every translation unit (a pointer to a literal may
// not, where literals are not merged: under AddressSanitizer).
namespace reason {
inline constexpr char kNone[] = "";
inline constexpr char kNotOptedIn[] = "this socket did not opt in";
inline constexpr char kNotLoopback[] = "destination is not a loopback address";
inline constexpr char kNoListenerChannel[] = "no opted-in listener on that port";
inline constexpr char kChannelNotListeners[] =
    "the port's rendezvous name is held by another user than its listener";
inline constexpr char kPeerNotOptedIn[] = "peer did not opt in";
inline constexpr char kListenerNotOptedIn[] = "listener did not opt in";
inline constexpr char kChannelBusy[] = "port's rendezvous name belongs to another process";
inline constexpr char kNoSlot[] = "the session with that listener has no free slot";
inline constexpr char kClaimNotFound[] =
    "the connecting side's claim could not be found: connection reset";
// Not a fallback: the client reset its connection before the accept (its socket is gone, and
// the accepted one reports the reset as kernel TCP would).
inline constexpr char kClientResetBeforeAccept[] = "the client reset before the accept";
inline constexpr char kClaimAmbiguous[] =
    "another process of the connecting user claimed this socket: connection reset";
inline constexpr char kClientDeclined[] = "the connecting side took kernel TCP";
inline constexpr char kOtherUser[] = "this socket belongs to another user than the process";
inline constexpr char kResources[] = "out of resources for the fast path";
inline constexpr char kDisabled[] = "loopfast is disabled (LOOPFAST_DISABLE)";
inline constexpr char kHandedOver[] = "handed to a program that cannot see the rings (exec)";
inline constexpr char kOptionNeedsKernel[] =
    "moved to kernel TCP: a socket option the fast path cannot honour";
inline constexpr char kUrgentData[] = "moved to kernel TCP: urgent data (MSG_OOB)";
inline constexpr char kSplice[] = "moved to kernel TCP: splice from a pipe";
inline constexpr char kPeerMoved[] = "moved to kernel TCP by the peer";
inline constexpr char kSignalDrivenIo[] = "moved to kernel TCP: signal-driven I/O (O_ASYNC)";
inline constexpr char kIoUring[] = "the process uses io_uring, which bypasses loopfast";
inline constexpr char kForkedWhileConnecting[] =
    "the program forked while the connection was being made";
inline constexpr char kDescriptorsLow[] =
    "too few descriptors left: loopfast keeps them for the program";
}  // namespace reason

// The program's own settings, kept where the kernel's copy is not the whole story.
struct ProgramOptions {
  struct timeval recv_timeout = {0, 0};
  struct timeval send_timeout = {0, 0};
  int rcvbuf = 0;  // SO_RCVBUF as the program set it (0: never)
  // The kernel socket's SO_RCVBUF was raised above the program's: a fast listener's SYN-ACK
  // window must stay large enough for its MSS marker (the client bounds the MSS it reads by
  // half that window). getsockopt reports the program's value; kernel-TCP connections get it.
  bool rcvbuf_raised = false;
  // The client marker TTL is still set on the kernel socket (a fast connection keeps it: no
  // packet it sends carries data). The program's own TTL/hop limit waits here (-1: default).
  bool marker_on = false;
  int ttl = -1;
  int hops = -1;
  int maxseg = 0;  // TCP_MAXSEG a fast listener keeps to itself
};

// A fast listener's stage.
struct ListenerStage {
  std::shared_ptr<session::ListenerGroup> group;
  bool has_accepted = false;
};

// A connect under way on an opted-in socket: its claim, and what the program asked for meanwhile.
struct ConnectingStage {
  std::shared_ptr<session::ClientSession> session;
  struct sockaddr_storage destination {};  // the connect's address (stat shows it)
  uint32_t slot = 0;
  uint32_t rx_limit = 0;
  const char *kernel_wanted = nullptr;  // take kernel TCP when the handshake ends
};

struct Socket {
  explicit Socket(int family_in) : family(family_in) {}

  const int family;
  std::atomic<bool> opted_in{false};
  // Opted in through the explicit API (not transparent mode): what the fast path cannot honour
  // fails with EOPNOTSUPP instead of moving the connection to kernel TCP.
  std::atomic<bool> opted_in_explicitly{false};
  std::atomic<bool> nonblocking{false};
  std::atomic<Stage> stage{Stage::kUndecided};
  // Set once, before stage becomes kFast; lives as long as the Socket.
  std::atomic<FastConnection *> fast{nullptr};
  std::atomic<int> descriptors{1};  // descriptors in this process that refer to it
  // send/recv calls under way. A close() that finds some (another thread closed the descriptor
  // under a blocked call) keeps the connection for them, as the kernel's file reference does:
  // the descriptor number is freed, the calls go on with `kept_fd`, and the last one to return
  // ends the connection.
  std::atomic<int> calls_in_flight{0};
  std::atomic<bool> closed{false};  // the last descriptor was closed
  std::atomic<int> kept_fd{-1};     // loopfast's private copy of the kernel socket meanwhile
  // Its statistics slot says "fast" (socket_stat.h): the data path checks for a peer's move.
  std::atomic<bool> published_fast{false};

  std::mutex mutex;  // guards everything below (never held by the fast data path)
  const char *fallback_reason = reason::kNone;
  ProgramOptions options;
  std::unique_ptr<ListenerStage> listener;      // kListening with a group
  std::unique_ptr<ConnectingStage> connecting;  // kConnecting
  std::unique_ptr<FastConnection> fast_owner;   // kFast
  bool close_deferred = false;  // closed with calls in flight; kept_fd holds the kernel socket
  stat::Role role = stat::Role::kNone;  // connecting or accepting end
  int stat_slot = -1;                   // stat::kNoSlot until published
  uint64_t stat_inode = 0;

  ~Socket();
};

}  // namespace loopfast

#endif  // LOOPFAST_SOCKET_SOCKET_H_
