// The connections of `loopfast bench`: listening and connecting on each of the three paths
// (fast path, kernel TCP, Unix-domain socket), moving whole buffers, and checking that a
// connection really took the path its trial measures.
#ifndef LOOPFAST_TOOLS_BENCH_SOCKET_H_
#define LOOPFAST_TOOLS_BENCH_SOCKET_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

#include "bench_context.h"
#include "bench_types.h"

namespace loopfast::tool::bench {

// Where a trial's server listens: a loopback TCP port, or for unix an abstract address named
// after the server's pid (no file to clean up).
struct ServerProcess {
  pid_t pid = 0;
  uint16_t port = 0;
};

// Runs in the server process: a listener for `kind`; sets *port for TCP.
int Listen(Kind kind, uint16_t *port);
int Connect(Kind kind, const ServerProcess &server);

// Exactly `size` bytes, retrying on EINTR; false on EOF or an error.
bool ReadAll(int fd, void *buffer, size_t size);
bool WriteAll(int fd, const void *buffer, size_t size);

// Checks the path a connection took; returns false (and says why) when it is not `kind`, and
// then sets context->path_mismatch (in whichever process it runs).
bool CheckPath(BenchContext &context, int fd, Kind kind);

}  // namespace loopfast::tool::bench

#endif  // LOOPFAST_TOOLS_BENCH_SOCKET_H_
