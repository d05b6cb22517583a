// The option table against its two mirrors: docs/options.md (row for row) and the running
// kernel (every option it knows at the four levels has a class).
#include "socket/option_table.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <utility>

namespace loopfast {
namespace {

// (level name, option name) → class name, from the table rows of docs/options.md.
std::map<std::pair<std::string, std::string>, std::string> DocumentedOptions() {
  std::map<std::pair<std::string, std::string>, std::string> rows;
  std::ifstream docs(std::string(LOOPFAST_SOURCE_DIR) + "/docs/options.md");
  EXPECT_TRUE(docs.good()) << "docs/options.md not found";
  std::string line;
  while (std::getline(docs, line)) {
    if (line.rfind("| `", 0) != 0) continue;
    // | `LEVEL` | `OPTION` | class | why |
    std::string cells[4];
    size_t at = 1;
    for (std::string &cell : cells) {
      const size_t end = line.find(" |", at);
      if (end == std::string::npos) break;
      cell = line.substr(at + 1, end - at - 1);
      at = end + 2;
    }
    auto unquote = [](std::string text) {
      if (text.size() >= 2 && text.front() == '`' && text.back() == '`') {
        text = text.substr(1, text.size() - 2);
      }
      return text;
    };
    const auto key = std::make_pair(unquote(cells[0]), unquote(cells[1]));
    EXPECT_EQ(rows.count(key), 0u) << "documented twice: " << key.second;
    rows[key] = cells[2];
  }
  return rows;
}

TEST(OptionTableTest, DocsListEveryOptionWithTheCodesClass) {
  auto documented = DocumentedOptions();
  size_t count = 0;
  const OptionInfo *all = AllOptions(&count);
  ASSERT_GT(count, 100u);
  for (size_t i = 0; i < count; ++i) {
    const auto key = std::make_pair(std::string(all[i].level_name), all[i].option_name);
    auto found = documented.find(key);
    if (found == documented.end()) {
      ADD_FAILURE() << all[i].option_name << " is in the code but not in docs/options.md";
      continue;
    }
    EXPECT_EQ(found->second, ClassName(all[i].option_class)) << all[i].option_name;
    documented.erase(found);
  }
  for (const auto &[key, option_class] : documented) {
    ADD_FAILURE() << key.second << " is in docs/options.md but not in the code";
  }
}

TEST(OptionTableTest, EveryOptionTheKernelKnowsHasAClass) {
  // getsockopt on a TCP socket: ENOPROTOOPT means the kernel does not know the number at that
  // level; anything else (a value, EINVAL, EFAULT...) means it does, and the table must too.
  struct Level {
    int family;
    int level;
    int highest;
  };
  // IP and IPv6 numbers from 64 up are netfilter's table queries (IPT_SO_GET_*), not options.
  const Level levels[] = {{AF_INET, SOL_SOCKET, 100},
                          {AF_INET, IPPROTO_TCP, 60},
                          {AF_INET, IPPROTO_IP, 63},
                          {AF_INET6, IPPROTO_IPV6, 63}};
  // Known to getsockopt but not settable by a program on a TCP socket, or datagram/raw/
  // multicast-only numbers the kernel answers for any IP socket.
  const std::set<std::pair<int, int>> not_settings = {
      {IPPROTO_IP, IP_HDRINCL},
      {IPPROTO_IP, IP_ROUTER_ALERT},
      {IPPROTO_IP, IP_RECVRETOPTS},
      {IPPROTO_IP, IP_PMTUDISC_DO},
      {IPPROTO_IP, IP_NODEFRAG},
      {IPPROTO_IP, IP_CHECKSUM},
      {IPPROTO_IP, IP_MULTICAST_ALL},
      {IPPROTO_IP, IP_RECVORIGDSTADDR},
      {IPPROTO_IP, IP_PASSSEC},
      {IPPROTO_IP, IP_RECVFRAGSIZE},
      {IPPROTO_IP, IP_MSFILTER},
      {IPPROTO_IP, IP_PKTOPTIONS},
      {IPPROTO_IP, MCAST_MSFILTER},
      {IPPROTO_IPV6, MCAST_MSFILTER},
      {IPPROTO_IPV6, IPV6_2292PKTINFO},
      {IPPROTO_IPV6, IPV6_2292HOPOPTS},
      {IPPROTO_IPV6, IPV6_2292DSTOPTS},
      {IPPROTO_IPV6, IPV6_2292RTHDR},
      {IPPROTO_IPV6, IPV6_2292PKTOPTIONS},
      {IPPROTO_IPV6, IPV6_2292HOPLIMIT},
      {IPPROTO_IPV6, IPV6_CHECKSUM},
      {IPPROTO_IPV6, IPV6_MULTICAST_IF},
      {IPPROTO_IPV6, IPV6_MULTICAST_HOPS},
      {IPPROTO_IPV6, IPV6_MULTICAST_LOOP},
      {IPPROTO_IPV6, IPV6_ROUTER_ALERT},
      {IPPROTO_IPV6, IPV6_RECVHOPOPTS},
      {IPPROTO_IPV6, IPV6_HOPOPTS},
      {IPPROTO_IPV6, IPV6_RTHDRDSTOPTS},
      {IPPROTO_IPV6, IPV6_RECVRTHDR},
      {IPPROTO_IPV6, IPV6_RTHDR},
      {IPPROTO_IPV6, IPV6_RECVDSTOPTS},
      {IPPROTO_IPV6, IPV6_DSTOPTS},
      {IPPROTO_IPV6, IPV6_PATHMTU},
      {IPPROTO_IPV6, IPV6_RECVPATHMTU},
      {IPPROTO_IPV6, IPV6_PKTINFO},
      {IPPROTO_IPV6, IPV6_HOPLIMIT},
      {IPPROTO_IPV6, IPV6_MULTICAST_ALL},
      {IPPROTO_IPV6, IPV6_RECVORIGDSTADDR},
      {IPPROTO_IPV6, IPV6_RECVFRAGSIZE},
      {IPPROTO_IPV6, IPV6_ROUTER_ALERT_ISOLATE},
  };
  for (const Level &level : levels) {
    const int fd = socket(level.family, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    for (int name = 1; name <= level.highest; ++name) {
      char value[512];
      socklen_t length = sizeof value;
      errno = 0;
      const int ret = getsockopt(fd, level.level, name, value, &length);
      if (ret != 0 && errno == ENOPROTOOPT) continue;
      if (not_settings.count({level.level, name}) != 0) continue;
      EXPECT_NE(FindOption(level.level, name), nullptr)
          << "level " << level.level << " option " << name << ": the kernel knows it ("
          << (ret == 0 ? "getsockopt works" : std::strerror(errno))
          << "); the option table does not";
    }
    close(fd);
  }
}

TEST(OptionTableTest, UnknownOptionsTakeKernelTcp) {
  EXPECT_EQ(FindOption(SOL_SOCKET, 100000), nullptr);
  EXPECT_EQ(ClassOf(SOL_SOCKET, 100000), OptionClass::kNeedsKernel);
  EXPECT_EQ(ClassOf(IPPROTO_TCP, TCP_NODELAY), OptionClass::kNoEffect);
}

}  // namespace
}  // namespace loopfast
