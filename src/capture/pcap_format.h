// The classic pcap file format as loopfast writes it (header-only: the `loopfast capture` tool
// writes the file header without linking the core). Byte order is the host's; the magic number
// tells readers which one it is.
#ifndef LOOPFAST_CAPTURE_PCAP_FORMAT_H_
#define LOOPFAST_CAPTURE_PCAP_FORMAT_H_

#include <cstdint>
#include <cstring>

namespace loopfast::capture {

inline constexpr uint32_t kPcapMagicMicroseconds = 0xa1b2c3d4;
// Ethernet with zero MAC addresses, as tcpdump writes a capture on `lo`: the file then merges
// with a real loopback capture (mergecap needs one link type) and every tool decodes it.
inline constexpr uint32_t kLinkTypeEthernet = 1;
// Large enough for the biggest record loopfast writes (Ethernet + IPv6 + TCP + 65483 bytes).
inline constexpr uint32_t kSnapLength = 262144;

struct PcapFileHeader {
  uint32_t magic = kPcapMagicMicroseconds;
  uint16_t version_major = 2;
  uint16_t version_minor = 4;
  int32_t this_zone = 0;
  uint32_t significant_figures = 0;
  uint32_t snap_length = kSnapLength;
  uint32_t link_type = kLinkTypeEthernet;
};
static_assert(sizeof(PcapFileHeader) == 24);

struct PcapRecordHeader {
  uint32_t seconds;
  uint32_t microseconds;
  uint32_t captured_length;
  uint32_t original_length;
};
static_assert(sizeof(PcapRecordHeader) == 16);

}  // namespace loopfast::capture

#endif  // LOOPFAST_CAPTURE_PCAP_FORMAT_H_
