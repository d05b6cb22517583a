// What loopfast knows about one open TCP socket (shared by every descriptor that refers to it:
// dup, dup2, fcntl F_DUPFD, and the same descriptor in threads).
#ifndef LOOPFAST_SOCKET_SOCKET_H_
#define LOOPFAST_SOCKET_SOCKET_H_

#include <sys/time.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "rendezvous/listener_channel.h"
#include "socket/fast_connection.h"
#include "stat/registry_layout.h"

namespace loopfast {

enum class Path : uint8_t {
  kUndecided,   // not connected or listening yet
  kListening,   // a listener (fast listeners have a channel)
  kConnecting,  // opted-in connect() under way (non-blocking or interrupted)
  kPending,     // connected; the listener opted in; waiting for its Offer
  kFast,        // data moves through shared memory
  kKernel,      // ordinary kernel TCP, for good
};

// Why an opted-in socket took kernel TCP; static strings, shown by the API and the log.
namespace reason {
inline constexpr const char *kNone = "";
inline constexpr const char *kNotOptedIn = "this socket did not opt in";
inline constexpr const char *kNotLoopback = "destination is not a loopback address";
inline constexpr const char *kNoListenerChannel = "no opted-in listener on that port";
inline constexpr const char *kPeerNotOptedIn = "peer did not opt in";
inline constexpr const char *kListenerNotOptedIn = "listener did not opt in";
inline constexpr const char *kChannelBusy = "port's rendezvous channel belongs to another group";
inline constexpr const char *kRefused = "peer refused the fast path";
inline constexpr const char *kRendezvousLost = "rendezvous did not complete";
// The rendezvous' own fallbacks, told apart (each is safe: both ends stay on kernel TCP).
inline constexpr const char *kShutBeforeAccept =
    "shut down before the listening program accepted the connection";
inline constexpr const char *kNotAcceptedInTime =
    "the listening program did not accept the connection within 2 s";
inline constexpr const char *kSentBeforeAccept =
    "a blocking send came before the listening program accepted the connection";
inline constexpr const char *kClosedBeforeAccept =
    "closed before the listening program accepted the connection";
inline constexpr const char *kAwaitingAccept =
    "not decided yet: the listening program has not accepted the connection";
inline constexpr const char *kPeerGaveUp = "the connecting side gave up before this accept";
inline constexpr const char *kHelloNotFound = "no rendezvous message for this connection";
inline constexpr const char *kUnverified = "could not verify the peer";
inline constexpr const char *kOtherUser = "peer runs as another user";
inline constexpr const char *kResources = "out of resources for the fast path";
inline constexpr const char *kDisabled = "loopfast is disabled (LOOPFAST_DISABLE)";
inline constexpr const char *kConnectFailed = "connect failed";
inline constexpr const char *kBadOffer = "peer sent an invalid offer";
inline constexpr const char *kHandedOver = "handed to a program that cannot see the rings (exec)";
inline constexpr const char *kOptionNeedsKernel =
    "moved to kernel TCP: a socket option the fast path cannot honour";
inline constexpr const char *kUrgentData = "moved to kernel TCP: urgent data (MSG_OOB)";
inline constexpr const char *kSplice = "moved to kernel TCP: splice from a pipe";
inline constexpr const char *kPeerMoved = "moved to kernel TCP by the peer";
inline constexpr const char *kPeerNeverAttached = "the connecting side took kernel TCP";
inline constexpr const char *kSignalDrivenIo = "moved to kernel TCP: signal-driven I/O (O_ASYNC)";
inline constexpr const char *kIoUring = "the process uses io_uring, which bypasses loopfast";
inline constexpr const char *kForkedWhilePending =
    "the program forked before the rendezvous completed";
}  // namespace reason

struct Socket {
  explicit Socket(int family_in) : family(family_in) {}

  const int family;
  std::atomic<bool> opted_in{false};
  // Opted in through the explicit API (not transparent mode): what the fast path cannot honour
  // fails with EOPNOTSUPP instead of moving the connection to kernel TCP.
  std::atomic<bool> opted_in_explicitly{false};
  std::atomic<bool> nonblocking{false};
  std::atomic<Path> path{Path::kUndecided};
  // Set once, before path becomes kFast; lives as long as the Socket.
  std::atomic<FastConnection *> fast{nullptr};
  std::atomic<int> descriptors{1};  // descriptors in this process that refer to it
  // send/recv calls under way. A close() that finds some (another thread closed the descriptor
  // under a blocked call) keeps the connection for them, as the kernel's file reference does:
  // the descriptor number is freed, the calls go on with `kept_fd`, and the last one to return
  // ends the connection (FinishDeferredClose).
  std::atomic<int> calls_in_flight{0};
  std::atomic<bool> closed{false};  // the last descriptor was closed
  std::atomic<int> kept_fd{-1};     // loopfast's private copy of the kernel socket meanwhile
  // Its statistics slot says "fast" (socket_stat.h): the data path checks for a peer's move.
  std::atomic<bool> published_fast{false};

  std::mutex mutex;  // guards everything below
  const char *fallback_reason = reason::kNone;
  bool has_accepted = false;
  std::shared_ptr<rendezvous::ListenerChannel> channel;  // fast listener
  int rendezvous_fd = -1;                                // client's channel while pending
  std::vector<uint8_t> early_bytes;  // sent while pending, before the Offer arrived
  std::unique_ptr<FastConnection> fast_owner;
  bool close_deferred = false;  // closed with calls in flight; kept_fd holds the kernel socket
  const char *kernel_wanted = nullptr;  // set while connecting: take kernel TCP when it ends
  // The program's own settings, kept where the kernel's copy is not the whole story.
  struct timeval recv_timeout = {0, 0};
  struct timeval send_timeout = {0, 0};
  int program_rcvbuf = 0;  // SO_RCVBUF as the program set it (0: never)
  // The kernel socket's SO_RCVBUF was raised above the program's: a fast listener's SYN-ACK
  // window must stay large enough for its MSS marker (the client bounds the MSS it reads by
  // half that window). getsockopt reports the program's value; kernel-TCP connections get it.
  bool rcvbuf_raised = false;
  int program_ttl = -1;  // IP_TTL / IPV6_UNICAST_HOPS deferred while the marker is on
  int program_hops = -1;
  int program_maxseg = 0;               // TCP_MAXSEG a fast listener keeps to itself
  stat::Role role = stat::Role::kNone;  // connecting or accepting end
  int stat_slot = -1;                   // stat::kNoSlot until published
  uint64_t stat_inode = 0;

  ~Socket();
};

}  // namespace loopfast

#endif  // LOOPFAST_SOCKET_SOCKET_H_
