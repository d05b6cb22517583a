// For unit tests: both halves of one session in this process, without sockets — an arena (a
// real sealed memfd, mapped once per side, as two processes would), each side's bell, and a
// slot claimed and bound as the protocol would leave it. A forked child may take either end.
#ifndef LOOPFAST_SESSION_TEST_ARENA_H_
#define LOOPFAST_SESSION_TEST_ARENA_H_

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <memory>

#include "session/session.h"
#include "sys/family_memory.h"
#include "sys/owned_fds.h"
#include "wait/bell.h"

namespace loopfast::session {

class TestSession : public Session {
 public:
  TestSession(int side, void *arena, int own_bell, int peer_bell, RegionAllocatorState *state)
      : Session(side, arena, 1, own_bell, peer_bell) {
    SetAllocatorState(state);
  }
  uint32_t done_slots = 0;

 protected:
  void SlotDone(uint32_t) override { ++done_slots; }
};

struct TestArena {
  std::shared_ptr<TestSession> client;
  std::shared_ptr<TestSession> server;
  int client_bell = -1;
  int server_bell = -1;

  TestArena() {
    const int fd = memfd_create("loopfast-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0 || ftruncate(fd, static_cast<off_t>(kArenaBytes)) != 0) return;
    void *client_view =
        mmap(nullptr, kArenaBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    void *server_view =
        mmap(nullptr, kArenaBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    close(fd);
    InitializeArena(client_view, 1, static_cast<uint32_t>(getpid()));
    client_bell = wait::CreateBell();
    server_bell = wait::CreateBell();
    auto *states =
        static_cast<RegionAllocatorState *>(sys::MapFamilyShared(2 * sizeof(RegionAllocatorState)));
    client = std::make_shared<TestSession>(kClientSide, client_view, client_bell, server_bell,
                                           &states[0]);
    server = std::make_shared<TestSession>(kServerSide, server_view, server_bell, client_bell,
                                           &states[1]);
  }

  ~TestArena() {
    client.reset();
    server.reset();
    sys::CloseOwned(client_bell);
    sys::CloseOwned(server_bell);
  }
  TestArena(const TestArena &) = delete;
  TestArena &operator=(const TestArena &) = delete;

  // A slot as after the client's claim and the server's bind, each end publishing `limit`.
  uint32_t BoundSlot(uint32_t index, uint32_t limit) {
    Slot *slot = client->arena().slot(index);
    for (SideBlock &side : slot->side) {
      side.flags.store(0);
      side.holders.store(1);
      side.rx_limit.store(limit);
    }
    SpscRing::Initialize(&slot->ring[0], kSlotWindowBytes);
    SpscRing::Initialize(&slot->ring[1], kSlotWindowBytes);
    slot->header.socket_cookie.store(1000 + index);
    slot->header.state.store(kSlotBound);
    return index;
  }
};

}  // namespace loopfast::session

#endif  // LOOPFAST_SESSION_TEST_ARENA_H_
