// The order in which epoll_wait reports what is ready: the kernel's ready list, rebuilt for the
// members loopfast answers for.
//
// The kernel's epoll (fs/eventpoll.c) keeps a FIFO of ready items: an item goes to the tail when
// it becomes ready (a wake-up while it is not queued; a queued item keeps its place), epoll_wait
// reports from the head, an item found no longer ready leaves the list, and a level-triggered
// item that is still ready goes back to the tail after it is reported, so a busy one cannot
// starve the others. maxevents smaller than the list reports the oldest and leaves the rest for
// the next call.
//
// loopfast cannot see the moment a fast socket becomes ready (the peer writes shared memory),
// so each member comes with the time it became ready as well as can be known (the writer's
// stamp of when the ring stopped being empty, or the time of the look that first found it
// ready), and the queue keeps members sorted by that time: a member that became ready earlier
// but was found later still goes before those that became ready after it, exactly where the
// kernel's wake-up would have put it. Equal times keep the order in which they were added.
//
// Intrusive (a member is a node embedded in what is queued): adding and removing never
// allocate. Thread rules: none (the caller's lock).
#ifndef LOOPFAST_SOCKET_READY_QUEUE_H_
#define LOOPFAST_SOCKET_READY_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace loopfast {

class ReadyQueue {
 public:
  struct Member {
    Member *prev = nullptr;
    Member *next = nullptr;
    uint64_t ready_ns = 0;  // when it became ready: the queue's order
    bool queued = false;
  };

  ReadyQueue() = default;
  ReadyQueue(const ReadyQueue &) = delete;
  ReadyQueue &operator=(const ReadyQueue &) = delete;

  bool empty() const { return head_ == nullptr; }
  size_t size() const { return size_; }
  // The oldest member, or null; a member's `next` is the one after it.
  Member *front() const { return head_; }
  Member *back() const { return tail_; }

  // Queues `member` as ready since `ready_ns`: after every member ready since then or earlier,
  // before every later one. A member already queued keeps its place (and time), as a kernel
  // item woken again while on the ready list does.
  void Add(Member *member, uint64_t ready_ns);
  // Queues `member` last, as ready since `ready_ns` or since the last member's time if that is
  // later (a level-triggered member reported and still ready; no clock needed to be last).
  void AddLast(Member *member, uint64_t ready_ns) {
    Add(member, tail_ != nullptr && tail_->ready_ns > ready_ns ? tail_->ready_ns : ready_ns);
  }
  // Queues the members found ready by one look at once, each with its ready_ns already set
  // (members already queued are left where they are). Sorts `batch` (stable) and merges it in
  // O(queue + batch log batch), where adding one by one could take O(queue x batch).
  void AddAll(std::vector<Member *> *batch);
  // Takes `member` out of the queue; no effect when it is not queued.
  void Remove(Member *member);
  // Takes every member out.
  void Clear();

 private:
  // Links `member` right after `before` (at the head when null).
  void LinkAfter(Member *before, Member *member);

  Member *head_ = nullptr;
  Member *tail_ = nullptr;
  size_t size_ = 0;
};

// When a fast socket's input became ready, from the writer's stamp of the moment its ring
// stopped being empty and this reader's own looks: never before `idle_seen_ns` (a look then
// found it not ready: an older stamp belonged to input read since), never after `now_ns` (a
// stamp from a peer is not trusted to be in the past). No stamp (0): `now_ns`, when it was found.
uint64_t InputReadySince(uint64_t stamp_ns, uint64_t idle_seen_ns, uint64_t now_ns);

}  // namespace loopfast

#endif  // LOOPFAST_SOCKET_READY_QUEUE_H_
