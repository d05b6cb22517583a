// Descriptor → Socket, for every descriptor loopfast tracks. A lookup for an untracked
// descriptor (the common case for files, pipes, sockets of other kinds) costs two loads.
//
// Thread rules: any thread. Entries are shared_ptrs so that a call in one thread keeps its
// Socket alive while another thread closes the descriptor.
#ifndef LOOPFAST_SOCKET_FD_TABLE_H_
#define LOOPFAST_SOCKET_FD_TABLE_H_

#include <atomic>
#include <functional>
#include <memory>

#include "socket/socket.h"

namespace loopfast {

class FdTable {
 public:
  static FdTable &Instance();

  std::shared_ptr<Socket> Get(int fd) const;
  void Set(int fd, std::shared_ptr<Socket> socket);
  std::shared_ptr<Socket> Remove(int fd);
  // Calls `visit` for every tracked descriptor (fork handlers, close_range).
  void ForEach(const std::function<void(int, const std::shared_ptr<Socket> &)> &visit) const;

  static constexpr int kChunkBits = 10;
  static constexpr int kChunkSize = 1 << kChunkBits;
  static constexpr int kMaxChunks = 1 << 14;  // 16M descriptors

 private:
  struct Chunk {
    std::atomic<bool> tracked[kChunkSize];
    std::shared_ptr<Socket> slots[kChunkSize];
  };
  Chunk *ChunkFor(int fd, bool create);

  std::atomic<Chunk *> chunks_[kMaxChunks] = {};
  mutable std::mutex mutex_;  // guards slots; `tracked` is the lock-free fast test
};

}  // namespace loopfast

#endif  // LOOPFAST_SOCKET_FD_TABLE_H_
