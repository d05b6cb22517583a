// The listening side of the rendezvous: one abstract SEQPACKET socket per TCP port (the
// "channel"), where connecting clients queue their Hello before their SYN exists, so that
// whoever accepts the connection finds it. Shared by every listener of that port in this
// process and inherited by forked children (a prefork pool, fork after listen); a Hello that
// one process of the group reads but another accepted is handed on through a private socket
// pair of the group, with the channel itself attached as proof of membership.
//
// Thread rules: any thread; one mutex serialises the searches of this process.
#ifndef LOOPFAST_RENDEZVOUS_LISTENER_CHANNEL_H_
#define LOOPFAST_RENDEZVOUS_LISTENER_CHANNEL_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "base/result.h"
#include "rendezvous/protocol.h"

namespace loopfast::rendezvous {

// A verified Hello: its sender holds the client end of the accepted connection.
struct FoundHello {
  int channel_fd = -1;  // the client's channel; the caller answers on it, then closes it
  Hello hello{};
  pid_t client_pid = 0;
};

class ListenerChannel {
 public:
  // Binds the channel of `port`; EADDRINUSE when another group already has it.
  static Result<std::shared_ptr<ListenerChannel>> Open(uint16_t port);
  ~ListenerChannel();
  ListenerChannel(const ListenerChannel &) = delete;
  ListenerChannel &operator=(const ListenerChannel &) = delete;

  uint16_t port() const { return port_; }

  // Finds the Hello of accepted connection `accepted_fd`, waiting up to `timeout_ms` for one
  // that another process of the group holds. ETIMEDOUT when none came (group), ENOENT when
  // none matched (alone: no wait), ECONNRESET when the client gave up, EACCES when the client
  // belongs to a user whose processes we cannot check.
  Result<FoundHello> FindHello(int accepted_fd, int timeout_ms);

  // From now on, Hellos that are not ours go to the group (called in both processes at fork).
  void MarkShared() { shared_ = true; }

  // Messages rejected as forged, malformed or unverifiable, by every channel of this process.
  static uint64_t RejectedTotal();

 private:
  struct Held {
    int channel_fd = -1;
    bool hello_read = false;
    Hello hello{};
    pid_t pid = 0;
    uid_t uid = 0;
    uint64_t inode = 0;
    int64_t accepted_ms = 0;  // when the group accepted the channel connection (its grace)
  };

  ListenerChannel(uint16_t port, int listen_fd, int group_rx, int group_tx, uint64_t inode);
  // Reads and checks a held channel's Hello. False: drop it (it was answered or is gone).
  bool ReadHello(Held &held);
  void Drop(Held &held, RejectReason reason);
  void ForwardToGroup(Held &held);
  // In a group: forwards every channel connection held here, read or not.
  void HandOnToGroup();
  // Reads a held channel that may still be silent. False: drop it (answered, gone, or silent
  // for longer than a client takes between its connect and its Hello).
  bool ReadHeldHello(Held &held);
  bool ReceiveForwarded(Held *held);
  void PruneGone();
  void DropBeyondCap();

  uint16_t port_;
  int listen_fd_;
  int group_rx_;
  int group_tx_;
  uint64_t channel_inode_;
  bool shared_ = false;
  std::mutex mutex_;
  std::vector<Held> held_;
};

}  // namespace loopfast::rendezvous

#endif  // LOOPFAST_RENDEZVOUS_LISTENER_CHANNEL_H_
