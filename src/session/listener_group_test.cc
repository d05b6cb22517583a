// White-box tests of a listener group: clients made by hand, so that the order of the client's
// connect, the group's accept and the client's send can be forced, and one group shared by
// forked processes as a prefork server shares it.
#include "session/listener_group.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include "session/arena_layout.h"
#include "session/messages.h"
#include "session/unix_messages.h"
#include "sys/owned_fds.h"
#include "wait/bell.h"

namespace loopfast::session {
namespace {

// A port number no TCP listener needs here: the group binds only the channel's name.
uint16_t TestPort(int n) { return static_cast<uint16_t>(20000 + (getpid() * 7 + n) % 20000); }

// A connecting process's side of a session, made by hand.
class HandMadeClient {
 public:
  HandMadeClient() {
    memory_fd_ = memfd_create("loopfast-session", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (memory_fd_ < 0 || ftruncate(memory_fd_, static_cast<off_t>(kArenaBytes)) != 0 ||
        fcntl(memory_fd_, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
      return;
    }
    arena_ = mmap(nullptr, kArenaBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
                  memory_fd_, 0);
    if (arena_ == MAP_FAILED) return;
    InitializeArena(arena_, nonce_, static_cast<uint32_t>(getpid()));
    bell_ = wait::CreateBell();
    group_bell_ = wait::CreateBell();
  }
  ~HandMadeClient() {
    if (arena_ != MAP_FAILED) munmap(arena_, kArenaBytes);
    for (int fd : {memory_fd_, channel_}) {
      if (fd >= 0) close(fd);
    }
    sys::CloseOwned(bell_);  // bells are loopfast's own descriptors
    sys::CloseOwned(group_bell_);
  }
  HandMadeClient(const HandMadeClient &) = delete;
  HandMadeClient &operator=(const HandMadeClient &) = delete;

  bool ok() const { return arena_ != MAP_FAILED && bell_ >= 0 && group_bell_ >= 0; }

  // Connects to the group's channel without sending anything.
  bool Connect(uint16_t port) {
    channel_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un address;
    const socklen_t length = ChannelAddress(port, &address);
    return channel_ >= 0 &&
           connect(channel_, reinterpret_cast<struct sockaddr *>(&address), length) == 0;
  }
  bool SendSetup() {
    const SessionSetup setup = {MakeHeader(Kind::kSessionSetup), kArenaVersion, 0, kArenaBytes,
                                nonce_};
    const int fds[kSetupFds] = {memory_fd_, bell_, group_bell_};
    return SendMessage(channel_, &setup, sizeof setup, fds, kSetupFds).ok();
  }
  // Leaves the session: the group sees its end of the setup connection close.
  void Leave() {
    close(channel_);
    channel_ = -1;
  }
  // A slot claimed for the client socket `cookie`, as ClientSession::Claim leaves it.
  void Claim(uint64_t cookie, uint32_t index) {
    ArenaView view(arena_);
    Slot *slot = view.slot(index);
    slot->header.socket_cookie.store(cookie);
    slot->header.state.store(kSlotClaimed);
    ClaimEntry &entry = view.claims()[ClaimHome(cookie)];
    entry.slot.store(index);
    entry.socket_cookie.store(cookie);
  }

 private:
  const uint64_t nonce_ = (static_cast<uint64_t>(getpid()) << 20 | next_nonce_++) | 1;
  static inline uint64_t next_nonce_ = 1;
  int memory_fd_ = -1;
  void *arena_ = MAP_FAILED;
  int bell_ = -1;
  int group_bell_ = -1;
  int channel_ = -1;
};

using Outcome = ServerSession::BindOutcome;
constexpr uint32_t kLimit = 1 << 16;

std::shared_ptr<ListenerGroup> OpenGroup(int n) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    Result<std::shared_ptr<ListenerGroup>> group = ListenerGroup::Open(TestPort(n + attempt * 97));
    if (group.ok()) return group.value();
  }
  return nullptr;
}

int ExitStatus(pid_t child) {
  int status = 0;
  if (waitpid(child, &status, 0) != child) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

TEST(ListenerGroupTest, AClaimIsBoundOnceAndOnlyForItsUser) {
  auto group = OpenGroup(1);
  ASSERT_NE(group, nullptr);
  HandMadeClient client;
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client.Connect(group->port()));
  ASSERT_TRUE(client.SendSetup());
  client.Claim(41, 7);
  EXPECT_EQ(group->Bind(getuid() + 1, true, 41, kLimit).outcome, Outcome::kNotFound) << "other user";
  EXPECT_EQ(group->Bind(getuid(), true, 42, kLimit).outcome, Outcome::kNotFound) << "other socket";
  ListenerGroup::Placed placed = group->Bind(getuid(), true, 41, kLimit);
  EXPECT_EQ(placed.outcome, Outcome::kBound);
  EXPECT_EQ(placed.slot, 7u);
  EXPECT_EQ(group->Bind(getuid(), true, 41, kLimit).outcome, Outcome::kNotFound) << "bound already";
}

TEST(ListenerGroupTest, TwoSessionsClaimingOneSocketAreAmbiguous) {
  auto group = OpenGroup(2);
  ASSERT_NE(group, nullptr);
  HandMadeClient first, second;
  ASSERT_TRUE(first.ok() && second.ok());
  for (HandMadeClient *client : {&first, &second}) {
    ASSERT_TRUE(client->Connect(group->port()));
    ASSERT_TRUE(client->SendSetup());
    client->Claim(99, 3);
  }
  ListenerGroup::Placed placed = group->Bind(getuid(), true, 99, kLimit);
  EXPECT_EQ(placed.outcome, Outcome::kAmbiguous);
  EXPECT_EQ(placed.session, nullptr);
}

// The group accepted the setup connection before the client sent on it (another connection's
// accept drained the channel in between): the setup is still read when its own connection is
// accepted.
TEST(ListenerGroupTest, ASetupSentAfterItsConnectionWasAcceptedIsStillFound) {
  auto group = OpenGroup(3);
  ASSERT_NE(group, nullptr);
  HandMadeClient client;
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client.Connect(group->port()));
  EXPECT_EQ(group->Bind(getuid(), true, 1, kLimit).outcome, Outcome::kNotFound);  // accepts, parks
  ASSERT_TRUE(client.SendSetup());
  client.Claim(2, 5);
  EXPECT_EQ(group->Bind(getuid(), true, 2, kLimit).outcome, Outcome::kBound);
}

// The same in a prefork group: one process parks the connection and exits, another reads it.
TEST(ListenerGroupTest, AParkedSetupIsFoundByAnotherProcessOfTheGroup) {
  auto group = OpenGroup(4);
  ASSERT_NE(group, nullptr);
  HandMadeClient client;
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client.Connect(group->port()));
  group->AddHolder();
  const pid_t child = fork();
  if (child == 0) _exit(group->Bind(getuid(), true, 1, kLimit).outcome == Outcome::kNotFound ? 0 : 1);
  ASSERT_EQ(ExitStatus(child), 0);
  group->DropHolder();
  ASSERT_TRUE(client.SendSetup());
  client.Claim(2, 5);
  EXPECT_EQ(group->Bind(getuid(), true, 2, kLimit).outcome, Outcome::kBound);
}

// Silent connections by the hundred (a user who connects and never sends): the accept does not
// wait for them, and a real client's setup is still found.
TEST(ListenerGroupTest, SilentConnectionsNeitherStallNorCrowdOutARealSetup) {
  auto group = OpenGroup(5);
  ASSERT_NE(group, nullptr);
  std::vector<std::unique_ptr<HandMadeClient>> silent;
  for (int i = 0; i < 150; ++i) {
    silent.push_back(std::make_unique<HandMadeClient>());
    ASSERT_TRUE(silent.back()->Connect(group->port()));
  }
  HandMadeClient client;
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client.Connect(group->port()));
  ASSERT_TRUE(client.SendSetup());
  client.Claim(8, 1);
  EXPECT_EQ(group->Bind(getuid(), true, 8, kLimit).outcome, Outcome::kBound);
}

// A forged setup (a descriptor that is not a sealed memfd of the arena's size, a bell that is
// not an eventfd) registers nothing: its claims are not found.
TEST(ListenerGroupTest, ForgedSetupsRegisterNothing) {
  auto group = OpenGroup(6);
  ASSERT_NE(group, nullptr);
  const int unsealed = memfd_create("loopfast-session", MFD_CLOEXEC);
  ASSERT_EQ(ftruncate(unsealed, static_cast<off_t>(kArenaBytes)), 0);
  const int bell = wait::CreateBell();
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  HandMadeClient real;  // supplies a good arena for the bad-bell case
  ASSERT_TRUE(real.ok());
  const SessionSetup setup = {MakeHeader(Kind::kSessionSetup), kArenaVersion, 0, kArenaBytes, 77};
  const int cases[][kSetupFds] = {{unsealed, bell, bell}, {pipe_fds[0], bell, bell}};
  for (const auto &fds : cases) {
    const int channel = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un address;
    const socklen_t length = ChannelAddress(group->port(), &address);
    ASSERT_EQ(connect(channel, reinterpret_cast<struct sockaddr *>(&address), length), 0);
    ASSERT_TRUE(SendMessage(channel, &setup, sizeof setup, fds, kSetupFds).ok());
    EXPECT_EQ(group->Bind(getuid(), true, 5, kLimit).outcome, Outcome::kNotFound);
    close(channel);
  }
  EXPECT_TRUE(group->Sessions().empty());
  for (int fd : {unsealed, pipe_fds[0], pipe_fds[1]}) close(fd);
  sys::CloseOwned(bell);
}

// A prefork server that outlives many short-lived clients: the group's depot does not fill up
// with the sessions of clients long gone, and a process forked before all of them still finds
// the newest client's session.
TEST(ListenerGroupTest, ThousandsOfEndedSessionsDoNotFillTheDepot) {
  auto group = OpenGroup(7);
  ASSERT_NE(group, nullptr);
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  group->AddHolder();
  const pid_t sibling = fork();
  if (sibling == 0) {
    close(go[1]);
    char byte;
    if (read(go[0], &byte, 1) != 1) _exit(2);
    _exit(group->Bind(getuid(), true, 12345, kLimit).outcome == Outcome::kBound ? 0 : 1);
  }
  close(go[0]);
  for (int i = 0; i < 1200; ++i) {
    HandMadeClient gone;
    ASSERT_TRUE(gone.ok());
    ASSERT_TRUE(gone.Connect(group->port()));
    ASSERT_TRUE(gone.SendSetup());
    ASSERT_EQ(group->Bind(getuid(), true, 1, kLimit).outcome, Outcome::kNotFound);  // registers it
    gone.Leave();
  }
  HandMadeClient newest;
  ASSERT_TRUE(newest.ok());
  ASSERT_TRUE(newest.Connect(group->port()));
  ASSERT_TRUE(newest.SendSetup());
  newest.Claim(12345, 9);
  EXPECT_EQ(group->Bind(getuid(), true, 1, kLimit).outcome, Outcome::kNotFound);  // registers it
  ASSERT_EQ(write(go[1], "g", 1), 1);
  EXPECT_EQ(ExitStatus(sibling), 0);
  EXPECT_LT(group->Sessions().size(), 100u) << "ended sessions are let go";
  close(go[1]);
}

}  // namespace
}  // namespace loopfast::session
