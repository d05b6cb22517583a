// libFuzzer target for everything loopfast reads that another party wrote: rendezvous messages
// (any local process can send them), the shared-memory header and ring positions (the peer
// writes them, and a peer may be hostile), and the text inputs (policy file, environment lists,
// /proc links). The first byte picks the input; the rest is it.
//
//   scripts/fuzz.sh --runs N | --seconds S      (builds with clang, keeps fuzz/corpus/)
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "rendezvous/peer_identity.h"
#include "rendezvous/protocol.h"
#include "ring/ring.h"
#include "socket/policy.h"
#include "socket/shared_layout.h"
#include "stat/registry_reader.h"

namespace {

using namespace loopfast;

void FuzzMessages(const uint8_t *data, size_t size) {
  using rendezvous::Kind;
  (void)rendezvous::IsMessage(data, size, Kind::kHello, sizeof(rendezvous::Hello));
  (void)rendezvous::IsMessage(data, size, Kind::kOffer, sizeof(rendezvous::Offer));
  (void)rendezvous::IsMessage(data, size, Kind::kReject, sizeof(rendezvous::Reject));
  (void)rendezvous::IsMessage(data, size, Kind::kForward, sizeof(rendezvous::Forward));
  (void)rendezvous::IsMessage(data, size, Kind::kForwardUnread, sizeof(rendezvous::ForwardUnread));
}

// The input overwrites the header and ring controls of a real layout, as a hostile peer could;
// a layout that passes validation is then used exactly as a connection uses it.
void FuzzSharedMemory(const uint8_t *data, size_t size) {
  const uint64_t bytes = LayoutBytes(kMinRingBytes, 2 * kInitialWindowBytes);
  static std::vector<uint8_t> *memory = new std::vector<uint8_t>();
  memory->assign(bytes + 64, 0);
  void *base = memory->data() + (64 - reinterpret_cast<uintptr_t>(memory->data()) % 64) % 64;
  InitializeLayout(base, kMinRingBytes, 2 * kInitialWindowBytes);
  std::memcpy(base, data, std::min<size_t>(size, sizeof(SharedHeader)));
  if (!ValidateLayout(base, bytes)) return;
  auto *header = static_cast<SharedHeader *>(base);
  for (int ring = 0; ring < 2; ++ring) {
    // Ring 0 lives in its header window and small area only; ring 1 has a large area as well.
    auto *bytes_base = static_cast<uint8_t *>(base);
    const SpscRing::Area areas[3] = {
        {bytes_base + kHeaderWindowOffset + kHeaderWindowBytes * ring, kHeaderWindowBytes},
        {bytes_base + header->small_offset[ring], header->small_bytes[ring]},
        {bytes_base + header->large_offset[ring], header->ring_capacity[ring]}};
    SpscRing spsc(&header->ring[ring], areas, 3);
    uint8_t buffer[4096];
    (void)spsc.FillLevel();
    (void)spsc.HasRoom();
    (void)spsc.ReadableBytes();
    (void)spsc.Read(buffer, sizeof buffer, /*peek=*/true);
    (void)spsc.Read(buffer, sizeof buffer);
    (void)spsc.WritableBytes();
    std::memset(buffer, 0x5a, sizeof buffer);
    (void)spsc.Write(buffer, size % sizeof buffer);
    const uint8_t *span = nullptr;
    (void)spsc.UnreadSpan(header->ring[ring].tail.load(), &span);
  }
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
  (void)rendezvous::ParseSocketLink(text.data(), text.size());
}

}  // namespace

// A statistics registry as any process of the user could leave it, read by `loopfast stat`.
// The input overwrites a well-formed registry from its start (aligned copy: the reader maps
// memory, so alignment holds there too).
void FuzzRegistry(const uint8_t *data, size_t size) {
  std::vector<uint64_t> memory((sizeof(stat::RegistryHeader) + 8 * sizeof(stat::Slot)) / 8 + 1);
  auto *header = reinterpret_cast<stat::RegistryHeader *>(memory.data());
  header->magic = stat::kRegistryMagic;
  header->version = stat::kRegistryVersion;
  header->header_bytes = sizeof(stat::RegistryHeader);
  header->slot_bytes = sizeof(stat::Slot);
  header->slot_capacity = 8;
  header->pid = 1;
  header->slots_in_use.store(8);
  std::memcpy(memory.data(), data, std::min(size, memory.size() * 8));
  (void)stat::ReadRegistry(memory.data(), memory.size() * 8);
}

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
      FuzzSharedMemory(data, size);
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
