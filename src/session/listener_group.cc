// The accepting half of sessions (listener_group.h): a port's channel, the setups it receives,
// the arenas it checks and maps, and the group memory and depot that its processes share.
#include "session/listener_group.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "session/messages.h"
#include "session/unix_messages.h"
#include "sys/family_memory.h"
#include "sys/owned_fds.h"
#include "sys/real_calls.h"
#include "sys/unique_fd.h"
#include "sys/unique_mapping.h"
#include "wait/shared_lock.h"
#include "wait/sleep.h"

namespace loopfast::session {

inline constexpr uint32_t kMaxGroupSessions = 4096;
// Setup connections that were accepted before their setup arrived (the client sends it right
// after connecting; another process of the group may accept in between), kept for any process
// of the group to read: at most this many, each for at most kParkedLifetimeNs.
inline constexpr uint32_t kMaxParked = 64;
inline constexpr uint64_t kParkedLifetimeNs = 1000ull * 1000 * 1000;

enum EntryState : uint32_t { kEntryFree = 0, kEntryLive = 1, kEntryEnded = 2 };

// One session as the group knows it. Written under the group lock.
struct GroupEntry {
  std::atomic<uint32_t> state;  // EntryState
  uint32_t uid;
  uint32_t pid;                 // the client's
  std::atomic<int32_t> record;  // sequence number of its depot record, -1 when none
  std::atomic<uint64_t> nonce;
  std::atomic<uint32_t> reader_pid;  // the process that read the setup and holds its socket
  uint8_t pad[kCacheLine - 28];
};
static_assert(sizeof(GroupEntry) == kCacheLine);

// Shared by the processes of one listener group (family memory: fork shares it, clients never
// see it). Mapped with MAP_NORESERVE: only what is touched costs memory.
struct GroupMemory {
  std::atomic<uint32_t> lock;     // SharedLock between the group's processes
  std::atomic<uint32_t> holders;  // processes holding the listener (fork adds, close drops)
  std::atomic<uint32_t> entries_used;
  std::atomic<uint32_t> registrations;  // sessions registered so far (a change: fetch again)
  // Guarded by the lock:
  uint32_t records;     // sequence number of the next depot record
  uint32_t depot_base;  // sequence number of the first record still in the depot
  uint32_t parked;      // setup connections in the parking socket
  uint8_t pad[kCacheLine - 28];
  GroupEntry entries[kMaxGroupSessions];
};

// What the depot holds per session, with its descriptors (DepotFd order).
struct DepotRecord {
  uint64_t nonce;
  uint32_t entry;
  uint32_t reserved;
};
static_assert(sizeof(DepotRecord) == 16);
enum DepotFd { kDepotAllocatorFd = kSetupFds, kDepotFds = kSetupFds + 1 };
static_assert(kDepotFds <= kMaxMessageFds);

// A parked setup connection, with its socket.
struct ParkedRecord {
  uint64_t parked_at_ns;
  uint32_t uid;
  uint32_t reserved;
};
static_assert(sizeof(ParkedRecord) == 16);

namespace {

std::shared_ptr<GroupMemory> MapGroupMemory() {
  void *memory = mmap(nullptr, sizeof(GroupMemory), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (memory == MAP_FAILED) return nullptr;
  return std::shared_ptr<GroupMemory>(static_cast<GroupMemory *>(memory), [](GroupMemory *group) {
    const int saved_errno = errno;
    munmap(group, sizeof(GroupMemory));
    errno = saved_errno;
  });
}

}  // namespace

// ---- ServerSession ----

ServerSession::ServerSession(void *arena, uint64_t nonce, int group_bell, int client_bell,
                             int setup_socket, uint32_t entry, uid_t uid, pid_t pid,
                             std::shared_ptr<GroupMemory> group, RegionAllocatorState *allocator)
    : Session(kServerSide, arena, nonce, group_bell, client_bell),
      setup_socket_(setup_socket),
      entry_(entry),
      group_(std::move(group)),
      allocator_state_(allocator) {
  peer_uid_ = uid;
  peer_pid_ = pid;
  SetAllocatorState(allocator_state_);
}

ServerSession::~ServerSession() {
  sys::CloseOwned(own_bell_);
  sys::CloseOwned(peer_bell_);
  sys::CloseOwned(setup_socket_);
  const int saved_errno = errno;
  munmap(allocator_state_, sizeof(RegionAllocatorState));
  errno = saved_errno;
}

bool ServerSession::StillInGroup() const {
  const GroupEntry &entry = group_->entries[entry_];
  return entry.state.load(std::memory_order_acquire) == kEntryLive &&
         entry.nonce.load(std::memory_order_relaxed) == nonce();
}

ServerSession::BindOutcome ServerSession::Find(uint64_t socket_cookie, uint32_t *slot) const {
  switch (FindClaim(arena_, socket_cookie, slot)) {
    case ClaimFound::kClaimed:
      return BindOutcome::kBound;
    case ClaimFound::kDeclined:
      return BindOutcome::kDeclined;
    case ClaimFound::kNone:
      break;
  }
  return BindOutcome::kNotFound;
}

bool ServerSession::Bind(uint32_t index, uint64_t socket_cookie, uint32_t rx_limit) {
  Slot *slot = arena_.slot(index);
  uint32_t state = slot->header.state.load(std::memory_order_acquire);
  // The client writes this word too (Connected, Decline): a few tries, then not found — a
  // client that keeps changing it only loses its own connection.
  for (int tries = 0; tries < 64 && (state == kSlotClaimed || state == kSlotConnected); ++tries) {
    if (slot->header.state.compare_exchange_weak(state, kSlotBound, std::memory_order_acq_rel)) {
      // Checked again after the bind: a client that reused the slot meanwhile is not ours.
      if (slot->header.socket_cookie.load(std::memory_order_acquire) != socket_cookie) return false;
      SideBlock &own = slot->side[kServerSide];
      own.holders.store(1, std::memory_order_relaxed);
      own.pid = static_cast<uint32_t>(sys::ThisProcess());
      own.rx_limit.store(rx_limit, std::memory_order_release);
      slot->header.bound_by.store(static_cast<uint32_t>(sys::ThisProcess()),
                                  std::memory_order_relaxed);
      open_connections.fetch_add(1, std::memory_order_relaxed);
      UpdateStat();
      return true;
    }
  }
  if (state == kSlotDeclined) {
    // Seen: the client may give the slot back.
    slot->header.bound_by.store(static_cast<uint32_t>(sys::ThisProcess()),
                                std::memory_order_release);
  }
  return false;
}

void ServerSession::Idle() {
  if (std::shared_ptr<ListenerGroup> group = listener_group_.lock()) group->EndIdleSessions();
}

bool ServerSession::ClientAlive() const {
  if (setup_socket_ < 0) return true;
  char byte;
  const int saved_errno = errno;
  const ssize_t n = sys::Real().recv(setup_socket_, &byte, 1, MSG_DONTWAIT | MSG_PEEK);
  errno = saved_errno;
  return n != 0;
}

void ServerSession::EndChannel() {
  if (setup_socket_ < 0) return;
  const int saved_errno = errno;
  shutdown(setup_socket_, SHUT_RDWR);
  errno = saved_errno;
}

// ---- ListenerGroup ----

namespace {

// A descriptor's copy at a high number, or -1.
int DupHigh(int fd) { return sys::TakeHigh(sys::Real().fcntl(fd, F_DUPFD_CLOEXEC, 0)); }

bool IsEventfd(int fd) {
  char link[64];
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(path, link, sizeof link - 1);
  return n > 0 && std::strncmp(link, "anon_inode:[eventfd]", static_cast<size_t>(n)) == 0;
}

// The shared state of a session's server-side region allocator, in memory of its own that the
// group's processes pass each other (it outlives any one of them).
int CreateAllocatorMemory() {
  sys::UniqueFd fd(static_cast<int>(memfd_create("loopfast-allocator", MFD_CLOEXEC)));
  if (!fd.valid() || ftruncate(fd.get(), sizeof(RegionAllocatorState)) != 0) return -1;
  return fd.Release();
}

RegionAllocatorState *MapAllocatorMemory(int fd) {
  struct stat info;
  if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode) ||
      static_cast<size_t>(info.st_size) != sizeof(RegionAllocatorState)) {
    errno = EPROTO;
    return nullptr;
  }
  void *memory =
      mmap(nullptr, sizeof(RegionAllocatorState), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  return memory == MAP_FAILED ? nullptr : static_cast<RegionAllocatorState *>(memory);
}

bool ProcessGone(uint32_t pid) {
  const int saved_errno = errno;
  const bool gone = pid != 0 && kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
  errno = saved_errno;
  return gone;
}

}  // namespace

ListenerGroup::ListenerGroup(uint16_t port, int channel, std::shared_ptr<GroupMemory> group,
                             const int *depot, const int *parking)
    : port_(port),
      owner_pid_(sys::ThisProcess()),
      channel_(channel),
      group_(std::move(group)),
      depot_rx_(depot[0]),
      depot_tx_(depot[1]),
      parking_rx_(parking[0]),
      parking_tx_(parking[1]) {}

ListenerGroup::~ListenerGroup() {
  // A listener opened on the port later is another group: the clients must set up anew. (Only
  // where the group was opened: a fork child's copy shares the setup connections with it.)
  if (sys::ThisProcess() == owner_pid_) {
    for (const auto &session : sessions_) session->EndChannel();
  }
  sessions_.clear();
  for (int fd : {channel_, depot_rx_, depot_tx_, parking_rx_, parking_tx_}) sys::CloseOwned(fd);
  group_->holders.fetch_sub(1, std::memory_order_acq_rel);
}

Result<std::shared_ptr<ListenerGroup>> ListenerGroup::Open(uint16_t port) {
  sys::UniqueFd channel(
      sys::TakeHigh(sys::Real().socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)));
  if (!channel.valid()) return Errno{errno};
  struct sockaddr_un address;
  const socklen_t length = ChannelAddress(port, &address);
  if (sys::Real().bind(channel.get(), reinterpret_cast<struct sockaddr *>(&address), length) != 0 ||
      sys::Real().listen(channel.get(), 4096) != 0) {
    return Errno{errno};
  }
  std::shared_ptr<GroupMemory> group = MapGroupMemory();
  // The depot keeps records (a stream: records are read at offsets); the parking socket keeps
  // whole messages, each with one setup connection.
  int depot[2] = {-1, -1};
  int parking[2] = {-1, -1};
  const bool made =
      group != nullptr &&
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, depot) == 0 &&
      socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, parking) == 0;
  sys::UniqueFd ends[4];  // depot[0], depot[1], parking[0], parking[1]
  const int made_ends[4] = {depot[0], depot[1], parking[0], parking[1]};
  for (int i = 0; i < 4; ++i) {
    if (made_ends[i] >= 0) ends[i].Reset(sys::TakeHigh(made_ends[i]));
  }
  if (!made || !ends[0].valid() || !ends[1].valid() || !ends[2].valid() || !ends[3].valid()) {
    return Errno{made ? EMFILE : errno};
  }
  group->holders.store(1, std::memory_order_relaxed);
  for (int i = 0; i < 2; ++i) {
    depot[i] = ends[i].Release();
    parking[i] = ends[2 + i].Release();
  }
  const int owned_channel = channel.Release();
  for (int fd : {owned_channel, depot[0], depot[1], parking[0], parking[1]}) sys::Own(fd);
  return std::shared_ptr<ListenerGroup>(
      new ListenerGroup(port, owned_channel, std::move(group), depot, parking));
}

Result<struct ucred> ListenerGroup::ChannelHolder(uint16_t port) {
  sys::UniqueFd probe(sys::Real().socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!probe.valid()) return Errno{errno};
  struct sockaddr_un address;
  const socklen_t length = ChannelAddress(port, &address);
  struct ucred holder {};
  socklen_t holder_length = sizeof holder;
  const bool known =
      sys::Real().connect(probe.get(), reinterpret_cast<struct sockaddr *>(&address), length) ==
          0 &&
      sys::Real().getsockopt(probe.get(), SOL_SOCKET, SO_PEERCRED, &holder, &holder_length) == 0;
  if (!known) return Errno{errno};
  return holder;
}

void ListenerGroup::AddHolder() { group_->holders.fetch_add(1, std::memory_order_acq_rel); }

void ListenerGroup::DropHolder() { group_->holders.fetch_sub(1, std::memory_order_acq_rel); }

std::shared_ptr<ServerSession> ListenerGroup::MakeSession(const int *fds, int allocator_fd,
                                                          uint32_t entry, uint64_t nonce, uid_t uid,
                                                          pid_t pid, int setup_socket) {
  // The arena: a sealed memfd of exactly the layout's size, or nothing.
  struct stat info;
  const int seals = sys::Real().fcntl(fds[kSetupArenaFd], F_GET_SEALS, 0);
  if (fstat(fds[kSetupArenaFd], &info) != 0 || !S_ISREG(info.st_mode) || seals < 0 ||
      (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW) ||
      static_cast<uint64_t>(info.st_size) != kArenaBytes) {
    errno = EPROTO;
    return nullptr;
  }
  // The bells must be eventfds: writing to anything else could be a file of the client's.
  if (!IsEventfd(fds[kSetupClientBellFd]) || !IsEventfd(fds[kSetupGroupBellFd])) {
    errno = EPROTO;
    return nullptr;
  }
  sys::UniqueMapping allocator(MapAllocatorMemory(allocator_fd), sizeof(RegionAllocatorState));
  if (!allocator.valid()) return nullptr;
  sys::UniqueMapping arena(mmap(nullptr, kArenaBytes, PROT_READ | PROT_WRITE,
                                MAP_SHARED | MAP_NORESERVE, fds[kSetupArenaFd], 0),
                           kArenaBytes);
  int error = arena.valid() ? 0 : errno;
  if (error == 0 && !ValidateArena(arena.get(), kArenaBytes)) error = EPROTO;
  sys::UniqueFd client_bell(error == 0 ? DupHigh(fds[kSetupClientBellFd]) : -1);
  sys::UniqueFd group_bell(client_bell.valid() ? DupHigh(fds[kSetupGroupBellFd]) : -1);
  if (!client_bell.valid() || !group_bell.valid()) {
    errno = error == 0 ? errno : error;  // kept while the owners above let go
    return nullptr;
  }
  sys::Own(client_bell.get());
  sys::Own(group_bell.get());
  std::shared_ptr<ServerSession> session(new ServerSession(
      arena.Release(), nonce, group_bell.Release(), client_bell.Release(), setup_socket, entry, uid,
      pid, group_, static_cast<RegionAllocatorState *>(allocator.Release())));
  session->listener_group_ = weak_from_this();
  session->PublishStat(port_);
  return session;
}

uint32_t ListenerGroup::FreeEntry() {
  // An entry whose session ended and whose depot record is gone: no process can map that
  // session any more, and the ones that still have it tell by the nonce.
  const uint32_t used = group_->entries_used.load(std::memory_order_relaxed);
  for (uint32_t i = 0; i < used; ++i) {
    const GroupEntry &candidate = group_->entries[i];
    const uint32_t state = candidate.state.load(std::memory_order_relaxed);
    if (state == kEntryFree ||
        (state == kEntryEnded && candidate.record.load(std::memory_order_relaxed) < 0)) {
      return i;
    }
  }
  if (used == kMaxGroupSessions) return kMaxGroupSessions;
  group_->entries_used.store(used + 1, std::memory_order_release);
  return used;
}

void ListenerGroup::Register(const int *fds, uint64_t nonce, uid_t uid, pid_t pid,
                             int setup_socket) {
  const uint32_t entry = FreeEntry();
  sys::UniqueFd allocator_fd(entry < kMaxGroupSessions ? CreateAllocatorMemory() : -1);
  std::shared_ptr<ServerSession> session =
      allocator_fd.valid()
          ? MakeSession(fds, allocator_fd.get(), entry, nonce, uid, pid, setup_socket)
          : nullptr;
  if (!session) {
    // A full group, an unusable arena or bells, or no memory: its connections are reset.
    lost_for_resources_ = lost_for_resources_ || errno == ENOMEM || errno == EMFILE ||
                          errno == ENFILE || entry == kMaxGroupSessions;
    allocator_fd.Reset();
    sys::CloseOwned(setup_socket);
    return;
  }
  GroupEntry &record = group_->entries[entry];
  record.uid = static_cast<uint32_t>(uid);
  record.pid = static_cast<uint32_t>(pid);
  record.nonce.store(nonce, std::memory_order_relaxed);
  record.reader_pid.store(static_cast<uint32_t>(sys::ThisProcess()), std::memory_order_relaxed);
  record.record.store(-1, std::memory_order_relaxed);
  // Other processes hold the listener: leave copies of the descriptors for them.
  if (group_->holders.load(std::memory_order_acquire) > 1) {
    CompactDepot();
    const int depot_fds[kDepotFds] = {fds[kSetupArenaFd], fds[kSetupClientBellFd],
                                      fds[kSetupGroupBellFd], allocator_fd.get()};
    const DepotRecord deposit = {nonce, entry, 0};
    if (SendMessage(depot_tx_, &deposit, sizeof deposit, depot_fds, kDepotFds).ok()) {
      record.record.store(static_cast<int32_t>(group_->records++), std::memory_order_relaxed);
    }
  }
  allocator_fd.Reset();
  record.state.store(kEntryLive, std::memory_order_release);
  group_->registrations.fetch_add(1, std::memory_order_release);
  sessions_.push_back(std::move(session));
}

void ListenerGroup::CompactDepot() {
  // The depot keeps a record per session the group ever deposited until this takes it out: when
  // most of them are of ended sessions, every record is read once, from the front, and the live
  // ones are put back at the end.
  const uint32_t stored = group_->records - group_->depot_base;
  uint32_t live = 0;
  const uint32_t used = group_->entries_used.load(std::memory_order_relaxed);
  for (uint32_t i = 0; i < used; ++i) {
    const GroupEntry &entry = group_->entries[i];
    live += entry.state.load(std::memory_order_relaxed) == kEntryLive &&
            entry.record.load(std::memory_order_relaxed) >= 0;
  }
  if (stored < 32 || stored < 2 * live) return;
  for (uint32_t n = 0; n < stored; ++n) {
    DepotRecord deposit{};
    int fds[kMaxMessageFds];
    int fd_count = 0;
    Result<size_t> got = ReceiveMessage(depot_rx_, &deposit, sizeof deposit, fds, &fd_count,
                                        /*blocking=*/false);
    if (!got.ok() || got.value() != sizeof deposit) {
      CloseAll(fds, fd_count);
      break;
    }
    const uint32_t sequence = group_->depot_base++;
    GroupEntry *entry = deposit.entry < used ? &group_->entries[deposit.entry] : nullptr;
    const bool current =
        entry != nullptr && entry->nonce.load(std::memory_order_relaxed) == deposit.nonce &&
        entry->record.load(std::memory_order_relaxed) == static_cast<int32_t>(sequence);
    if (current && entry->state.load(std::memory_order_relaxed) == kEntryLive &&
        fd_count == kDepotFds &&
        SendMessage(depot_tx_, &deposit, sizeof deposit, fds, kDepotFds).ok()) {
      entry->record.store(static_cast<int32_t>(group_->records++), std::memory_order_relaxed);
    } else if (current) {
      entry->record.store(-1, std::memory_order_relaxed);
    }
    CloseAll(fds, fd_count);
  }
}

void ListenerGroup::Park(int setup_socket, uid_t uid) {
  // At most kMaxParked: the oldest gets one last look and makes room, so that a user who opens
  // silent connections by the thousand costs each accept a constant, and pushes out mostly its
  // own.
  if (group_->parked >= kMaxParked) DrainParked(/*drop_oldest=*/true);
  const ParkedRecord record = {wait::NowNs(), static_cast<uint32_t>(uid), 0};
  if (group_->parked < kMaxParked &&
      SendMessage(parking_tx_, &record, sizeof record, &setup_socket, 1).ok()) {
    ++group_->parked;
  }
  sys::CloseOwned(setup_socket);
}

void ListenerGroup::DrainParked(bool drop_oldest) {
  const uint64_t now = wait::NowNs();
  // drop_oldest: the first (oldest) one only, read once more and then let go.
  const uint32_t looks = drop_oldest ? 1 : group_->parked;
  for (uint32_t n = 0; n < looks; ++n) {
    ParkedRecord record{};
    int fds[kMaxMessageFds];
    int fd_count = 0;
    Result<size_t> got = ReceiveMessage(parking_rx_, &record, sizeof record, fds, &fd_count,
                                        /*blocking=*/false);
    if (!got.ok() && got.error() == EAGAIN) {
      group_->parked = 0;  // a count out of step (a process died mid-way): the socket is empty
      return;
    }
    if (group_->parked > 0) --group_->parked;
    if (!got.ok() || fd_count != 1) {
      CloseAll(fds, fd_count);
      continue;
    }
    const int setup_socket = sys::MoveHigh(fds[0]);
    sys::Own(setup_socket);
    const bool expired = drop_oldest || now - record.parked_at_ns > kParkedLifetimeNs;
    ReadSetup(setup_socket, /*park_if_silent=*/!expired, record.parked_at_ns);
  }
}

void ListenerGroup::ReadSetup(int setup_socket, bool park_if_silent, uint64_t parked_at_ns) {
  struct ucred sender {};
  socklen_t sender_length = sizeof sender;
  union {
    SessionSetup setup;
    char bytes[64];
  } message;
  int fds[kMaxMessageFds];
  int fd_count = 0;
  Result<size_t> got = Errno{EPROTO};
  if (sys::Real().getsockopt(setup_socket, SOL_SOCKET, SO_PEERCRED, &sender, &sender_length) == 0) {
    got = ReceiveMessage(setup_socket, &message, sizeof message, fds, &fd_count,
                         /*blocking=*/false);
  }
  if (!got.ok() && got.error() == EAGAIN && park_if_silent) {
    // Accepted between the client's connect and its send: kept (never waited for) so that
    // whichever process of the group needs it reads it later.
    if (parked_at_ns == 0) {
      Park(setup_socket, sender.uid);
    } else {
      const ParkedRecord record = {parked_at_ns, static_cast<uint32_t>(sender.uid), 0};
      if (SendMessage(parking_tx_, &record, sizeof record, &setup_socket, 1).ok()) {
        ++group_->parked;
      }
      sys::CloseOwned(setup_socket);
    }
    return;
  }
  if (!got.ok() && got.error() == EPROTO && fd_count == 0) {
    // Descriptors cut off (MSG_CTRUNC): most likely this process is out of descriptors.
    lost_for_resources_ = true;
  }
  if (!got.ok() || fd_count != kSetupFds || !IsUsableSetup(&message, got.value())) {
    // Forged, malformed, gone, or silent for too long: dropped.
    CloseAll(fds, fd_count);
    sys::CloseOwned(setup_socket);
    return;
  }
  Register(fds, message.setup.nonce, sender.uid, sender.pid, setup_socket);
  CloseAll(fds, fd_count);
}

void ListenerGroup::DrainChannel() {
  for (;;) {
    const int connection =
        sys::Real().accept4(channel_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (connection < 0) {
      // EAGAIN: none waiting. Out of descriptors: a setup may wait there, unread.
      if (errno == EMFILE || errno == ENFILE) lost_for_resources_ = true;
      return;
    }
    const int setup_socket = sys::MoveHigh(connection);
    sys::Own(setup_socket);
    ReadSetup(setup_socket, /*park_if_silent=*/true, 0);
  }
}

void ListenerGroup::FetchFromGroup() {
  const uint32_t registrations = group_->registrations.load(std::memory_order_acquire);
  if (registrations == registrations_seen_) return;
  bool complete = true;
  const uint32_t used = group_->entries_used.load(std::memory_order_acquire);
  for (uint32_t i = 0; i < used; ++i) {
    GroupEntry &entry = group_->entries[i];
    if (entry.state.load(std::memory_order_acquire) != kEntryLive) continue;
    const int32_t record = entry.record.load(std::memory_order_relaxed);
    const uint64_t nonce = entry.nonce.load(std::memory_order_relaxed);
    if (record < 0 || Known(i, nonce)) continue;
    // The peek offset is the socket's, shared by the group: the group lock makes us its only
    // reader.
    const int offset = static_cast<int>((static_cast<uint32_t>(record) - group_->depot_base) *
                                        sizeof(DepotRecord));
    DepotRecord deposit{};
    int fds[kMaxMessageFds];
    int fd_count = 0;
    if (sys::Real().setsockopt(depot_rx_, SOL_SOCKET, SO_PEEK_OFF, &offset, sizeof offset) != 0) {
      complete = false;
      continue;
    }
    Result<size_t> got = ReceiveMessage(depot_rx_, &deposit, sizeof deposit, fds, &fd_count,
                                        /*blocking=*/false, MSG_PEEK);
    if (got.ok() && fd_count == kDepotFds && deposit.nonce == nonce && deposit.entry == i) {
      std::shared_ptr<ServerSession> session = MakeSession(
          fds, fds[kDepotAllocatorFd], i, nonce, entry.uid, static_cast<pid_t>(entry.pid), -1);
      if (session) {
        sessions_.push_back(std::move(session));
      } else if (errno == ENOMEM || errno == EMFILE || errno == ENFILE) {
        lost_for_resources_ = true;
        complete = false;  // tried again at the next accept
      }
    }
    CloseAll(fds, fd_count);
  }
  if (complete) registrations_seen_ = registrations;
}

bool ListenerGroup::Known(uint32_t entry, uint64_t nonce) const {
  for (const auto &session : sessions_) {
    if (session->entry_ == entry && session->nonce() == nonce) return true;
  }
  return false;
}

void ListenerGroup::EndIdleSessionsLocked() {
  // A few sessions per call, in turn: a call costs a system call per session looked at. With
  // few sessions, at most one call per kSweepPeriodNs.
  constexpr size_t kPerCall = 8;
  constexpr uint64_t kSweepPeriodNs = 20ull * 1000 * 1000;
  const uint64_t now = wait::NowNs();
  if (sessions_.size() <= 2 * kPerCall && now - last_sweep_ns_ < kSweepPeriodNs) return;
  last_sweep_ns_ = now;
  const size_t looks = std::min(kPerCall, sessions_.size());
  for (size_t looked = 0; looked < looks && !sessions_.empty(); ++looked) {
    const size_t i = sweep_next_++ % sessions_.size();
    ServerSession &session = *sessions_[i];
    GroupEntry &entry = group_->entries[session.entry_];
    // The client is gone: the process that read its setup sees that end close and says so in
    // the group's record; the others learn it there, or end it themselves when that process is
    // gone (the client then sets up a new session).
    if (session.StillInGroup() &&
        (session.setup_socket_ >= 0
             ? !session.ClientAlive()
             : ProcessGone(entry.reader_pid.load(std::memory_order_relaxed)))) {
      entry.state.store(kEntryEnded, std::memory_order_release);
    }
    // Connections closed since may still hold it (their Socket lets go later): the session's
    // descriptors and memory go with the last of them.
    if (!session.StillInGroup() && session.open_connections.load(std::memory_order_acquire) == 0) {
      sessions_[i] = std::move(sessions_.back());
      sessions_.pop_back();
    }
  }
}

int ListenerGroup::CountClaims(uid_t uid, bool uid_known, uint64_t socket_cookie,
                               Placed *placed) const {
  int claims = 0;
  for (const auto &session : sessions_) {
    if (uid_known && session->peer_uid() != uid) continue;
    uint32_t slot = 0;
    const ServerSession::BindOutcome found = session->Find(socket_cookie, &slot);
    if (found == ServerSession::BindOutcome::kNotFound) continue;
    ++claims;
    placed->session = session;
    placed->slot = slot;
    placed->outcome = found;
  }
  return claims;
}

ListenerGroup::Placed ListenerGroup::Bind(uid_t uid, bool uid_known, uint64_t socket_cookie,
                                          uint32_t rx_limit) {
  Placed placed;
  std::lock_guard<std::mutex> guard(mutex_);
  int claims;
  {
    // One process of the group at a time takes setups from the channel and records them, so a
    // setup another process has just taken is always found in the group's record.
    SharedLockGuard group_lock(&group_->lock);
    DrainChannel();
    FetchFromGroup();
    if (group_->parked > 0) {
      // A parked setup (accepted before it was sent) has been sent by now if it is this
      // connection's: the client connects only after sending it. Read before any claim counts,
      // so that a claim in it is weighed with the others.
      DrainParked(/*drop_oldest=*/false);
      FetchFromGroup();
    }
    claims = CountClaims(uid, uid_known, socket_cookie, &placed);
  }
  if (claims > 1) {
    placed.session.reset();
    placed.outcome = ServerSession::BindOutcome::kAmbiguous;
  } else if (claims == 0 && lost_for_resources_) {
    placed.outcome = ServerSession::BindOutcome::kResources;
  } else if (placed.outcome == ServerSession::BindOutcome::kBound &&
             !placed.session->Bind(placed.slot, socket_cookie, rx_limit)) {
    placed.session.reset();
    placed.outcome = ServerSession::BindOutcome::kNotFound;
  } else if (placed.outcome == ServerSession::BindOutcome::kDeclined) {
    placed.session->Bind(placed.slot, socket_cookie, rx_limit);  // marks it seen
  }
  EndIdleSessionsLocked();
  return placed;
}

void ListenerGroup::EndIdleSessions() {
  std::lock_guard<std::mutex> guard(mutex_);
  EndIdleSessionsLocked();
}

std::vector<std::shared_ptr<ServerSession>> ListenerGroup::Sessions() {
  std::lock_guard<std::mutex> guard(mutex_);
  return sessions_;
}

}  // namespace loopfast::session
