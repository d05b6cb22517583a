// The connecting half of a session: this process (and the children it forks) with the listener
// group of one TCP port, for sockets of one user. The first connection opens it (the arena and
// the SessionSetup, messages.h); every connection then claims a slot in it before its SYN
// leaves, so that the client can write to the ring as soon as the handshake says the listener
// opted in, and the bytes wait in shared memory, however late the accept, even if this process
// dies (the group holds the arena).
//
// Thread rules: any thread; claims are lock-free, opening a session takes a process-wide lock.
#ifndef LOOPFAST_SESSION_CLIENT_SESSION_H_
#define LOOPFAST_SESSION_CLIENT_SESSION_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>

#include "base/result.h"
#include "session/session.h"

namespace loopfast::session {

// Why no session could be had; the connection takes kernel TCP.
enum class NoSession {
  kNoChannel,     // nobody on this port offers the fast path (no channel)
  kNotListeners,  // the port's channel belongs to another user than its TCP listener
  kNoListener,    // no TCP listener on that address (the connect will fail anyway)
  kResources,     // memory, descriptors or address space
  kNoSlot,        // this session's slots are all in use
  kOtherOwner,    // the socket's owner is not this process's user
};

class ClientSession : public Session {
 public:
  struct Opened {
    std::shared_ptr<ClientSession> session;
    NoSession why = NoSession::kResources;  // when session is null
  };
  // The open session of this process with the listener group of `destination`'s port, for
  // sockets owned by `uid`; opens one when there is none or the old one's group is gone.
  static Opened For(const struct sockaddr *destination, uid_t uid);

  ~ClientSession() override;

  // A slot for the TCP socket `socket_cookie`, its rings ready, claimed in the index. The
  // client's own ring limit (what it lets the server queue for it) is `rx_limit`.
  Result<uint32_t> Claim(uint64_t socket_cookie, uint32_t rx_limit);
  // The listener answered with its marker: the client writes to the ring.
  void Connected(uint32_t slot);
  // The client takes kernel TCP after all. False when the accepting side has bound the slot
  // already: the connection is fast anyway.
  bool Decline(uint32_t slot);
  // A claim made but never connected (connect failed at once): the slot is free again.
  void Abandon(uint32_t slot);

  // Whether the listener group that received this session still holds it (it may not have
  // read it yet). One system call.
  bool GroupAlive() const;

  // For the fork handler: nothing to do today (the family state is shared with the child).
  static void ForgetAllInChild();

 protected:
  void SlotDone(uint32_t slot) override;
  void Idle() override;

 private:
  struct FamilyState;
  ClientSession(void *arena, uint64_t nonce, int own_bell, int group_bell, int channel,
                FamilyState *family, uint16_t port, uid_t uid);
  // A declined slot that can be taken back (its accept has looked, or a minute passed), now
  // the caller's; kMaxSlots when none.
  uint32_t ReclaimDeclined();
  static Result<std::shared_ptr<ClientSession>> Open(const struct sockaddr *destination, uid_t uid,
                                                     NoSession *why);

  int channel_;  // our end of the connection that carried the setup: EOF when the group left
  std::atomic<uint64_t> last_idle_look_ns_{0};
  FamilyState *family_;
  const uint16_t port_;
  const uid_t uid_;
};

}  // namespace loopfast::session

#endif  // LOOPFAST_SESSION_CLIENT_SESSION_H_
