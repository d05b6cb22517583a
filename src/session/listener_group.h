// The accepting half of sessions: a listener group (the process that opened a fast listener
// and the children it forks, which may all accept from it) and the sessions that connecting
// processes set up with it.
//
// A connecting process sends its SessionSetup to the group's channel, an abstract SEQPACKET
// socket named by the port, before its first connection's SYN. Whichever process of the group
// first needs it (an accept whose connection it cannot place) reads it, maps the arena and
// registers the session in the group's memory. When more than one process holds the listener,
// it also leaves the session's descriptors in the group's depot, a stream socket pair the group
// inherited, from which any other process of the group takes copies by peeking at the record's
// offset: no process ever waits for another (docs/design.md, "Listener groups"). The depot is
// compacted when most of its records are of ended sessions. A setup connection accepted before
// its setup arrived (the client sends it just after connecting) is parked in a socket pair the
// group shares, for whichever process needs it next.
//
// Thread rules: any thread; one mutex per group and process, and a lock in the group's memory
// between processes (never in memory a client can write).
#ifndef LOOPFAST_SESSION_LISTENER_GROUP_H_
#define LOOPFAST_SESSION_LISTENER_GROUP_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "base/result.h"
#include "session/session.h"

namespace loopfast::session {

struct GroupMemory;
class ListenerGroup;

// The accepting side's view of one session.
class ServerSession : public Session {
 public:
  ~ServerSession() override;

  enum class BindOutcome {
    kBound,      // the slot is this connection's, fast
    kDeclined,   // the client took kernel TCP: so does this end
    kNotFound,   // no claim for that socket
    kAmbiguous,  // claims in more than one session of the user: none can be trusted
    kResources,  // a session of the user could not be read or mapped here (memory, descriptors)
  };
  // The claim for the client socket `socket_cookie` in this session: kNotFound, kDeclined, or
  // kBound meaning "claimed, not yet bound" (*slot says which).
  BindOutcome Find(uint64_t socket_cookie, uint32_t *slot) const;
  // Binds a slot Find returned; sets up this side's end of it (`rx_limit`: what this end lets
  // the client queue for it). False when the client changed it meanwhile.
  bool Bind(uint32_t slot, uint64_t socket_cookie, uint32_t rx_limit);

  // Whether the connecting process family still holds its end of the setup's connection (only
  // in the process that read the setup; elsewhere: the group's record says).
  bool ClientAlive() const;
  // Whether the group's record of this session still says it is live.
  bool StillInGroup() const;
  // This process's listeners of the port are gone: ends the setup's connection (for every
  // process holding it), so the client's next connection sets up a new session with whatever
  // listens there next instead of claiming in this one. Connections of the session go on.
  void EndChannel();

 protected:
  void SlotDone(uint32_t) override {}  // slots are the client's to reuse
  void Idle() override;

 private:
  friend class ListenerGroup;
  ServerSession(void *arena, uint64_t nonce, int group_bell, int client_bell, int setup_socket,
                uint32_t entry, uid_t uid, pid_t pid, std::shared_ptr<GroupMemory> group,
                RegionAllocatorState *allocator);
  int setup_socket_;      // -1 unless this process read the setup
  const uint32_t entry_;  // its index in the group's memory
  // The group's record of the session stays mapped while the session lives, even after the
  // listener closed.
  std::shared_ptr<GroupMemory> group_;
  // The server region's allocator, shared by the group's processes (memory of its own).
  RegionAllocatorState *allocator_state_;
  std::weak_ptr<ListenerGroup> listener_group_;
};

class ListenerGroup : public std::enable_shared_from_this<ListenerGroup> {
 public:
  // Binds the channel of `port`; EADDRINUSE when another process has it (another group, or a
  // squatter: the name has no owner).
  static Result<std::shared_ptr<ListenerGroup>> Open(uint16_t port);
  // Who holds the channel name of `port` when Open says EADDRINUSE (SO_PEERCRED of a
  // connection to it): for the administrator, since the name has no owner.
  static Result<struct ucred> ChannelHolder(uint16_t port);
  ~ListenerGroup();
  ListenerGroup(const ListenerGroup &) = delete;
  ListenerGroup &operator=(const ListenerGroup &) = delete;

  uint16_t port() const { return port_; }

  struct Placed {
    std::shared_ptr<ServerSession> session;
    uint32_t slot = 0;
    ServerSession::BindOutcome outcome = ServerSession::BindOutcome::kNotFound;
  };
  // Finds and binds the claim of the client socket `socket_cookie` owned by `uid`, weighing
  // every session of that user: the setups still waiting on the channel are read first and the
  // sessions other processes of the group registered are mapped, since a claim found in one
  // session counts only if no other session of the user claims the same socket (another
  // process of that user may claim any socket it can name). Never waits.
  // `uid_known` false: the client socket's user is not known any more (its process closed it
  // before this accept): every user's sessions are weighed.
  Placed Bind(uid_t uid, bool uid_known, uint64_t socket_cookie, uint32_t rx_limit);

  // fork: from now on another process holds the listener (the parent calls it before fork).
  void AddHolder();
  // This process no longer holds the listener.
  void DropHolder();

  // Lets go of sessions whose clients are gone and that no connection uses.
  void EndIdleSessions();

  // Sessions of this process, for `loopfast stat`.
  std::vector<std::shared_ptr<ServerSession>> Sessions();

 private:
  ListenerGroup(uint16_t port, int channel, std::shared_ptr<GroupMemory> group, const int *depot,
                const int *parking);
  // The rest: caller holds mutex_ and the group lock (EndIdleSessionsLocked: mutex_ only).
  // Reads every setup waiting on the channel.
  void DrainChannel();
  // Reads one setup connection: registers its session, parks it (never waits) when the setup
  // is not there yet and `park_if_silent`, else drops it.
  void ReadSetup(int setup_socket, bool park_if_silent, uint64_t parked_at_ns);
  // Keeps a setup connection for any process of the group to read later.
  void Park(int setup_socket, uid_t uid);
  // Reads the parked setup connections again (drop_oldest: the first one gets its last look).
  void DrainParked(bool drop_oldest);
  // Maps the sessions the group registered and this process has not.
  void FetchFromGroup();
  bool Known(uint32_t entry, uint64_t nonce) const;
  // Registers a session from a setup's descriptors.
  void Register(const int *fds, uint64_t nonce, uid_t uid, pid_t pid, int setup_socket);
  uint32_t FreeEntry();
  // Takes the records of ended sessions out of the depot.
  void CompactDepot();
  // Claims for the socket in this user's sessions (every user's when not `uid_known`); the last
  // one found in *placed.
  int CountClaims(uid_t uid, bool uid_known, uint64_t socket_cookie, Placed *placed) const;
  // Ends sessions whose clients are gone and that no connection here uses.
  void EndIdleSessionsLocked();
  std::shared_ptr<ServerSession> MakeSession(const int *fds, int allocator_fd, uint32_t entry,
                                             uint64_t nonce, uid_t uid, pid_t pid,
                                             int setup_socket);

  const uint16_t port_;
  // The process that opened the group (bound the channel); a fork child's copy of the group
  // going away (exec, exit) is not the listener going away.
  const pid_t owner_pid_;
  const int channel_;
  const std::shared_ptr<GroupMemory> group_;
  const int depot_rx_;
  const int depot_tx_;
  const int parking_rx_;
  const int parking_tx_;
  std::mutex mutex_;
  uint32_t registrations_seen_ = 0;
  std::vector<std::shared_ptr<ServerSession>> sessions_;
  size_t sweep_next_ = 0;
  uint64_t last_sweep_ns_ = 0;
  // A setup could not be taken for want of memory, address space or descriptors: a claim not
  // found may be in it.
  bool lost_for_resources_ = false;
};

}  // namespace loopfast::session

#endif  // LOOPFAST_SESSION_LISTENER_GROUP_H_
