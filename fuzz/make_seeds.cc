// Writes the fuzzer's seed inputs (one valid example of each kind) into fuzz/corpus/.
//   c++ -std=c++20 -Isrc fuzz/make_seeds.cc src/session/messages.cc src/session/arena_layout.cc \
//     src/ring/ring.cc
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "session/arena_layout.h"
#include "session/messages.h"

namespace {

void Write(const std::string &name, uint8_t selector, const void *bytes, size_t size) {
  std::FILE *file = std::fopen(("fuzz/corpus/" + name).c_str(), "wb");
  if (file == nullptr) return;
  std::fputc(selector, file);
  std::fwrite(bytes, 1, size, file);
  std::fclose(file);
}

}  // namespace

int main() {
  using namespace loopfast::session;
  const SessionSetup setup = {MakeHeader(Kind::kSessionSetup), kArenaVersion, 0, kArenaBytes, 7};
  Write("seed-setup", 0, &setup, sizeof setup);
  unsigned char syn[60] = {0x45};
  syn[8] = kClientMarkerTtl;
  Write("seed-syn", 0, syn, sizeof syn);
  // A claimed slot, connected, with a few bytes in its first window; then its claim entry.
  std::vector<uint8_t> image(sizeof(Slot) + sizeof(ClaimEntry));
  auto *slot = reinterpret_cast<Slot *>(image.data());
  slot->header.state.store(kSlotBound);
  slot->header.socket_cookie.store(1003);
  for (SideBlock &side : slot->side) side.rx_limit.store(kDefaultRingBytes);
  loopfast::SpscRing::Initialize(&slot->ring[0], kSlotWindowBytes);
  loopfast::SpscRing::Initialize(&slot->ring[1], kSlotWindowBytes);
  slot->ring[0].head.store(5);
  std::memcpy(slot->window[0], "hello", 5);
  auto *entry = reinterpret_cast<ClaimEntry *>(image.data() + sizeof(Slot));
  entry->socket_cookie.store(1003);
  entry->slot.store(3);
  Write("seed-slot", 1, image.data(), image.size());
  const std::string policy = "inspect port 5432\ninspect address 127.0.1.0/24\ninspect user 0\n";
  Write("seed-policy", 2, policy.data(), policy.size());
  const std::string text = "name\x1b[2J\xff\xfe\\x0a";
  Write("seed-text", 2, text.data(), text.size());
  return 0;
}
