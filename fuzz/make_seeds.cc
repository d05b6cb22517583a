// Writes the fuzzer's seed inputs (one valid example of each kind) into fuzz/corpus/.
//   c++ -std=c++20 -Isrc fuzz/make_seeds.cc src/socket/shared_layout.cc src/ring/ring.cc
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "rendezvous/protocol.h"
#include "socket/shared_layout.h"

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
  using namespace loopfast;
  const rendezvous::Hello hello = {rendezvous::MakeHeader(rendezvous::Kind::kHello), 7, 65536};
  Write("seed-hello", 0, &hello, sizeof hello);
  const rendezvous::Offer offer = {rendezvous::MakeHeader(rendezvous::Kind::kOffer), 65536, 65536};
  Write("seed-offer", 0, &offer, sizeof offer);
  const uint64_t bytes = LayoutBytes(kMinRingBytes, 2 * kInitialWindowBytes);
  std::vector<uint8_t> memory(bytes + 64);
  void *base = memory.data() + (64 - reinterpret_cast<uintptr_t>(memory.data()) % 64) % 64;
  InitializeLayout(base, kMinRingBytes, 2 * kInitialWindowBytes);
  Write("seed-layout", 1, base, sizeof(SharedHeader));
  const std::string policy = "inspect port 5432\ninspect address 127.0.1.0/24\ninspect user 0\n";
  Write("seed-policy", 2, policy.data(), policy.size());
  const std::string link = "socket:[123456]";
  Write("seed-link", 2, link.data(), link.size());
  return 0;
}
