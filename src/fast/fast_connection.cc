// One end of a fast connection (fast_connection.h): sends and receives on its slot's rings,
// waits, half-close and close, and moving what is left to kernel TCP.
#include "fast/fast_connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/iovec_cursor.h"
#include "session/change_hints.h"
#include "stat/registry.h"
#include "sys/real_calls.h"
#include "sys/write_all.h"
#include "wait/bell.h"
#include "wait/shared_lock.h"

namespace loopfast {
namespace {

using session::kSideAborted;
using session::kSideBroken;
using session::kSideClosed;
using session::kSideMoved;
using session::kSideMoving;
using session::kSideReadShut;
using session::kSideReleased;
using session::kSideRingDone;
using session::kSideSwitching;
using session::kSideWriteShut;

// The wait of a call that has already moved `moved` bytes: a signal then ends it. It learns
// with `policy`, from the waker's `stamp`, and counts in `slot` (may be null) how it ended.
wait::SleepSpec WaitAfter(const wait::SleepSpec &wait, size_t moved, bool to_receive,
                          wait::SpinPolicy *policy, const std::atomic<uint32_t> &stamp,
                          stat::Slot *slot) {
  wait::SleepSpec spec = wait;
  spec.end_on_signal = moved > 0;
  spec.spin_policy = policy;
  spec.wake_stamp = &stamp;
  if (slot != nullptr) {
    spec.asleep_mark = to_receive ? &slot->asleep_to_receive : &slot->asleep_to_send;
    spec.spun_count = &slot->waits_spun;
    spec.slept_count = &slot->waits_slept;
  }
  return spec;
}

// Takes one end's lock for one call. A non-blocking call does not queue behind a call that
// holds the lock while it sleeps (nothing can move now): it fails with EAGAIN at once, as on
// kernel TCP, which releases the socket while a caller sleeps. Nor does a call from a signal
// handler wait on the very call it interrupted: it fails with EAGAIN, blocking or not.
class CallLock {
 public:
  explicit CallLock(std::atomic<uint32_t> *word) : lock_(word) {}
  ~CallLock() {
    if (held_) lock_.Unlock();
  }
  CallLock(const CallLock &) = delete;
  CallLock &operator=(const CallLock &) = delete;

  // False: the call should fail with EAGAIN.
  template <typename CanMoveNow>
  bool Enter(bool nonblocking, CanMoveNow can_move_now) {
    if (lock_.TryLock()) {
      held_ = true;
      return true;
    }
    if (lock_.HeldByThisThread()) return false;
    if (nonblocking && !can_move_now()) return false;
    lock_.Lock();
    held_ = true;
    return true;
  }

 private:
  SharedLock lock_;
  bool held_ = false;
};

// This end's own reasons to stop writing or reading the rings.
constexpr uint32_t kOwnWriteEnded = kSideWriteShut | kSideMoving | kSideSwitching | kSideRingDone;
constexpr uint32_t kOwnReadEnded = kSideReadShut | kSideMoving;

// Wakes whoever a ring's waiting word names: a sleeping call (futex), whose bit it takes after
// stamping the time in `stamp` for its spin policy; and a watcher (poll, select, epoll of the
// side that owns `hints`), which keeps watching: the slot's change hint is set, and the bell
// rung when a watcher sleeps (session/change_hints.h).
void WakeWaiters(std::atomic<uint32_t> &waiting, std::atomic<uint32_t> &stamp,
                 session::ChangeHints *hints, uint32_t slot, int bell) {
  // Pairs with the sleeper's seq_cst announce-then-recheck.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint32_t word = waiting.load(std::memory_order_relaxed);
  if (word == 0) return;
  if ((word & wait::kFutexSleeper) != 0 &&
      (waiting.fetch_and(~wait::kFutexSleeper, std::memory_order_relaxed) & wait::kFutexSleeper) !=
          0) {
    stamp.store(static_cast<uint32_t>(wait::NowNs()), std::memory_order_relaxed);
    wait::FutexWakeAll(&waiting);
  }
  if ((word & wait::kWatcher) != 0) session::MarkChanged(hints, slot, bell);
}

uint32_t Clamp(uint32_t limit) {
  return session::RingLimitFor(limit == 0 ? session::kDefaultRingBytes : limit);
}

}  // namespace

Result<std::unique_ptr<FastConnection>> FastConnection::Open(
    std::shared_ptr<session::Session> session, uint32_t slot, uint32_t own_limit) {
  if (!session || slot >= session::kMaxSlots) return Errno{EINVAL};
  sys::LockCell *locks = sys::AllocateLockCell();
  if (locks == nullptr) return Errno{ENOMEM};
  return std::unique_ptr<FastConnection>(
      new FastConnection(std::move(session), slot, own_limit, locks));
}

FastConnection::FastConnection(std::shared_ptr<session::Session> session, uint32_t slot,
                               uint32_t own_limit, sys::LockCell *locks)
    : session_(std::move(session)),
      slot_index_(slot),
      slot_(session_->arena().slot(slot)),
      side_(session_->side()),
      tx_areas_(session_.get(), /*producer=*/true, locks),
      rx_areas_(session_.get(), /*producer=*/false, locks),
      locks_(locks) {
  const int out = session::RingFrom(side_);
  const int in = session::RingInto(side_);
  // What this end writes may grow to what the peer allows: before the accept, the client's
  // ring stays within the unbound limit.
  const uint32_t peer_limit = peer().rx_limit.load(std::memory_order_acquire);
  const uint32_t send_limit = peer_limit == 0 ? session::kUnboundRingBytes : Clamp(peer_limit);
  tx_ = SpscRing(&slot_->ring[out], {slot_->window[out], session::kSlotWindowBytes}, &tx_areas_,
                 send_limit);
  // A stream that begins before the accept must not stay held to the unbound size: its large
  // area has room for the usual limit, which the server's limit then opens (or narrows).
  if (peer_limit == 0) tx_.ReserveLargeArea(Clamp(0));
  // What this end reads may have grown to the unbound limit before this end's limit was known.
  const uint32_t read_bound = std::max(Clamp(own_limit), session::kUnboundRingBytes);
  rx_ = SpscRing(&slot_->ring[in], {slot_->window[in], session::kSlotWindowBytes}, &rx_areas_,
                 read_bound);
  locks_->holders.store(1, std::memory_order_relaxed);
}

FastConnection::~FastConnection() {
  // The cell is shared with the processes that share this end (fork): it goes back only once
  // the last holder closed it.
  if (locks_->holders.load(std::memory_order_acquire) == 0) sys::FreeLockCell(locks_);
}

void FastConnection::RefreshSendLimit() {
  const uint32_t peer_limit = peer().rx_limit.load(std::memory_order_acquire);
  if (peer_limit != 0) tx_.SetCapacity(Clamp(peer_limit));
}

bool FastConnection::CheckPeerGone(int kernel_fd) {
  if (peer_left_.load(std::memory_order_acquire)) return true;
  if (kernel_fd < 0) return false;
  // The peer's FIN or reset shows in the kernel connection's state (our own shutdown does not
  // move it to these states, whatever poll's POLLRDHUP would say after our SHUT_RD).
  struct tcp_info info {};
  socklen_t length = sizeof info;
  const int saved_errno = errno;
  const int ret = sys::Real().getsockopt(kernel_fd, IPPROTO_TCP, TCP_INFO, &info, &length);
  errno = saved_errno;
  if (ret != 0) return false;
  switch (info.tcpi_state) {
    case TCP_CLOSE_WAIT:
    case TCP_LAST_ACK:
    case TCP_CLOSING:
    case TCP_TIME_WAIT:
    case TCP_CLOSE:
      break;
    default:
      return false;
  }
  // And no flag of a close or shutdown before it: it died.
  if ((PeerFlags() & (kSideWriteShut | kSideClosed | kSideMoved | kSideRingDone)) != 0) {
    return false;
  }
  peer_left_.store(true, std::memory_order_release);
  return true;
}

void FastConnection::NotifyPeerReader() {
  WakeWaiters(tx_.control()->consumer_waiting, tx_.control()->data_wake_ns, PeerHints(),
              slot_index_, session_->peer_bell());
}

void FastConnection::NotifyPeerWriter() {
  WakeWaiters(rx_.control()->producer_waiting, rx_.control()->room_wake_ns, PeerHints(),
              slot_index_, session_->peer_bell());
}

void FastConnection::WakeLocal() {
  // Our own waiting words: taking a sleeper's bit makes a sleeper about to wait see a change.
  for (std::atomic<uint32_t> *word :
       {&rx_.control()->consumer_waiting, &tx_.control()->producer_waiting}) {
    const uint32_t taken = word->fetch_and(~wait::kFutexSleeper, std::memory_order_seq_cst);
    if ((taken & wait::kFutexSleeper) != 0) wait::FutexWakeAll(word);
  }
  // Our own epoll sets look at the slot again; every watcher of ours wakes.
  session::MarkChanged(OwnHints(), slot_index_, session_->own_bell());
  wait::RingBell(session_->own_bell());
}

session::ChangeHints *FastConnection::OwnHints() const { return session_->arena().hints(side_); }

session::ChangeHints *FastConnection::PeerHints() const {
  return session_->arena().hints(1 - side_);
}

void FastConnection::WatchChanges(bool input, bool output) {
  // For good: the watcher's bit stays in the waiting word (wakers never take it), so every
  // change of that direction sets this slot's hint from now on.
  for (std::atomic<uint32_t> *word : {input ? &rx_.control()->consumer_waiting : nullptr,
                                      output ? &tx_.control()->producer_waiting : nullptr}) {
    if (word != nullptr && (word->load(std::memory_order_relaxed) & wait::kWatcher) == 0) {
      word->fetch_or(wait::kWatcher, std::memory_order_seq_cst);
    }
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

FastConnection::Flush FastConnection::FlushUnreadToKernel(int kernel_fd, bool may_wait,
                                                          uint64_t deadline_ns) {
  // We own the producer side; with the peer gone nobody consumes, so reading our own ring
  // from the consumer's position is safe. A readiness call never waits here: what does not fit
  // now goes on a later call (a program's poll or epoll_wait must return by its own timeout).
  // A blocking call waits for room as a blocking send would, until the program's deadline.
  const uint64_t head = tx_.control()->head.load(std::memory_order_acquire);
  const uint64_t tail = tx_.control()->tail.load(std::memory_order_acquire);
  uint64_t from = tail + flushed_.load(std::memory_order_relaxed);
  if (from == head) return Flush::kDone;
  // A reset connection takes nothing, and a send would take its pending error (ECONNRESET)
  // away from the program's next call.
  struct tcp_info info {};
  socklen_t info_length = sizeof info;
  const int saved = errno;
  const bool reset =
      sys::Real().getsockopt(kernel_fd, IPPROTO_TCP, TCP_INFO, &info, &info_length) == 0 &&
      info.tcpi_state == TCP_CLOSE;
  errno = saved;
  if (reset) return Flush::kBroken;
  while (from != head && static_cast<int64_t>(head - from) > 0) {
    const uint8_t *data = nullptr;
    const size_t chunk = tx_.UnreadSpan(from, &data);
    if (chunk == 0) return Flush::kBroken;  // corrupt: the program sees the reset next
    const sys::WriteEnd end = sys::SendAll(
        kernel_fd, data, chunk, MSG_NOSIGNAL | MSG_DONTWAIT,
        [&] { return may_wait && WaitForKernel(kernel_fd, POLLOUT, deadline_ns); },
        [&](size_t n) {
          from += n;
          flushed_.fetch_add(n, std::memory_order_relaxed);
        });
    if (end == sys::WriteEnd::kNoRoom) return Flush::kWouldWait;
    // Gone: the program sees that on its next kernel call.
    if (end == sys::WriteEnd::kFailed) return Flush::kBroken;
  }
  return Flush::kDone;
}

bool FastConnection::WaitForKernel(int kernel_fd, short events, uint64_t deadline_ns) {
  for (;;) {
    int wait_ms = 1000;  // no deadline: wait in turns, as long as it takes
    if (deadline_ns != 0) {
      const uint64_t now = wait::NowNs();
      if (now >= deadline_ns) return false;
      wait_ms = static_cast<int>(std::min<uint64_t>((deadline_ns - now + 999999) / 1000000, 1000));
    }
    struct pollfd kernel = {kernel_fd, events, 0};
    const int saved_errno = errno;
    const int n = sys::Real().poll(&kernel, 1, wait_ms);
    errno = saved_errno;
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return true;  // let the kernel call say what is wrong
  }
}

bool FastConnection::FlushBeforeKernelWrite(int kernel_fd, const SendCall &call) {
  // A peer that closed reads nothing more (kernel TCP resets what it gets); one still here
  // reads the ring's remainder before the kernel connection.
  if (!PeerLeft() || (PeerFlags() & kSideClosed) != 0) return true;
  const SendCall timed = WithDeadline(call);
  CallLock lock(&locks_->send_lock);
  if (!lock.Enter(timed.nonblocking, [] { return true; })) return false;
  return FlushUnreadToKernel(kernel_fd, !timed.nonblocking, timed.wait.deadline_ns) !=
         Flush::kWouldWait;
}

Transfer FastConnection::Send(int kernel_fd, const struct iovec *iov, size_t iov_count,
                              const SendCall &call) {
  const Transfer sent = SendOnRing(kernel_fd, iov, iov_count, WithDeadline(call));
  if (capture_flow_ && sent.outcome == Outcome::kDone && sent.bytes > 0) {
    capture_sink_->Data(*capture_flow_, /*outgoing=*/true, iov, static_cast<int>(iov_count),
                        sent.bytes);
  }
  return sent;
}

Transfer FastConnection::SendOnRing(int kernel_fd, const struct iovec *iov, size_t iov_count,
                                    const SendCall &call) {
  CallLock lock(&locks_->send_lock);
  if (!lock.Enter(call.nonblocking,
                  [this] { return tx_.HasRoom() || PeerLeft() || WritesGoToKernel(); })) {
    return {Outcome::kWouldWait, 0};
  }
  const size_t length = IovecTotal(iov, iov_count);
  size_t sent = 0;
  for (;;) {
    if (Broken()) return Transfer::Or(sent, Outcome::kReset);
    if ((OwnFlags() & (kSideWriteShut | kSideMoving)) != 0 || (PeerFlags() & kSideClosed) != 0) {
      return Transfer::Or(sent, Outcome::kUseKernel);
    }
    if (PeerLeft()) {
      if (sent > 0) return Transfer::Bytes(sent);
      // Every byte of the ring goes to the kernel connection before any new one: until then
      // the call waits (as long as the program lets it) or says EAGAIN.
      if (FlushUnreadToKernel(kernel_fd, !call.nonblocking, call.wait.deadline_ns) ==
          Flush::kWouldWait) {
        return {Outcome::kWouldWait, 0};
      }
      return {Outcome::kUseKernel, 0};
    }
    if (WritesGoToKernel()) {
      FinishRingWrites();  // holding the send lock: no writer of this end is in the ring
      return Transfer::Or(sent, Outcome::kUseKernel);
    }
    RefreshSendLimit();
    const int64_t written = tx_.Write(iov, iov_count, sent, length - sent);
    if (written < 0) return Transfer::Or(sent, Outcome::kReset);
    if (written > 0) {
      sent += static_cast<size_t>(written);
      const uint64_t total =
          bytes_sent_.fetch_add(static_cast<uint64_t>(written), std::memory_order_relaxed) +
          static_cast<uint64_t>(written);
      if (stat::Slot *slot = stat::SlotAt(stat_slot_.load(std::memory_order_relaxed))) {
        slot->bytes_sent.store(total, std::memory_order_relaxed);
      }
      NotifyPeerReader();
      if (sent == length) return Transfer::Bytes(sent);
      continue;
    }
    if (length == 0) return Transfer::Bytes(0);
    no_space_.fetch_add(1, std::memory_order_release);
    if (call.nonblocking) return Transfer::Or(sent, Outcome::kWouldWait);
    const wait::WakeReason reason = wait::SleepUntil(
        &tx_.control()->producer_waiting,
        [this] {
          RefreshSendLimit();
          return tx_.WritableBytes() != 0 || ((PeerFlags() & kSideClosed) != 0) || PeerLeft() ||
                 ((OwnFlags() & kOwnWriteEnded) != 0) || PeerRingDone();
        },
        [this, kernel_fd] { return CheckPeerGone(kernel_fd); },
        WaitAfter(call.wait, sent, /*to_receive=*/false, &send_spin_, tx_.control()->room_wake_ns,
                  StatSlot()));
    switch (reason) {
      case wait::WakeReason::kReady:
      case wait::WakeReason::kPeerGone:
        break;
      case wait::WakeReason::kInterrupted:
        return Transfer::Or(sent, Outcome::kInterrupted);
      case wait::WakeReason::kTimedOut:
        return Transfer::Or(sent, Outcome::kTimedOut);
    }
  }
}

namespace {
// The ring stream ended after `received` bytes: a MSG_WAITALL receive goes on for the rest on
// the kernel connection (both, Transfer::UseKernelAfter); others return what they have.
Transfer RingEnded(size_t received, const RecvCall &call) {
  if (call.wait_all && !call.peek && received > 0) return Transfer::UseKernelAfter(received);
  return Transfer::Or(received, Outcome::kUseKernel);
}
}  // namespace

Transfer FastConnection::Recv(int kernel_fd, const struct iovec *iov, size_t iov_count,
                              const RecvCall &call) {
  const Transfer got = RecvFromRing(kernel_fd, iov, iov_count, WithDeadline(call));
  if (capture_flow_) {
    // The peer's own process may write these packets (the same capture file): it says so in
    // its side block before it moves any byte.
    capture_flow_->peer_captured.store(
        peer().capture_file.load(std::memory_order_acquire) == capture_sink_->FileId(),
        std::memory_order_relaxed);
    if (got.outcome == Outcome::kDone && got.bytes > 0 && !call.peek) {
      capture_sink_->Data(*capture_flow_, /*outgoing=*/false, iov, static_cast<int>(iov_count),
                          got.bytes);
    } else if (got.outcome == Outcome::kUseKernel &&
               (PeerFlags() & (kSideWriteShut | kSideClosed)) != 0) {
      capture_sink_->End(*capture_flow_, /*outgoing=*/false);
    }
  }
  return got;
}

Transfer FastConnection::RecvFromRing(int kernel_fd, const struct iovec *iov, size_t iov_count,
                                      const RecvCall &call) {
  CallLock lock(&locks_->recv_lock);
  if (!lock.Enter(call.nonblocking,
                  [this] { return rx_.FillLevel() > 0 || PeerLeft() || PeerRingDone(); })) {
    return {Outcome::kWouldWait, 0};
  }
  const size_t length = IovecTotal(iov, iov_count);
  if (length == 0) return Transfer::Bytes(0);
  size_t received = 0;
  for (;;) {
    if (Broken()) return Transfer::Or(received, Outcome::kReset);
    // Moving to kernel TCP: the peer hands what is left in this ring to the kernel connection.
    if ((OwnFlags() & kSideMoving) != 0) return RingEnded(received, call);
    // Read the flags before the ring: the peer publishes its last bytes before it sets them.
    const bool ended = (PeerFlags() & (kSideWriteShut | kSideRingDone)) != 0 || PeerLeft() ||
                       (OwnFlags() & kSideReadShut) != 0;
    int64_t got;
    if (call.peek) {
      got = rx_.Read(iov, iov_count, 0, length, /*peek=*/true);
      if (got > 0 && (!call.wait_all || static_cast<size_t>(got) == length || ended)) {
        return Transfer::Bytes(static_cast<size_t>(got));
      }
    } else {
      got = rx_.Read(iov, iov_count, received, length - received, /*peek=*/false);
      if (got > 0) {
        received += static_cast<size_t>(got);
        const uint64_t total =
            bytes_received_.fetch_add(static_cast<uint64_t>(got), std::memory_order_relaxed) +
            static_cast<uint64_t>(got);
        if (stat::Slot *slot = stat::SlotAt(stat_slot_.load(std::memory_order_relaxed))) {
          slot->bytes_received.store(total, std::memory_order_relaxed);
        }
        NotifyPeerWriter();
        if (!call.wait_all || received == length) return Transfer::Bytes(received);
        continue;
      }
    }
    if (got < 0) return Transfer::Or(received, Outcome::kReset);
    if (ended) return RingEnded(received, call);
    if (call.nonblocking) return Transfer::Or(received, Outcome::kWouldWait);
    const size_t needed = call.peek && call.wait_all ? length : 1;
    const wait::WakeReason reason = wait::SleepUntil(
        &rx_.control()->consumer_waiting,
        [this, needed] {
          const int64_t readable = rx_.ReadableBytes();
          if (readable < 0 || static_cast<size_t>(readable) >= needed) return true;
          return (PeerFlags() & (kSideWriteShut | kSideRingDone)) != 0 || PeerLeft() ||
                 (OwnFlags() & kOwnReadEnded) != 0 || Broken();
        },
        [this, kernel_fd] { return CheckPeerGone(kernel_fd); },
        WaitAfter(call.wait, received, /*to_receive=*/true, &recv_spin_,
                  rx_.control()->data_wake_ns, StatSlot()));
    switch (reason) {
      case wait::WakeReason::kReady:
      case wait::WakeReason::kPeerGone:
        break;
      case wait::WakeReason::kInterrupted:
        return Transfer::Or(received, Outcome::kInterrupted);
      case wait::WakeReason::kTimedOut:
        return Transfer::Or(received, Outcome::kTimedOut);
    }
  }
}

size_t FastConnection::ReadableBytes() const { return Moved() ? 0 : rx_.FillLevel(); }
size_t FastConnection::UnsentBytes() const { return tx_.FillLevel(); }

bool FastConnection::OutputOnKernel(uint32_t own, uint32_t peer_flags, bool peer_left) {
  // The peer switched (or left, or closed): this end's next send follows it to the kernel
  // connection; or this end itself stopped writing the ring.
  return (own & kOwnWriteEnded) != 0 || (peer_flags & (kSideClosed | kSideRingDone)) != 0 ||
         peer_left;
}

bool FastConnection::OutputOnKernel() const {
  return OutputOnKernel(OwnFlags(), PeerFlags(), PeerLeft());
}

FastConnection::Look FastConnection::LookNow(int kernel_fd) {
  if (kernel_changed_.exchange(false, std::memory_order_acq_rel)) (void)CheckPeerGone(kernel_fd);
  Look look;
  const uint32_t own = OwnFlags();
  const uint32_t peer_flags = PeerFlags();
  const bool left = PeerLeft();
  const bool moving = (own & kSideMoving) != 0;
  look.in_ended =
      (peer_flags & (kSideWriteShut | kSideRingDone)) != 0 || left || (own & kOwnReadEnded) != 0;
  look.out_ended = OutputOnKernel(own, peer_flags, left);
  const uint64_t readable = rx_.FillLevel();
  look.corrupt = !moving && (tx_.Window() == 0 || rx_.Window() == 0 || Broken());
  // Once moving, what is left in the ring is the peer's to hand to the kernel connection.
  look.readable = !moving && (readable > 0 || look.corrupt);
  look.writable = tx_.HasRoom();
  look.in_sequence = rx_.control()->head.load(std::memory_order_acquire);
  look.in_consumed = rx_.control()->tail.load(std::memory_order_acquire);
  look.no_space = no_space_.load(std::memory_order_acquire);
  look.in_ready_ns = rx_.ReadySinceNs();
  return look;
}

void FastConnection::PrepareToSleep(bool for_input, bool for_output) {
  if (for_input)
    rx_.control()->consumer_waiting.fetch_or(wait::kWatcher, std::memory_order_seq_cst);
  if (for_output) {
    tx_.control()->producer_waiting.fetch_or(wait::kWatcher, std::memory_order_seq_cst);
  }
  // The waker rings the bell only for a side that says it sleeps (change_hints.h).
  session::AnnounceSleep(OwnHints());
  // Pairs with the waker's fence: either it sees our announcement or we see its change.
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

void FastConnection::SleepEnded() { session::EndSleep(OwnHints()); }

int FastConnection::WakeBell() const {
  const uint32_t own = OwnFlags();
  if (PeerLeft() || ((own & kOwnReadEnded) != 0 && (own & kOwnWriteEnded) != 0)) return -1;
  return session_->own_bell();
}

bool FastConnection::SettleIfPeerLeft(int kernel_fd, bool blocking, uint64_t deadline_ns) {
  if (!PeerLeft() || (PeerFlags() & kSideClosed) != 0) return true;
  if ((OwnFlags() & kSideWriteShut) != 0) return true;
  SharedLock lock(&locks_->send_lock);
  if (!lock.TryLock()) return true;  // a send of this end is under way: it flushes itself
  // A receive never waits for room alone: the reply may come once part of the request is in.
  Flush flushed = FlushUnreadToKernel(kernel_fd, /*may_wait=*/false, 0);
  while (blocking && flushed == Flush::kWouldWait) {
    if (!WaitForKernel(kernel_fd, POLLIN | POLLOUT, deadline_ns)) {
      lock.Unlock();
      return false;  // the program's timeout: nothing to read yet
    }
    struct pollfd readable = {kernel_fd, POLLIN, 0};
    const int saved_errno = errno;
    const bool input = sys::Real().poll(&readable, 1, 0) > 0;
    errno = saved_errno;
    if (input) break;
    flushed = FlushUnreadToKernel(kernel_fd, /*may_wait=*/false, 0);
  }
  lock.Unlock();
  return true;
}

void FastConnection::ShutdownWrite() {
  if (capture_flow_) capture_sink_->End(*capture_flow_, /*outgoing=*/true);
  self().flags.fetch_or(kSideWriteShut, std::memory_order_release);
  // A peer asleep waiting for data sees the end of the stream; a writer of ours asleep for
  // room returns.
  NotifyPeerReader();
  WakeLocal();
}

void FastConnection::ShutdownRead() {
  self().flags.fetch_or(kSideReadShut, std::memory_order_release);
  WakeLocal();
}

void FastConnection::MoveToKernel() {
  if ((self().flags.fetch_or(kSideMoving, std::memory_order_acq_rel) & kSideMoving) != 0) return;
  // Wake this end's sleepers (in every process holding it) so they see the flag and leave.
  WakeLocal();
  // Once both locks were free, no thread of this end is inside a ring any more.
  { SharedLockGuard reading(&locks_->recv_lock); }
  { SharedLockGuard writing(&locks_->send_lock); }
  self().flags.fetch_or(kSideMoved, std::memory_order_release);
  NotifyPeerReader();
  NotifyPeerWriter();
}

bool FastConnection::Moved() const { return (OwnFlags() & kSideMoving) != 0; }

bool FastConnection::Broken() const { return ((OwnFlags() | PeerFlags()) & kSideBroken) != 0; }

bool FastConnection::BypassFound(int kernel_fd) {
  if ((PeerFlags() & (kSideRingDone | kSideMoved)) != 0) return false;  // kernel bytes expected
  int queued = 0;
  const int saved_errno = errno;
  const bool has_bytes = sys::Real().ioctl(kernel_fd, FIONREAD, &queued) == 0 && queued > 0;
  errno = saved_errno;
  // Read the flags again: a peer that switched just now published that before its bytes.
  if (!has_bytes || (PeerFlags() & (kSideRingDone | kSideMoved)) != 0) return false;
  Break(kernel_fd);
  return true;
}

void FastConnection::Break(int kernel_fd) {
  if ((self().flags.fetch_or(kSideBroken, std::memory_order_acq_rel) & kSideBroken) != 0) return;
  const int saved_errno = errno;
  // A disconnect (connect with AF_UNSPEC) resets the kernel connection: the peer's kernel
  // socket, and whoever wrote past the rings, see ECONNRESET too.
  struct sockaddr unspecified = {};
  unspecified.sa_family = AF_UNSPEC;
  (void)sys::Real().connect(kernel_fd, &unspecified, sizeof unspecified);
  errno = saved_errno;
  NotifyPeerReader();
  NotifyPeerWriter();
  WakeLocal();
}

bool FastConnection::WritesGoToKernel() const {
  return ((OwnFlags() & (kSideSwitching | kSideRingDone)) | (PeerFlags() & kSideRingDone)) != 0;
}

void FastConnection::FinishRingWrites() {
  if ((self().flags.fetch_or(kSideSwitching | kSideRingDone, std::memory_order_acq_rel) &
       kSideRingDone) != 0) {
    return;
  }
  NotifyPeerReader();  // the peer's reader: the ring's remainder, then the kernel connection
  NotifyPeerWriter();  // the peer's writer: its next send follows to the kernel connection
}

void FastConnection::SwitchToKernel() {
  if ((self().flags.fetch_or(kSideSwitching, std::memory_order_acq_rel) &
       (kSideSwitching | kSideRingDone)) != 0) {
    return;
  }
  // A writer of this end asleep for room wakes, sees the flag and leaves the ring.
  WakeLocal();
  // Publish kSideRingDone only once no writer of this end is inside the ring, or the peer
  // could take the ring for finished before the last bytes land. A writer this thread
  // interrupted (a signal handler) publishes it itself when it looks again.
  SharedLock lock(&locks_->send_lock);
  if (lock.HeldByThisThread()) return;
  lock.Lock();
  FinishRingWrites();
  lock.Unlock();
}

void FastConnection::AddHolder() {
  locks_->holders.fetch_add(1, std::memory_order_relaxed);
  self().holders.fetch_add(1, std::memory_order_relaxed);
}

void FastConnection::DropHolder() {
  locks_->holders.fetch_sub(1, std::memory_order_relaxed);
  self().holders.fetch_sub(1, std::memory_order_relaxed);
}

bool FastConnection::Close(int kernel_fd) {
  self().holders.fetch_sub(1, std::memory_order_relaxed);
  // Another process (a fork) still holds this end: the connection goes on.
  if (locks_->holders.fetch_sub(1, std::memory_order_acq_rel) > 1) return false;
  bool unread = false;
  if (!Moved()) {
    unread = rx_.FillLevel() > 0;
    if (capture_flow_) capture_sink_->End(*capture_flow_, /*outgoing=*/true);
    self().flags.fetch_or(kSideWriteShut | kSideClosed | (unread ? kSideAborted : 0u),
                          std::memory_order_release);
    // Only a peer that announced a sleep needs waking; one that did not sees the flags on its
    // next look.
    NotifyPeerReader();
    NotifyPeerWriter();
  }
  // Nothing of this end touches the slot after this; its areas go back once the peer is done.
  // A peer that let go of the slot already needs no look at the kernel connection.
  const bool peer_gone =
      (PeerFlags() & (kSideMoved | kSideReleased)) != 0 || CheckPeerGone(kernel_fd);
  self().flags.fetch_or(kSideReleased, std::memory_order_release);
  std::vector<session::TakenArea> areas = tx_areas_.taken();
  session_->Retire(slot_index_, std::move(areas), peer_gone);
  session_->ConnectionClosed();
  return unread;
}

}  // namespace loopfast
