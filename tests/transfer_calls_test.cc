// sendfile, splice, sendmmsg and recvmmsg on fast sockets, and what the explicit API says of
// options and calls the rings cannot honour. Real sockets, real files, real pipes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "test_support.h"

namespace loopfast::test {
namespace {

// File and pipe versions of WriteAll/ReadAll (those use send/recv).
bool WriteFile(int fd, const uint8_t *bytes, size_t size) {
  for (size_t done = 0; done < size;) {
    const ssize_t n = write(fd, bytes + done, size - done);
    if (n <= 0) return false;
    done += size_t(n);
  }
  return true;
}

bool ReadFile(int fd, uint8_t *bytes, size_t size) {
  for (size_t done = 0; done < size;) {
    const ssize_t n = read(fd, bytes + done, size - done);
    if (n <= 0) return false;
    done += size_t(n);
  }
  return true;
}

// A temporary file holding `bytes` of stream `seed`; removed when the object goes.
struct TempFile {
  int fd = -1;
  explicit TempFile(const std::vector<uint8_t> &bytes) {
    char name[] = "/tmp/transfer_test.XXXXXX";
    fd = mkstemp(name);
    unlink(name);
    EXPECT_TRUE(WriteFile(fd, bytes.data(), bytes.size()));
    lseek(fd, 0, SEEK_SET);
  }
  ~TempFile() { close(fd); }
};

TEST(TransferCallsTest, SendfileIntoAFastSocketStaysFastAndMovesTheFilePosition) {
  ConnectedPair pair;
  ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(true, &pair));
  const std::vector<uint8_t> content = Pattern(21, 0, 3 << 20);
  TempFile file(content);
  // With an offset: the file position stays, *offset advances.
  off_t offset = 1000;
  const ssize_t first = sendfile(pair.client, file.fd, &offset, 100000);
  ASSERT_EQ(first, 100000);
  EXPECT_EQ(offset, 101000);
  EXPECT_EQ(lseek(file.fd, 0, SEEK_CUR), 0);
  std::vector<uint8_t> got(100000);
  ASSERT_TRUE(ReadAll(pair.server, got.data(), got.size()));
  EXPECT_TRUE(std::equal(got.begin(), got.end(), content.begin() + 1000));
  // Without: the file position advances, past the end it returns what there was.
  size_t total = 0;
  std::vector<uint8_t> all(content.size());
  for (;;) {
    const ssize_t n = sendfile(pair.client, file.fd, nullptr, 1 << 20);
    ASSERT_GE(n, 0) << std::strerror(errno);
    if (n == 0) break;
    ASSERT_TRUE(ReadAll(pair.server, all.data() + total, size_t(n)));
    total += size_t(n);
  }
  EXPECT_EQ(total, content.size());
  EXPECT_TRUE(all == content);
  EXPECT_EQ(lseek(file.fd, 0, SEEK_CUR), off_t(content.size()));
  EXPECT_EQ(ObservedPath(pair.client), "fast");
  // A bad input descriptor: the kernel's error.
  errno = 0;
  EXPECT_EQ(sendfile(pair.client, -1, nullptr, 10), -1);
  EXPECT_EQ(errno, EBADF);
}

TEST(TransferCallsTest, SpliceOutOfAFastSocketIntoAPipeStaysFast) {
  ConnectedPair pair;
  ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(true, &pair));
  const std::vector<uint8_t> sent = Pattern(5, 0, 200000);
  ASSERT_TRUE(WriteAll(pair.client, sent.data(), sent.size()));
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  std::vector<uint8_t> got;
  while (got.size() < sent.size()) {
    const ssize_t n = splice(pair.server, nullptr, pipe_fds[1], nullptr, 1 << 16, 0);
    ASSERT_GT(n, 0) << std::strerror(errno);
    std::vector<uint8_t> chunk(static_cast<size_t>(n));
    ASSERT_TRUE(ReadFile(pipe_fds[0], chunk.data(), chunk.size()));
    got.insert(got.end(), chunk.begin(), chunk.end());
  }
  EXPECT_TRUE(got == sent);
  // Nothing waiting and SPLICE_F_NONBLOCK: EAGAIN, as from a kernel socket with O_NONBLOCK off.
  errno = 0;
  EXPECT_EQ(splice(pair.server, nullptr, pipe_fds[1], nullptr, 100, SPLICE_F_NONBLOCK), -1);
  EXPECT_EQ(errno, EAGAIN);
  close(pipe_fds[0]);
  close(pipe_fds[1]);
  EXPECT_EQ(ObservedPath(pair.server), "fast");
}

TEST(TransferCallsTest, SendmmsgAndRecvmmsgCarryEveryMessage) {
  ConnectedPair pair;
  ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(true, &pair));
  char first[] = "first", second[] = "second!";
  iovec out_iov[2] = {{first, 5}, {second, 7}};
  mmsghdr out[2] = {};
  out[0].msg_hdr.msg_iov = &out_iov[0];
  out[0].msg_hdr.msg_iovlen = 1;
  out[1].msg_hdr.msg_iov = &out_iov[1];
  out[1].msg_hdr.msg_iovlen = 1;
  ASSERT_EQ(sendmmsg(pair.client, out, 2, 0), 2);
  EXPECT_EQ(out[0].msg_len, 5u);
  EXPECT_EQ(out[1].msg_len, 7u);
  char a[5], b[64];
  iovec in_iov[2] = {{a, sizeof a}, {b, sizeof b}};
  mmsghdr in[2] = {};
  in[0].msg_hdr.msg_iov = &in_iov[0];
  in[0].msg_hdr.msg_iovlen = 1;
  in[1].msg_hdr.msg_iov = &in_iov[1];
  in[1].msg_hdr.msg_iovlen = 1;
  // MSG_WAITFORONE: the second receive does not wait; together they hold the 12 bytes.
  std::string got;
  while (got.size() < 12) {
    const int n = recvmmsg(pair.server, in, 2, MSG_WAITFORONE, nullptr);
    ASSERT_GE(n, 1) << std::strerror(errno);
    got.append(a, in[0].msg_len);
    if (n == 2) got.append(b, in[1].msg_len);
  }
  EXPECT_EQ(got, "firstsecond!");
  EXPECT_EQ(ObservedPath(pair.server), "fast");
}

TEST(TransferCallsTest, ExplicitApiRefusesWhatTheRingsCannotHonourAndStaysFast) {
  ConnectedPair pair;
  ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(true, &pair));
  sock_filter accept_all[] = {{BPF_RET | BPF_K, 0, 0, 0xffffffff}};
  sock_fprog program = {1, accept_all};
  errno = 0;
  EXPECT_EQ(setsockopt(pair.client, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program), -1);
  EXPECT_EQ(errno, EOPNOTSUPP);
  const int one = 1;
  errno = 0;
  EXPECT_EQ(setsockopt(pair.client, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one), -1);
  EXPECT_EQ(errno, EOPNOTSUPP);
  errno = 0;
  EXPECT_EQ(send(pair.client, "!", 1, MSG_OOB), -1);
  EXPECT_EQ(errno, EOPNOTSUPP);
  // Signal-driven I/O: SIGIO comes from kernel traffic the fast path does not have.
  errno = 0;
  EXPECT_EQ(fcntl(pair.client, F_SETFL, O_ASYNC), -1);
  EXPECT_EQ(errno, EOPNOTSUPP);
  errno = 0;
  EXPECT_EQ(ioctl(pair.client, FIOASYNC, &one), -1);
  EXPECT_EQ(errno, EOPNOTSUPP);
  // Options that change nothing on the rings are accepted and kept on the kernel socket.
  EXPECT_EQ(setsockopt(pair.client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), 0);
  int value = 0;
  socklen_t length = sizeof value;
  EXPECT_EQ(getsockopt(pair.client, IPPROTO_TCP, TCP_NODELAY, &value, &length), 0);
  EXPECT_EQ(value, 1);
  // Read-only options fail as on kernel TCP.
  errno = 0;
  EXPECT_EQ(setsockopt(pair.client, SOL_SOCKET, SO_TYPE, &one, sizeof one), -1);
  EXPECT_EQ(errno, ENOPROTOOPT);
  Settle(pair.client, pair.server, true);  // still fast, both ways
}

}  // namespace
}  // namespace loopfast::test
