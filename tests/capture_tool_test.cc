// `loopfast capture` with real programs: stream_peer pairs started by the tool, the file read
// back (tests/pcap_summary.py, and tcpdump where installed). Each byte of each direction must
// be in the file exactly once, in order, with one handshake and one FIN per direction —
// whether both ends, only the client or only the server is captured.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "peer_process.h"
#include "test_support.h"

namespace loopfast::test {
namespace {

constexpr uint64_t kBytes = 1 << 20;

// "SRC>DST" -> "syn=.. synack=.. fin=.. payload=.. ordered=.. checksums=.."
std::map<std::string, std::string> Summary(const std::string &file) {
  int status = 0;
  const std::string out =
      Output("python3 " LOOPFAST_SOURCE_DIR "/tests/pcap_summary.py " + file, &status);
  EXPECT_EQ(status, 0) << out;
  std::map<std::string, std::string> flows;
  size_t start = 0;
  while (start < out.size()) {
    const size_t end = out.find('\n', start);
    const std::string line = out.substr(start, end - start);
    const size_t space = line.find(' ');
    if (space != std::string::npos) flows[line.substr(0, space)] = line.substr(space + 1);
    start = end == std::string::npos ? out.size() : end + 1;
  }
  return flows;
}

void CaptureOnePair(bool capture_server, bool capture_client) {
  const std::string file = "/tmp/lfcapture-" + std::to_string(getpid()) + ".pcap";
  unlink(file.c_str());
  const std::vector<std::string> plain = {"run"};
  const std::vector<std::string> first = {"capture", "-w", file};
  const std::vector<std::string> second = {"capture", "-a", "-w", file};
  Peer server({"listen"}, kTransparent, "", capture_server ? first : plain);
  const std::string port_line = server.Line();
  ASSERT_EQ(port_line.rfind("port ", 0), 0u) << port_line;
  const std::string port = port_line.substr(5);
  Peer client({"connect", port}, kTransparent, "",
              capture_client ? (capture_server ? second : first) : plain);
  const std::map<std::string, std::string> s = Fields(server.Line()), c = Fields(client.Line());
  ASSERT_TRUE(s.count("ok") && c.count("ok"));
  EXPECT_EQ(s.at("after"), "fast");
  EXPECT_EQ(c.at("after"), "fast");
  EXPECT_EQ(server.Wait(), 0);
  EXPECT_EQ(client.Wait(), 0);

  const std::map<std::string, std::string> flows = Summary(file);
  ASSERT_EQ(flows.size(), 2u) << "one flow per direction";
  std::string up, down;
  for (const auto &[key, value] : flows) {
    if (key.find(">127.0.0.1:" + port) != std::string::npos) {
      up = value;
    } else if (key.rfind("127.0.0.1:" + port + ">", 0) == 0) {
      down = value;
    }
  }
  const std::string bytes = "payload=" + std::to_string(kBytes);
  EXPECT_EQ(up, "syn=1 synack=0 fin=1 " + bytes + " ordered=yes checksums=yes");
  EXPECT_EQ(down, "syn=0 synack=1 fin=1 " + bytes + " ordered=yes checksums=yes");
  if (access("/usr/bin/tcpdump", X_OK) == 0 || access("/usr/sbin/tcpdump", X_OK) == 0) {
    int status = 0;
    const std::string read = Output("tcpdump -nn -r " + file + " 2>&1", &status);
    EXPECT_EQ(status, 0) << read;
    EXPECT_NE(read.find("127.0.0.1." + port), std::string::npos) << read.substr(0, 400);
  }
  unlink(file.c_str());
}

TEST(CaptureToolTest, BothEndsCapturedIntoOneFileWriteEachPacketOnce) {
  CaptureOnePair(/*capture_server=*/true, /*capture_client=*/true);
}

TEST(CaptureToolTest, OnlyTheClientCapturedWritesBothDirections) {
  CaptureOnePair(/*capture_server=*/false, /*capture_client=*/true);
}

TEST(CaptureToolTest, OnlyTheServerCapturedWritesBothDirections) {
  CaptureOnePair(/*capture_server=*/true, /*capture_client=*/false);
}

}  // namespace
}  // namespace loopfast::test
