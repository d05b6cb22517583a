// Threads on fast sockets, every wait bounded: several threads on one socket, and a blocked call
// ended from another thread (shutdown, close). Every connection under test is first checked to
// be fast; where kernel TCP can be put in the same state it runs in the same test, and its answer
// is the expected one. Signals meeting blocking calls: signals_test.cc.
//
// A bug must fail, never hang: blocked calls run on a BoundedThread (blocked_call.h), stream
// readers have SO_RCVTIMEO, and scenarios that could crash or deadlock run in a child process
// reaped with a timeout (InChild).
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "blocked_call.h"
#include "loopfast/loopfast.h"
#include "test_support.h"

namespace loopfast::test {
namespace {

// Two threads, 2,000 blocking sends of 1,000 bytes each on one fast socket, while a reader with
// random read sizes and pauses keeps the ring near full (so sends keep finding too little room
// and both senders wait on it). Each send
// must arrive whole and in its thread's order: the stream is a sequence of whole messages.
TEST(ThreadTest, ConcurrentBlockingSendsEachArriveWholeAndInOrder) {
  constexpr uint32_t kMessages = 2000;
  constexpr size_t kSize = 1000;
  constexpr size_t kTotal = 2 * kMessages * kSize;
  ConnectedPair pair;
  ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(true, &pair));
  ASSERT_NO_FATAL_FAILURE(SetTimeout(pair.client, SO_SNDTIMEO, 3000));  // stall: fail, not hang
  ASSERT_NO_FATAL_FAILURE(SetTimeout(pair.server, SO_RCVTIMEO, 3000));
  auto message = [](int thread, uint32_t index) {
    std::vector<uint8_t> m = Pattern((uint64_t(thread) << 32) | index, 0, kSize);
    m[0] = uint8_t('A' + thread);
    std::memcpy(&m[1], &index, sizeof index);
    return m;
  };
  std::vector<uint8_t> stream;
  stream.reserve(kTotal);
  std::string read_failure;
  BoundedThread reader([&] {
    std::mt19937 rng(7);
    std::vector<uint8_t> buffer(4000);
    while (stream.size() < kTotal) {
      const size_t want = std::min<size_t>(1 + rng() % buffer.size(), kTotal - stream.size());
      const ssize_t n = recv(pair.server, buffer.data(), want, 0);
      if (n <= 0) {
        read_failure = "recv returned " + std::to_string(n) + " after " +
                       std::to_string(stream.size()) + " bytes: " + std::strerror(errno);
        return;
      }
      stream.insert(stream.end(), buffer.begin(), buffer.begin() + n);
      if (rng() % 32 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  std::atomic<int> started{0};
  std::string send_failure[2];
  auto sender = [&](int thread) {
    std::vector<std::vector<uint8_t>> messages;
    for (uint32_t i = 0; i < kMessages; ++i) messages.push_back(message(thread, i));
    started.fetch_add(1);
    while (started.load() < 2) {
    }
    for (uint32_t i = 0; i < kMessages; ++i) {
      const ssize_t n = send(pair.client, messages[i].data(), kSize, MSG_NOSIGNAL);
      if (n != ssize_t(kSize)) {
        send_failure[thread] = "send of message " + std::to_string(i) + " returned " +
                               std::to_string(n) + ": " + std::strerror(errno);
        return;
      }
    }
  };
  BoundedThread first([&] { sender(0); });
  BoundedThread second([&] { sender(1); });
  ASSERT_TRUE(first.Finished(5000));
  ASSERT_TRUE(second.Finished(5000));
  ASSERT_TRUE(reader.Finished(5000));
  EXPECT_EQ(send_failure[0], "");
  EXPECT_EQ(send_failure[1], "");
  EXPECT_EQ(read_failure, "");
  ASSERT_EQ(stream.size(), kTotal);
  uint32_t next[2] = {0, 0};
  int switches = 0, previous = -1;
  for (size_t k = 0; k < 2 * kMessages; ++k) {
    const uint8_t *m = &stream[k * kSize];
    const int thread = m[0] - 'A';
    uint32_t index = 0;
    std::memcpy(&index, m + 1, sizeof index);
    const bool whole = (thread == 0 || thread == 1) && index == next[thread] &&
                       std::memcmp(m, message(thread, index).data(), kSize) == 0;
    if (!whole) {
      ADD_FAILURE() << "stream bytes " << k * kSize << ".." << (k + 1) * kSize - 1
                    << " are not one whole message (expected A#" << next[0] << " or B#" << next[1]
                    << "; found header '" << char(m[0]) << "' #" << index << ")";
      break;
    }
    switches += previous >= 0 && previous != thread;
    previous = thread;
    ++next[thread];
  }
  EXPECT_EQ(next[0], kMessages);
  EXPECT_EQ(next[1], kMessages);
  RecordProperty("thread_switches_in_stream", switches);
  EXPECT_EQ(ObservedPath(pair.client), "fast");
  EXPECT_EQ(ObservedPath(pair.server), "fast");
}

// One thread sends 64 MiB while another receives 64 MiB on the same socket, from an echo
// process: both directions of one end busy at once, byte-exact.
TEST(ThreadTest, OneThreadSends64MiBWhileAnotherReceivesTheEchoOnTheSameSocket) {
  constexpr size_t kBytes = 64 << 20;
  uint16_t port = 0;
  Fd listener(Listen(AF_INET, "127.0.0.1", true, &port));
  ASSERT_GE(listener.get(), 0);
  const pid_t echo = Spawn([&] {
    const Fd served(accept(listener.get(), nullptr, nullptr));
    const int fd = served.get();
    if (fd < 0) return 90;
    const timeval timeout = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    std::vector<char> buffer(1 << 18);
    uint64_t echoed = 0;
    for (;;) {
      const ssize_t n = recv(fd, buffer.data(), buffer.size(), 0);
      if (n == 0) break;
      if (n < 0) return 3;
      if (!WriteAll(fd, buffer.data(), size_t(n))) return 4;
      echoed += uint64_t(n);
    }
    if (ObservedPath(fd) != "fast") return 1;
    return echoed == kBytes + 1 ? 0 : 5;  // `served` closes as the child returns
  });
  listener.reset();
  Fd fd(Connect({AF_INET, "127.0.0.1", port}, true));
  ASSERT_GE(fd.get(), 0);
  char byte = 's';
  ASSERT_TRUE(WriteAll(fd.get(), &byte, 1));
  ASSERT_TRUE(ReadAll(fd.get(), &byte, 1));
  ASSERT_EQ(byte, 's');
  ASSERT_EQ(ObservedPath(fd.get()), "fast");
  ASSERT_NO_FATAL_FAILURE(SetTimeout(fd.get(), SO_RCVTIMEO, 3000));
  ASSERT_NO_FATAL_FAILURE(SetTimeout(fd.get(), SO_SNDTIMEO, 3000));
  const std::vector<uint8_t> data = Pattern(11, 0, kBytes);
  std::string send_failure = "not finished", receive_failure = "not finished";
  uint64_t received = 0;
  auto kill_echo = [&] { kill(echo, SIGKILL); };
  BoundedThread receiver(
      [&] {
        std::vector<uint8_t> buffer(1 << 18);
        while (received < kBytes) {
          const size_t want = std::min<uint64_t>(buffer.size(), kBytes - received);
          const ssize_t n = recv(fd.get(), buffer.data(), want, 0);
          if (n <= 0) {
            receive_failure = "recv returned " + std::to_string(n) + " at byte " +
                              std::to_string(received) + ": " + std::strerror(errno);
            return;
          }
          if (std::memcmp(buffer.data(), data.data() + received, size_t(n)) != 0) {
            receive_failure = "wrong bytes within " + std::to_string(received) + ".." +
                              std::to_string(received + uint64_t(n));
            return;
          }
          received += uint64_t(n);
        }
        char extra;
        const ssize_t n = recv(fd.get(), &extra, 1, 0);
        receive_failure = n == 0 ? "" : "no end of stream after the echo: " + std::to_string(n);
      },
      kill_echo);
  BoundedThread sender(
      [&] {
        std::mt19937 rng(3);
        size_t sent = 0;
        while (sent < kBytes) {
          const size_t chunk = std::min<size_t>(1 + rng() % (1 << 20), kBytes - sent);
          const ssize_t n = send(fd.get(), data.data() + sent, chunk, MSG_NOSIGNAL);
          if (n <= 0) {
            send_failure = "send returned " + std::to_string(n) + " at byte " +
                           std::to_string(sent) + ": " + std::strerror(errno);
            return;
          }
          sent += size_t(n);
        }
        send_failure = shutdown(fd.get(), SHUT_WR) == 0 ? "" : "shutdown failed";
      },
      kill_echo);
  ASSERT_TRUE(sender.Finished(8000));
  ASSERT_TRUE(receiver.Finished(8000));
  EXPECT_EQ(send_failure, "");
  EXPECT_EQ(receive_failure, "");
  EXPECT_EQ(received, kBytes);
  EXPECT_EQ(ObservedPath(fd.get()), "fast");
  EXPECT_EQ(Reap(echo, 5000), 0);
}

// How a call blocked in one thread ended when another thread acted on the socket.
struct Wake {
  bool woke = false;  // within 1 s
  double ms = 0;
  CallResult call;
  uint32_t events = 0;  // for epoll and poll
  CallResult action;    // the shutdown itself
};

std::string Describe(const Wake &w) {
  char events[16];
  std::snprintf(events, sizeof events, "0x%x", w.events);
  return std::string(w.woke ? "woke" : "STILL BLOCKED") + " after " + std::to_string(int(w.ms)) +
         " ms, result " + Describe(w.call) + ", events " + events + "; the action returned " +
         Describe(w.action);
}

// Blocks `call` on a thread, then runs `act` from this one; `unblock` is the watchdog's remedy.
void WakeBy(const std::function<void(CallResult *)> &call, const std::function<int()> &act,
            const std::function<void()> &unblock, Wake *wake) {
  CallResult got;
  BoundedThread blocked([&] { call(&got); }, unblock);
  ASSERT_TRUE(blocked.Blocked()) << "the call did not block";
  const auto start = Clock::now();
  errno = 0;
  wake->action.value = act();
  wake->action.error = errno;
  wake->woke = blocked.Finished(1000);
  wake->ms = MsSince(start);
  if (wake->woke) wake->call = got;
}

// The fast result must be kernel TCP's, and as prompt.
void ExpectSameWake(const Wake &kernel, const Wake &fast) {
  ASSERT_TRUE(kernel.woke) << "reference: " << Describe(kernel);
  EXPECT_TRUE(fast.woke) << Describe(fast);
  EXPECT_LT(fast.ms, 500) << Describe(fast);
  EXPECT_EQ(fast.call.value, kernel.call.value)
      << "fast: " << Describe(fast) << "\nkernel: " << Describe(kernel);
  EXPECT_EQ(fast.call.error, kernel.call.error)
      << "fast: " << Describe(fast) << "\nkernel: " << Describe(kernel);
  EXPECT_EQ(fast.events, kernel.events)
      << "fast: " << Describe(fast) << "\nkernel: " << Describe(kernel);
  EXPECT_EQ(fast.action.value, kernel.action.value)
      << "fast: " << Describe(fast) << "\nkernel: " << Describe(kernel);
}

void RecvEndedByShutdown(bool fast, Wake *wake) {
  ConnectedPair pair;
  ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(fast, &pair));
  char byte;
  WakeBy(
      [&](CallResult *r) {
        errno = 0;
        r->value = recv(pair.client, &byte, 1, 0);
        r->error = errno;
      },
      [&] { return shutdown(pair.client, SHUT_RDWR); }, [&] { shutdown(pair.server, SHUT_WR); },
      wake);
}

TEST(ThreadTest, ShutdownFromAnotherThreadEndsABlockedRecvAsOnKernelTcp) {
  Wake kernel, fast;
  ASSERT_NO_FATAL_FAILURE(RecvEndedByShutdown(false, &kernel));
  EXPECT_EQ(kernel.call.value, 0) << Describe(kernel);  // the reference: end of stream
  ASSERT_NO_FATAL_FAILURE(RecvEndedByShutdown(true, &fast));
  ExpectSameWake(kernel, fast);
}

void SendEndedByShutdown(bool fast, Wake *wake) {
  ConnectedPair pair;
  ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(fast, &pair));
  uint64_t offset = 0;
  ASSERT_NO_FATAL_FAILURE(FillUntilFull(pair.client, 5, &offset));
  const std::vector<uint8_t> more = Pattern(5, offset, 1 << 20);
  WakeBy(
      [&](CallResult *r) {
        errno = 0;
        r->value = send(pair.client, more.data(), more.size(), MSG_NOSIGNAL);
        r->error = errno;
      },
      [&] { return shutdown(pair.client, SHUT_WR); },
      [&] {
        close(pair.server);
        pair.server = -1;
      },
      wake);
}

TEST(ThreadTest, ShutdownFromAnotherThreadEndsASendBlockedOnAFullRingAsOnKernelTcp) {
  Wake kernel, fast;
  ASSERT_NO_FATAL_FAILURE(SendEndedByShutdown(false, &kernel));
  EXPECT_EQ(kernel.call.value, -1) << Describe(kernel);  // the reference: EPIPE
  ASSERT_NO_FATAL_FAILURE(SendEndedByShutdown(true, &fast));
  ExpectSameWake(kernel, fast);
}

void AcceptEndedByShutdown(bool fast, Wake *wake) {
  uint16_t port = 0;
  const Fd listener(Listen(AF_INET, "127.0.0.1", fast, &port));
  ASSERT_GE(listener.get(), 0);
  {
    ConnectedPair first;  // the listener has carried a connection of the asked path
    ASSERT_NO_FATAL_FAILURE(AcceptPair(listener.get(), port, fast, &first));
  }
  WakeBy(
      [&](CallResult *r) {
        errno = 0;
        r->value = accept(listener.get(), nullptr, nullptr);
        r->error = errno;
        if (r->value >= 0) close(int(r->value));
      },
      [&] { return shutdown(listener.get(), SHUT_RDWR); }, {}, wake);
}

TEST(ThreadTest, ShutdownFromAnotherThreadEndsABlockedAcceptAsOnKernelTcp) {
  Wake kernel, fast;
  ASSERT_NO_FATAL_FAILURE(AcceptEndedByShutdown(false, &kernel));
  EXPECT_EQ(kernel.call.value, -1) << Describe(kernel);  // the reference: EINVAL
  EXPECT_EQ(kernel.call.error, EINVAL) << Describe(kernel);
  ASSERT_NO_FATAL_FAILURE(AcceptEndedByShutdown(true, &fast));
  ExpectSameWake(kernel, fast);
}

// An epoll set watching `fd` for EPOLLIN | EPOLLRDHUP, its events tagged `data`.
void WatchForInput(int fd, uint64_t data, Fd *epfd) {
  epfd->reset(epoll_create1(EPOLL_CLOEXEC));
  ASSERT_GE(epfd->get(), 0);
  epoll_event interest = {};
  interest.events = EPOLLIN | EPOLLRDHUP;
  interest.data.u64 = data;
  ASSERT_EQ(epoll_ctl(epfd->get(), EPOLL_CTL_ADD, fd, &interest), 0);
}

void EpollEndedByShutdown(bool fast, Wake *wake) {
  ConnectedPair pair;
  ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(fast, &pair));
  Fd epfd;
  ASSERT_NO_FATAL_FAILURE(WatchForInput(pair.client, 0x5eed, &epfd));
  epoll_event event = {};
  WakeBy(
      [&](CallResult *r) {
        errno = 0;
        r->value = epoll_wait(epfd.get(), &event, 1, 3000);
        r->error = errno;
      },
      [&] { return shutdown(pair.client, SHUT_RDWR); }, {}, wake);
  if (wake->woke && wake->call.value == 1) {
    wake->events = event.events;
    EXPECT_EQ(event.data.u64, 0x5eedu);
  }
}

TEST(ThreadTest, ShutdownFromAnotherThreadWakesABlockedEpollWaitAsOnKernelTcp) {
  Wake kernel, fast;
  ASSERT_NO_FATAL_FAILURE(EpollEndedByShutdown(false, &kernel));
  EXPECT_EQ(kernel.call.value, 1) << Describe(kernel);
  EXPECT_EQ(kernel.events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP),
            uint32_t(EPOLLIN | EPOLLRDHUP | EPOLLHUP))
      << Describe(kernel);
  ASSERT_NO_FATAL_FAILURE(EpollEndedByShutdown(true, &fast));
  ExpectSameWake(kernel, fast);
}

void PollEndedByShutdown(bool fast, Wake *wake) {
  ConnectedPair pair;
  ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(fast, &pair));
  pollfd entry = {pair.client, POLLIN | POLLRDHUP, 0};
  WakeBy(
      [&](CallResult *r) {
        errno = 0;
        r->value = poll(&entry, 1, 3000);
        r->error = errno;
      },
      [&] { return shutdown(pair.client, SHUT_RDWR); }, {}, wake);
  if (wake->woke) wake->events = uint16_t(entry.revents);
}

TEST(ThreadTest, ShutdownFromAnotherThreadWakesABlockedPollAsOnKernelTcp) {
  Wake kernel, fast;
  ASSERT_NO_FATAL_FAILURE(PollEndedByShutdown(false, &kernel));
  EXPECT_EQ(kernel.call.value, 1) << Describe(kernel);
  ASSERT_NO_FATAL_FAILURE(PollEndedByShutdown(true, &fast));
  ExpectSameWake(kernel, fast);
}

// A MSG_DONTWAIT call never waits, even while another thread is blocked in a call of the same
// direction on the same socket (kernel TCP releases the socket while a caller sleeps): recv with
// nothing to read and send into a full connection both fail with EAGAIN at once.
void DontWaitBesideABlockedCall(bool fast, bool sending, CallResult *dontwait, double *ms) {
  constexpr uint64_t kSeed = 61;
  ConnectedPair pair;
  ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(fast, &pair));
  uint64_t filled = 0;
  std::vector<uint8_t> more;
  if (sending) {
    ASSERT_NO_FATAL_FAILURE(FillUntilFull(pair.client, kSeed, &filled));
    more = Pattern(kSeed, filled, 1 << 20);
  }
  CallResult blocked_result;
  char buffer[16];
  BoundedThread blocked(
      [&] {
        errno = 0;
        blocked_result.value = sending ? send(pair.client, more.data(), more.size(), MSG_NOSIGNAL)
                                       : recv(pair.client, buffer, sizeof buffer, 0);
        blocked_result.error = errno;
      },
      [&] {
        close(pair.server);
        pair.server = -1;
      });
  ASSERT_TRUE(blocked.Blocked());
  char byte = 'd';
  const auto start = Clock::now();
  BoundedThread other([&] {
    errno = 0;
    dontwait->value = sending ? send(pair.client, &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL)
                              : recv(pair.client, &byte, 1, MSG_DONTWAIT);
    dontwait->error = errno;
    *ms = MsSince(start);
  });
  EXPECT_TRUE(other.Finished(500)) << "a MSG_DONTWAIT " << (sending ? "send" : "recv")
                                   << " is waiting behind the blocked thread's call";
  EXPECT_FALSE(blocked.Finished(0)) << "the blocked call ended: " << Describe(blocked_result);
  // Then the blocked call completes normally (and frees the other, if it waited for it).
  Drained drained;
  {
    BoundedThread drainer([&] {
      if (sending) DrainAndCheck(pair.server, kSeed, &drained);
    });
    if (!sending) {
      ASSERT_TRUE(WriteAll(pair.server, "wake", 4));
    }
    ASSERT_TRUE(blocked.Finished(2000));
    ASSERT_TRUE(other.Finished(1000));
    if (sending) {
      EXPECT_EQ(blocked_result.value, ssize_t(more.size())) << Describe(blocked_result);
      ASSERT_EQ(shutdown(pair.client, SHUT_WR), 0);
      ASSERT_TRUE(drainer.Finished(3000));
    } else {
      EXPECT_EQ(blocked_result.value, 4) << Describe(blocked_result);
    }
  }
  if (sending) {
    const uint64_t extra = uint64_t(std::max<ssize_t>(dontwait->value, 0));
    EXPECT_TRUE(drained.ended) << Describe(drained);
    if (extra == 0) {
      EXPECT_TRUE(drained.intact) << Describe(drained);
    }
    EXPECT_EQ(drained.bytes, filled + more.size() + extra) << Describe(drained);
  }
}

// Both paths: the MSG_DONTWAIT call fails with EAGAIN within 100 ms.
void ExpectDontWaitBesideABlockedCallFailsAtOnce(bool sending) {
  for (const bool fast : {false, true}) {
    SCOPED_TRACE(PathName(fast));
    CallResult got;
    double ms = 0;
    ASSERT_NO_FATAL_FAILURE(DontWaitBesideABlockedCall(fast, sending, &got, &ms));
    EXPECT_EQ(got.value, -1) << Describe(got) << " after " << ms << " ms";
    EXPECT_EQ(got.error, EAGAIN) << Describe(got) << " after " << ms << " ms";
    EXPECT_LT(ms, 100);
  }
}

TEST(ThreadTest, DontWaitRecvBesideARecvBlockedInAnotherThreadFailsAtOnceAsOnKernelTcp) {
  ExpectDontWaitBesideABlockedCallFailsAtOnce(/*sending=*/false);
}

TEST(ThreadTest, DontWaitSendBesideASendBlockedInAnotherThreadFailsAtOnceAsOnKernelTcp) {
  ExpectDontWaitBesideABlockedCallFailsAtOnce(/*sending=*/true);
}

// Linux: close() of a socket another thread is blocked reading does not end that read (the call
// holds its own reference to the socket); the read goes on and returns what the peer sends next,
// and the connection ends (the peer reads end of stream) once the read has returned. Run in a
// child: a fast path that tears the connection down under the reader could crash.
struct CloseStory {
  bool returned_at_close = false;
  bool returned_after_data = false;  // within 1 s of the peer's send
  bool returned_after_fin = false;   // if not: within 0.5 s of the peer's shutdown(SHUT_WR)
  CallResult read;
  std::string bytes;
  CallResult peer_after;  // what the peer reads once the reader is done
};

std::string Describe(const CloseStory &c) {
  return std::string(c.returned_at_close ? "recv returned at the close"
                     : c.returned_after_data
                         ? "recv went on and returned after the peer sent"
                         : (c.returned_after_fin
                                ? "recv ignored the peer's bytes; returned on its FIN"
                                : "recv ignored the peer's bytes and its FIN; "
                                  "only a signal ended it")) +
         ", result " + Describe(c.read) + " \"" + c.bytes + "\", the peer then read " +
         Describe(c.peer_after);
}

void CloseUnderABlockedRecv(bool fast, CloseStory *story) {
  ConnectedPair pair;
  ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(fast, &pair));
  ASSERT_NO_FATAL_FAILURE(SetTimeout(pair.server, SO_RCVTIMEO, 1000));
  char buffer[16] = {};
  CallResult got;
  {
    BoundedThread reader([&, fd = pair.client] {
      errno = 0;
      got.value = recv(fd, buffer, sizeof buffer, 0);
      got.error = errno;
    });
    ASSERT_TRUE(reader.Blocked());
    ASSERT_EQ(close(pair.client), 0);
    pair.client = -1;
    story->returned_at_close = reader.Finished(200);
    ASSERT_EQ(send(pair.server, "late", 4, MSG_NOSIGNAL), 4);
    story->returned_after_data = reader.Finished(1000);
    if (!story->returned_after_data) {
      shutdown(pair.server, SHUT_WR);
      story->returned_after_fin = reader.Finished(500);
    }
  }  // if still blocked, the watchdog's signal ends the read here (EINTR)
  story->read = got;
  if (got.value > 0) story->bytes.assign(buffer, size_t(got.value));
  char byte;
  errno = 0;
  story->peer_after.value = recv(pair.server, &byte, 1, 0);
  story->peer_after.error = errno;
}

// loopfast keeps the connection for the blocked call (a private copy of the kernel socket) and
// ends it when that call returns.
TEST(ThreadTest, CloseFromAnotherThreadLeavesABlockedRecvAsOnKernelTcp) {
  InChild([] {
    CloseStory kernel, fast;
    ASSERT_NO_FATAL_FAILURE(CloseUnderABlockedRecv(false, &kernel));
    ASSERT_NO_FATAL_FAILURE(CloseUnderABlockedRecv(true, &fast));
    // The reference: the read goes on, gets the peer's bytes, then the peer sees end of stream.
    ASSERT_TRUE(!kernel.returned_at_close && kernel.returned_after_data && kernel.bytes == "late")
        << "kernel: " << Describe(kernel);
    EXPECT_EQ(fast.returned_at_close, kernel.returned_at_close) << "fast: " << Describe(fast);
    EXPECT_EQ(fast.returned_after_data, kernel.returned_after_data) << "fast: " << Describe(fast);
    EXPECT_EQ(fast.read.value, kernel.read.value) << "fast: " << Describe(fast);
    EXPECT_EQ(fast.bytes, kernel.bytes);
    EXPECT_EQ(fast.peer_after.value, kernel.peer_after.value)
        << "fast: " << Describe(fast) << "\nkernel: " << Describe(kernel);
  });
}

// The same for a send blocked on a full connection: on Linux it goes on once the peer reads,
// places every byte, and the peer then reads the whole stream and its end.
void CloseUnderABlockedSend(bool fast, CallResult *sent, Drained *peer_read, uint64_t *offered) {
  ConnectedPair pair;
  ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(fast, &pair));
  uint64_t offset = 0;
  ASSERT_NO_FATAL_FAILURE(FillUntilFull(pair.client, 11, &offset));
  const std::vector<uint8_t> last = Pattern(11, offset, 1 << 16);
  *offered = offset + last.size();
  {
    BoundedThread writer(
        [&, fd = pair.client] {
          errno = 0;
          sent->value = send(fd, last.data(), last.size(), MSG_NOSIGNAL);
          sent->error = errno;
        },
        [&] { shutdown(pair.server, SHUT_RD); });
    ASSERT_TRUE(writer.Blocked());
    ASSERT_EQ(close(pair.client), 0);
    pair.client = -1;
    EXPECT_FALSE(writer.Finished(100)) << "send returned at the close: " << Describe(*sent);
    DrainAndCheck(pair.server, 11, peer_read);
    EXPECT_TRUE(writer.Finished(1000));
  }
}

TEST(ThreadTest, CloseFromAnotherThreadLeavesABlockedSendAsOnKernelTcp) {
  InChild([] {
    for (const bool fast : {false, true}) {
      SCOPED_TRACE(PathName(fast));
      CallResult sent;
      Drained peer_read;
      uint64_t offered = 0;
      ASSERT_NO_FATAL_FAILURE(CloseUnderABlockedSend(fast, &sent, &peer_read, &offered));
      EXPECT_EQ(sent.value, 1 << 16) << Describe(sent);
      EXPECT_EQ(peer_read.bytes, offered) << Describe(peer_read);
      EXPECT_TRUE(peer_read.intact && peer_read.ended) << Describe(peer_read);
    }
  });
}

// close() of a listening socket another thread is blocked accepting on: on Linux the accept
// goes on (it holds the socket, which stays listening) and returns the next connection.
struct AcceptStory {
  bool returned_at_close = false;
  CallResult accepted;
  bool exchanged = false;  // a byte each way over the connection it returned
};

void CloseUnderABlockedAccept(bool fast, AcceptStory *story) {
  uint16_t port = 0;
  Fd listener(Listen(AF_INET, "127.0.0.1", fast, &port));
  ASSERT_GE(listener.get(), 0);
  {
    BoundedThread acceptor([&, fd = listener.get()] {
      errno = 0;
      story->accepted.value = accept(fd, nullptr, nullptr);
      story->accepted.error = errno;
    });
    ASSERT_TRUE(acceptor.Blocked());
    ASSERT_EQ(close(listener.release()), 0);
    story->returned_at_close = acceptor.Finished(200);
    if (!story->returned_at_close) {
      const Fd client(Connect({AF_INET, "127.0.0.1", port}, fast));
      ASSERT_GE(client.get(), 0);
      ASSERT_TRUE(acceptor.Finished(1000)) << "accept ignored the connection";
      const Fd served(int(story->accepted.value));
      char byte = 0;
      story->exchanged = served.get() >= 0 && send(client.get(), "c", 1, MSG_NOSIGNAL) == 1 &&
                         recv(served.get(), &byte, 1, 0) == 1 && byte == 'c' &&
                         send(served.get(), "s", 1, MSG_NOSIGNAL) == 1 &&
                         recv(client.get(), &byte, 1, 0) == 1 && byte == 's';
    }
  }
}

TEST(ThreadTest, CloseFromAnotherThreadLeavesABlockedAcceptAsOnKernelTcp) {
  InChild([] {
    AcceptStory kernel, fast;
    ASSERT_NO_FATAL_FAILURE(CloseUnderABlockedAccept(false, &kernel));
    ASSERT_TRUE(!kernel.returned_at_close && kernel.accepted.value >= 0 && kernel.exchanged)
        << "kernel: " << Describe(kernel.accepted);
    ASSERT_NO_FATAL_FAILURE(CloseUnderABlockedAccept(true, &fast));
    EXPECT_FALSE(fast.returned_at_close) << Describe(fast.accepted);
    EXPECT_GE(fast.accepted.value, 0) << Describe(fast.accepted);
    EXPECT_TRUE(fast.exchanged);
  });
}

// close() of a socket in an epoll set while another thread waits on the set: on Linux the
// close removes the socket from the set (no other descriptor holds it), the wait does not end,
// and the peer's bytes arriving later are no event. The wait then times out.
void CloseUnderABlockedEpollWait(bool fast, bool *returned_at_close, CallResult *waited) {
  ConnectedPair pair;
  ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(fast, &pair));
  Fd epfd;
  ASSERT_NO_FATAL_FAILURE(WatchForInput(pair.client, 0, &epfd));
  epoll_event event = {};
  {
    BoundedThread waiter([&] {
      errno = 0;
      waited->value = epoll_wait(epfd.get(), &event, 1, 600);
      waited->error = errno;
    });
    ASSERT_TRUE(waiter.Blocked());
    ASSERT_EQ(close(pair.client), 0);
    pair.client = -1;
    *returned_at_close = waiter.Finished(100);
    ASSERT_EQ(send(pair.server, "late", 4, MSG_NOSIGNAL), 4);
    ASSERT_TRUE(waiter.Finished(2000));
  }
}

TEST(ThreadTest, CloseFromAnotherThreadUnderABlockedEpollWaitAsOnKernelTcp) {
  InChild([] {
    bool kernel_at_close = true, fast_at_close = true;
    CallResult kernel, fast;
    ASSERT_NO_FATAL_FAILURE(CloseUnderABlockedEpollWait(false, &kernel_at_close, &kernel));
    ASSERT_TRUE(!kernel_at_close && kernel.value == 0) << "kernel: " << Describe(kernel);
    ASSERT_NO_FATAL_FAILURE(CloseUnderABlockedEpollWait(true, &fast_at_close, &fast));
    EXPECT_FALSE(fast_at_close) << Describe(fast);
    EXPECT_EQ(fast.value, 0) << Describe(fast);
  });
}

}  // namespace
}  // namespace loopfast::test
