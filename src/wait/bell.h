// Bells: how a poll, select or epoll wait learns that a fast socket may have changed. A bell is
// an eventfd; the side that waits registers it, edge-triggered, in an epoll instance it sleeps
// on (a program epoll set's shadow, or the thread's WakeSet for poll and select), and the peer
// writes to it. Edge triggering means nobody ever reads the counter: every write reaches every
// epoll instance that registered the bell, so any number of waiters, in any process holding it,
// can share one bell without taking each other's wake-up.
//
// The counter starts at 1 and a ring adds 0: that never blocks, even when the peer (which shares
// the open file) made it blocking and full, and it still wakes the watchers. A peer that reads
// the counter down to 0 silences only its own session's bell: each session has its own.
//
// Thread rules: any thread.
#ifndef LOOPFAST_WAIT_BELL_H_
#define LOOPFAST_WAIT_BELL_H_

namespace loopfast::wait {

// A new bell (an owned, close-on-exec, non-blocking eventfd above the program's range, its
// counter at 1), or -1.
int CreateBell();
// Wakes the watchers of `bell`. Never blocks.
void RingBell(int bell);

// The calling thread's epoll instance holding the bells its poll/select calls sleep on.
class WakeSet {
 public:
  // The calling thread's set; -1 from fd() when it cannot be made.
  static WakeSet &ForThisThread();
  int fd();
  // Adds `bell` (edge-triggered) unless it is there already. False when it cannot be added.
  bool Add(int bell);
  // Takes the edges that woke a sleep, so that the next sleep waits for new ones.
  void Consume();
  // Lets go of the descriptor without touching the epoll instance (a forked child's copy).
  void Forget();
  ~WakeSet();

 private:
  int fd_ = -1;
};

// For the fork handler: the child's thread starts with a new set (the old one is the parent's
// epoll instance too).
void ForgetWakeSetInChild();

}  // namespace loopfast::wait

#endif  // LOOPFAST_WAIT_BELL_H_
