// The statistics registry: what the library writes, `loopfast stat`'s reader reads back, and
// the reader's checks on memory it cannot trust.
#include "stat/registry.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "stat/registry_reader.h"

namespace loopfast::stat {
namespace {

std::string RegistryPath() { return "/proc/self/fd/" + std::to_string(RegistryFdForTesting()); }

void Fill(int slot, SlotState state, const char *reason) {
  SlotWriter writer(slot);
  Slot *s = writer.slot();
  ASSERT_NE(s, nullptr);
  s->state = state;
  s->role = Role::kConnecting;
  s->family = AF_INET;
  s->fd = 42;
  s->socket_inode = 1234;
  const uint8_t loopback[4] = {127, 0, 0, 1};
  std::memcpy(s->local_address, loopback, 4);
  std::memcpy(s->peer_address, loopback, 4);
  s->local_port = htons(40000);
  s->peer_port = htons(5000);
  std::strncpy(s->reason, reason, kReasonBytes - 1);
}

const SlotView *FindSlot(const RegistryView &view, int index) {
  for (const SlotView &slot : view.sockets) {
    if (slot.index == index) return &slot;
  }
  return nullptr;
}

TEST(RegistryTest, WhatTheLibraryWritesTheReaderReadsBack) {
  const int slot = AcquireSlot();
  ASSERT_NE(slot, kNoSlot);
  Fill(slot, SlotState::kKernel, "peer did not opt in");
  SlotAt(slot)->bytes_sent.store(3000);
  SlotAt(slot)->bytes_received.store(5000);
  SlotAt(slot)->asleep_to_receive.store(1);
  Result<RegistryView> view = ReadRegistryFile(RegistryPath().c_str());
  ASSERT_TRUE(view.ok()) << view.error();
  EXPECT_EQ(view.value().pid, getpid());
  const SlotView *read = FindSlot(view.value(), slot);
  ASSERT_NE(read, nullptr);
  EXPECT_EQ(read->state, SlotState::kKernel);
  EXPECT_EQ(read->role, Role::kConnecting);
  EXPECT_EQ(read->fd, 42);
  EXPECT_EQ(read->socket_inode, 1234u);
  EXPECT_EQ(read->local, "127.0.0.1:40000");
  EXPECT_EQ(read->peer, "127.0.0.1:5000");
  EXPECT_EQ(read->reason, "peer did not opt in");
  EXPECT_EQ(read->bytes_sent, 3000u);
  EXPECT_EQ(read->bytes_received, 5000u);
  EXPECT_TRUE(read->asleep_to_receive);
  EXPECT_FALSE(read->asleep_to_send);
  // A released slot is no longer listed, and is reused (its counters reset).
  ReleaseSlot(slot);
  view = ReadRegistryFile(RegistryPath().c_str());
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(FindSlot(view.value(), slot), nullptr);
  const int again = AcquireSlot();
  EXPECT_EQ(again, slot);
  EXPECT_EQ(SlotAt(again)->bytes_sent.load(), 0u);
  ReleaseSlot(again);
}

// Another process of the user may open the registry through /proc: it cannot shrink it under
// the library's mapping (which would kill the process with SIGBUS on its next write).
TEST(RegistryTest, CannotBeShrunkByAnotherOpener) {
  const int slot = AcquireSlot();
  ASSERT_NE(slot, kNoSlot);
  const int fd = open(RegistryPath().c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(ftruncate(fd, 4096), -1);
  EXPECT_EQ(errno, EPERM);
  close(fd);
  SlotAt(slot)->bytes_sent.store(1);  // still mapped and writable
  ReleaseSlot(slot);
}

TEST(RegistryTest, AForkedChildGetsItsOwnCopy) {
  const int slot = AcquireSlot();
  ASSERT_NE(slot, kNoSlot);
  Fill(slot, SlotState::kFast, "");
  SlotAt(slot)->bytes_sent.store(7);
  const std::string parent_path = RegistryPath();
  BeforeFork();
  const pid_t child = fork();
  if (child == 0) {
    AfterFork(/*in_child=*/true);
    // Same slot, own memory: writing here must not reach the parent's registry.
    SlotAt(slot)->bytes_sent.store(999);
    Result<RegistryView> mine = ReadRegistryFile(RegistryPath().c_str());
    const SlotView *read = mine.ok() ? FindSlot(mine.value(), slot) : nullptr;
    _exit(read != nullptr && mine.value().pid == getpid() && read->bytes_sent == 999 ? 0 : 1);
  }
  AfterFork(/*in_child=*/false);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  Result<RegistryView> view = ReadRegistryFile(parent_path.c_str());
  ASSERT_TRUE(view.ok());
  const SlotView *read = FindSlot(view.value(), slot);
  ASSERT_NE(read, nullptr);
  EXPECT_EQ(read->bytes_sent, 7u);
  ReleaseSlot(slot);
}

// A registry as a hostile or broken process could leave it.
struct FakeRegistry {
  std::vector<char> bytes = std::vector<char>(sizeof(RegistryHeader) + 4 * sizeof(Slot));
  RegistryHeader &header() { return *reinterpret_cast<RegistryHeader *>(bytes.data()); }
  Slot &slot(int i) { return reinterpret_cast<Slot *>(bytes.data() + sizeof(RegistryHeader))[i]; }
  FakeRegistry() {
    header().magic = kRegistryMagic;
    header().version = kRegistryVersion;
    header().header_bytes = sizeof(RegistryHeader);
    header().slot_bytes = sizeof(Slot);
    header().slot_capacity = 4;
    header().pid = 1;
    header().slots_in_use.store(4);
    for (int i = 0; i < 4; ++i) {
      slot(i).state = SlotState::kFast;
      slot(i).family = AF_INET;
      slot(i).fd = 3 + i;
    }
  }
  Result<RegistryView> Read() { return ReadRegistry(bytes.data(), bytes.size()); }
};

TEST(RegistryTest, TheReaderRefusesAForeignOrOversizedHeader) {
  EXPECT_TRUE(FakeRegistry().Read().ok());
  {
    FakeRegistry fake;
    fake.header().magic ^= 1;
    EXPECT_EQ(fake.Read().error(), EPROTO);
  }
  {
    FakeRegistry fake;
    fake.header().version = kRegistryVersion + 1;
    EXPECT_EQ(fake.Read().error(), EPROTO);
  }
  {
    FakeRegistry fake;
    fake.header().slots_in_use.store(5);  // more than its capacity and its size
    EXPECT_EQ(fake.Read().error(), EPROTO);
  }
  {
    FakeRegistry fake;
    fake.header().slot_capacity = 1000;  // claims slots the memory does not hold
    fake.header().slots_in_use.store(1000);
    EXPECT_EQ(fake.Read().error(), EPROTO);
  }
  {
    FakeRegistry fake;
    EXPECT_EQ(ReadRegistry(fake.bytes.data(), sizeof(RegistryHeader) - 1).error(), EPROTO);
  }
}

TEST(RegistryTest, TheReaderSkipsInvalidAndHalfWrittenSlots) {
  FakeRegistry fake;
  fake.slot(0).state = static_cast<SlotState>(9);                // no such state
  fake.slot(1).family = 99;                                      // no such family
  fake.slot(2).sequence.store(1);                                // stuck mid-rewrite
  std::strcpy(fake.slot(3).reason, "bell\a and escape\x1b[2J");  // would reach a terminal
  Result<RegistryView> view = fake.Read();
  ASSERT_TRUE(view.ok());
  EXPECT_TRUE(view.value().sockets.empty());
  EXPECT_EQ(view.value().skipped, 4);
  // Unterminated reason text is cut at the field's end, never read past it.
  FakeRegistry unterminated;
  std::memset(unterminated.slot(0).reason, 'a', kReasonBytes);
  view = unterminated.Read();
  ASSERT_TRUE(view.ok());
  ASSERT_EQ(view.value().sockets.size(), 4u);
  EXPECT_EQ(view.value().sockets[0].reason.size(), kReasonBytes);
}

}  // namespace
}  // namespace loopfast::stat
