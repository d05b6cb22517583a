// The connecting half of a session (client_session.h): finding the listener's channel, making
// and sealing the arena, sending the setup, and the sessions this process has open.
#include "session/client_session.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <utility>

#include "session/messages.h"
#include "session/peer_lookup.h"
#include "session/unix_messages.h"
#include "sys/family_memory.h"
#include "sys/owned_fds.h"
#include "sys/real_calls.h"
#include "sys/unique_fd.h"
#include "sys/unique_mapping.h"
#include "wait/bell.h"
#include "wait/sleep.h"

namespace loopfast::session {

// Shared by this process and its forked children (family memory), never by the peer.
struct ClientSession::FamilyState {
  std::atomic<uint64_t> slots_used[kMaxSlots / 64];
  RegionAllocatorState region;
};

namespace {

std::mutex registry_mutex;
// Open sessions by (port, user). Never destroyed: used until the last exit handler.
auto &Registry() {
  static auto *sessions = new std::map<std::pair<uint16_t, uid_t>, std::shared_ptr<ClientSession>>;
  return *sessions;
}

uint16_t PortOf(const struct sockaddr *address) {
  if (address->sa_family == AF_INET) {
    return ntohs(reinterpret_cast<const struct sockaddr_in *>(address)->sin_port);
  }
  return ntohs(reinterpret_cast<const struct sockaddr_in6 *>(address)->sin6_port);
}

uint64_t RandomNonce() {
  uint64_t nonce = 0;
  if (getrandom(&nonce, sizeof nonce, GRND_NONBLOCK) != sizeof nonce) {
    nonce = wait::NowNs() * 0x9e3779b97f4a7c15ULL ^ uint64_t(getpid());
  }
  return nonce | 1;
}

// The channel of `port`, connected, when its owner is the user of the TCP listener there.
int ConnectChannel(const struct sockaddr *destination, NoSession *why, struct ucred *holder) {
  Result<SocketFacts> listener = LookupTcpListener(destination);
  if (!listener.ok()) {
    *why = NoSession::kNoListener;
    return -1;
  }
  sys::UniqueFd channel(
      sys::TakeHigh(sys::Real().socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)));
  if (!channel.valid()) {
    *why = NoSession::kResources;
    return -1;
  }
  struct sockaddr_un address;
  const socklen_t length = ChannelAddress(PortOf(destination), &address);
  if (sys::Real().connect(channel.get(), reinterpret_cast<struct sockaddr *>(&address), length) !=
      0) {
    *why = NoSession::kNoChannel;
    return -1;
  }
  // An abstract name has no owner: whoever bound it first has it. Trust it only when it is the
  // TCP listener's user (any process of that user may listen there anyway).
  struct ucred owner {};
  socklen_t owner_length = sizeof owner;
  if (sys::Real().getsockopt(channel.get(), SOL_SOCKET, SO_PEERCRED, &owner, &owner_length) != 0 ||
      owner.uid != listener.value().uid) {
    *why = NoSession::kNotListeners;
    return -1;
  }
  *holder = owner;
  const int owned = channel.Release();
  sys::Own(owned);
  return owned;
}

}  // namespace

ClientSession::ClientSession(void *arena, uint64_t nonce, int own_bell, int group_bell, int channel,
                             FamilyState *family, uint16_t port, uid_t uid)
    : Session(kClientSide, arena, nonce, own_bell, group_bell),
      channel_(channel),
      family_(family),
      port_(port),
      uid_(uid) {
  SetAllocatorState(&family_->region);
}

ClientSession::~ClientSession() {
  sys::CloseOwned(channel_);
  sys::CloseOwned(own_bell_);
  sys::CloseOwned(peer_bell_);
  sys::UnmapFamilyShared(family_, sizeof(FamilyState));
}

Result<std::shared_ptr<ClientSession>> ClientSession::Open(const struct sockaddr *destination,
                                                           uid_t uid, NoSession *why) {
  *why = NoSession::kResources;
  struct ucred holder {};
  const int channel = ConnectChannel(destination, why, &holder);
  if (channel < 0) return Errno{ENOENT};
  // The session's own bell (a group that silences it silences only its own connections).
  const int own_bell = wait::CreateBell();
  auto fail = [&](int error) -> Result<std::shared_ptr<ClientSession>> {
    sys::CloseOwned(channel);
    sys::CloseOwned(own_bell);
    *why = NoSession::kResources;
    return Errno{error};
  };
  if (own_bell < 0) return fail(errno);
  sys::UniqueFd memory_fd(
      static_cast<int>(memfd_create("loopfast-session", MFD_CLOEXEC | MFD_ALLOW_SEALING)));
  if (!memory_fd.valid()) return fail(errno);
  // Sealed: neither side can shrink (or grow) the memory under the other, which would turn the
  // other's next access into SIGBUS. The size is fixed and sparse: untouched pages cost nothing.
  sys::UniqueMapping arena;
  if (ftruncate(memory_fd.get(), static_cast<off_t>(kArenaBytes)) == 0 &&
      sys::Real().fcntl(memory_fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) ==
          0) {
    arena = sys::UniqueMapping(mmap(nullptr, kArenaBytes, PROT_READ | PROT_WRITE,
                                    MAP_SHARED | MAP_NORESERVE, memory_fd.get(), 0),
                               kArenaBytes);
  }
  if (!arena.valid()) return fail(errno);
  auto *family = static_cast<FamilyState *>(sys::MapFamilyShared(sizeof(FamilyState)));
  const int group_bell = wait::CreateBell();
  if (family == nullptr || group_bell < 0) {
    const int error = errno;
    sys::UnmapFamilyShared(family, sizeof(FamilyState));
    sys::CloseOwned(group_bell);
    return fail(error);
  }
  const uint64_t nonce = RandomNonce();
  InitializeArena(arena.get(), nonce, static_cast<uint32_t>(getpid()));
  const SessionSetup setup = {MakeHeader(Kind::kSessionSetup), kArenaVersion, 0, kArenaBytes,
                              nonce};
  const int fds[kSetupFds] = {memory_fd.get(), own_bell, group_bell};
  const Status sent = SendMessage(channel, &setup, sizeof setup, fds, kSetupFds);
  memory_fd.Reset();  // the mapping keeps the memory; no descriptor names it here
  std::shared_ptr<ClientSession> session(new ClientSession(
      arena.Release(), nonce, own_bell, group_bell, channel, family, PortOf(destination), uid));
  session->peer_pid_ = holder.pid;  // the listener's process (the group's first)
  session->peer_uid_ = holder.uid;
  session->PublishStat(PortOf(destination));
  if (!sent.ok()) {
    *why = NoSession::kNoChannel;
    return Errno{sent.error()};
  }
  return session;
}

ClientSession::Opened ClientSession::For(const struct sockaddr *destination, uid_t uid) {
  Opened opened;
  const std::pair<uint16_t, uid_t> key = {PortOf(destination), uid};
  std::lock_guard<std::mutex> guard(registry_mutex);
  auto &sessions = Registry();
  // Sessions whose group is gone and that no connection uses any more let go of their memory
  // and descriptors (a few looked at per call: each look is a system call).
  constexpr int kSweptPerCall = 4;
  static size_t sweep_next = 0;
  for (int looked = 0; looked < kSweptPerCall && !sessions.empty(); ++looked) {
    auto it = sessions.begin();
    std::advance(it, static_cast<long>(sweep_next++ % sessions.size()));
    if (it->first != key && it->second->open_connections.load(std::memory_order_acquire) == 0 &&
        !it->second->GroupAlive()) {
      sessions.erase(it);
    }
  }
  auto found = sessions.find(key);
  if (found != sessions.end()) {
    if (found->second->GroupAlive()) {
      opened.session = found->second;
      return opened;
    }
    // The group is gone (the server restarted): connections of the old session go on as long as
    // their ends live; new ones need a new session.
    sessions.erase(found);
  }
  // A session is bound to the user the group sees on its channel: this process's.
  if (geteuid() != uid) {
    opened.why = NoSession::kOtherOwner;
    return opened;
  }
  Result<std::shared_ptr<ClientSession>> made = Open(destination, uid, &opened.why);
  if (!made.ok()) return opened;
  sessions[key] = made.value();
  opened.session = std::move(made.value());
  return opened;
}

bool ClientSession::GroupAlive() const {
  char byte;
  const int saved_errno = errno;
  const ssize_t n = sys::Real().recv(channel_, &byte, 1, MSG_DONTWAIT | MSG_PEEK);
  errno = saved_errno;
  return n != 0;  // 0: end of file, every process of the group closed its end
}

Result<uint32_t> ClientSession::Claim(uint64_t socket_cookie, uint32_t rx_limit) {
  if (socket_cookie == 0) return Errno{EINVAL};
  // A free slot (the bitmap is shared with forked children of this process).
  uint32_t index = kMaxSlots;
  for (uint32_t w = 0; w < kMaxSlots / 64 && index == kMaxSlots; ++w) {
    uint64_t bits = family_->slots_used[w].load(std::memory_order_relaxed);
    while (bits != ~uint64_t{0}) {
      const int bit = __builtin_ctzll(~bits);
      if (family_->slots_used[w].compare_exchange_weak(bits, bits | (uint64_t{1} << bit),
                                                       std::memory_order_acquire)) {
        index = w * 64 + static_cast<uint32_t>(bit);
        break;
      }
    }
  }
  if (index == kMaxSlots) index = ReclaimDeclined();
  if (index == kMaxSlots) return Errno{ENOSPC};
  Slot *slot = arena_.slot(index);
  // Fresh ends and rings; the state comes last, with the socket it is for.
  for (SideBlock &side : slot->side) {
    side.flags.store(0, std::memory_order_relaxed);
    side.holders.store(0, std::memory_order_relaxed);
    side.pid = 0;
    side.rx_limit.store(0, std::memory_order_relaxed);
    side.capture_file.store(0, std::memory_order_relaxed);
  }
  slot->side[kClientSide].holders.store(1, std::memory_order_relaxed);
  slot->side[kClientSide].pid = static_cast<uint32_t>(sys::ThisProcess());
  slot->side[kClientSide].rx_limit.store(rx_limit, std::memory_order_relaxed);
  SpscRing::Initialize(&slot->ring[0], kSlotWindowBytes);
  SpscRing::Initialize(&slot->ring[1], kSlotWindowBytes);
  slot->header.bound_by.store(0, std::memory_order_relaxed);
  slot->header.handshake_capture.store(0, std::memory_order_relaxed);
  slot->header.generation.fetch_add(1, std::memory_order_relaxed);
  slot->header.socket_cookie.store(socket_cookie, std::memory_order_relaxed);
  slot->header.state.store(kSlotClaimed, std::memory_order_release);
  // The index: the first entry that is empty or names a slot no longer claimed for it.
  const uint32_t home = ClaimHome(socket_cookie);
  for (uint32_t probe = 0; probe < kMaxClaimProbes; ++probe) {
    ClaimEntry &entry = arena_.claims()[(home + probe) & (kClaimEntries - 1)];
    const uint64_t named = entry.socket_cookie.load(std::memory_order_relaxed);
    if (named != 0) {
      const uint32_t other = entry.slot.load(std::memory_order_relaxed);
      const Slot *claimed = other < kMaxSlots ? arena_.slot(other) : nullptr;
      const uint32_t state =
          claimed != nullptr ? claimed->header.state.load(std::memory_order_relaxed) : kSlotFree;
      if (claimed != nullptr && (state == kSlotClaimed || state == kSlotConnected) &&
          claimed->header.socket_cookie.load(std::memory_order_relaxed) == named) {
        continue;  // a live claim
      }
    }
    // Slot first, then the socket it is for (release): a reader that sees the socket sees the
    // slot, and checks the slot's own header anyway.
    entry.slot.store(index, std::memory_order_relaxed);
    entry.socket_cookie.store(socket_cookie, std::memory_order_release);
    open_connections.fetch_add(1, std::memory_order_relaxed);
    UpdateStat();
    return index;
  }
  slot->header.state.store(kSlotFree, std::memory_order_relaxed);
  SlotDone(index);
  return Errno{ENOSPC};
}

void ClientSession::Connected(uint32_t slot) {
  uint32_t expected = kSlotClaimed;
  arena_.slot(slot)->header.state.compare_exchange_strong(expected, kSlotConnected,
                                                          std::memory_order_acq_rel);
}

bool ClientSession::Decline(uint32_t slot) {
  std::atomic<uint32_t> &state = arena_.slot(slot)->header.state;
  uint32_t current = state.load(std::memory_order_acquire);
  arena_.slot(slot)->header.declined_at_s = static_cast<uint32_t>(wait::NowNs() / 1000000000u);
  while (current == kSlotClaimed || current == kSlotConnected) {
    if (state.compare_exchange_weak(current, kSlotDeclined, std::memory_order_acq_rel)) break;
  }
  if (current == kSlotBound) return false;
  // An accept may still look at the slot (its SYN carried the marker): the slot stays declined
  // rather than free, so that the accepting side finds it and takes kernel TCP too. It is
  // given back with the session, or taken back when the session runs out of slots.
  open_connections.fetch_sub(1, std::memory_order_relaxed);
  UpdateStat();
  return true;
}

uint32_t ClientSession::ReclaimDeclined() {
  // Declined slots whose connection an accept has seen, or that waited a minute (an accept that
  // comes later finds no claim and resets the connection): the oldest first.
  constexpr uint32_t kPatienceS = 60;
  const uint32_t now_s = static_cast<uint32_t>(wait::NowNs() / 1000000000u);
  uint32_t best = kMaxSlots;
  uint32_t best_age = 0;
  for (uint32_t i = 0; i < kMaxSlots; ++i) {
    const Slot *slot = arena_.slot(i);
    if (slot->header.state.load(std::memory_order_acquire) != kSlotDeclined) continue;
    const uint32_t age = now_s - slot->header.declined_at_s;
    const bool seen = slot->header.bound_by.load(std::memory_order_relaxed) != 0;
    if ((seen || age >= kPatienceS) && (best == kMaxSlots || age > best_age)) {
      best = i;
      best_age = age;
    }
  }
  if (best == kMaxSlots) return kMaxSlots;
  uint32_t declined = kSlotDeclined;
  // Taken by this claim: its bit in the family's map stays set.
  if (!arena_.slot(best)->header.state.compare_exchange_strong(declined, kSlotFree,
                                                               std::memory_order_acq_rel)) {
    return kMaxSlots;
  }
  return best;
}

void ClientSession::Abandon(uint32_t slot) {
  arena_.slot(slot)->header.state.store(kSlotFree, std::memory_order_release);
  open_connections.fetch_sub(1, std::memory_order_relaxed);
  UpdateStat();
  SlotDone(slot);
}

void ClientSession::SlotDone(uint32_t slot) {
  arena_.slot(slot)->header.state.store(kSlotFree, std::memory_order_release);
  family_->slots_used[slot / 64].fetch_and(~(uint64_t{1} << (slot % 64)),
                                           std::memory_order_release);
}

void ClientSession::Idle() {
  // Looked at most every kIdleLookNs (a look is a system call); the next connection to that
  // port, and other ports' connections, look too.
  constexpr uint64_t kIdleLookNs = 20ull * 1000 * 1000;
  const uint64_t now = wait::NowNs();
  if (now - last_idle_look_ns_.load(std::memory_order_relaxed) < kIdleLookNs) return;
  last_idle_look_ns_.store(now, std::memory_order_relaxed);
  if (GroupAlive()) return;  // kept for the next connection to that listener
  std::lock_guard<std::mutex> guard(registry_mutex);
  auto &sessions = Registry();
  auto found = sessions.find({port_, uid_});
  if (found != sessions.end() && found->second.get() == this) sessions.erase(found);
}

void ClientSession::ForgetAllInChild() {}

}  // namespace loopfast::session
