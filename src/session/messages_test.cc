#include "rendezvous/protocol.h"

#include <gtest/gtest.h>

#include <cstring>

#include "rendezvous/markers.h"
#include "rendezvous/peer_identity.h"

namespace loopfast::rendezvous {
namespace {

TEST(ProtocolTest, MessagesAreRecognisedOnlyWhenWellFormed) {
  Hello hello = {MakeHeader(Kind::kHello), 7, 16384};
  EXPECT_TRUE(IsMessage(&hello, sizeof hello, Kind::kHello, sizeof(Hello)));
  EXPECT_FALSE(IsMessage(&hello, sizeof hello - 1, Kind::kHello, sizeof(Hello)));
  EXPECT_FALSE(IsMessage(&hello, sizeof hello, Kind::kOffer, sizeof(Hello)));
  hello.header.version = 2;
  EXPECT_FALSE(IsMessage(&hello, sizeof hello, Kind::kHello, sizeof(Hello)));
  hello.header = MakeHeader(Kind::kHello);
  hello.header.magic ^= 1;
  EXPECT_FALSE(IsMessage(&hello, sizeof hello, Kind::kHello, sizeof(Hello)));
  EXPECT_FALSE(IsMessage(nullptr, 16, Kind::kHello, 16));
}

TEST(ProtocolTest, SocketLinksParseStrictly) {
  const char good[] = "socket:[123456]";
  EXPECT_EQ(ParseSocketLink(good, sizeof good - 1), 123456u);
  const char *bad[] = {"socket:[]", "socket:[12a]", "pipe:[5]",
                       "socket:[5", "socket:5]",    "socket:[99999999999999999999999]"};
  for (const char *link : bad) EXPECT_EQ(ParseSocketLink(link, std::strlen(link)), 0u) << link;
}

TEST(ProtocolTest, SavedSynMarkerIsReadFromTheRightField) {
  unsigned char v4[40] = {0x45};
  v4[8] = kClientMarkerTtl;
  EXPECT_TRUE(SavedSynHasMarker(v4, sizeof v4));
  v4[8] = 64;
  EXPECT_FALSE(SavedSynHasMarker(v4, sizeof v4));
  unsigned char v6[60] = {0x60};
  v6[7] = kClientMarkerTtl;
  EXPECT_TRUE(SavedSynHasMarker(v6, sizeof v6));
  EXPECT_FALSE(SavedSynHasMarker(v6, 30));  // too short for an IPv6 header
  EXPECT_FALSE(SavedSynHasMarker(nullptr, 0));
  unsigned char other[40] = {0x25};
  other[8] = kClientMarkerTtl;
  EXPECT_FALSE(SavedSynHasMarker(other, sizeof other));
}

}  // namespace
}  // namespace loopfast::rendezvous
