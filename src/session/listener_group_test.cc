// White-box tests of a listener group: clients made by hand, so that the order of the client's
// connect, the group's accept and the client's send can be forced, and one group shared by
// forked processes as a prefork server shares it.
#include "session/listener_group.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
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
  bool SendSetup() { return SendSetupAs(Setup(), sizeof(SessionSetup), kSetupFds); }
  // The setup this client would send, to be sent changed: `size` bytes of it (up to 8 bytes
  // past its end, zeros), with the first `fd_count` of its descriptors.
  SessionSetup Setup() const {
    return {MakeHeader(Kind::kSessionSetup), kArenaVersion, 0, kArenaBytes, nonce_};
  }
  bool SendSetupAs(const SessionSetup &setup, size_t size, int fd_count) {
    char bytes[sizeof setup + 8] = {};
    std::memcpy(bytes, &setup, sizeof setup);
    const int fds[kSetupFds] = {memory_fd_, bell_, group_bell_};
    return size <= sizeof bytes && SendMessage(channel_, bytes, size, fds, fd_count).ok();
  }
  int channel() const { return channel_; }
  // The arena as a client that never initialised it would offer it.
  void ScribbleHeader() { std::memset(arena_, 0xa5, 64); }
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
  EXPECT_EQ(group->Bind(getuid() + 1, true, 41, kLimit).outcome, Outcome::kNotFound)
      << "other user";
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
  if (child == 0)
    _exit(group->Bind(getuid(), true, 1, kLimit).outcome == Outcome::kNotFound ? 0 : 1);
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

// Setups that are malformed (a header, size, version or field off; descriptors missing; an
// arena that is not one) register nothing, and the group still takes a good one afterwards.
TEST(ListenerGroupTest, MalformedSetupsRegisterNothingAndTheGroupGoesOn) {
  auto group = OpenGroup(8);
  ASSERT_NE(group, nullptr);
  struct Malformed {
    const char *what;
    void (*change)(SessionSetup *);
    size_t size = sizeof(SessionSetup);
    int fd_count = kSetupFds;
    bool scribbled_arena = false;
  };
  const Malformed cases[] = {
      {"magic", [](SessionSetup *s) { s->header.magic ^= 1; }},
      {"protocol version", [](SessionSetup *s) { ++s->header.version; }},
      {"kind", [](SessionSetup *s) { s->header.kind = static_cast<Kind>(7); }},
      {"arena version", [](SessionSetup *s) { ++s->arena_version; }},
      {"arena size", [](SessionSetup *s) { s->arena_bytes -= 4096; }},
      {"reserved", [](SessionSetup *s) { s->reserved = 1; }},
      {"nonce 0", [](SessionSetup *s) { s->nonce = 0; }},
      {"short", [](SessionSetup *) {}, sizeof(SessionSetup) - 1},
      {"long", [](SessionSetup *) {}, sizeof(SessionSetup) + 8},
      {"two descriptors", [](SessionSetup *) {}, sizeof(SessionSetup), 2},
      {"no descriptors", [](SessionSetup *) {}, sizeof(SessionSetup), 0},
      {"arena header", [](SessionSetup *) {}, sizeof(SessionSetup), kSetupFds, true},
  };
  uint64_t cookie = 500;
  for (const Malformed &bad : cases) {
    HandMadeClient client;
    ASSERT_TRUE(client.ok());
    ASSERT_TRUE(client.Connect(group->port()));
    SessionSetup setup = client.Setup();
    bad.change(&setup);
    if (bad.scribbled_arena) client.ScribbleHeader();
    ASSERT_TRUE(client.SendSetupAs(setup, bad.size, bad.fd_count)) << bad.what;
    client.Claim(++cookie, 4);
    EXPECT_EQ(group->Bind(getuid(), true, cookie, kLimit).outcome, Outcome::kNotFound) << bad.what;
    EXPECT_TRUE(group->Sessions().empty()) << bad.what;
  }
  HandMadeClient good;
  ASSERT_TRUE(good.ok());
  ASSERT_TRUE(good.Connect(group->port()));
  ASSERT_TRUE(good.SendSetup());
  good.Claim(++cookie, 4);
  EXPECT_EQ(group->Bind(getuid(), true, cookie, kLimit).outcome, Outcome::kBound);
}

// One group per port: a second one on the same port is refused, and the holder of the name is
// who ChannelHolder names (this process); a port nobody holds has no holder.
TEST(ListenerGroupTest, ASecondGroupOnTheSamePortIsRefusedAndTheHolderNamed) {
  auto group = OpenGroup(9);
  ASSERT_NE(group, nullptr);
  Result<std::shared_ptr<ListenerGroup>> second = ListenerGroup::Open(group->port());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error(), EADDRINUSE);
  Result<struct ucred> holder = ListenerGroup::ChannelHolder(group->port());
  ASSERT_TRUE(holder.ok());
  EXPECT_EQ(holder.value().pid, getpid());
  EXPECT_EQ(holder.value().uid, getuid());
  const uint16_t port = group->port();
  group.reset();
  EXPECT_FALSE(ListenerGroup::ChannelHolder(port).ok()) << "the name went with the group";
}

// The group goes away (its last listener closed): its clients' setup connections end, so they
// set up anew with whatever listens next; the port's name is free for the next group, which
// knows nothing of the old sessions; a connection already bound keeps its session.
TEST(ListenerGroupTest, AGroupThatGoesAwayEndsItsSetupConnectionsAndFreesThePort) {
  auto group = OpenGroup(10);
  ASSERT_NE(group, nullptr);
  const uint16_t port = group->port();
  HandMadeClient client;
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client.Connect(port));
  ASSERT_TRUE(client.SendSetup());
  client.Claim(61, 2);
  ListenerGroup::Placed placed = group->Bind(getuid(), true, 61, kLimit);
  ASSERT_EQ(placed.outcome, Outcome::kBound);
  EXPECT_TRUE(placed.session->ClientAlive());
  group.reset();
  struct pollfd pfd = {client.channel(), POLLIN, 0};
  ASSERT_EQ(poll(&pfd, 1, 2000), 1) << "the client learns at once";
  char byte;
  EXPECT_EQ(recv(client.channel(), &byte, 1, MSG_DONTWAIT), 0) << "end of the setup connection";
  EXPECT_FALSE(placed.session->ClientAlive());
  EXPECT_EQ(placed.session->arena().slot(2)->header.state.load(), kSlotBound)
      << "the bound connection's session is still mapped";
  Result<std::shared_ptr<ListenerGroup>> next = ListenerGroup::Open(port);
  ASSERT_TRUE(next.ok()) << "the port's name is free again";
  client.Claim(62, 3);
  EXPECT_EQ(next.value()->Bind(getuid(), true, 62, kLimit).outcome, Outcome::kNotFound);
  EXPECT_TRUE(next.value()->Sessions().empty());
}

}  // namespace
}  // namespace loopfast::session
