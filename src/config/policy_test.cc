// The host policy and the environment's narrowing, as pure functions: parsing, the file's
// safety checks, and which addresses they deny.
#include "config/policy.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace loopfast {
namespace {

sockaddr_in V4(const char *address, uint16_t port) {
  sockaddr_in in = {};
  in.sin_family = AF_INET;
  in.sin_port = htons(port);
  inet_pton(AF_INET, address, &in.sin_addr);
  return in;
}

sockaddr_in6 V6(const char *address, uint16_t port) {
  sockaddr_in6 in6 = {};
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(port);
  inet_pton(AF_INET6, address, &in6.sin6_addr);
  return in6;
}

template <typename Address>
const char *Denies(const Policy &policy, const Address &address) {
  return PolicyDenies(policy, reinterpret_cast<const sockaddr *>(&address), sizeof address);
}

TEST(PolicyTest, InspectedPortsAndAddressesTakeKernelTcp) {
  Policy policy;
  std::string error;
  ASSERT_TRUE(ParsePolicyText(
      "# comment\n\ninspect port 5432\ninspect port 8000-8099   # range\n"
      "inspect address 127.0.0.2\ninspect address 127.0.1.0/24\ninspect address ::1\n",
      &policy, &error))
      << error;
  EXPECT_NE(Denies(policy, V4("127.0.0.1", 5432)), nullptr);
  EXPECT_NE(Denies(policy, V4("127.0.0.1", 8050)), nullptr);
  EXPECT_EQ(Denies(policy, V4("127.0.0.1", 8100)), nullptr);
  EXPECT_NE(Denies(policy, V4("127.0.0.2", 80)), nullptr);
  EXPECT_NE(Denies(policy, V4("127.0.1.200", 80)), nullptr);
  EXPECT_EQ(Denies(policy, V4("127.0.2.1", 80)), nullptr);
  EXPECT_NE(Denies(policy, V6("::1", 80)), nullptr);
  EXPECT_NE(Denies(policy, V6("::ffff:127.0.0.2", 80)), nullptr);  // v4-mapped is IPv4
  EXPECT_EQ(Denies(policy, V6("::ffff:127.0.0.1", 80)), nullptr);
  EXPECT_EQ(policy.off_reason, nullptr);
}

TEST(PolicyTest, MalformedTextIsRefusedNamingTheLine) {
  const char *bad[] = {"inspect port 0",
                       "inspect port 70000",
                       "inspect port 9-3",
                       "inspect port http",
                       "inspect address 127.0.0.300",
                       "inspect address 10.0.0.0/33",
                       "inspect user no-such-user-here",
                       "inspect host x",
                       "allow port 80",
                       "inspect port",
                       "require same-program",
                       "require",
                       "disable now"};
  for (const char *text : bad) {
    Policy policy;
    std::string error;
    EXPECT_FALSE(ParsePolicyText(std::string("inspect port 1\n") + text + "\n", &policy, &error))
        << text;
    EXPECT_NE(error.find("line 2"), std::string::npos) << error;
  }
  Policy policy;
  std::string error;
  ASSERT_TRUE(ParsePolicyText("disable\n", &policy, &error));
  EXPECT_NE(Denies(policy, V4("127.0.0.1", 1)), nullptr);
}

TEST(PolicyTest, RequireSameUserRefusesOnlyPairsOfTwoUsers) {
  Policy policy;
  std::string error;
  EXPECT_EQ(PolicyDeniesUsers(policy, 0, 1000), nullptr) << "no rule: any two users";
  ASSERT_TRUE(ParsePolicyText("require same-user\n", &policy, &error)) << error;
  EXPECT_EQ(PolicyDeniesUsers(policy, 1000, 1000), nullptr);
  EXPECT_NE(PolicyDeniesUsers(policy, 0, 1000), nullptr);
  EXPECT_EQ(Denies(policy, V4("127.0.0.1", 1)), nullptr) << "addresses are not concerned";
}

TEST(PolicyTest, UsersAndProgramsAreMatchedForThisProcess) {
  Policy policy;
  std::string error;
  ASSERT_TRUE(
      ParsePolicyText("inspect user root\ninspect user 1234\n"
                      "inspect program /usr/sbin/nginx\ninspect program redis-server\n",
                      &policy, &error))
      << error;
  Policy other = policy;
  ApplyProcessRules(1000, "/usr/bin/curl", &other);
  EXPECT_EQ(other.off_reason, nullptr);
  for (const auto &[uid, program] :
       std::vector<std::pair<uid_t, std::string>>{{0, "/usr/bin/curl"},
                                                  {1234, "/usr/bin/curl"},
                                                  {1000, "/usr/sbin/nginx"},
                                                  {1000, "/usr/bin/redis-server"}}) {
    Policy applied = policy;
    ApplyProcessRules(uid, program, &applied);
    EXPECT_NE(applied.off_reason, nullptr) << uid << " " << program;
  }
  Policy path_only = policy;
  ApplyProcessRules(1000, "/opt/nginx", &path_only);  // a path rule matches that path only
  EXPECT_EQ(path_only.off_reason, nullptr);
}

TEST(PolicyTest, TheEnvironmentOnlyNarrows) {
  Policy policy;
  std::string error;
  ASSERT_TRUE(ParsePolicyText("inspect port 5432\n", &policy, &error));
  ASSERT_TRUE(ParsePortList("5432, 6379", &policy.include_ports));
  ASSERT_TRUE(ParseAddressList("127.0.0.0/8", &policy.include_addresses));
  ASSERT_TRUE(ParsePortList("6380-6390", &policy.exclude_ports));
  EXPECT_NE(Denies(policy, V4("127.0.0.1", 5432)), nullptr);  // included, but inspected
  EXPECT_EQ(Denies(policy, V4("127.0.0.1", 6379)), nullptr);
  EXPECT_NE(Denies(policy, V4("127.0.0.1", 6385)), nullptr);
  EXPECT_NE(Denies(policy, V4("127.0.0.1", 80)), nullptr);  // not included
  EXPECT_NE(Denies(policy, V6("::1", 6379)), nullptr);      // not an included address
  std::vector<PortRange> ports;
  std::vector<AddressRange> addresses;
  EXPECT_FALSE(ParsePortList("", &ports));
  EXPECT_FALSE(ParsePortList("80,", &ports));
  EXPECT_FALSE(ParsePortList("80;81", &ports));
  EXPECT_FALSE(ParseAddressList("localhost", &addresses));
}

// The file checks: run as root (they need root-owned files); skipped otherwise.
class PolicyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to make root-owned policy files";
    char pattern[] = "/tmp/lf-test-policy.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    directory_ = pattern;
    ASSERT_EQ(chmod(directory_.c_str(), 0755), 0);
    path_ = directory_ + "/loopfast.conf";
  }
  void TearDown() override {
    if (directory_.empty()) return;
    unlink(path_.c_str());
    unlink((directory_ + "/link.conf").c_str());
    rmdir(directory_.c_str());
  }
  void Write(const std::string &text, mode_t mode) {
    FILE *file = fopen(path_.c_str(), "w");
    ASSERT_NE(file, nullptr);
    fputs(text.c_str(), file);
    fclose(file);
    ASSERT_EQ(chmod(path_.c_str(), mode), 0);
  }
  bool Load(const std::string &path, Policy *policy, std::string *error) {
    return LoadPolicyFile(path.c_str(), policy, error);
  }

  std::string directory_;
  std::string path_;
};

TEST_F(PolicyFileTest, ARootOwnedFileIsReadAndAMissingOneIsNoPolicy) {
  Policy policy;
  std::string error;
  EXPECT_TRUE(Load(directory_ + "/absent.conf", &policy, &error)) << error;
  EXPECT_TRUE(policy.inspected_ports.empty());
  Write("inspect port 7000\n", 0644);
  ASSERT_TRUE(Load(path_, &policy, &error)) << error;
  ASSERT_EQ(policy.inspected_ports.size(), 1u);
  EXPECT_EQ(policy.inspected_ports[0].first, 7000);
}

TEST_F(PolicyFileTest, AFileOthersCouldChangeIsRefused) {
  Policy policy;
  std::string error;
  Write("inspect port 7000\n", 0666);
  EXPECT_FALSE(Load(path_, &policy, &error));
  EXPECT_NE(error.find("writable by group or others"), std::string::npos) << error;
  Write("inspect port 7000\n", 0644);
  ASSERT_EQ(chown(path_.c_str(), 1000, 1000), 0);
  EXPECT_FALSE(Load(path_, &policy, &error));
  EXPECT_NE(error.find("not owned by root"), std::string::npos) << error;
  ASSERT_EQ(chown(path_.c_str(), 0, 0), 0);
  ASSERT_EQ(symlink(path_.c_str(), (directory_ + "/link.conf").c_str()), 0);
  EXPECT_FALSE(Load(directory_ + "/link.conf", &policy, &error));  // no symbolic links
  ASSERT_EQ(chmod(directory_.c_str(), 0777), 0);
  EXPECT_FALSE(Load(path_, &policy, &error));
  EXPECT_NE(error.find("directory"), std::string::npos) << error;
  ASSERT_EQ(chmod(directory_.c_str(), 0755), 0);
  Write("inspect port seven\n", 0644);
  EXPECT_FALSE(Load(path_, &policy, &error));
  EXPECT_NE(error.find("line 1"), std::string::npos) << error;
}

}  // namespace
}  // namespace loopfast
