// libFuzzer target for everything loopfast reads that another party wrote: session setups (any
// local process can send them to a listener's channel), saved SYNs, the session's shared memory
// (the peer writes it and may be hostile: claims, slots, flags, ring positions, windows, area
// offsets), and the text inputs (policy file, environment lists, escaping). The first byte
// picks the input; the rest is it.
//
//   scripts/fuzz.sh --runs N | --seconds S      (builds with clang, keeps fuzz/corpus/)
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/escape.h"
#include "config/policy.h"
#include "fast/fast_connection.h"
#include "session/arena_layout.h"
#include "session/markers.h"
#include "session/messages.h"
#include "session/test_arena.h"
#include "stat/registry_reader.h"

namespace {

using namespace loopfast;

void FuzzMessages(const uint8_t *data, size_t size) {
  (void)session::IsUsableSetup(data, size);
  (void)session::ParseSavedSyn(data, static_cast<unsigned>(size));
}

// One session between two "processes" (both views in this one), made once; each input then
// scribbles over the claim index, a slot (its header, both ends' flags, both rings' controls
// and windows) and the ring's area offsets, as a hostile peer could at any moment, and both
// ends use it: the claim lookup, every data call (never blocking), readiness, close.
session::TestArena &Arena() {
  static auto *arena = new session::TestArena();
  return *arena;
}

void FuzzSession(const uint8_t *data, size_t size) {
  session::TestArena &arena = Arena();
  const session::ArenaView &view = arena.client->arena();
  const uint32_t index = arena.BoundSlot(3, session::kDefaultRingBytes);
  auto server = FastConnection::Open(arena.server, index, session::kDefaultRingBytes);
  auto client = FastConnection::Open(arena.client, index, 1 << 20);
  if (!server.ok() || !client.ok()) return;
  // Some honest traffic first, so that the scribbling lands on a ring in use.
  uint8_t buffer[8192];
  std::memset(buffer, 0x5a, sizeof buffer);
  struct iovec out = {buffer, size % sizeof buffer};
  SendCall nonblocking_send;
  nonblocking_send.nonblocking = true;
  (void)client.value()->Send(-1, &out, 1, nonblocking_send);
  // The input: first the slot (its 1.5 KiB), then the claim index around the cookie's home.
  session::Slot *slot = view.slot(index);
  const size_t into_slot = std::min<size_t>(size, sizeof(session::Slot));
  std::memcpy(static_cast<void *>(slot), data, into_slot);
  data += into_slot;
  size -= into_slot;
  const uint64_t cookie = slot->header.socket_cookie.load();
  const uint32_t home = session::ClaimHome(cookie);
  for (uint32_t i = 0; size >= sizeof(session::ClaimEntry) && i < session::kMaxClaimProbes; ++i) {
    std::memcpy(static_cast<void *>(&view.claims()[(home + i) & (session::kClaimEntries - 1)]),
                data, sizeof(session::ClaimEntry));
    data += sizeof(session::ClaimEntry);
    size -= sizeof(session::ClaimEntry);
  }
  uint32_t found = 0;
  (void)session::FindClaim(view, cookie, &found);
  for (FastConnection *end : {server.value().get(), client.value().get()}) {
    RecvCall peek;
    peek.nonblocking = true;
    peek.peek = true;
    struct iovec in = {buffer, sizeof buffer};
    (void)end->Recv(-1, &in, 1, peek);
    RecvCall read;
    read.nonblocking = true;
    (void)end->Recv(-1, &in, 1, read);
    struct iovec again = {buffer, sizeof buffer};
    (void)end->Send(-1, &again, 1, nonblocking_send);
    (void)end->LookNow(-1);
    (void)end->ReadableBytes();
    (void)end->UnsentBytes();
    end->PrepareToSleep(true, true);
    (void)end->WakeBell();
  }
  // Both ends let go; the slot's memory is given back, whatever the peer wrote.
  (void)server.value()->Close(-1);
  (void)client.value()->Close(-1);
}

void FuzzText(const uint8_t *data, size_t size) {
  const std::string text(reinterpret_cast<const char *>(data), size);
  Policy policy;
  std::string error;
  (void)ParsePolicyText(text, &policy, &error);
  std::vector<PortRange> ports;
  std::vector<AddressRange> addresses;
  (void)ParsePortList(text.c_str(), &ports);
  (void)ParseAddressList(text.c_str(), &addresses);
  (void)EscapeText(text);
  (void)JsonQuoted(text);
}

// A statistics registry as any process of the user could leave it, read by `loopfast stat`.
// The input overwrites a well-formed registry from its start (aligned copy: the reader maps
// memory, so alignment holds there too).
void FuzzRegistry(const uint8_t *data, size_t size) {
  std::vector<uint64_t> memory(
      (sizeof(loopfast::stat::RegistryHeader) + 8 * sizeof(loopfast::stat::Slot)) / 8 + 1);
  auto *header = reinterpret_cast<loopfast::stat::RegistryHeader *>(memory.data());
  header->magic = loopfast::stat::kRegistryMagic;
  header->version = loopfast::stat::kRegistryVersion;
  header->header_bytes = sizeof(loopfast::stat::RegistryHeader);
  header->slot_bytes = sizeof(loopfast::stat::Slot);
  header->slot_capacity = 8;
  header->pid = 1;
  header->slots_in_use.store(8);
  std::memcpy(memory.data(), data, std::min(size, memory.size() * 8));
  (void)loopfast::stat::ReadRegistry(memory.data(), memory.size() * 8);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  ++data;
  --size;
  switch (selector % 4) {
    case 0:
      FuzzMessages(data, size);
      break;
    case 1:
      FuzzSession(data, size);
      break;
    case 3:
      FuzzRegistry(data, size);
      break;
    default:
      FuzzText(data, size);
      break;
  }
  return 0;
}
