// The implementation of ready_queue.h (what it is for is said there).
#include "socket/ready_queue.h"

#include <algorithm>

namespace loopfast {

void ReadyQueue::LinkAfter(Member *before, Member *member) {
  member->prev = before;
  member->next = before != nullptr ? before->next : head_;
  if (member->next != nullptr) {
    member->next->prev = member;
  } else {
    tail_ = member;
  }
  if (before != nullptr) {
    before->next = member;
  } else {
    head_ = member;
  }
  member->queued = true;
  ++size_;
}

void ReadyQueue::Add(Member *member, uint64_t ready_ns) {
  if (member->queued) return;
  member->ready_ns = ready_ns;
  // From the tail: most members become ready after every queued one.
  Member *before = tail_;
  while (before != nullptr && before->ready_ns > ready_ns) before = before->prev;
  LinkAfter(before, member);
}

void ReadyQueue::AddAll(std::vector<Member *> *batch) {
  std::erase_if(*batch, [](const Member *member) { return member->queued; });
  const auto earlier = [](const Member *a, const Member *b) { return a->ready_ns < b->ready_ns; };
  if (batch->size() <= 16) {
    // Stable, in place, no allocation (the common batch is one or two members).
    for (size_t i = 1; i < batch->size(); ++i) {
      Member *member = (*batch)[i];
      size_t j = i;
      for (; j > 0 && earlier(member, (*batch)[j - 1]); --j) (*batch)[j] = (*batch)[j - 1];
      (*batch)[j] = member;
    }
  } else {
    std::stable_sort(batch->begin(), batch->end(), earlier);
  }
  // Latest first, from the tail: the insertion point only ever moves towards the head.
  Member *before = tail_;
  for (auto it = batch->rbegin(); it != batch->rend(); ++it) {
    Member *member = *it;
    while (before != nullptr && before->ready_ns > member->ready_ns) before = before->prev;
    LinkAfter(before, member);
  }
}

void ReadyQueue::Remove(Member *member) {
  if (!member->queued) return;
  if (member->prev != nullptr) {
    member->prev->next = member->next;
  } else {
    head_ = member->next;
  }
  if (member->next != nullptr) {
    member->next->prev = member->prev;
  } else {
    tail_ = member->prev;
  }
  member->prev = member->next = nullptr;
  member->queued = false;
  --size_;
}

void ReadyQueue::Clear() {
  while (head_ != nullptr) Remove(head_);
}

uint64_t InputReadySince(uint64_t stamp_ns, uint64_t idle_seen_ns, uint64_t now_ns) {
  if (stamp_ns == 0) return now_ns;
  if (idle_seen_ns > now_ns) idle_seen_ns = now_ns;
  return std::clamp(stamp_ns, idle_seen_ns, now_ns);
}

}  // namespace loopfast
