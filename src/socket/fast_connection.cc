#include "socket/fast_connection.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "socket/deadline.h"
#include "stat/registry.h"
#include "sys/mapping_slots.h"
#include "sys/owned_fds.h"
#include "sys/real_calls.h"
#include "wait/shared_lock.h"

namespace loopfast {
namespace {

constexpr uint64_t kMaxMappingBytes = uint64_t{64} << 20;
static_assert(kMaxNearBytes <= sys::kMappingSlotBytes, "the near part must fit a mapping slot");

size_t TotalLength(const struct iovec *iov, size_t count) {
  size_t total = 0;
  for (size_t i = 0; i < count; ++i) total += iov[i].iov_len;
  return total;
}

SharedHeader *header_of(void *memory) { return static_cast<SharedHeader *>(memory); }

// The wait of a call that has already moved `moved` bytes: a signal then ends it (see
// WaitSpec::end_on_signal).
WaitSpec WaitAfter(const WaitSpec &wait, size_t moved, std::atomic<uint8_t> *asleep_mark) {
  WaitSpec spec = wait;
  spec.end_on_signal = moved > 0;
  spec.asleep_mark = asleep_mark;
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

}  // namespace

Result<std::unique_ptr<FastConnection>> FastConnection::Create(uint32_t capacity_c2s,
                                                               uint32_t capacity_s2c,
                                                               PeerHandles *peer) {
  if (!SpscRing::ValidCapacity(capacity_c2s) || !SpscRing::ValidCapacity(capacity_s2c)) {
    return Errno{EINVAL};
  }
  const Placement placement = PlaceRings(capacity_c2s, capacity_s2c);
  const int memory_fd = memfd_create("loopfast", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (memory_fd < 0) return Errno{errno};
  // Seals: the peer checks them, so neither side can shrink the memory under the other
  // (which would turn the other's next access into SIGBUS).
  if (ftruncate(memory_fd, static_cast<off_t>(placement.total_bytes)) != 0 ||
      sys::Real().fcntl(memory_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    const int error = errno;
    sys::CloseOwned(memory_fd);
    return Errno{error};
  }
  SharedMemory memory;
  if (!memory.Map(memory_fd, placement)) {
    const int error = errno;
    sys::CloseOwned(memory_fd);
    return Errno{error};
  }
  InitializeLayout(memory.near, capacity_c2s, capacity_s2c);
  int data_pair[2];
  int space_pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, data_pair) != 0) {
    const int error = errno;
    memory.Unmap();
    sys::CloseOwned(memory_fd);
    return Errno{error};
  }
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, space_pair) != 0) {
    const int error = errno;
    memory.Unmap();
    sys::CloseOwned(memory_fd);
    sys::CloseOwned(data_pair[0]);
    sys::CloseOwned(data_pair[1]);
    return Errno{error};
  }
  peer->memory_fd = memory_fd;
  peer->data_bell_fd = data_pair[1];
  peer->space_bell_fd = space_pair[1];
  header_of(memory.near)->side[kServerSide].pid = static_cast<uint32_t>(getpid());
  return std::unique_ptr<FastConnection>(
      new FastConnection(kServerSide, memory, placement, data_pair[0], space_pair[0]));
}

Result<std::unique_ptr<FastConnection>> FastConnection::Attach(int memory_fd, int data_bell_fd,
                                                               int space_bell_fd) {
  auto fail = [&](int error) -> Result<std::unique_ptr<FastConnection>> {
    sys::CloseOwned(memory_fd);
    sys::CloseOwned(data_bell_fd);
    sys::CloseOwned(space_bell_fd);
    return Errno{error};
  };
  struct stat info;
  if (fstat(memory_fd, &info) != 0) return fail(errno);
  const int seals = sys::Real().fcntl(memory_fd, F_GET_SEALS, 0);
  if (!S_ISREG(info.st_mode) || seals < 0 || (seals & F_SEAL_SHRINK) == 0 ||
      info.st_size < static_cast<off_t>(kHeaderBytes) ||
      static_cast<uint64_t>(info.st_size) > kMaxMappingBytes) {
    return fail(EPROTO);
  }
  const uint64_t bytes = static_cast<uint64_t>(info.st_size);
  // The near part first, for the header; then the large areas where our own reading of it
  // puts them.
  SharedMemory memory;
  if (!memory.MapNear(memory_fd, bytes)) return fail(errno);
  Placement placement;
  if (!ValidateLayout(memory.near, bytes, &placement)) {
    memory.Unmap();
    return fail(EPROTO);
  }
  if (!memory.MapLarge(memory_fd, placement)) {
    const int error = errno;
    memory.Unmap();
    return fail(error);
  }
  sys::CloseOwned(memory_fd);  // the mappings keep the memory; no descriptor names it any more
  header_of(memory.near)->side[kClientSide].pid = static_cast<uint32_t>(getpid());
  return std::unique_ptr<FastConnection>(
      new FastConnection(kClientSide, memory, placement, data_bell_fd, space_bell_fd));
}

bool FastConnection::SharedMemory::MapNear(int fd, uint64_t total_bytes) {
  near_bytes = NearBytes(total_bytes);
  near = sys::MapShared(fd, near_bytes);
  if (near != MAP_FAILED) return true;
  near = nullptr;
  return false;
}

bool FastConnection::SharedMemory::MapLarge(int fd, const Placement &placement) {
  large_start = placement.large_start;
  large_bytes = placement.total_bytes - placement.large_start;
  if (large_bytes == 0) return true;
  large = mmap(nullptr, large_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
               static_cast<off_t>(large_start));
  if (large != MAP_FAILED) return true;
  large = nullptr;
  return false;
}

bool FastConnection::SharedMemory::Map(int fd, const Placement &placement) {
  if (!MapNear(fd, placement.total_bytes)) return false;
  if (MapLarge(fd, placement)) return true;
  const int error = errno;
  Unmap();
  errno = error;
  return false;
}

void FastConnection::SharedMemory::Unmap() {
  if (near != nullptr) sys::UnmapShared(near, near_bytes);
  if (large != nullptr) munmap(large, large_bytes);
  near = large = nullptr;
}

FastConnection::FastConnection(int side, const SharedMemory &memory, const Placement &placement,
                               int data_bell_fd, int space_bell_fd)
    : side_(side),
      memory_(memory),
      data_bell_(sys::MoveHigh(data_bell_fd)),
      space_bell_(sys::MoveHigh(space_bell_fd)) {
  // Offsets and sizes from this side's own placement, never from the shared header.
  auto make_ring = [&](int ring) {
    auto *near = static_cast<uint8_t *>(memory.near);
    SpscRing::Area areas[3] = {{near + placement.header_window_offset[ring], kHeaderWindowBytes},
                               {near + placement.small_offset[ring], placement.small_bytes[ring]},
                               {near + placement.small_offset[ring], placement.capacity[ring]}};
    if (placement.large_offset[ring] != placement.small_offset[ring]) {
      areas[2].data = static_cast<uint8_t *>(memory.large) +
                      (placement.large_offset[ring] - placement.large_start);
    }
    return SpscRing(&header()->ring[ring], areas, 3);
  };
  tx_ = make_ring(RingFrom(side));
  rx_ = make_ring(RingInto(side));
  sys::Own(data_bell_.fd());
  sys::Own(space_bell_.fd());
}

FastConnection::~FastConnection() {
  memory_.Unmap();
  sys::CloseOwned(data_bell_.fd());
  sys::CloseOwned(space_bell_.fd());
}

uint32_t FastConnection::PeerFlags() const { return peer().flags.load(std::memory_order_acquire); }

void FastConnection::NotifyPeerReader() {
  // Pairs with the sleeper's seq_cst announce-then-recheck in Doorbell::Wait.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  std::atomic<uint32_t> &waiting = tx_.control()->consumer_waiting;
  if (waiting.load(std::memory_order_relaxed) != 0 &&
      waiting.exchange(0, std::memory_order_relaxed) != 0) {
    data_bell_.Ring();
  }
}

void FastConnection::NotifyPeerWriter() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  std::atomic<uint32_t> &waiting = rx_.control()->producer_waiting;
  if (waiting.load(std::memory_order_relaxed) != 0 &&
      waiting.exchange(0, std::memory_order_relaxed) != 0) {
    space_bell_.Ring();
  }
}

void FastConnection::FlushUnreadToKernel(int kernel_fd) {
  if (flushed_.exchange(true)) return;
  // We own the producer side; with the peer gone nobody consumes, so reading our own ring
  // from the consumer's position is safe.
  const uint64_t head = tx_.control()->head.load(std::memory_order_acquire);
  uint64_t tail = tx_.control()->tail.load(std::memory_order_acquire);
  while (tail != head) {
    const uint8_t *data = nullptr;
    const size_t chunk = tx_.UnreadSpan(tail, &data);
    if (chunk == 0) break;  // corrupt: the program sees the reset on its next call
    const ssize_t n = sys::Real().send(kernel_fd, data, chunk, MSG_NOSIGNAL);
    if (n > 0) {
      tail += static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && (errno == EINTR)) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd pfd = {kernel_fd, POLLOUT, 0};
      sys::Real().poll(&pfd, 1, 1000);
      continue;
    }
    break;  // the kernel connection is gone too; its error reaches the program next
  }
}

Result<size_t> FastConnection::Send(int kernel_fd, const struct iovec *iov, size_t iov_count,
                                    const SendCall &call) {
  Result<size_t> sent = SendOnRing(kernel_fd, iov, iov_count, call);
  if (capture_flow_ && sent.ok() && sent.value() > 0) {
    capture_sink_->Data(*capture_flow_, /*outgoing=*/true, iov, static_cast<int>(iov_count),
                        sent.value());
  }
  return sent;
}

Result<size_t> FastConnection::SendOnRing(int kernel_fd, const struct iovec *iov, size_t iov_count,
                                          const SendCall &call) {
  CallLock lock(&self().send_lock);
  if (!lock.Enter(call.nonblocking,
                  [this] { return tx_.HasRoom() || PeerLeft() || WritesGoToKernel(); })) {
    return Errno{EAGAIN};
  }
  const size_t length = TotalLength(iov, iov_count);
  size_t sent = 0;
  for (;;) {
    if (Broken()) return sent > 0 ? Result<size_t>(sent) : Errno{ECONNRESET};
    if ((OwnFlags() & kSideWriteShut) != 0 || (PeerFlags() & kSideClosed) != 0) {
      if (sent > 0) return sent;
      return Errno{kUseKernel};
    }
    if (PeerLeft()) {
      if (sent > 0) return sent;
      FlushUnreadToKernel(kernel_fd);
      return Errno{kUseKernel};
    }
    if ((OwnFlags() & kSideMoving) != 0) {
      if (sent > 0) return sent;
      return Errno{kUseKernel};
    }
    if (sent == 0 && peer().pid == 0) (void)PeerHungUpUnattached(0);  // then PeerLeft, above
    if (PeerLeft()) {
      if (sent > 0) return sent;
      FlushUnreadToKernel(kernel_fd);
      return Errno{kUseKernel};
    }
    if (WritesGoToKernel()) {
      FinishRingWrites();  // holding the send lock: no writer of this end is in the ring
      if (sent > 0) return sent;
      return Errno{kUseKernel};
    }
    const int64_t written = tx_.Write(iov, iov_count, sent, length - sent);
    if (written < 0) return sent > 0 ? Result<size_t>(sent) : Errno{ECONNRESET};
    if (written > 0) {
      sent += static_cast<size_t>(written);
      self().bytes_sent += static_cast<uint64_t>(written);
      if (stat::Slot *slot = stat::SlotAt(stat_slot_.load(std::memory_order_relaxed))) {
        slot->bytes_sent.store(self().bytes_sent, std::memory_order_relaxed);
      }
      NotifyPeerReader();
      if (sent == length) return sent;
      continue;
    }
    if (length == 0) return size_t{0};
    no_space_.fetch_add(1, std::memory_order_release);
    if (call.nonblocking) return sent > 0 ? Result<size_t>(sent) : Errno{EAGAIN};
    const WakeReason reason = space_bell_.Wait(
        [this] {
          return tx_.WritableBytes() != 0 || ((PeerFlags() & kSideClosed) != 0) || PeerLeft() ||
                 ((OwnFlags() & kOwnWriteEnded) != 0) || PeerRingDone();
        },
        &tx_.control()->producer_waiting, WaitAfter(call.wait, sent, AsleepMark(false)));
    switch (reason) {
      case WakeReason::kReady:
        break;
      case WakeReason::kPeerGone:
        if ((OwnFlags() & kOwnWriteEnded) == 0) {
          peer_left_.store(true, std::memory_order_release);
        }
        break;
      case WakeReason::kInterrupted:
        return sent > 0 ? Result<size_t>(sent) : Errno{EINTR};
      case WakeReason::kTimedOut:
        return sent > 0 ? Result<size_t>(sent) : Errno{EAGAIN};
    }
  }
}

Result<size_t> FastConnection::Recv(const struct iovec *iov, size_t iov_count,
                                    const RecvCall &call) {
  Result<size_t> got = RecvFromRing(iov, iov_count, call);
  if (capture_flow_) {
    // The peer's own process may write these packets (the same capture file): it says so in
    // its side block before it moves any byte.
    capture_flow_->peer_captured.store(
        peer().capture_file.load(std::memory_order_acquire) == capture_sink_->FileId(),
        std::memory_order_relaxed);
    if (got.ok() && got.value() > 0 && !call.peek) {
      capture_sink_->Data(*capture_flow_, /*outgoing=*/false, iov, static_cast<int>(iov_count),
                          got.value());
    } else if (!got.ok() && got.error() == kUseKernel &&
               (PeerFlags() & (kSideWriteShut | kSideClosed)) != 0) {
      capture_sink_->End(*capture_flow_, /*outgoing=*/false);
    }
  }
  return got;
}

Result<size_t> FastConnection::RecvFromRing(const struct iovec *iov, size_t iov_count,
                                            const RecvCall &call) {
  CallLock lock(&self().recv_lock);
  if (!lock.Enter(call.nonblocking,
                  [this] { return rx_.FillLevel() > 0 || PeerLeft() || PeerRingDone(); })) {
    return Errno{EAGAIN};
  }
  const size_t length = TotalLength(iov, iov_count);
  if (length == 0) return size_t{0};
  size_t received = 0;
  for (;;) {
    if (Broken()) return received > 0 ? Result<size_t>(received) : Errno{ECONNRESET};
    // Moving to kernel TCP: the peer hands what is left in this ring to the kernel connection.
    if ((OwnFlags() & kSideMoving) != 0) {
      return received > 0 ? Result<size_t>(received) : Errno{kUseKernel};
    }
    // Read the flags before the ring: the peer publishes its last bytes before it sets them.
    const bool ended = (PeerFlags() & (kSideWriteShut | kSideRingDone)) != 0 || PeerLeft() ||
                       (OwnFlags() & kSideReadShut) != 0;
    int64_t got;
    if (call.peek) {
      got = rx_.Read(iov, iov_count, 0, length, /*peek=*/true);
      if (got > 0 && (!call.wait_all || static_cast<size_t>(got) == length || ended)) {
        return static_cast<size_t>(got);
      }
    } else {
      got = rx_.Read(iov, iov_count, received, length - received, /*peek=*/false);
      if (got > 0) {
        received += static_cast<size_t>(got);
        self().bytes_received += static_cast<uint64_t>(got);
        if (stat::Slot *slot = stat::SlotAt(stat_slot_.load(std::memory_order_relaxed))) {
          slot->bytes_received.store(self().bytes_received, std::memory_order_relaxed);
        }
        NotifyPeerWriter();
        if (!call.wait_all || received == length) return received;
        continue;
      }
    }
    if (got < 0) return received > 0 ? Result<size_t>(received) : Errno{ECONNRESET};
    if (ended) {
      if (received > 0) return received;
      return Errno{kUseKernel};
    }
    if (call.nonblocking) return received > 0 ? Result<size_t>(received) : Errno{EAGAIN};
    const size_t needed = call.peek && call.wait_all ? length : 1;
    const WakeReason reason = data_bell_.Wait(
        [this, needed] {
          const int64_t readable = rx_.ReadableBytes();
          if (readable < 0 || static_cast<size_t>(readable) >= needed) return 1;
          return ((PeerFlags() & (kSideWriteShut | kSideRingDone)) != 0 || PeerLeft() ||
                  (OwnFlags() & kOwnReadEnded) != 0)
                     ? 1
                     : 0;
        },
        &rx_.control()->consumer_waiting, WaitAfter(call.wait, received, AsleepMark(true)));
    switch (reason) {
      case WakeReason::kReady:
        break;
      case WakeReason::kPeerGone:
        if ((OwnFlags() & kOwnReadEnded) == 0) {
          peer_left_.store(true, std::memory_order_release);
        }
        break;
      case WakeReason::kInterrupted:
        return received > 0 ? Result<size_t>(received) : Errno{EINTR};
      case WakeReason::kTimedOut:
        return received > 0 ? Result<size_t>(received) : Errno{EAGAIN};
    }
  }
}

size_t FastConnection::ReadableBytes() const { return Moved() ? 0 : rx_.FillLevel(); }
size_t FastConnection::UnsentBytes() const { return tx_.FillLevel(); }

FastConnection::Look FastConnection::LookNow() const {
  Look look;
  const uint32_t own = self().flags.load(std::memory_order_acquire);
  const uint32_t peer_flags = PeerFlags();
  const bool left = PeerLeft();
  const bool moving = (own & kSideMoving) != 0;
  look.in_ended =
      (peer_flags & (kSideWriteShut | kSideRingDone)) != 0 || left || (own & kOwnReadEnded) != 0;
  // The peer switched: this end's next send follows it to the kernel connection.
  look.out_ended =
      (own & kOwnWriteEnded) != 0 || (peer_flags & (kSideClosed | kSideRingDone)) != 0 || left;
  const uint64_t readable = rx_.FillLevel();
  look.corrupt = !moving && (tx_.Window() == 0 || rx_.Window() == 0 || Broken());
  // Once moving, what is left in the ring is the peer's to hand to the kernel connection.
  look.readable = !moving && (readable > 0 || look.corrupt);
  look.writable = tx_.HasRoom();
  look.in_sequence = rx_.control()->head.load(std::memory_order_acquire);
  look.in_consumed = rx_.control()->tail.load(std::memory_order_acquire);
  look.no_space = no_space_.load(std::memory_order_acquire);
  return look;
}

bool FastConnection::DrainBell(int bell) {
  const int saved_errno = errno;
  char drain[64];
  bool open = true;
  for (;;) {
    const ssize_t n = sys::Real().recv(bell, drain, sizeof drain, MSG_DONTWAIT);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    open = n < 0;  // EAGAIN: nothing more; 0: end-of-file
    break;
  }
  errno = saved_errno;
  return open;
}

void FastConnection::TakeWakeups(bool for_input, bool for_output) {
  const int input_bell = for_input ? InputBellFd() : -1;
  const int output_bell = for_output ? OutputBellFd() : -1;
  if (input_bell >= 0 && !DrainBell(input_bell)) peer_left_.store(true, std::memory_order_release);
  if (output_bell >= 0 && !DrainBell(output_bell)) {
    peer_left_.store(true, std::memory_order_release);
  }
}

void FastConnection::PrepareToSleep(bool for_input, bool for_output, bool drain) {
  if (drain) TakeWakeups(for_input, for_output);
  // Announce only on doorbells that can still ring.
  if (for_input && InputBellFd() >= 0) {
    rx_.control()->consumer_waiting.store(1, std::memory_order_seq_cst);
  }
  if (for_output && OutputBellFd() >= 0) {
    tx_.control()->producer_waiting.store(1, std::memory_order_seq_cst);
  }
  // Pairs with the waker's fence: either it sees our announcement or we see its change.
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

int FastConnection::InputBellFd() const {
  const bool shut = (OwnFlags() & kOwnReadEnded) != 0;
  return PeerLeft() || shut || PeerRingDone() ? -1 : data_bell_.fd();
}

int FastConnection::OutputBellFd() const {
  const bool shut = (OwnFlags() & kOwnWriteEnded) != 0;
  return PeerLeft() || shut || PeerRingDone() ? -1 : space_bell_.fd();
}

void FastConnection::SettleIfPeerLeft(int kernel_fd) {
  if (!PeerLeft() || (PeerFlags() & kSideClosed) != 0) return;
  if ((self().flags.load(std::memory_order_acquire) & kSideWriteShut) != 0) return;
  SharedLockGuard lock(&self().send_lock);
  FlushUnreadToKernel(kernel_fd);
}

void FastConnection::ShutdownWrite() {
  if (capture_flow_) capture_sink_->End(*capture_flow_, /*outgoing=*/true);
  self().flags.fetch_or(kSideWriteShut, std::memory_order_release);
  data_bell_.Ring();        // a peer asleep waiting for data sees the end of the stream
  space_bell_.ShutLocal();  // a local writer asleep for space returns
}

void FastConnection::ShutdownRead() {
  self().flags.fetch_or(kSideReadShut, std::memory_order_release);
  data_bell_.ShutLocal();  // a local reader asleep returns
}

void FastConnection::MoveToKernel() {
  if ((self().flags.fetch_or(kSideMoving, std::memory_order_acq_rel) & kSideMoving) != 0) return;
  // Wake this end's sleepers (in every process holding it) so they see the flag and leave.
  data_bell_.ShutLocal();
  space_bell_.ShutLocal();
  // Once both locks were free, no thread of this end is inside a ring any more.
  { SharedLockGuard reading(&self().recv_lock); }
  { SharedLockGuard writing(&self().send_lock); }
  self().flags.fetch_or(kSideMoved, std::memory_order_release);
  data_bell_.Ring();
  space_bell_.Ring();
}

bool FastConnection::Moved() const { return (OwnFlags() & kSideMoving) != 0; }

bool FastConnection::Broken() const { return ((OwnFlags() | PeerFlags()) & kSideBroken) != 0; }

bool FastConnection::BypassFound(int kernel_fd) {
  if ((PeerFlags() & (kSideRingDone | kSideMoved)) != 0) return false;  // kernel bytes expected
  // A connecting side that never attached (it gave up waiting for the Offer and wrote what it
  // had buffered to the kernel connection) never used the rings: its bytes are all there.
  if (peer().pid == 0) return false;
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
  data_bell_.Ring();
  space_bell_.Ring();
}

bool FastConnection::WritesGoToKernel() const {
  return ((OwnFlags() & (kSideSwitching | kSideRingDone)) | (PeerFlags() & kSideRingDone)) != 0;
}

bool FastConnection::PeerRingDone() const { return (PeerFlags() & kSideRingDone) != 0; }

void FastConnection::FinishRingWrites() {
  if ((self().flags.fetch_or(kSideSwitching | kSideRingDone, std::memory_order_acq_rel) &
       kSideRingDone) != 0) {
    return;
  }
  data_bell_.Ring();   // the peer's reader: the ring's remainder, then the kernel connection
  space_bell_.Ring();  // the peer's writer: its next send follows to the kernel connection
}

void FastConnection::SwitchToKernel() {
  if ((self().flags.fetch_or(kSideSwitching, std::memory_order_acq_rel) &
       (kSideSwitching | kSideRingDone)) != 0) {
    return;
  }
  // A writer of this end asleep for room wakes, sees the flag and leaves the ring.
  space_bell_.ShutLocal();
  // Publish kSideRingDone only once no writer of this end is inside the ring, or the peer
  // could take the ring for finished before the last bytes land. A writer this thread
  // interrupted (a signal handler) publishes it itself when it looks again.
  SharedLock lock(&self().send_lock);
  if (lock.HeldByThisThread()) return;
  lock.Lock();
  FinishRingWrites();
  lock.Unlock();
}

void FastConnection::AddHolder() { self().holders.fetch_add(1, std::memory_order_relaxed); }
void FastConnection::DropHolder() { self().holders.fetch_sub(1, std::memory_order_relaxed); }

bool FastConnection::PeerHungUpUnattached(int wait_ms) {
  if (peer().pid != 0) return false;
  // The peer's ends of the doorbells arrive with the Offer; they close, unread, when the
  // connecting side takes kernel TCP instead. A poll sees that without taking wake-up bytes.
  const uint64_t end = MonotonicNs() + uint64_t(wait_ms) * 1000000u;
  for (;;) {
    struct pollfd probe = {data_bell_.fd(), POLLRDHUP, 0};
    const int saved_errno = errno;
    const int n = sys::Real().poll(&probe, 1, wait_ms > 0 ? 5 : 0);
    errno = saved_errno;
    if (n == 1 && (probe.revents & (POLLRDHUP | POLLHUP)) != 0) {
      peer_left_.store(true, std::memory_order_release);
      return true;
    }
    if (peer().pid != 0 || MonotonicNs() >= end) return false;
  }
}

bool FastConnection::Close(int kernel_fd) {
  // Another process (a fork) still holds this end: the connection goes on.
  if (self().holders.fetch_sub(1, std::memory_order_acq_rel) > 1) return false;
  // Moved: the kernel connection is the whole truth; the peer already stopped using the rings.
  if (Moved()) return false;
  // Bytes the connecting side will never read from the ring (it took kernel TCP, or is about
  // to): give it a moment to attach or hang up, and hand them to the kernel connection.
  if (tx_.FillLevel() > 0 && PeerHungUpUnattached(kAttachGraceMs)) {
    FlushUnreadToKernel(kernel_fd);
  }
  const bool unread = rx_.FillLevel() > 0;
  if (capture_flow_) capture_sink_->End(*capture_flow_, /*outgoing=*/true);
  self().flags.fetch_or(kSideWriteShut | kSideClosed | (unread ? kSideAborted : 0u),
                        std::memory_order_release);
  // Only a peer that announced a sleep needs a wake-up byte (one that did not sees the flags
  // on its next look); this end's doorbells close right after, which ends such sleeps too.
  NotifyPeerReader();
  NotifyPeerWriter();
  return unread;
}

uint64_t FastConnection::bytes_sent() const { return self().bytes_sent; }

void FastConnection::StartCapture(capture::Sink *sink, int kernel_fd, bool client) {
  struct sockaddr_storage local {
  }, remote{};
  socklen_t local_length = sizeof local, remote_length = sizeof remote;
  const int saved_errno = errno;
  const bool named =
      getsockname(kernel_fd, reinterpret_cast<struct sockaddr *>(&local), &local_length) == 0 &&
      getpeername(kernel_fd, reinterpret_cast<struct sockaddr *>(&remote), &remote_length) == 0;
  errno = saved_errno;
  if (!named) return;
  self().capture_file.store(sink->FileId(), std::memory_order_release);
  // The accepting side runs first (before its Offer), so it writes the handshake; the client
  // leaves it to a server that captures into the same file.
  const bool peer_captured =
      client && peer().capture_file.load(std::memory_order_acquire) == sink->FileId();
  capture_flow_ = sink->Begin(reinterpret_cast<struct sockaddr *>(&local), local_length,
                              reinterpret_cast<struct sockaddr *>(&remote), remote_length, client,
                              peer_captured);
  if (capture_flow_) capture_sink_ = sink;
}

void FastConnection::PublishTo(int slot) {
  stat_slot_.store(slot, std::memory_order_relaxed);
  if (stat::Slot *published = stat::SlotAt(slot)) {
    published->bytes_sent.store(self().bytes_sent, std::memory_order_relaxed);
    published->bytes_received.store(self().bytes_received, std::memory_order_relaxed);
  }
}

std::atomic<uint8_t> *FastConnection::AsleepMark(bool to_receive) const {
  stat::Slot *slot = stat::SlotAt(stat_slot_.load(std::memory_order_relaxed));
  if (slot == nullptr) return nullptr;
  return to_receive ? &slot->asleep_to_receive : &slot->asleep_to_send;
}
uint64_t FastConnection::bytes_received() const { return self().bytes_received; }

}  // namespace loopfast
