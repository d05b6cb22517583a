// One endpoint of an established fast-path connection: the mapped shared memory, the ring it
// writes, the ring it reads, and its two doorbells. Implements what a TCP socket's data calls
// do (blocking and not, peek, waitall, half-close, close with or without unread data).
//
// Once the stream in one direction has ended (the peer closed or left, or this end shut down),
// the kernel connection's own state is the answer, exactly as TCP would give it: Send and Recv
// then return kUseKernel and the socket layer makes the real call with the program's own
// arguments (end-of-file, ECONNRESET, EPIPE with or without SIGPIPE, blocking or not).
//
// Thread rules: Send and Recv may run concurrently from any threads or processes sharing this
// end; each takes its end's shared lock. Shutdown/Close may run from any thread.
#ifndef LOOPFAST_SOCKET_FAST_CONNECTION_H_
#define LOOPFAST_SOCKET_FAST_CONNECTION_H_

#include <sys/time.h>
#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "base/result.h"
#include "capture/capture.h"
#include "ring/ring.h"
#include "socket/shared_layout.h"
#include "wait/doorbell.h"

namespace loopfast {

// Descriptors of the peer's half, made by Create() for sending to the peer.
struct PeerHandles {
  int memory_fd = -1;
  int data_bell_fd = -1;
  int space_bell_fd = -1;
};

// Not an errno: "make this call on the kernel socket" (see above).
inline constexpr int kUseKernel = 0x10000;

struct SendCall {
  bool nonblocking = false;  // O_NONBLOCK or MSG_DONTWAIT
  WaitSpec wait;
};

struct RecvCall {
  bool nonblocking = false;
  bool peek = false;
  bool wait_all = false;
  WaitSpec wait;
};

class FastConnection {
 public:
  // Accepting side: makes the shared memory and doorbells. `peer` receives the descriptors to
  // send to the connecting side; the caller closes them once sent.
  static Result<std::unique_ptr<FastConnection>> Create(uint32_t capacity_c2s,
                                                        uint32_t capacity_s2c, PeerHandles *peer);
  // Connecting side: maps the memory the peer made, after checking it. Takes ownership of the
  // three descriptors (closes them on failure too).
  static Result<std::unique_ptr<FastConnection>> Attach(int memory_fd, int data_bell_fd,
                                                        int space_bell_fd);

  ~FastConnection();
  FastConnection(const FastConnection &) = delete;
  FastConnection &operator=(const FastConnection &) = delete;

  int side() const { return side_; }

  // Returns the bytes sent, or EAGAIN, EINTR, ECONNRESET (corrupt shared memory), or
  // kUseKernel. When the peer has left without closing (it exec'd a program without loopfast,
  // or died), bytes it never read are first written to `kernel_fd`, in order.
  Result<size_t> Send(int kernel_fd, const struct iovec *iov, size_t iov_count,
                      const SendCall &call);
  // Returns the bytes received, or EAGAIN, EINTR, ECONNRESET (corrupt), or kUseKernel.
  Result<size_t> Recv(const struct iovec *iov, size_t iov_count, const RecvCall &call);

  // Bytes ready to read (FIONREAD), bytes not yet read by the peer (SIOCOUTQ).
  size_t ReadableBytes() const;
  size_t UnsentBytes() const;

  // ---- Readiness (poll, select, epoll): any thread ----
  struct Look {
    bool readable = false;   // bytes in the ring (or corrupt memory: a read reports it)
    bool writable = false;   // room in the ring
    bool in_ended = false;   // no more ring bytes will come: the kernel socket has the answer
    bool out_ended = false;  // no more ring bytes will go: the kernel socket has the answer
    bool corrupt = false;
    uint64_t in_sequence = 0;  // bytes the peer ever wrote (edge-triggered readiness)
    uint64_t in_consumed = 0;  // bytes this end ever read
    uint64_t no_space = 0;     // times a send here found the ring full
  };
  Look LookNow() const;
  // Before a readiness call sleeps: takes the wake-up bytes already delivered on the doorbells
  // of the wanted directions (noting a departed peer), then announces the sleep to the peer, so
  // that its next change rings. The caller re-checks LookNow() before it sleeps.
  // `drain` false: the caller knows no wake-up byte is waiting (saves a system call each).
  void PrepareToSleep(bool for_input, bool for_output, bool drain = true);
  // Only the first half of PrepareToSleep: takes the delivered wake-up bytes.
  void TakeWakeups(bool for_input, bool for_output);
  // The descriptors a readiness call sleeps on; -1 once that doorbell cannot ring any more.
  int InputBellFd() const;
  int OutputBellFd() const;
  // The peer left without closing (exec into a program without loopfast, or death): write what
  // it never read to the kernel connection, once, so a waiting program's reply can come.
  void SettleIfPeerLeft(int kernel_fd);

  // Half-closes as shutdown(2) does; wakes local and remote sleepers.
  void ShutdownWrite();
  void ShutdownRead();
  // Moves this end to kernel TCP for good, for every process holding it: its threads stop
  // using the rings (sleepers wake), and the peer is told to write what this end never read
  // to the kernel connection and to use it from then on. Bytes this end wrote before are
  // still read by the peer from the ring first, so the stream stays whole and in order.
  // For exec and spawn: the new program holds the socket but not the rings. Any thread.
  void MoveToKernel();
  bool Moved() const;
  // Moves this connection to kernel TCP while the program goes on (kSideSwitching, see
  // shared_layout.h): from now on this end's sends take the kernel connection; its receives
  // read what the peer already put in the ring, then the kernel connection. The peer follows
  // on its next send. Every byte arrives once and in order. Any thread, not from a signal
  // handler that interrupted a send on this end (that send finishes the switch).
  void SwitchToKernel();
  // Either end switched (or this end is switching): the connection is on its way to kernel
  // TCP, and this end's sends take the kernel connection.
  bool WritesGoToKernel() const;

  // This end is about to read the kernel connection because the peer's ring stream ended
  // (close, shutdown). Kernel bytes there now can only have bypassed the rings, unless the
  // peer moved to kernel TCP: then the connection is reset (Break) and this returns true.
  bool BypassFound(int kernel_fd);
  // Resets the connection for both ends: their calls fail with ECONNRESET, the kernel
  // connection is reset. Any thread.
  void Break(int kernel_fd);
  bool Broken() const;

  // A send on the kernel connection found it full (after a move): the next writable state is
  // a new edge for edge-triggered watchers, as after a full ring.
  void NoteKernelFull() { no_space_.fetch_add(1, std::memory_order_release); }

  // fork: one more process holds this end (or, the fork failed, one less).
  void AddHolder();
  void DropHolder();
  // This process lets go of this end. When it was the last holder, the peer sees the close;
  // returns true when unread bytes remain (the caller then resets the kernel connection, as
  // TCP does when closing with unread data).
  // `kernel_fd`: where bytes go that a connecting side that never attached would lose.
  bool Close(int kernel_fd);
  // The connecting side never attached and hung up its doorbells (it took kernel TCP): waits
  // up to `wait_ms` to know. Then this end acts as if the peer left (PeerLeft).
  bool PeerHungUpUnattached(int wait_ms);
  bool PeerAttached() const { return peer().pid != 0; }
  // This end's data goes over the kernel connection now: either end switched, the peer was
  // handed to a program without loopfast, or the connecting side never attached. (A peer that
  // closed or died after using the rings leaves the connection as it was: fast, ended.)
  bool UsesKernel() const {
    return WritesGoToKernel() || (PeerFlags() & kSideMoved) != 0 ||
           (peer_left_.load(std::memory_order_acquire) && !PeerAttached());
  }
  static constexpr int kAttachGraceMs = 100;

  uint64_t bytes_sent() const;
  uint64_t bytes_received() const;
  // From now on, writes what moves through the rings to the capture file (capture/capture.h).
  // Call before this end moves any byte (the accepting side: before its Offer goes out).
  void StartCapture(capture::Sink *sink, int kernel_fd, bool client);
  // Mirrors this end's byte counters and sleeps into statistics slot `slot` (stat/registry.h)
  // from now on; stat::kNoSlot stops it. Any thread.
  void PublishTo(int slot);

 private:
  // This end's mappings of the connection's memory (see NearBytes in shared_layout.h).
  struct SharedMemory {
    void *near = nullptr;  // the header and both small areas, in a mapping slot
    uint64_t near_bytes = 0;
    void *large = nullptr;  // the large areas; null when no ring has one
    uint64_t large_start = 0;
    uint64_t large_bytes = 0;
    // False with errno set (and nothing left mapped by that call).
    bool MapNear(int fd, uint64_t total_bytes);
    bool MapLarge(int fd, const Placement &placement);
    bool Map(int fd, const Placement &placement);
    void Unmap();
  };

  FastConnection(int side, const SharedMemory &memory, const Placement &placement, int data_bell_fd,
                 int space_bell_fd);

  SharedHeader *header() const { return static_cast<SharedHeader *>(memory_.near); }
  SideBlock &self() const { return header()->side[side_]; }
  SideBlock &peer() const { return header()->side[1 - side_]; }
  uint32_t PeerFlags() const;
  // The peer will not use the rings again: it died, exec'd, or moved to kernel TCP.
  bool PeerLeft() const {
    return peer_left_.load(std::memory_order_acquire) || (PeerFlags() & kSideMoved) != 0;
  }
  uint32_t OwnFlags() const { return self().flags.load(std::memory_order_acquire); }
  bool PeerRingDone() const;
  // Publishes kSideRingDone (caller holds the send lock) and wakes the peer.
  void FinishRingWrites();
  void NotifyPeerReader();
  void NotifyPeerWriter();
  // Writes what the departed peer never read to the kernel connection.
  void FlushUnreadToKernel(int kernel_fd);
  // Takes every wake-up byte waiting on `bell`; false when it reached end-of-file.
  static bool DrainBell(int bell);
  std::atomic<uint8_t> *AsleepMark(bool to_receive) const;
  Result<size_t> SendOnRing(int kernel_fd, const struct iovec *iov, size_t iov_count,
                            const SendCall &call);
  Result<size_t> RecvFromRing(const struct iovec *iov, size_t iov_count, const RecvCall &call);

  int side_;
  SharedMemory memory_;
  SpscRing tx_;
  SpscRing rx_;
  Doorbell data_bell_;                  // sleep here for data; ring here after writing
  Doorbell space_bell_;                 // sleep here for space; ring here after reading
  std::atomic<bool> peer_left_{false};  // the peer's doorbells reached end-of-file
  std::atomic<bool> flushed_{false};
  std::atomic<uint64_t> no_space_{0};            // sends that found the ring full (EPOLLOUT edges)
  std::atomic<int> stat_slot_{-1};               // stat::kNoSlot
  capture::Sink *capture_sink_ = nullptr;        // set once, before any byte moves
  std::unique_ptr<capture::Flow> capture_flow_;  // null: not captured
};

}  // namespace loopfast

#endif  // LOOPFAST_SOCKET_FAST_CONNECTION_H_
