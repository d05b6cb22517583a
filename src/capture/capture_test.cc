#include "capture/capture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "capture/pcap_format.h"
#include "gtest/gtest.h"

namespace loopfast::capture {
namespace {

// ---- A small pcap reader: just enough to check what Sink writes. ----

struct Packet {
  int family = 0;
  std::string source, destination;  // "address.port", as tcpdump -nn prints them
  uint16_t source_port = 0, destination_port = 0;
  uint32_t sequence = 0, acknowledgement = 0;
  uint8_t flags = 0;
  std::vector<uint8_t> payload;
  bool ip_checksum_ok = true;
  bool tcp_checksum_ok = false;
};

struct Capture {
  bool header_ok = false;
  uint32_t link_type = 0;
  bool records_ok = true;  // every record parsed as Ethernet/IP/TCP with consistent lengths
  std::vector<Packet> packets;
};

uint16_t Big16(const uint8_t *at) { return static_cast<uint16_t>((at[0] << 8) | at[1]); }
uint32_t Big32(const uint8_t *at) { return (uint32_t{Big16(at)} << 16) | Big16(at + 2); }

uint64_t Sum(const uint8_t *data, size_t length, uint64_t sum) {
  size_t i = 0;
  for (; i + 1 < length; i += 2) sum += Big16(data + i);
  if (i < length) sum += uint32_t{data[i]} << 8;
  return sum;
}

bool Verifies(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return sum == 0xffff;
}

std::string Name(int family, const uint8_t *address, uint16_t port) {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(family, address, text, sizeof text);
  return std::string(text) + "." + std::to_string(port);
}

std::vector<uint8_t> ReadAll(const std::string &path) {
  std::vector<uint8_t> bytes;
  FILE *file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return bytes;
  uint8_t chunk[65536];
  for (size_t got; (got = std::fread(chunk, 1, sizeof chunk, file)) > 0;) {
    bytes.insert(bytes.end(), chunk, chunk + got);
  }
  std::fclose(file);
  return bytes;
}

bool ParseFrame(const uint8_t *frame, size_t length, Packet *packet) {
  if (length < 14) return false;
  const uint16_t ether_type = Big16(frame + 12);
  const uint8_t *ip = frame + 14;
  const size_t ip_space = length - 14;
  size_t ip_header = 0, tcp_length = 0;
  uint64_t pseudo = 0;
  if (ether_type == 0x0800) {
    if (ip_space < 20 || ip[0] != 0x45 || ip[9] != IPPROTO_TCP) return false;
    if (Big16(ip + 2) != ip_space) return false;
    ip_header = 20;
    tcp_length = ip_space - 20;
    packet->family = AF_INET;
    packet->ip_checksum_ok = Verifies(Sum(ip, 20, 0));
    pseudo = Sum(ip + 12, 8, IPPROTO_TCP + tcp_length);
    packet->source_port = Big16(ip + 20);
    packet->destination_port = Big16(ip + 22);
    packet->source = Name(AF_INET, ip + 12, packet->source_port);
    packet->destination = Name(AF_INET, ip + 16, packet->destination_port);
  } else if (ether_type == 0x86dd) {
    if (ip_space < 40 || (ip[0] >> 4) != 6 || ip[6] != IPPROTO_TCP) return false;
    if (Big16(ip + 4) != ip_space - 40) return false;
    ip_header = 40;
    tcp_length = ip_space - 40;
    packet->family = AF_INET6;
    pseudo = Sum(ip + 8, 32, IPPROTO_TCP + tcp_length);
    packet->source_port = Big16(ip + 40);
    packet->destination_port = Big16(ip + 42);
    packet->source = Name(AF_INET6, ip + 8, packet->source_port);
    packet->destination = Name(AF_INET6, ip + 24, packet->destination_port);
  } else {
    return false;
  }
  const uint8_t *tcp = ip + ip_header;
  if (tcp_length < 20) return false;
  const size_t tcp_header = (tcp[12] >> 4) * 4u;
  if (tcp_header < 20 || tcp_header > tcp_length) return false;
  packet->sequence = Big32(tcp + 4);
  packet->acknowledgement = Big32(tcp + 8);
  packet->flags = tcp[13];
  packet->payload.assign(tcp + tcp_header, tcp + tcp_length);
  packet->tcp_checksum_ok = Verifies(Sum(tcp, tcp_length, pseudo));
  return true;
}

Capture ReadCapture(const std::string &path) {
  Capture capture;
  const std::vector<uint8_t> bytes = ReadAll(path);
  if (bytes.size() < sizeof(PcapFileHeader)) return capture;
  PcapFileHeader header;
  std::memcpy(&header, bytes.data(), sizeof header);
  capture.header_ok = header.magic == kPcapMagicMicroseconds && header.version_major == 2 &&
                      header.version_minor == 4 && header.snap_length >= 65536 + 128;
  capture.link_type = header.link_type;
  size_t at = sizeof header;
  // Each record is at least 16 bytes, so this loop ends.
  while (at < bytes.size()) {
    PcapRecordHeader record;
    if (bytes.size() - at < sizeof record) {
      capture.records_ok = false;
      break;
    }
    std::memcpy(&record, bytes.data() + at, sizeof record);
    at += sizeof record;
    Packet packet;
    if (record.captured_length != record.original_length || record.microseconds >= 1000000 ||
        bytes.size() - at < record.captured_length ||
        !ParseFrame(bytes.data() + at, record.captured_length, &packet)) {
      capture.records_ok = false;
      break;
    }
    at += record.captured_length;
    capture.packets.push_back(std::move(packet));
  }
  return capture;
}

// ---- Helpers ----

constexpr uint8_t kFin = 0x01, kSyn = 0x02, kPsh = 0x08, kAck = 0x10;

class TempDirectory {
 public:
  TempDirectory() {
    char pattern[] = "/tmp/lfcapXXXXXX";
    path_ = mkdtemp(pattern) != nullptr ? pattern : "";
  }
  ~TempDirectory() {
    if (!path_.empty()) std::system(("rm -rf '" + path_ + "'").c_str());
  }
  std::string File(const char *name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

sockaddr_in V4(const char *address, uint16_t port) {
  sockaddr_in out{};
  out.sin_family = AF_INET;
  out.sin_port = htons(port);
  inet_pton(AF_INET, address, &out.sin_addr);
  return out;
}

sockaddr_in6 V6(const char *address, uint16_t port) {
  sockaddr_in6 out{};
  out.sin6_family = AF_INET6;
  out.sin6_port = htons(port);
  inet_pton(AF_INET6, address, &out.sin6_addr);
  return out;
}

template <typename Address>
std::unique_ptr<Flow> BeginFlow(Sink &sink, const Address &local, const Address &peer,
                                bool client) {
  return sink.Begin(reinterpret_cast<const sockaddr *>(&local), sizeof local,
                    reinterpret_cast<const sockaddr *>(&peer), sizeof peer, client);
}

std::vector<uint8_t> Pattern(size_t length, uint8_t seed) {
  std::vector<uint8_t> bytes(length);
  for (size_t i = 0; i < length; ++i) bytes[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 9));
  return bytes;
}

// Sends `bytes` through Data as several iovecs of uneven sizes.
void SendInPieces(Sink &sink, Flow &flow, bool outgoing, const std::vector<uint8_t> &bytes) {
  std::vector<iovec> pieces;
  size_t at = 0;
  for (size_t size = 1; at < bytes.size(); size = size * 3 + 5) {
    const size_t take = std::min(size, bytes.size() - at);
    pieces.push_back({const_cast<uint8_t *>(bytes.data() + at), take});
    at += take;
  }
  sink.Data(flow, outgoing, pieces.data(), static_cast<int>(pieces.size()), bytes.size());
}

// What a capture says about each direction ("a > b"), checked as a TCP receiver would.
struct DirectionState {
  bool syn_seen = false;
  uint32_t initial_sequence = 0;
  std::vector<uint8_t> payload;
  bool fin_seen = false;
  bool sequence_ok = true;
  size_t max_segment = 0;
};

using Directions = std::map<std::pair<std::string, std::string>, DirectionState>;

// Checks seq of every packet against what its direction carried so far, and (when
// `check_acks`, i.e. one process saw both directions) ack against the other direction.
Directions Follow(const std::vector<Packet> &packets, bool check_acks) {
  Directions directions;
  for (const Packet &packet : packets) {
    DirectionState &state = directions[{packet.source, packet.destination}];
    DirectionState &other = directions[{packet.destination, packet.source}];
    if (packet.flags & kSyn) {
      state.syn_seen = true;
      state.initial_sequence = packet.sequence;
      if (packet.flags & kAck) {
        EXPECT_EQ(packet.acknowledgement, other.initial_sequence + 1);
      }
      continue;
    }
    const uint32_t expected = state.initial_sequence + 1 +
                              static_cast<uint32_t>(state.payload.size()) +
                              (state.fin_seen ? 1 : 0);
    if (!state.syn_seen || packet.sequence != expected) state.sequence_ok = false;
    if (check_acks) {
      EXPECT_TRUE(packet.flags & kAck);
      EXPECT_EQ(packet.acknowledgement, other.initial_sequence + 1 +
                                            static_cast<uint32_t>(other.payload.size()) +
                                            (other.fin_seen ? 1 : 0))
          << packet.source << " > " << packet.destination;
    }
    if (!packet.payload.empty()) {
      EXPECT_EQ(packet.flags, kPsh | kAck);
    }
    state.max_segment = std::max(state.max_segment, packet.payload.size());
    state.payload.insert(state.payload.end(), packet.payload.begin(), packet.payload.end());
    if (packet.flags & kFin) state.fin_seen = true;
  }
  return directions;
}

// ---- Tests ----

TEST(CaptureTest, Ipv4AndIpv6FlowsReadBackExactly) {
  TempDirectory directory;
  const std::string path = directory.File("both.pcap");
  auto opened = Sink::Open(path.c_str(), nullptr);
  ASSERT_TRUE(opened.ok()) << std::strerror(opened.error());
  Sink &sink = *opened.value();

  // IPv4, this process the client: several iovecs, and a Data call covering less than them.
  auto v4 = BeginFlow(sink, V4("127.0.0.1", 40000), V4("127.0.0.1", 5000), true);
  ASSERT_NE(v4, nullptr);
  char hello[] = "hello ", fast[] = "fast ", path_bytes[] = "path!!";
  iovec request[] = {{hello, 6}, {fast, 5}, {path_bytes, 6}};
  sink.Data(*v4, true, request, 3, 15);                           // "hello fast path"
  const std::vector<uint8_t> big_reply = Pattern(200 * 1024, 3);  // 4 segments
  SendInPieces(sink, *v4, false, big_reply);
  const std::vector<uint8_t> second = Pattern(100, 9);
  SendInPieces(sink, *v4, true, second);
  sink.End(*v4, true);
  sink.End(*v4, false);
  sink.End(*v4, false);  // once only

  // IPv6, this process the server.
  auto v6 = BeginFlow(sink, V6("::1", 5001), V6("::1", 40001), false);
  ASSERT_NE(v6, nullptr);
  const std::vector<uint8_t> v6_in = Pattern(70000, 1), v6_out = Pattern(3, 2);
  SendInPieces(sink, *v6, false, v6_in);
  SendInPieces(sink, *v6, true, v6_out);
  sink.End(*v6, false);
  sink.End(*v6, true);
  opened.value().reset();

  const Capture capture = ReadCapture(path);
  ASSERT_TRUE(capture.header_ok);
  EXPECT_EQ(capture.link_type, 1u);
  ASSERT_TRUE(capture.records_ok);
  // v4: 3 handshake + 1 + 4 + 1 data + 2 FIN; v6: 3 + 2 + 1 + 2.
  ASSERT_EQ(capture.packets.size(), 11u + 8u);
  for (const Packet &packet : capture.packets) {
    EXPECT_TRUE(packet.ip_checksum_ok) << packet.source;
    EXPECT_TRUE(packet.tcp_checksum_ok) << packet.source << " > " << packet.destination;
  }

  // The handshakes go client -> server, server -> client, client -> server.
  const std::vector<uint8_t> flags = {kSyn, kSyn | kAck, kAck};
  for (int i = 0; i < 3; ++i) EXPECT_EQ(capture.packets[i].flags, flags[i]);
  EXPECT_EQ(capture.packets[0].source, "127.0.0.1.40000");
  EXPECT_EQ(capture.packets[1].source, "127.0.0.1.5000");
  EXPECT_EQ(capture.packets[11].source, "::1.40001");
  EXPECT_EQ(capture.packets[11].destination, "::1.5001");
  EXPECT_EQ(capture.packets[12].source, "::1.5001");

  Directions directions = Follow(capture.packets, true);
  const auto text = [](const char *s) { return std::vector<uint8_t>(s, s + std::strlen(s)); };
  std::vector<uint8_t> v4_out = text("hello fast path");
  v4_out.insert(v4_out.end(), second.begin(), second.end());
  const std::map<std::pair<std::string, std::string>, std::vector<uint8_t>> expected = {
      {{"127.0.0.1.40000", "127.0.0.1.5000"}, v4_out},
      {{"127.0.0.1.5000", "127.0.0.1.40000"}, big_reply},
      {{"::1.40001", "::1.5001"}, v6_in},
      {{"::1.5001", "::1.40001"}, v6_out},
  };
  ASSERT_EQ(directions.size(), expected.size());
  for (const auto &[key, bytes] : expected) {
    const DirectionState &state = directions[key];
    EXPECT_TRUE(state.syn_seen) << key.first;
    EXPECT_TRUE(state.sequence_ok) << key.first;
    EXPECT_TRUE(state.fin_seen) << key.first;
    EXPECT_LE(state.max_segment, kMaxSegmentPayload);
    EXPECT_TRUE(state.payload == bytes) << key.first << " > " << key.second;
  }
  const DirectionState &split = directions[{"127.0.0.1.5000", "127.0.0.1.40000"}];
  EXPECT_EQ(split.max_segment, kMaxSegmentPayload);

  // tcpdump, when it is there, reads the file as it would a capture on `lo`.
  if (access("/usr/bin/tcpdump", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/tcpdump";
  const std::string command = "/usr/bin/tcpdump -r '" + path + "' -nn 2>&1";
  FILE *pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char line[4096];
  while (std::fgets(line, sizeof line, pipe) != nullptr) output += line;
  EXPECT_EQ(pclose(pipe), 0) << output;
  size_t packet_lines = 0;
  for (size_t at = 0; (at = output.find(" IP", at)) != std::string::npos; ++at) ++packet_lines;
  EXPECT_EQ(packet_lines, capture.packets.size()) << output;
  EXPECT_NE(output.find("link-type EN10MB"), std::string::npos) << output;
  EXPECT_NE(output.find("IP 127.0.0.1.40000 > 127.0.0.1.5000: Flags [S]"), std::string::npos)
      << output;
  EXPECT_NE(output.find("IP6 ::1.5001 > ::1.40001: Flags [P.]"), std::string::npos) << output;
  EXPECT_EQ(output.find("truncated"), std::string::npos) << output;
  // -vv checks every checksum and says "incorrect" for a bad one.
  pipe = popen(("/usr/bin/tcpdump -r '" + path + "' -nn -vv 2>&1").c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  output.clear();
  while (std::fgets(line, sizeof line, pipe) != nullptr) output += line;
  EXPECT_EQ(pclose(pipe), 0) << output;
  EXPECT_EQ(output.find("incorrect"), std::string::npos) << output;
  EXPECT_NE(output.find("cksum 0x"), std::string::npos) << output;
}

TEST(CaptureTest, BothEndsAgreeOnSequenceNumbers) {
  TempDirectory directory;
  const std::string path = directory.File("ends.pcap");
  auto opened = Sink::Open(path.c_str(), nullptr);
  ASSERT_TRUE(opened.ok());
  Sink &sink = *opened.value();
  // The two processes of one connection: the server started first and writes the handshake,
  // the client is told the server captures; each writes only what it sent once it knows the
  // other captures too. A mapped IPv6 address is IPv4 on the wire.
  const sockaddr_in client_local = V4("127.0.0.1", 41000), client_peer = V4("127.0.0.1", 6000);
  auto client =
      sink.Begin(reinterpret_cast<const sockaddr *>(&client_local), sizeof client_local,
                 reinterpret_cast<const sockaddr *>(&client_peer), sizeof client_peer, true, true);
  const sockaddr_in6 server_local = V6("::ffff:127.0.0.1", 6000);
  const sockaddr_in6 server_peer = V6("::ffff:127.0.0.1", 41000);
  auto server = sink.Begin(reinterpret_cast<const sockaddr *>(&server_local), sizeof server_local,
                           reinterpret_cast<const sockaddr *>(&server_peer), sizeof server_peer,
                           false, false);
  ASSERT_NE(client, nullptr);
  ASSERT_NE(server, nullptr);
  server->peer_captured = true;  // as its first receive learns
  EXPECT_EQ(server->local.family, AF_INET);
  EXPECT_EQ(client->outgoing.initial_sequence, server->incoming.initial_sequence);
  EXPECT_EQ(client->incoming.initial_sequence, server->outgoing.initial_sequence);
  EXPECT_NE(client->outgoing.initial_sequence, client->incoming.initial_sequence);

  const std::vector<uint8_t> request = Pattern(1000, 4), reply = Pattern(150000, 5);
  SendInPieces(sink, *client, true, request);
  SendInPieces(sink, *server, false, request);  // counted, not written
  SendInPieces(sink, *server, true, reply);
  SendInPieces(sink, *client, false, reply);
  SendInPieces(sink, *client, true, request);
  SendInPieces(sink, *server, false, request);
  sink.End(*client, true);
  sink.End(*server, false);
  sink.End(*server, true);
  sink.End(*client, false);
  opened.value().reset();

  const Capture capture = ReadCapture(path);
  ASSERT_TRUE(capture.records_ok);
  ASSERT_EQ(capture.packets.size(), 3u + 1 + 3 + 1 + 2);
  Directions directions = Follow(capture.packets, true);
  const DirectionState &up = directions[{"127.0.0.1.41000", "127.0.0.1.6000"}];
  const DirectionState &down = directions[{"127.0.0.1.6000", "127.0.0.1.41000"}];
  EXPECT_TRUE(up.sequence_ok);
  EXPECT_TRUE(down.sequence_ok);
  EXPECT_EQ(up.payload.size(), 2 * request.size());
  EXPECT_TRUE(down.payload == reply);
}

TEST(CaptureTest, PortListLimitsTheConnections) {
  TempDirectory directory;
  const std::string path = directory.File("ports.pcap");
  auto opened = Sink::Open(path.c_str(), "6379,8000-8099");
  ASSERT_TRUE(opened.ok());
  Sink &sink = *opened.value();
  EXPECT_NE(BeginFlow(sink, V4("127.0.0.1", 50000), V4("127.0.0.1", 6379), true), nullptr);
  EXPECT_NE(BeginFlow(sink, V6("::1", 8050), V6("::1", 50001), false), nullptr);
  EXPECT_EQ(BeginFlow(sink, V4("127.0.0.1", 50002), V4("127.0.0.1", 8100), true), nullptr);
  // A family that is not IP is not captured either.
  sockaddr unix_address{};
  unix_address.sa_family = AF_UNIX;
  const bool unix_captured = sink.Begin(&unix_address, sizeof unix_address, &unix_address,
                                        sizeof unix_address, true) != nullptr;
  EXPECT_FALSE(unix_captured);
  EXPECT_EQ(Sink::Open(path.c_str(), "63x79").error(), EINVAL);
  EXPECT_EQ(Sink::Open(directory.File("no/such/dir.pcap").c_str(), nullptr).error(), ENOENT);
}

TEST(CaptureTest, GetReadsTheEnvironment) {
  TempDirectory directory;
  const std::string path = directory.File("env.pcap");
  // In a child: Get() reads the environment once per process.
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    setenv("LOOPFAST_CAPTURE", path.c_str(), 1);
    setenv("LOOPFAST_CAPTURE_PORTS", "7000", 1);
    Sink *sink = Sink::Get();
    if (sink == nullptr || Sink::Get() != sink) _exit(1);
    if (BeginFlow(*sink, V4("127.0.0.1", 7000), V4("127.0.0.1", 50000), false) == nullptr) {
      _exit(2);
    }
    if (BeginFlow(*sink, V4("127.0.0.1", 7001), V4("127.0.0.1", 50000), false) != nullptr) {
      _exit(3);
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  struct stat info {};
  ASSERT_EQ(stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  const Capture capture = ReadCapture(path);
  EXPECT_TRUE(capture.header_ok);
  EXPECT_TRUE(capture.records_ok);
  EXPECT_EQ(capture.packets.size(), 3u);
}

// Several processes (and the file's creation) at once: one header, every record whole.
TEST(CaptureTest, ProcessesAppendingAtOnceKeepTheFileValid) {
  TempDirectory directory;
  const std::string path = directory.File("many.pcap");
  constexpr int kProcesses = 4;
  constexpr int kFlowsEach = 40;
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      auto opened = Sink::Open(path.c_str(), nullptr);
      if (!opened.ok()) _exit(1);
      Sink &sink = *opened.value();
      for (int f = 0; f < kFlowsEach; ++f) {
        const auto local_port = static_cast<uint16_t>(20000 + p * 1000 + f);
        auto flow = BeginFlow(sink, V4("127.0.0.1", local_port), V4("127.0.0.1", 9000), true);
        if (flow == nullptr) _exit(2);
        // Every tenth move is over 1 MiB: several writes, each of whole records.
        const size_t size = f % 10 == 9 ? 1300 * 1000 : 100 + 977 * f;
        SendInPieces(sink, *flow, true, Pattern(size, static_cast<uint8_t>(p * 50 + f)));
        SendInPieces(sink, *flow, false, Pattern(f + 1, static_cast<uint8_t>(f)));
        sink.End(*flow, true);
        sink.End(*flow, false);
      }
      _exit(0);
    }
    children.push_back(child);
  }
  for (pid_t child : children) {
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
  const Capture capture = ReadCapture(path);
  ASSERT_TRUE(capture.header_ok);
  ASSERT_TRUE(capture.records_ok);
  size_t bad_checksums = 0;
  for (const Packet &packet : capture.packets) {
    if (!packet.ip_checksum_ok || !packet.tcp_checksum_ok) ++bad_checksums;
  }
  EXPECT_EQ(bad_checksums, 0u);
  Directions directions = Follow(capture.packets, true);
  EXPECT_EQ(directions.size(), 2u * kProcesses * kFlowsEach);
  for (int p = 0; p < kProcesses; ++p) {
    for (int f = 0; f < kFlowsEach; ++f) {
      const std::string client = "127.0.0.1." + std::to_string(20000 + p * 1000 + f);
      const DirectionState &up = directions[{client, "127.0.0.1.9000"}];
      const size_t size = f % 10 == 9 ? 1300 * 1000 : 100 + 977 * f;
      EXPECT_TRUE(up.sequence_ok && up.fin_seen) << client;
      EXPECT_TRUE(up.payload == Pattern(size, static_cast<uint8_t>(p * 50 + f))) << client;
    }
  }
}

}  // namespace
}  // namespace loopfast::capture
