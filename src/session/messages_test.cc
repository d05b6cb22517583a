// The session protocol's pieces without processes: messages, the saved SYN, the arena's layout
// checks and the region allocator.
#include "session/messages.h"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstring>
#include <set>
#include <vector>

#include "session/arena_layout.h"
#include "session/markers.h"
#include "session/region_allocator.h"

namespace loopfast::session {
namespace {

TEST(SessionMessagesTest, SetupsAreUsableOnlyWhenWellFormedAndOfThisVersion) {
  SessionSetup setup = {MakeHeader(Kind::kSessionSetup), kArenaVersion, 0, kArenaBytes, 77};
  EXPECT_TRUE(IsUsableSetup(&setup, sizeof setup));
  EXPECT_FALSE(IsUsableSetup(&setup, sizeof setup - 1));
  EXPECT_FALSE(IsUsableSetup(nullptr, sizeof setup));
  SessionSetup bad = setup;
  bad.header.version = 1;  // a build of the per-connection protocol must not pair
  EXPECT_FALSE(IsUsableSetup(&bad, sizeof bad));
  bad = setup;
  bad.header.magic ^= 1;
  EXPECT_FALSE(IsUsableSetup(&bad, sizeof bad));
  bad = setup;
  bad.arena_version = kArenaVersion - 1;
  EXPECT_FALSE(IsUsableSetup(&bad, sizeof bad));
  bad = setup;
  bad.arena_bytes = kArenaBytes + 4096;
  EXPECT_FALSE(IsUsableSetup(&bad, sizeof bad));
  bad = setup;
  bad.nonce = 0;
  EXPECT_FALSE(IsUsableSetup(&bad, sizeof bad));
}

TEST(SessionMessagesTest, SavedSynGivesTheMarkerAndTheDialledAddress) {
  unsigned char v4[60] = {0x45};
  v4[8] = kClientMarkerTtl;
  const unsigned char dst[4] = {127, 0, 0, 2};
  std::memcpy(v4 + 16, dst, 4);
  v4[20 + 2] = 0x1f;  // destination port 8080
  v4[20 + 3] = 0x90;
  SavedSyn syn = ParseSavedSyn(v4, sizeof v4);
  EXPECT_TRUE(syn.marked);
  ASSERT_EQ(syn.local.ss_family, AF_INET);
  const auto *in = reinterpret_cast<const struct sockaddr_in *>(&syn.local);
  EXPECT_EQ(ntohs(in->sin_port), 8080);
  EXPECT_EQ(std::memcmp(&in->sin_addr, dst, 4), 0);
  v4[8] = 64;
  EXPECT_FALSE(ParseSavedSyn(v4, sizeof v4).marked);
  v4[0] = 0x4f;  // a header longer than the copy
  EXPECT_EQ(ParseSavedSyn(v4, sizeof v4).local.ss_family, 0);

  unsigned char v6[64] = {0x60};
  v6[6] = IPPROTO_TCP;
  v6[7] = kClientMarkerTtl;
  v6[40 + 3] = 80;
  syn = ParseSavedSyn(v6, sizeof v6);
  EXPECT_TRUE(syn.marked);
  ASSERT_EQ(syn.local.ss_family, AF_INET6);
  EXPECT_EQ(ntohs(reinterpret_cast<const struct sockaddr_in6 *>(&syn.local)->sin6_port), 80);
  v6[6] = 0;  // an extension header: not trusted
  EXPECT_EQ(ParseSavedSyn(v6, sizeof v6).local.ss_family, 0);
  EXPECT_FALSE(ParseSavedSyn(v6, 30).marked);
  EXPECT_FALSE(ParseSavedSyn(nullptr, 0).marked);
}

TEST(ArenaLayoutTest, ForgedHeadersAreRejected) {
  std::vector<uint8_t> memory(kPageBytes);
  InitializeArena(memory.data(), 5, 1);
  EXPECT_TRUE(ValidateArena(memory.data(), kArenaBytes));
  EXPECT_FALSE(ValidateArena(memory.data(), kArenaBytes - 1));
  for (size_t field : {offsetof(ArenaHeader, magic), offsetof(ArenaHeader, version),
                       offsetof(ArenaHeader, total_bytes), offsetof(ArenaHeader, max_slots),
                       offsetof(ArenaHeader, slot_bytes), offsetof(ArenaHeader, region_bytes)}) {
    std::vector<uint8_t> forged = memory;
    forged[field] ^= 0x10;
    EXPECT_FALSE(ValidateArena(forged.data(), kArenaBytes)) << field;
  }
}

TEST(ArenaLayoutTest, AreasOutsideTheRegionAreRefused) {
  std::vector<uint8_t> fake(1);
  ArenaView view(fake.data());
  EXPECT_NE(view.Area(kClientSide, 0, kRegionBytes), nullptr);
  EXPECT_EQ(view.Area(kClientSide, 1, kRegionBytes), nullptr);
  EXPECT_EQ(view.Area(kClientSide, kRegionBytes, 1), nullptr);
  EXPECT_EQ(view.Area(kServerSide, ~uint64_t{0} - 10, 100), nullptr);  // no wrap-around
  EXPECT_EQ(view.Area(kServerSide, 0, 0), nullptr);
  EXPECT_EQ(view.Area(kServerSide, 4096, 4096) - view.Area(kClientSide, 4096, 4096),
            static_cast<ptrdiff_t>(kRegionBytes));
}

TEST(RegionAllocatorTest, AreasAreAlignedDisjointAndComeBack) {
  auto *state = new RegionAllocatorState();
  RegionAllocator allocator(state, nullptr);
  std::set<int64_t> medium;
  for (int i = 0; i < 100; ++i) {
    const int64_t offset = allocator.Allocate(kMediumAreaBytes);
    ASSERT_GE(offset, 0);
    EXPECT_EQ(offset % kMediumAreaBytes, 0);
    EXPECT_TRUE(medium.insert(offset).second);
  }
  const int64_t large = allocator.Allocate(4 << 20);
  ASSERT_GE(large, 0);
  EXPECT_EQ(large % (4 << 20), 0);
  for (int64_t offset : medium) {
    EXPECT_TRUE(offset + kMediumAreaBytes <= large || offset >= large + (4 << 20));
  }
  // Everything in 4 MiB pieces, then nothing more; then back, and all of it again.
  std::vector<int64_t> pieces;
  for (int64_t offset; (offset = allocator.Allocate(4 << 20)) >= 0;) pieces.push_back(offset);
  EXPECT_LT(pieces.size(), kRegionBytes / (4 << 20));  // the medium areas took some
  EXPECT_LT(allocator.Allocate(4 << 20), 0);
  for (int64_t offset : medium) allocator.Free(static_cast<uint64_t>(offset), kMediumAreaBytes);
  allocator.Free(static_cast<uint64_t>(large), 4 << 20);
  for (int64_t offset : pieces) allocator.Free(static_cast<uint64_t>(offset), 4 << 20);
  EXPECT_EQ(allocator.Allocate(static_cast<uint32_t>(kRegionBytes / 2)), 0);
  delete state;
}

}  // namespace
}  // namespace loopfast::session
