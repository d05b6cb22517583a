// Helpers for the tests of connections caught between states (transition_*_test.cc): a
// non-blocking connect under way, echoes checked byte by byte, accept timed.
#ifndef LOOPFAST_TESTS_TRANSITION_SUPPORT_H_
#define LOOPFAST_TESTS_TRANSITION_SUPPORT_H_

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "test_support.h"

namespace loopfast::test {

// What "at once" means for a call that kernel TCP answers in microseconds. Generous: the
// machine is small and shared; the stalls these tests look for last 250 ms to 2 s.
constexpr int64_t kQuickMs = 200;

// An opted-in, non-blocking socket whose connect to 127.0.0.1:`port` has started.
// *error: 0 when connect returned 0, else its errno (EINPROGRESS expected).
int StartConnect(uint16_t port, int *error);

// A fast listener with a backlog of 0 whose accept queue a kernel TCP client fills, and a fast
// client whose non-blocking connect is then under way (EINPROGRESS): the listener dropped its
// SYN, and the handshake completes only with the retransmission about 1 s later, once the
// listening program has accepted the filler. Fails the test on error.
struct ConnectUnderWay {
  uint16_t port = 0;
  Fd listener;
  Fd filler;
  Fd client;
};
void MakeConnectUnderWay(ConnectUnderWay *under_way);

// Writes `sent` on `fd` while reading as many bytes back (an echo at the other end).
// Returns how many leading bytes came back right (sent.size() when all did).
size_t EchoedPrefix(int fd, const std::vector<uint8_t> &sent);

// Reads until the end of the stream or an error; *error is 0 at the end of the stream.
std::vector<uint8_t> ReadToEnd(int fd, int *error);

// accept() and how long it took.
int TimedAccept(int listener, int64_t *ms);

// Closes `client`; then its peer `server` must read the end of the stream.
void CloseAndExpectEnd(Fd *client, int server);

// The pending client's connection accepted into *server, at once (kQuickMs; the message names
// the fallback reason), and the listener closed after it.
void AcceptTheLastOne(PendingClient *pending, Fd *server);

// The end of an echo through cat: our end of stream reaches cat, cat exits, and its close
// comes back as the end of our input.
void FinishCat(int fd, pid_t cat);

void Nap(int ms);

}  // namespace loopfast::test

#endif  // LOOPFAST_TESTS_TRANSITION_SUPPORT_H_
