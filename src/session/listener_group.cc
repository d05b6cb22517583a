#include "session/listener_group.h"

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
#include "wait/shared_lock.h"

namespace loopfast::session {

inline constexpr uint32_t kMaxGroupSessions = 4096;

enum EntryState : uint32_t { kEntryFree = 0, kEntryLive = 1, kEntryEnded = 2 };

// One session as the group knows it.
struct GroupEntry {
  std::atomic<uint32_t> state;  // EntryState
  uint32_t uid;
  uint32_t pid;
  std::atomic<int32_t> record;  // its record in the depot, -1 when not deposited
  uint64_t nonce;
  uint8_t pad[kCacheLine - 24];
};
static_assert(sizeof(GroupEntry) == kCacheLine);

// Shared by the processes of one listener group (family memory: fork shares it, clients never
// see it). Mapped with MAP_NORESERVE: only what is touched costs memory.
struct GroupMemory {
  std::atomic<uint32_t> lock;     // SharedLock between the group's processes
  std::atomic<uint32_t> holders;  // processes holding the listener (fork adds, close drops)
  std::atomic<uint32_t> records;  // records in the depot so far
  std::atomic<uint32_t> entries_used;
  uint8_t pad[kCacheLine - 16];
  GroupEntry entries[kMaxGroupSessions];
  RegionAllocatorState allocators[kMaxGroupSessions];  // each session's server region
};

// What the depot holds per session, with its descriptors (messages.h's SetupFd order).
struct DepotRecord {
  uint64_t nonce;
  uint32_t entry;
  uint32_t reserved;
};
static_assert(sizeof(DepotRecord) == 16);

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
                             std::shared_ptr<GroupMemory> group)
    : Session(kServerSide, arena, nonce, group_bell, client_bell),
      setup_socket_(setup_socket),
      entry_(entry),
      group_(std::move(group)) {
  peer_uid_ = uid;
  peer_pid_ = pid;
}

ServerSession::~ServerSession() {
  sys::CloseOwned(own_bell_);
  sys::CloseOwned(peer_bell_);
  sys::CloseOwned(setup_socket_);
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
  while (state == kSlotClaimed || state == kSlotConnected) {
    if (slot->header.state.compare_exchange_weak(state, kSlotBound, std::memory_order_acq_rel)) {
      // Checked again after the bind: a client that reused the slot meanwhile is not ours.
      if (slot->header.socket_cookie.load(std::memory_order_acquire) != socket_cookie) return false;
      SideBlock &own = slot->side[kServerSide];
      own.holders.store(1, std::memory_order_relaxed);
      own.pid = static_cast<uint32_t>(getpid());
      own.rx_limit.store(rx_limit, std::memory_order_release);
      slot->header.bound_by.store(static_cast<uint32_t>(getpid()), std::memory_order_relaxed);
      open_connections.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
  }
  if (state == kSlotDeclined) {
    // Seen: the client may give the slot back.
    slot->header.bound_by.store(static_cast<uint32_t>(getpid()), std::memory_order_release);
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

// ---- ListenerGroup ----

ListenerGroup::ListenerGroup(uint16_t port, int channel, std::shared_ptr<GroupMemory> group,
                             int depot_rx, int depot_tx)
    : port_(port),
      channel_(channel),
      group_(std::move(group)),
      depot_rx_(depot_rx),
      depot_tx_(depot_tx) {}

ListenerGroup::~ListenerGroup() {
  sessions_.clear();
  sys::CloseOwned(channel_);
  sys::CloseOwned(depot_rx_);
  sys::CloseOwned(depot_tx_);
  group_->holders.fetch_sub(1, std::memory_order_acq_rel);
}

Result<std::shared_ptr<ListenerGroup>> ListenerGroup::Open(uint16_t port) {
  const int channel =
      sys::TakeHigh(sys::Real().socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (channel < 0) return Errno{errno};
  struct sockaddr_un address;
  const socklen_t length = ChannelAddress(port, &address);
  if (sys::Real().bind(channel, reinterpret_cast<struct sockaddr *>(&address), length) != 0 ||
      sys::Real().listen(channel, 4096) != 0) {
    const int error = errno;
    sys::Real().close(channel);
    return Errno{error};
  }
  std::shared_ptr<GroupMemory> group = MapGroupMemory();
  int depot[2] = {-1, -1};
  if (group == nullptr ||
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, depot) != 0) {
    const int error = errno;
    sys::Real().close(channel);
    return Errno{error};
  }
  group->holders.store(1, std::memory_order_relaxed);
  depot[0] = sys::TakeHigh(depot[0]);
  depot[1] = sys::TakeHigh(depot[1]);
  if (depot[0] < 0 || depot[1] < 0) {
    if (depot[0] >= 0) sys::Real().close(depot[0]);
    if (depot[1] >= 0) sys::Real().close(depot[1]);
    sys::Real().close(channel);
    return Errno{EMFILE};
  }
  sys::Own(channel);
  sys::Own(depot[0]);
  sys::Own(depot[1]);
  return std::shared_ptr<ListenerGroup>(
      new ListenerGroup(port, channel, std::move(group), depot[0], depot[1]));
}

void ListenerGroup::AddHolder() { group_->holders.fetch_add(1, std::memory_order_acq_rel); }

void ListenerGroup::DropHolder() { group_->holders.fetch_sub(1, std::memory_order_acq_rel); }

std::shared_ptr<ServerSession> ListenerGroup::MakeSession(const int *fds, uint32_t entry,
                                                          uint64_t nonce, uid_t uid, pid_t pid,
                                                          int setup_socket) {
  // The arena: a sealed memfd of exactly the layout's size, or nothing.
  struct stat info;
  const int seals = sys::Real().fcntl(fds[kSetupArenaFd], F_GET_SEALS, 0);
  if (fstat(fds[kSetupArenaFd], &info) != 0 || !S_ISREG(info.st_mode) || seals < 0 ||
      (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW) ||
      static_cast<uint64_t>(info.st_size) != kArenaBytes) {
    errno = EPROTO;
    return nullptr;
  }
  void *arena = mmap(nullptr, kArenaBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
                     fds[kSetupArenaFd], 0);
  if (arena == MAP_FAILED) return nullptr;
  if (!ValidateArena(arena, kArenaBytes)) {
    munmap(arena, kArenaBytes);
    errno = EPROTO;
    return nullptr;
  }
  // The bells must be eventfds: writing to anything else could be a file of the client's.
  for (int i : {kSetupClientBellFd, kSetupGroupBellFd}) {
    char link[64];
    char path[64];
    std::snprintf(path, sizeof path, "/proc/self/fd/%d", fds[i]);
    const ssize_t n = readlink(path, link, sizeof link - 1);
    if (n < 0 || std::strncmp(link, "anon_inode:[eventfd]", static_cast<size_t>(n)) != 0) {
      munmap(arena, kArenaBytes);
      errno = EPROTO;
      return nullptr;
    }
  }
  const int client_bell = sys::TakeHigh(sys::Real().fcntl(fds[kSetupClientBellFd], F_DUPFD_CLOEXEC, 0));
  const int group_bell = sys::TakeHigh(sys::Real().fcntl(fds[kSetupGroupBellFd], F_DUPFD_CLOEXEC, 0));
  if (client_bell < 0 || group_bell < 0) {
    if (client_bell >= 0) sys::Real().close(client_bell);
    if (group_bell >= 0) sys::Real().close(group_bell);
    munmap(arena, kArenaBytes);
    return nullptr;
  }
  sys::Own(client_bell);
  sys::Own(group_bell);
  std::shared_ptr<ServerSession> session(new ServerSession(
      arena, nonce, group_bell, client_bell, setup_socket, entry, uid, pid, group_));
  session->SetAllocatorState(&group_->allocators[entry]);
  session->listener_group_ = weak_from_this();
  return session;
}

void ListenerGroup::Register(const int *fds, uint64_t nonce, uid_t uid, pid_t pid,
                             int setup_socket) {
  SharedLockGuard lock(&group_->lock);
  // A free entry (or one whose session ended and was never deposited).
  uint32_t entry = kMaxGroupSessions;
  const uint32_t used = group_->entries_used.load(std::memory_order_relaxed);
  for (uint32_t i = 0; i < used && entry == kMaxGroupSessions; ++i) {
    GroupEntry &candidate = group_->entries[i];
    const uint32_t state = candidate.state.load(std::memory_order_relaxed);
    if (state == kEntryFree ||
        (state == kEntryEnded && candidate.record.load(std::memory_order_relaxed) < 0)) {
      entry = i;
    }
  }
  if (entry == kMaxGroupSessions && used < kMaxGroupSessions) {
    entry = used;
    group_->entries_used.store(used + 1, std::memory_order_relaxed);
  }
  if (entry == kMaxGroupSessions) {
    sys::CloseOwned(setup_socket);
    return;  // its connections will be refused loudly (reset): the group is full
  }
  std::memset(static_cast<void *>(&group_->allocators[entry]), 0, sizeof(RegionAllocatorState));
  std::shared_ptr<ServerSession> session = MakeSession(fds, entry, nonce, uid, pid, setup_socket);
  if (!session) {
    sys::CloseOwned(setup_socket);  // an unusable arena or bells: its connections are reset
    lost_for_resources_ = lost_for_resources_ || errno == ENOMEM || errno == EMFILE;
    return;
  }
  GroupEntry &record = group_->entries[entry];
  record.uid = static_cast<uint32_t>(uid);
  record.pid = static_cast<uint32_t>(pid);
  record.nonce = nonce;
  record.record.store(-1, std::memory_order_relaxed);
  // Other processes hold the listener: leave copies of the descriptors for them.
  if (group_->holders.load(std::memory_order_acquire) > 1) {
    const DepotRecord deposit = {nonce, entry, 0};
    const uint32_t index = group_->records.load(std::memory_order_relaxed);
    if (SendMessage(depot_tx_, &deposit, sizeof deposit, fds, kSetupFds).ok()) {
      group_->records.store(index + 1, std::memory_order_relaxed);
      record.record.store(static_cast<int32_t>(index), std::memory_order_relaxed);
    }
  }
  record.state.store(kEntryLive, std::memory_order_release);
  sessions_.push_back(std::move(session));
}

void ListenerGroup::DrainChannel() {
  for (;;) {
    const int connection = sys::Real().accept4(channel_, nullptr, nullptr,
                                               SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (connection < 0) {
      // EAGAIN: none waiting. Out of descriptors: a setup may wait there, unread.
      if (errno == EMFILE || errno == ENFILE) lost_for_resources_ = true;
      return;
    }
    const int setup_socket = sys::MoveHigh(connection);
    sys::Own(setup_socket);
    struct ucred sender {};
    socklen_t sender_length = sizeof sender;
    union {
      SessionSetup setup;
      char bytes[64];
    } message;
    int fds[kMaxMessageFds];
    int fd_count = 0;
    Result<size_t> got = Errno{EPROTO};
    if (sys::Real().getsockopt(setup_socket, SOL_SOCKET, SO_PEERCRED, &sender, &sender_length) ==
        0) {
      got = ReceiveMessage(setup_socket, &message, sizeof message, fds, &fd_count,
                           /*blocking=*/false);
    }
    if (!got.ok() && got.error() == EPROTO && fd_count == 0) {
      // Descriptors cut off (MSG_CTRUNC): most likely this process is out of descriptors.
      lost_for_resources_ = true;
    }
    if (!got.ok() || fd_count != kSetupFds || !IsUsableSetup(&message, got.value())) {
      // Forged, malformed, or silent (a setup is sent in the same breath as the connect):
      // dropped at once, never waited for.
      for (int i = 0; i < fd_count; ++i) sys::Real().close(fds[i]);
      sys::CloseOwned(setup_socket);
      continue;
    }
    Register(fds, message.setup.nonce, sender.uid, sender.pid, setup_socket);
    for (int i = 0; i < fd_count; ++i) sys::Real().close(fds[i]);
  }
}

void ListenerGroup::FetchFromGroup(uid_t uid) {
  const uint32_t used = group_->entries_used.load(std::memory_order_acquire);
  for (uint32_t i = 0; i < used; ++i) {
    GroupEntry &entry = group_->entries[i];
    if (entry.state.load(std::memory_order_acquire) != kEntryLive || entry.uid != uid) continue;
    const int32_t record = entry.record.load(std::memory_order_relaxed);
    if (record < 0) continue;
    bool known = false;
    for (const auto &session : sessions_) known = known || session->entry_ == i;
    if (known) continue;
    DepotRecord deposit{};
    int fds[kMaxMessageFds];
    int fd_count = 0;
    {
      // The peek offset is the socket's, shared by the group: one reader at a time.
      SharedLockGuard lock(&group_->lock);
      const int offset = record * static_cast<int>(sizeof(DepotRecord));
      if (sys::Real().setsockopt(depot_rx_, SOL_SOCKET, SO_PEEK_OFF, &offset, sizeof offset) !=
          0) {
        continue;
      }
      Result<size_t> got = ReceiveMessage(depot_rx_, &deposit, sizeof deposit, fds, &fd_count,
                                          /*blocking=*/false, MSG_PEEK);
      if (!got.ok()) continue;
    }
    if (fd_count == kSetupFds && deposit.nonce == entry.nonce && deposit.entry == i) {
      std::shared_ptr<ServerSession> session =
          MakeSession(fds, i, entry.nonce, entry.uid, static_cast<pid_t>(entry.pid), -1);
      if (session) sessions_.push_back(std::move(session));
    }
    for (int f = 0; f < fd_count; ++f) sys::Real().close(fds[f]);
  }
}

void ListenerGroup::EndIdleSessionsLocked() {
  // A few sessions per call, in turn: a call costs a system call per session looked at.
  constexpr size_t kPerCall = 8;
  const size_t looks = std::min(kPerCall, sessions_.size());
  for (size_t looked = 0; looked < looks && !sessions_.empty(); ++looked) {
    const size_t i = sweep_next_++ % sessions_.size();
    ServerSession &session = *sessions_[i];
    GroupEntry &entry = group_->entries[session.entry_];
    // The client is gone: the process that read its setup sees that end close and says so in
    // the group's record; the others learn it there.
    if (session.setup_socket_ >= 0 && !session.ClientAlive()) {
      entry.state.store(kEntryEnded, std::memory_order_release);
    }
    const bool client_gone = entry.state.load(std::memory_order_acquire) != kEntryLive;
    // Connections closed since may still hold it (their Socket lets go later): the session's
    // descriptors and memory go with the last of them.
    if (client_gone && session.open_connections.load(std::memory_order_acquire) == 0) {
      sessions_[i] = std::move(sessions_.back());
      sessions_.pop_back();
    }
  }
}

ListenerGroup::Placed ListenerGroup::Bind(uid_t uid, uint64_t socket_cookie, uint32_t rx_limit) {
  Placed placed;
  std::lock_guard<std::mutex> guard(mutex_);
  DrainChannel();
  FetchFromGroup(uid);
  int claims = 0;
  for (const auto &session : sessions_) {
    if (session->peer_uid() != uid) continue;
    uint32_t slot = 0;
    const ServerSession::BindOutcome found = session->Find(socket_cookie, &slot);
    if (found == ServerSession::BindOutcome::kNotFound) continue;
    ++claims;
    placed.session = session;
    placed.slot = slot;
    placed.outcome = found;
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
