// Helpers for the tests of connections caught between states; see transition_support.h.
#include "transition_support.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "loopfast/loopfast.h"

namespace loopfast::test {

int StartConnect(uint16_t port, int *error) {
  const int fd = TcpSocket(AF_INET, true);
  if (fd < 0) return -1;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  const sockaddr_in address = Loopback4(port);
  const int ret = connect(fd, reinterpret_cast<const sockaddr *>(&address), sizeof address);
  *error = ret == 0 ? 0 : errno;
  return fd;
}

void MakeConnectUnderWay(ConnectUnderWay *under_way) {
  under_way->listener.reset(Listen(AF_INET, "127.0.0.1", true, &under_way->port, /*backlog=*/0));
  ASSERT_GE(under_way->listener.get(), 0);
  Bound(under_way->listener.get(), 3000);
  under_way->filler.reset(Connect({AF_INET, "127.0.0.1", under_way->port}, false));
  ASSERT_GE(under_way->filler.get(), 0);
  int error = 0;
  under_way->client.reset(StartConnect(under_way->port, &error));
  ASSERT_GE(under_way->client.get(), 0);
  ASSERT_EQ(error, EINPROGRESS);
}

size_t EchoedPrefix(int fd, const std::vector<uint8_t> &sent) {
  bool wrote = false;
  std::thread writer([&] { wrote = WriteAll(fd, sent.data(), sent.size()); });
  std::vector<uint8_t> back;
  back.reserve(sent.size());
  uint8_t buffer[65536];
  while (back.size() < sent.size()) {
    const ssize_t n = recv(fd, buffer, std::min(sizeof buffer, sent.size() - back.size()), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    back.insert(back.end(), buffer, buffer + n);
  }
  writer.join();
  size_t same = 0;
  while (same < back.size() && back[same] == sent[same]) ++same;
  return wrote ? same : std::min(same, sent.size() - 1);
}

std::vector<uint8_t> ReadToEnd(int fd, int *error) {
  std::vector<uint8_t> got;
  uint8_t buffer[65536];
  for (;;) {
    const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n > 0) {
      got.insert(got.end(), buffer, buffer + n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    *error = n == 0 ? 0 : errno;
    return got;
  }
}

int TimedAccept(int listener, int64_t *ms) {
  const int64_t start = NowMs();
  const int fd = accept(listener, nullptr, nullptr);
  *ms = NowMs() - start;
  return fd;
}

void AcceptTheLastOne(PendingClient *pending, Fd *server) {
  int64_t accept_ms = 0;
  server->reset(TimedAccept(pending->listener.get(), &accept_ms));
  ASSERT_GE(server->get(), 0);
  pending->listener.reset();
  EXPECT_LT(accept_ms, kQuickMs) << "accept() stalled " << accept_ms << " ms ("
                                 << loopfast_fallback_reason(server->get()) << ")";
}

void CloseAndExpectEnd(Fd *client, int server) {
  client->reset();
  char byte;
  EXPECT_EQ(recv(server, &byte, 1, 0), 0);
}

void FinishCat(int fd, pid_t cat) {
  EXPECT_EQ(shutdown(fd, SHUT_WR), 0);
  char byte;
  EXPECT_EQ(recv(fd, &byte, 1, 0), 0) << std::strerror(errno);
  EXPECT_EQ(Reap(cat, 3000), 0);
}

void Nap(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

}  // namespace loopfast::test
