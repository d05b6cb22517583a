// The implementation of registry.h (what it is for is said there).
#include "stat/registry.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "sys/owned_fds.h"

namespace loopfast::stat {
namespace {

struct Registry {
  int fd = -1;
  RegistryHeader *header = nullptr;
  Slot *slots = nullptr;
  std::vector<int> free_slots;  // released, reusable before the high-water mark grows
  bool failed = false;          // memfd or mapping refused: never retried
};

std::mutex registry_mutex;
Registry *registry = nullptr;  // never freed: sockets may outlive static destructors

// Maps a fresh registry; -1 and nothing mapped on failure. Keeps errno.
bool CreateMapping(Registry *out) {
  const int saved_errno = errno;
  const int fd = sys::MoveHigh(memfd_create(kRegistryMemfdName, MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (fd < 0) {
    errno = saved_errno;
    return false;
  }
  void *memory = MAP_FAILED;
  // Sealed at its size: a process that may open it (the same user, through /proc) must not be
  // able to shrink it under our mapping (our next write would die of SIGBUS).
  if (ftruncate(fd, static_cast<off_t>(kRegistryBytes)) == 0 &&
      fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0) {
    memory = mmap(nullptr, kRegistryBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  }
  if (memory == MAP_FAILED) {
    close(fd);
    errno = saved_errno;
    return false;
  }
  sys::Own(fd);
  out->fd = fd;
  out->header = static_cast<RegistryHeader *>(memory);
  out->slots = reinterpret_cast<Slot *>(static_cast<char *>(memory) + sizeof(RegistryHeader));
  RegistryHeader &header = *out->header;
  header.magic = kRegistryMagic;
  header.version = kRegistryVersion;
  header.header_bytes = sizeof(RegistryHeader);
  header.slot_bytes = sizeof(Slot);
  header.slot_capacity = kRegistrySlots;
  header.pid = getpid();
  errno = saved_errno;
  return true;
}

Registry *Get() {
  if (registry == nullptr) registry = new Registry();
  if (registry->header == nullptr && !registry->failed) {
    registry->failed = !CreateMapping(registry);
  }
  return registry->header != nullptr ? registry : nullptr;
}

}  // namespace

int AcquireSlot() {
  std::lock_guard<std::mutex> guard(registry_mutex);
  Registry *r = Get();
  if (r == nullptr) return kNoSlot;
  int slot;
  if (!r->free_slots.empty()) {
    slot = r->free_slots.back();
    r->free_slots.pop_back();
  } else {
    const uint32_t used = r->header->slots_in_use.load(std::memory_order_relaxed);
    if (used >= kRegistrySlots) return kNoSlot;
    slot = static_cast<int>(used);
    r->header->slots_in_use.store(used + 1, std::memory_order_release);
  }
  Slot &s = r->slots[slot];
  s.bytes_sent.store(0, std::memory_order_relaxed);
  s.bytes_received.store(0, std::memory_order_relaxed);
  s.asleep_to_receive.store(0, std::memory_order_relaxed);
  s.asleep_to_send.store(0, std::memory_order_relaxed);
  s.waits_spun.store(0, std::memory_order_relaxed);
  s.waits_slept.store(0, std::memory_order_relaxed);
  s.arena_bytes_in_use.store(0, std::memory_order_relaxed);
  s.connections.store(0, std::memory_order_relaxed);
  s.peer_uid = 0;
  s.peer_pid = 0;
  return slot;
}

void ReleaseSlot(int slot) {
  if (slot == kNoSlot) return;
  {
    SlotWriter writer(slot);
    if (writer.slot() != nullptr) writer.slot()->state = SlotState::kFree;
  }
  std::lock_guard<std::mutex> guard(registry_mutex);
  registry->free_slots.push_back(slot);
}

Slot *SlotAt(int slot) {
  Slot *slots = registry != nullptr ? registry->slots : nullptr;
  return slots != nullptr && slot >= 0 ? &slots[slot] : nullptr;
}

SlotWriter::SlotWriter(int slot) : slot_(SlotAt(slot)) {
  if (slot_ == nullptr) return;
  slot_->sequence.fetch_add(1, std::memory_order_acq_rel);  // odd: being rewritten
  std::atomic_thread_fence(std::memory_order_release);
}

SlotWriter::~SlotWriter() {
  if (slot_ != nullptr) slot_->sequence.fetch_add(1, std::memory_order_release);
}

namespace {
void CopyForChild() {
  if (registry == nullptr || registry->header == nullptr) return;
  Registry copy;
  if (!CreateMapping(&copy)) {
    // The child keeps writing to nothing of the parent's: its sockets vanish from stat.
    registry->failed = true;
  } else {
    const uint32_t used = registry->header->slots_in_use.load(std::memory_order_relaxed);
    std::memcpy(static_cast<void *>(copy.slots), registry->slots, sizeof(Slot) * used);
    copy.header->slots_in_use.store(used, std::memory_order_release);
    copy.free_slots = registry->free_slots;
  }
  munmap(registry->header, kRegistryBytes);
  sys::CloseOwned(registry->fd);
  if (registry->failed) {
    // Slots stay addressable (sockets hold indexes): give them private, unpublished memory.
    void *memory = mmap(nullptr, kRegistryBytes, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    registry->fd = -1;
    registry->header = memory == MAP_FAILED ? nullptr : static_cast<RegistryHeader *>(memory);
    registry->slots =
        memory == MAP_FAILED
            ? nullptr
            : reinterpret_cast<Slot *>(static_cast<char *>(memory) + sizeof(RegistryHeader));
    return;
  }
  registry->fd = copy.fd;
  registry->header = copy.header;
  registry->slots = copy.slots;
  registry->free_slots = std::move(copy.free_slots);
}
}  // namespace

void BeforeFork() { registry_mutex.lock(); }

void AfterFork(bool in_child) {
  if (in_child) CopyForChild();
  registry_mutex.unlock();
}

int RegistryFdForTesting() { return registry != nullptr ? registry->fd : -1; }

}  // namespace loopfast::stat
