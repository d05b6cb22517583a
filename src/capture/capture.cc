// The capture file (capture.h): opening it safely, the flows' invented handshakes and
// sequence numbers, and one pcap record per segment of the bytes a fast connection moves.
#include "capture/capture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/escape.h"
#include "base/iovec_cursor.h"
#include "base/output_file.h"
#include "capture/pcap_format.h"
#include "config/config.h"
#include "sys/owned_fds.h"
#include "sys/real_calls.h"

namespace loopfast::capture {
namespace {

constexpr size_t kEthernetHeader = 14;
constexpr size_t kIpv4Header = 20;
constexpr size_t kIpv6Header = 40;
constexpr size_t kTcpHeader = 20;
// MSS (4) + NOP (1) + window scale (3) on SYN and SYN-ACK: with a scaled window Wireshark
// does not call a long one-way transfer "window full" (the receiver's ACKs may not be in the file).
constexpr size_t kSynOptions = 8;
constexpr uint8_t kWindowScale = 14;

constexpr uint8_t kFin = 0x01;
constexpr uint8_t kSyn = 0x02;
constexpr uint8_t kPsh = 0x08;
constexpr uint8_t kAck = 0x10;

void PutBig16(uint8_t *at, uint16_t value) {
  at[0] = static_cast<uint8_t>(value >> 8);
  at[1] = static_cast<uint8_t>(value);
}

void PutBig32(uint8_t *at, uint32_t value) {
  PutBig16(at, static_cast<uint16_t>(value >> 16));
  PutBig16(at + 2, static_cast<uint16_t>(value));
}

// The Internet checksum's running sum of big-endian 16-bit words (an odd tail is padded).
uint64_t SumWords(const uint8_t *data, size_t length, uint64_t sum) {
  size_t i = 0;
  for (; i + 1 < length; i += 2) sum += (uint32_t{data[i]} << 8) | data[i + 1];
  if (i < length) sum += uint32_t{data[i]} << 8;
  return sum;
}

uint16_t FoldChecksum(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

size_t AddressLength(const Endpoint &endpoint) { return endpoint.family == AF_INET ? 4 : 16; }

size_t IpHeaderLength(const Endpoint &endpoint) {
  return endpoint.family == AF_INET ? kIpv4Header : kIpv6Header;
}

size_t RecordLength(const Endpoint &source, size_t tcp_header, size_t payload) {
  return sizeof(PcapRecordHeader) + kEthernetHeader + IpHeaderLength(source) + tcp_header + payload;
}

struct Segment {
  const Endpoint *source;
  const Endpoint *destination;
  uint32_t sequence;
  uint32_t acknowledgement;
  uint8_t flags;
  size_t payload_length;
};

// Appends one pcap record (Ethernet, IP, TCP, payload taken from `payload`) to `out`.
void AppendRecord(std::vector<uint8_t> &out, const struct timespec &now, const Segment &segment,
                  IovecCursor *payload) {
  const Endpoint &source = *segment.source;
  const Endpoint &destination = *segment.destination;
  const bool syn = (segment.flags & kSyn) != 0;
  const size_t tcp_header = kTcpHeader + (syn ? kSynOptions : 0);
  const size_t tcp_length = tcp_header + segment.payload_length;
  const size_t ip_header = IpHeaderLength(source);
  const size_t frame_length = kEthernetHeader + ip_header + tcp_length;
  const size_t start = out.size();
  out.resize(start + sizeof(PcapRecordHeader) + frame_length);  // zero-filled
  uint8_t *record = out.data() + start;

  PcapRecordHeader header{};
  header.seconds = static_cast<uint32_t>(now.tv_sec);
  header.microseconds = static_cast<uint32_t>(now.tv_nsec / 1000);
  header.captured_length = static_cast<uint32_t>(frame_length);
  header.original_length = static_cast<uint32_t>(frame_length);
  std::memcpy(record, &header, sizeof header);

  uint8_t *ethernet = record + sizeof header;  // MAC addresses stay zero, as on `lo`
  PutBig16(ethernet + 12, source.family == AF_INET ? 0x0800 : 0x86dd);

  uint8_t *ip = ethernet + kEthernetHeader;
  uint64_t pseudo_sum = 0;
  if (source.family == AF_INET) {
    ip[0] = 0x45;  // version 4, 5 words
    PutBig16(ip + 2, static_cast<uint16_t>(ip_header + tcp_length));
    PutBig16(ip + 6, 0x4000);  // don't fragment
    ip[8] = 64;                // TTL
    ip[9] = IPPROTO_TCP;
    std::memcpy(ip + 12, source.address, 4);
    std::memcpy(ip + 16, destination.address, 4);
    PutBig16(ip + 10, FoldChecksum(SumWords(ip, kIpv4Header, 0)));
    pseudo_sum = SumWords(ip + 12, 8, IPPROTO_TCP + tcp_length);
  } else {
    ip[0] = 0x60;  // version 6
    PutBig16(ip + 4, static_cast<uint16_t>(tcp_length));
    ip[6] = IPPROTO_TCP;
    ip[7] = 64;  // hop limit
    std::memcpy(ip + 8, source.address, 16);
    std::memcpy(ip + 24, destination.address, 16);
    pseudo_sum = SumWords(ip + 8, 32, IPPROTO_TCP + tcp_length);
  }

  uint8_t *tcp = ip + ip_header;
  PutBig16(tcp, source.port);
  PutBig16(tcp + 2, destination.port);
  PutBig32(tcp + 4, segment.sequence);
  PutBig32(tcp + 8, segment.acknowledgement);
  tcp[12] = static_cast<uint8_t>((tcp_header / 4) << 4);
  tcp[13] = segment.flags;
  PutBig16(tcp + 14, 0xffff);  // window (scaled by kWindowScale)
  if (syn) {
    uint8_t *options = tcp + kTcpHeader;
    options[0] = 2;  // MSS: the loopback MTU (65536) less the headers
    options[1] = 4;
    PutBig16(options + 2, source.family == AF_INET ? 65495 : 65475);
    options[4] = 1;  // NOP
    options[5] = 3;  // window scale
    options[6] = 3;
    options[7] = kWindowScale;
  }
  if (segment.payload_length > 0) payload->CopyOut(tcp + tcp_header, segment.payload_length);
  PutBig16(tcp + 16, FoldChecksum(SumWords(tcp, tcp_length, pseudo_sum)));
}

struct timespec Now() {
  struct timespec now {};
  clock_gettime(CLOCK_REALTIME, &now);
  return now;
}

// Writes the pcap file header if the file is empty; flock keeps two processes that open the
// file at once from both writing it.
Status WriteHeaderIfEmpty(int fd) {
  int locked = -1;
  for (int attempt = 0; attempt < 100 && locked < 0; ++attempt) {
    locked = flock(fd, LOCK_EX);
    if (locked < 0 && errno != EINTR) return Errno{errno};
  }
  if (locked < 0) return Errno{EINTR};
  Status status;
  struct stat info {};
  if (fstat(fd, &info) < 0) {
    status = Errno{errno};
  } else if (info.st_size == 0) {
    const PcapFileHeader header;
    const ssize_t written = sys::Real().write(fd, &header, sizeof header);
    if (written < 0) {
      status = Errno{errno};
    } else if (static_cast<size_t>(written) != sizeof header) {
      status = Errno{EIO};
    }
  }
  flock(fd, LOCK_UN);
  return status;
}

uint64_t Fnv1a(const uint8_t *data, size_t length, uint64_t hash) {
  for (size_t i = 0; i < length; ++i) hash = (hash ^ data[i]) * 0x100000001b3ull;
  return hash;
}

}  // namespace

uint32_t InitialSequence(const Endpoint &source, const Endpoint &destination) {
  uint8_t ports[4];
  PutBig16(ports, source.port);
  PutBig16(ports + 2, destination.port);
  const uint8_t family = source.family == AF_INET ? 4 : 6;
  uint64_t hash = Fnv1a(&family, 1, 0xcbf29ce484222325ull);
  hash = Fnv1a(source.address, AddressLength(source), hash);
  hash = Fnv1a(destination.address, AddressLength(destination), hash);
  hash = Fnv1a(ports, sizeof ports, hash);
  // Finish with a mix so that neighbouring ports give unrelated numbers.
  hash ^= hash >> 33;
  hash *= 0xff51afd7ed558ccdull;
  hash ^= hash >> 33;
  return static_cast<uint32_t>(hash);
}

bool ToEndpoint(const struct sockaddr *address, socklen_t length, Endpoint *out) {
  if (address == nullptr) return false;
  if (address->sa_family == AF_INET && length >= sizeof(struct sockaddr_in)) {
    struct sockaddr_in v4 {};
    std::memcpy(&v4, address, sizeof v4);
    *out = Endpoint{};
    out->family = AF_INET;
    std::memcpy(out->address, &v4.sin_addr, 4);
    out->port = ntohs(v4.sin_port);
    return true;
  }
  if (address->sa_family == AF_INET6 && length >= sizeof(struct sockaddr_in6)) {
    struct sockaddr_in6 v6 {};
    std::memcpy(&v6, address, sizeof v6);
    *out = Endpoint{};
    out->port = ntohs(v6.sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&v6.sin6_addr)) {  // on the wire this is IPv4
      out->family = AF_INET;
      std::memcpy(out->address, v6.sin6_addr.s6_addr + 12, 4);
    } else {
      out->family = AF_INET6;
      std::memcpy(out->address, v6.sin6_addr.s6_addr, 16);
    }
    return true;
  }
  return false;
}

Sink *Sink::Get() {
  static Sink *const sink = []() -> Sink * {
    // A capture file is both a file and more than the program would show: never in a
    // setuid program (config.h).
    const char *path = WideningSetting("LOOPFAST_CAPTURE");
    if (path == nullptr || *path == '\0') return nullptr;
    const int saved_errno = errno;
    const char *refusal = nullptr;
    auto opened = Open(path, WideningSetting("LOOPFAST_CAPTURE_PORTS"), &refusal);
    Sink *made = nullptr;
    if (!opened.ok()) {
      const char *why = refusal != nullptr         ? refusal
                        : opened.error() == EINVAL ? "LOOPFAST_CAPTURE_PORTS is malformed"
                                                   : std::strerror(opened.error());
      Log(LogLevel::kError, "no capture to \"%s\": %s", EscapeText(path).c_str(), why);
    } else {
      made = opened.value().release();  // lives as long as the process
    }
    errno = saved_errno;
    return made;
  }();
  return sink;
}

Result<std::unique_ptr<Sink>> Sink::Open(const char *path, const char *ports,
                                         const char **refusal) {
  std::vector<PortRange> port_list;
  if (ports != nullptr && *ports != '\0' && !ParsePortList(ports, &port_list)) {
    return Errno{EINVAL};
  }
  const Result<int> opened = OpenOutputFile(path, OutputMode::kAppend, 0600, refusal);
  if (!opened.ok()) return Errno{opened.error()};
  const int fd = sys::MoveHigh(opened.value());
  sys::Own(fd);
  auto sink = std::make_unique<Sink>(fd, std::move(port_list));
  if (Status header = WriteHeaderIfEmpty(fd); !header.ok()) return Errno{header.error()};
  return sink;
}

Sink::Sink(int fd, std::vector<PortRange> ports) : fd_(fd), ports_(std::move(ports)) {
  struct stat info;
  if (fstat(fd, &info) == 0) {
    file_id_ = (static_cast<uint64_t>(info.st_dev) << 40) ^ static_cast<uint64_t>(info.st_ino);
    if (file_id_ == 0) file_id_ = 1;
  }
}

Sink::~Sink() { sys::CloseOwned(fd_); }

bool Sink::Captures(uint16_t local_port, uint16_t peer_port) const {
  if (ports_.empty()) return true;
  return std::any_of(ports_.begin(), ports_.end(), [&](const PortRange &range) {
    return (local_port >= range.first && local_port <= range.last) ||
           (peer_port >= range.first && peer_port <= range.last);
  });
}

std::unique_ptr<Flow> Sink::Begin(const struct sockaddr *local, socklen_t local_length,
                                  const struct sockaddr *peer, socklen_t peer_length, bool client) {
  return Begin(local, local_length, peer, peer_length, client, false);
}

std::unique_ptr<Flow> Sink::Begin(const struct sockaddr *local, socklen_t local_length,
                                  const struct sockaddr *peer, socklen_t peer_length, bool client,
                                  bool peer_captured) {
  if (failed_.load(std::memory_order_relaxed)) return nullptr;
  Endpoint local_end, peer_end;
  if (!ToEndpoint(local, local_length, &local_end) || !ToEndpoint(peer, peer_length, &peer_end) ||
      local_end.family != peer_end.family || !Captures(local_end.port, peer_end.port)) {
    return nullptr;
  }
  auto flow = std::make_unique<Flow>();
  flow->local = local_end;
  flow->peer = peer_end;
  flow->outgoing.initial_sequence = InitialSequence(local_end, peer_end);
  flow->incoming.initial_sequence = InitialSequence(peer_end, local_end);
  flow->peer_captured = peer_captured;
  if (peer_captured) return flow;  // the peer's process writes the handshake

  const Endpoint &client_end = client ? flow->local : flow->peer;
  const Endpoint &server_end = client ? flow->peer : flow->local;
  const uint32_t client_isn = (client ? flow->outgoing : flow->incoming).initial_sequence;
  const uint32_t server_isn = (client ? flow->incoming : flow->outgoing).initial_sequence;
  const Segment handshake[] = {
      {&client_end, &server_end, client_isn, 0, kSyn, 0},
      {&server_end, &client_end, server_isn, client_isn + 1, kSyn | kAck, 0},
      {&client_end, &server_end, client_isn + 1, server_isn + 1, kAck, 0},
  };
  std::vector<uint8_t> buffer;
  buffer.reserve(3 * RecordLength(client_end, kTcpHeader + kSynOptions, 0));
  const struct timespec now = Now();
  for (const Segment &segment : handshake) AppendRecord(buffer, now, segment, nullptr);
  Append(buffer.data(), buffer.size());
  return flow;
}

void Sink::Data(Flow &flow, bool outgoing, const struct iovec *iov, int iovcnt, size_t bytes) {
  const size_t available = IovecTotal(iov, static_cast<size_t>(iovcnt));
  size_t remaining = std::min(bytes, available);
  if (remaining == 0) return;

  std::lock_guard lock(flow.mutex);
  Flow::Direction &direction = outgoing ? flow.outgoing : flow.incoming;
  const Flow::Direction &other = outgoing ? flow.incoming : flow.outgoing;
  const Endpoint &source = outgoing ? flow.local : flow.peer;
  const Endpoint &destination = outgoing ? flow.peer : flow.local;
  if (failed_.load(std::memory_order_relaxed) ||
      (!outgoing && flow.peer_captured.load(std::memory_order_relaxed))) {
    direction.bytes += remaining;  // only the acknowledgement numbers move
    return;
  }

  IovecCursor payload(iov, static_cast<size_t>(iovcnt));
  std::vector<uint8_t> buffer;
  const size_t segments = (remaining + kMaxSegmentPayload - 1) / kMaxSegmentPayload;
  buffer.reserve(
      std::min(kMaxWriteBytes, RecordLength(source, kTcpHeader, 0) * segments + remaining));
  const struct timespec now = Now();
  const uint32_t acknowledgement = other.NextSequence();
  while (remaining > 0) {
    const size_t length = std::min(remaining, kMaxSegmentPayload);
    if (!buffer.empty() &&
        buffer.size() + RecordLength(source, kTcpHeader, length) > kMaxWriteBytes) {
      Append(buffer.data(), buffer.size());
      buffer.clear();
    }
    const Segment segment{&source,         &destination, direction.NextSequence(),
                          acknowledgement, kPsh | kAck,  length};
    AppendRecord(buffer, now, segment, &payload);
    direction.bytes += length;
    remaining -= length;
  }
  Append(buffer.data(), buffer.size());
}

void Sink::End(Flow &flow, bool outgoing) {
  std::lock_guard lock(flow.mutex);
  Flow::Direction &direction = outgoing ? flow.outgoing : flow.incoming;
  if (direction.finished) return;
  const Flow::Direction &other = outgoing ? flow.incoming : flow.outgoing;
  const Segment segment{outgoing ? &flow.local : &flow.peer,
                        outgoing ? &flow.peer : &flow.local,
                        direction.NextSequence(),
                        other.NextSequence(),
                        kFin | kAck,
                        0};
  direction.finished = true;
  if (failed_.load(std::memory_order_relaxed) ||
      (!outgoing && flow.peer_captured.load(std::memory_order_relaxed)))
    return;
  std::vector<uint8_t> buffer;
  buffer.reserve(RecordLength(*segment.source, kTcpHeader, 0));
  AppendRecord(buffer, Now(), segment, nullptr);
  Append(buffer.data(), buffer.size());
}

void Sink::Append(const uint8_t *data, size_t length) {
  if (length == 0 || failed_.load(std::memory_order_relaxed)) return;
  const int saved_errno = errno;  // the caller is inside the program's send or recv
  ssize_t written = -1;
  for (int attempt = 0; attempt < 100; ++attempt) {
    written = sys::Real().write(fd_, data, length);
    if (written >= 0 || errno != EINTR) break;
  }
  if (written < 0 || static_cast<size_t>(written) != length) {
    const int error = written < 0 ? errno : ENOSPC;
    if (!failed_.exchange(true)) {
      Log(LogLevel::kError, "capture stopped: writing the capture file failed: %s",
          std::strerror(error));
    }
  }
  errno = saved_errno;
}

}  // namespace loopfast::capture
