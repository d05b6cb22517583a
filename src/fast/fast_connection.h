// One endpoint of a fast connection: this process's end of a slot of a session
// (session/arena_layout.h) — the ring it writes, the ring it reads, both ends' flags — and what
// a TCP socket's data calls do with them (blocking and not, peek, waitall, half-close, close
// with or without unread data).
//
// Once the stream in one direction has ended (the peer closed or left, or this end shut down),
// the kernel connection's own state is the answer, exactly as TCP would give it: Send and Recv
// then say kUseKernel and the socket layer makes the real call with the program's own arguments
// (end-of-file, ECONNRESET, EPIPE with or without SIGPIPE, blocking or not).
//
// Nothing the peer writes can hold this end up: the locks that serialise this end's threads and
// processes live in family memory (sys/family_memory.h), and every wait ends by the program's
// own timeout or when the kernel connection shows the peer gone.
//
// Thread rules: Send and Recv may run concurrently from any threads or processes sharing this
// end; each takes its end's lock for its direction. Shutdown/Close may run from any thread.
#ifndef LOOPFAST_FAST_FAST_CONNECTION_H_
#define LOOPFAST_FAST_FAST_CONNECTION_H_

#include <sys/time.h>
#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "base/result.h"
#include "capture/capture.h"
#include "ring/ring.h"
#include "session/arena_layout.h"
#include "session/session.h"
#include "sys/family_memory.h"
#include "wait/sleep.h"

namespace loopfast {

namespace stat {
struct Slot;
}  // namespace stat

// How a data call on a fast end ended.
enum class Outcome {
  kDone,       // `bytes` moved (0 only for a zero-length call)
  kWouldWait,  // nothing could move now: EAGAIN
  kInterrupted,
  kTimedOut,   // the program's SO_RCVTIMEO/SO_SNDTIMEO: EAGAIN
  kUseKernel,  // make this call on the kernel socket
  kReset,      // the shared memory is corrupt, or the connection was broken: ECONNRESET
};
struct Transfer {
  Outcome outcome = Outcome::kDone;
  size_t bytes = 0;
  static Transfer Bytes(size_t n) { return {Outcome::kDone, n}; }
  // A partial count wins over what ended the call, as the kernel reports it.
  static Transfer Or(size_t n, Outcome otherwise) {
    return n > 0 ? Transfer{Outcome::kDone, n} : Transfer{otherwise, 0};
  }
  // A MSG_WAITALL receive got `n` bytes from the ring, whose stream then ended: the rest is
  // to be read from the kernel connection.
  static Transfer UseKernelAfter(size_t n) { return {Outcome::kUseKernel, n}; }
};

struct SendCall {
  bool nonblocking = false;  // O_NONBLOCK or MSG_DONTWAIT
  wait::SleepSpec wait;
};

struct RecvCall {
  bool nonblocking = false;
  bool peek = false;
  bool wait_all = false;
  wait::SleepSpec wait;
};

// A copy of `call` whose timeout runs from now unless its deadline was set already: one
// deadline for every wait of the call.
template <typename Call>
Call WithDeadline(const Call &call) {
  Call copy = call;
  if (copy.wait.deadline_ns == 0) wait::StartTimeout(&copy.wait);
  return copy;
}

class FastConnection {
 public:
  // This process's end of `slot` of `session` (which side: the session's). `own_limit` is what
  // this end lets the peer queue for it (from SO_RCVBUF), already published in its side block.
  static Result<std::unique_ptr<FastConnection>> Open(std::shared_ptr<session::Session> session,
                                                      uint32_t slot, uint32_t own_limit);
  ~FastConnection();
  FastConnection(const FastConnection &) = delete;
  FastConnection &operator=(const FastConnection &) = delete;

  int side() const { return side_; }
  uint32_t slot_index() const { return slot_index_; }
  const session::Session &session() const { return *session_; }

  // `kernel_fd`: the connection's kernel socket, asked whether the peer is gone while waiting
  // and, for a send after the peer left without closing, given what the peer never read.
  Transfer Send(int kernel_fd, const struct iovec *iov, size_t iov_count, const SendCall &call);
  Transfer Recv(int kernel_fd, const struct iovec *iov, size_t iov_count, const RecvCall &call);

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
    uint64_t in_ready_ns = 0;  // when the peer last wrote into the empty ring (ordering only)
  };
  // `kernel_fd`: asked whether the peer is gone when NoteKernelChanged() said it may be.
  Look LookNow(int kernel_fd);
  // The peer stamps when its writes make this end's input ready (Look::in_ready_ns) from now on.
  void WantInputStamps() { rx_.WantReadyStamps(); }
  // Bytes the peer ever wrote into the ring (Look::in_sequence), alone: one load.
  uint64_t InputSequence() const { return rx_.control()->head.load(std::memory_order_acquire); }
  // A readiness call saw the kernel connection change (a FIN or reset may have come): the next
  // LookNow asks it whether the peer died.
  void NoteKernelChanged() { kernel_changed_.store(true, std::memory_order_release); }
  // Before a readiness call sleeps: announces the watcher in the waiting words of the wanted
  // directions and the sleep in this side's change hints, so that the peer's next change rings
  // this end's bell. The caller re-checks LookNow() before it sleeps.
  void PrepareToSleep(bool for_input, bool for_output);
  // The sleep PrepareToSleep announced is over (or did not happen).
  void SleepEnded();
  // A readiness call that had to wait reported this end: counted for `loopfast stat` as a wait
  // answered while spinning, or after a sleep.
  void CountReadinessWait(bool slept) const;
  // For an epoll set: every change of this connection in the watched directions (input also
  // carries the peer's shutdown and close) sets its slot's bit in OwnHints() from now on
  // (session/change_hints.h), so the set looks only when it changed.
  void WatchChanges(bool input, bool output);
  // This side's change hints (its watchers take them), and the peer side's.
  session::ChangeHints *OwnHints() const;
  session::ChangeHints *PeerHints() const;
  const std::shared_ptr<session::Session> &shared_session() const { return session_; }
  // The peer announced the end of its output (shutdown or close): a FIN on the kernel
  // connection is then expected, and says nothing about the peer being gone.
  bool OwnOutputShut() const { return (OwnFlags() & session::kSideWriteShut) != 0; }
  bool PeerEndedOutput() const {
    return (PeerFlags() & (session::kSideWriteShut | session::kSideClosed)) != 0;
  }
  // The bell a readiness call sleeps on (registered edge-triggered), or -1 when neither
  // direction can change through the rings any more (the kernel socket has the answer).
  int WakeBell() const;
  // Whether this end's output readiness is the kernel connection's now (Look::out_ended): a
  // watcher for room must then wait on the kernel socket, which no bell rings for.
  bool OutputOnKernel() const;
  // The peer left without closing (exec into a program without loopfast, or death): write what
  // it never read to the kernel connection, so that a waiting program's reply can come.
  // `blocking` false (readiness calls): as far as it goes without waiting; a later call writes
  // the rest. `blocking` (a receive): hands over more as room comes, until the kernel
  // connection has input or `deadline_ns` (0: none) passes — then false.
  bool SettleIfPeerLeft(int kernel_fd, bool blocking, uint64_t deadline_ns = 0);

  // Half-closes as shutdown(2) does; wakes local and remote sleepers.
  void ShutdownWrite();
  void ShutdownRead();
  // Moves this end to kernel TCP for good, for every process holding it (exec, spawn, passing):
  // the peer writes what this end never read to the kernel connection and uses it from then on.
  void MoveToKernel();
  bool Moved() const;
  // Moves this connection to kernel TCP while the program goes on (kSideSwitching): from now on
  // this end's sends take the kernel connection; its receives read what the peer already put in
  // the ring, then the kernel connection. The peer follows on its next send.
  void SwitchToKernel();
  bool WritesGoToKernel() const;

  // This end is about to write to the kernel connection (a send got kUseKernel, or the rest of
  // a blocking send goes there): a departed peer's unread ring bytes go there first, under the
  // send lock, so that no writer of this end passes them. False when the call's deadline passed
  // (or a non-blocking call would wait) before they were all there.
  bool FlushBeforeKernelWrite(int kernel_fd, const SendCall &call);

  // This end is about to read the kernel connection because the peer's ring stream ended.
  // Kernel bytes there now bypassed the rings unless the peer moved to kernel TCP: then the
  // connection is reset (Break) and this returns true.
  bool BypassFound(int kernel_fd);
  // Resets the connection for both ends. Any thread.
  void Break(int kernel_fd);
  bool Broken() const;

  // A send on the kernel connection found it full (after a move): a new EPOLLOUT edge.
  void NoteKernelFull() { no_space_.fetch_add(1, std::memory_order_release); }

  // fork: one more process holds this end (or, the fork failed, one less).
  void AddHolder();
  void DropHolder();
  // This process lets go of this end. When it was the last holder, the peer sees the close;
  // returns true when unread bytes remain (the caller then resets the kernel connection, as
  // TCP does when closing with unread data).
  bool Close(int kernel_fd);
  // This end's data goes over the kernel connection now.
  bool UsesKernel() const { return WritesGoToKernel() || (PeerFlags() & session::kSideMoved) != 0; }

  uint64_t bytes_sent() const { return bytes_sent_.load(std::memory_order_relaxed); }
  uint64_t bytes_received() const { return bytes_received_.load(std::memory_order_relaxed); }
  // From now on, writes what moves through the rings to the capture file (capture/capture.h).
  void StartCapture(capture::Sink *sink, int kernel_fd, bool client);
  // Mirrors this end's byte counters, sleeps and how its waits end into statistics slot `slot`
  // (stat/registry.h) from now on; stat::kNoSlot stops it. Any thread.
  void PublishTo(int slot);

 private:
  FastConnection(std::shared_ptr<session::Session> session, uint32_t slot, uint32_t own_limit,
                 sys::LockCell *locks);

  session::SideBlock &self() const { return slot_->side[side_]; }
  session::SideBlock &peer() const { return slot_->side[1 - side_]; }
  uint32_t PeerFlags() const { return peer().flags.load(std::memory_order_acquire); }
  uint32_t OwnFlags() const { return self().flags.load(std::memory_order_acquire); }
  static bool OutputOnKernel(uint32_t own, uint32_t peer_flags, bool peer_left);
  // The peer will not use the rings again: it died, exec'd, or moved to kernel TCP.
  bool PeerLeft() const {
    return peer_left_.load(std::memory_order_acquire) || (PeerFlags() & session::kSideMoved) != 0;
  }
  bool PeerRingDone() const { return (PeerFlags() & session::kSideRingDone) != 0; }
  // Whether the kernel connection shows the peer gone (FIN or reset) while its flags say
  // nothing of a close: it died. Notes it.
  bool CheckPeerGone(int kernel_fd);
  void FinishRingWrites();
  void NotifyPeerReader();
  void NotifyPeerWriter();
  // Wakes this end's own sleepers and watchers (a flag of this end changed).
  void WakeLocal();
  // Writes what the departed peer never read to the kernel connection (see SettleIfPeerLeft),
  // waiting for room when `may_wait`, until `deadline_ns` (0: none).
  enum class Flush { kDone, kWouldWait, kBroken };
  Flush FlushUnreadToKernel(int kernel_fd, bool may_wait, uint64_t deadline_ns);
  // Polls the kernel connection for `events` until the deadline (0: none). False at the
  // deadline.
  static bool WaitForKernel(int kernel_fd, short events, uint64_t deadline_ns);
  // The peer's published window limit, clamped (it may have grown since the bind).
  void RefreshSendLimit();
  Transfer SendOnRing(int kernel_fd, const struct iovec *iov, size_t iov_count,
                      const SendCall &call);
  Transfer RecvFromRing(int kernel_fd, const struct iovec *iov, size_t iov_count,
                        const RecvCall &call);
  stat::Slot *StatSlot() const;  // null: not published

  std::shared_ptr<session::Session> session_;
  const uint32_t slot_index_;
  session::Slot *const slot_;
  const int side_;
  session::Session::RingAreas tx_areas_;
  session::Session::RingAreas rx_areas_;
  SpscRing tx_;
  SpscRing rx_;
  sys::LockCell *const locks_;  // family memory: never the peer's to write
  std::atomic<bool> peer_left_{false};
  std::atomic<bool> kernel_changed_{false};
  std::atomic<uint64_t> flushed_{0};   // bytes of our ring handed to the kernel after the peer left
  std::atomic<uint64_t> no_space_{0};  // sends that found the ring full (EPOLLOUT edges)
  std::atomic<uint64_t> bytes_sent_{0};  // through the ring, this process
  std::atomic<uint64_t> bytes_received_{0};
  std::atomic<int> stat_slot_{-1};  // stat::kNoSlot
  // Whether this end's blocking sends / receives spin before they sleep (wait/spin_policy.h).
  wait::SpinPolicy send_spin_;
  wait::SpinPolicy recv_spin_;
  capture::Sink *capture_sink_ = nullptr;        // set once, before any byte moves
  std::unique_ptr<capture::Flow> capture_flow_;  // null: not captured
};

}  // namespace loopfast

#endif  // LOOPFAST_FAST_FAST_CONNECTION_H_
