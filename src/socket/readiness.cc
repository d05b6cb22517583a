// Readiness of one tracked socket (readiness.h): from the rings while fast, else from the kernel.
#include "socket/readiness.h"

#include <cerrno>

#include "fast/fast_connection.h"
#include "session/change_hints.h"
#include "sys/owned_fds.h"
#include "sys/real_calls.h"
#include "sys/tcp_counters.h"

namespace loopfast::readiness {
namespace {

constexpr short kInputEvents = POLLIN | POLLRDNORM | POLLRDHUP | POLLPRI;
constexpr short kOutputEvents = POLLOUT | POLLWRNORM;

// What the kernel says of the socket now, for `events`.
short KernelEvents(int fd, short events) {
  const int saved_errno = errno;
  struct pollfd probe = {fd, events, 0};
  const int n = sys::Real().poll(&probe, 1, 0);
  errno = saved_errno;
  return n > 0 ? probe.revents : short{0};
}

short Restrict(short events, short wanted) {
  return static_cast<short>(events & (wanted | POLLERR | POLLHUP | POLLNVAL));
}

}  // namespace

bool Decides(const Socket &socket) {
  switch (socket.stage.load(std::memory_order_acquire)) {
    case Stage::kFast:
    case Stage::kConnecting:
      return true;
    case Stage::kUndecided:
      return socket.opted_in.load(std::memory_order_relaxed);  // a connect may make it fast
    default:
      return false;
  }
}

State Look(Socket &socket, int fd, short wanted) {
  State state;
  switch (socket.stage.load(std::memory_order_acquire)) {
    case Stage::kFast: {
      FastConnection *fast = socket.fast.load(std::memory_order_acquire);
      fast->SettleIfPeerLeft(fd, /*blocking=*/false);
      const FastConnection::Look look = fast->LookNow(fd);
      state.in_sequence = look.in_sequence;
      state.in_consumed = look.in_consumed;
      state.no_space = look.no_space;
      if (look.in_ended) state.kernel_in = sys::KernelBytesReceived(fd);
      short events = 0;
      if (look.corrupt) {
        // A recv or send reports it (ECONNRESET); make sure one is made.
        events = POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM | POLLERR;
      } else {
        const short kernel =
            look.in_ended || look.out_ended
                ? KernelEvents(fd, static_cast<short>(kInputEvents | kOutputEvents))
                : short{0};
        if (look.readable) {
          events = static_cast<short>(events | (POLLIN | POLLRDNORM));
          state.in_ready_ns = look.in_ready_ns;
        }
        if (look.in_ended) events = static_cast<short>(events | (kernel & kInputEvents));
        if (look.out_ended) {
          events = static_cast<short>(events | (kernel & kOutputEvents));
        } else if (look.writable) {
          events = static_cast<short>(events | (kOutputEvents));
        }
        events = static_cast<short>(events | (kernel & (POLLERR | POLLHUP)));
      }
      state.all_events = events;
      state.events = Restrict(events, wanted);
      return state;
    }
    default:
      state.all_events = KernelEvents(fd, static_cast<short>(kInputEvents | kOutputEvents));
      state.events = Restrict(state.all_events, wanted);
      return state;
  }
}

bool WantInputStamps(Socket &socket) {
  if (socket.stage.load(std::memory_order_acquire) != Stage::kFast) return false;
  socket.fast.load(std::memory_order_acquire)->WantInputStamps();
  return true;
}

void CountWait(Socket &socket, bool slept) {
  if (socket.stage.load(std::memory_order_acquire) != Stage::kFast) return;
  socket.fast.load(std::memory_order_acquire)->CountReadinessWait(slept);
}

void EndWait(std::vector<std::shared_ptr<session::Session>> *announced) {
  for (const std::shared_ptr<session::Session> &session : *announced) {
    session::EndSleep(session->arena().hints(session->side()));
  }
  announced->clear();
}

Watched WatchChanges(Socket &socket, short wanted) {
  if (socket.stage.load(std::memory_order_acquire) != Stage::kFast) return {};
  FastConnection *fast = socket.fast.load(std::memory_order_acquire);
  // A forked child holds its parent's sessions: their hints are the parent's to take.
  if (fast->session().creator_pid() != sys::ThisProcess()) return {};
  fast->WatchChanges((wanted & kInputEvents) != 0, (wanted & kOutputEvents) != 0);
  return {fast->shared_session(), fast->slot_index()};
}

uint64_t InputSequence(const Socket &socket) {
  if (socket.stage.load(std::memory_order_acquire) != Stage::kFast) return 0;
  return socket.fast.load(std::memory_order_acquire)->InputSequence();
}

bool EdgeFired(const State &now, EdgeMemory *memory) {
  bool fired;
  if (!memory->looked) {
    fired = true;  // registration reports a state that is already ready, as the kernel does
  } else {
    const short rising = static_cast<short>(now.all_events & ~memory->all_events);
    const bool input_again = (now.all_events & POLLIN) != 0 &&
                             now.in_sequence != memory->in_sequence &&
                             now.in_consumed >= memory->in_sequence;
    const bool kernel_input_again =
        (now.all_events & POLLIN) != 0 && now.kernel_in != memory->kernel_in;
    const bool output_again = (now.all_events & POLLOUT) != 0 && now.no_space != memory->no_space;
    fired = rising != 0 || input_again || kernel_input_again || output_again;
  }
  memory->looked = true;
  memory->all_events = now.all_events;
  memory->in_sequence = now.in_sequence;
  memory->no_space = now.no_space;
  memory->kernel_in = now.kernel_in;
  return fired && now.events != 0;
}

void NoteKernelChanged(Socket &socket) {
  if (socket.stage.load(std::memory_order_acquire) != Stage::kFast) return;
  socket.fast.load(std::memory_order_acquire)->NoteKernelChanged();
}

int PrepareWait(Socket &socket, int fd, short wanted, WaitFd *out, bool announce,
                std::vector<std::shared_ptr<session::Session>> *announced) {
  const bool input = (wanted & kInputEvents) != 0;
  const bool output = (wanted & kOutputEvents) != 0;
  int count = 0;
  switch (socket.stage.load(std::memory_order_acquire)) {
    case Stage::kFast: {
      FastConnection *fast = socket.fast.load(std::memory_order_acquire);
      if (announce) {
        fast->PrepareToSleep(input, output);
        if (announced != nullptr) {
          announced->push_back(fast->shared_session());
        } else {
          fast->SleepEnded();  // nobody to end it later: count no sleeper
        }
      }
      const int bell = fast->WakeBell();
      if (bell >= 0) out[count++] = {bell, POLLIN, true, true};
      // The end of the input shows on the kernel socket (a FIN, a reset, our own shutdown);
      // so does the end of the output once the rings cannot change it any more.
      short kernel = 0;
      if (input) kernel = static_cast<short>(kernel | (POLLIN | POLLRDHUP));
      // Room to write comes from the kernel connection once output goes there (the peer switched
      // to kernel TCP: no bell rings when the kernel socket drains), or when there is no bell.
      if (output && (bell < 0 || fast->OutputOnKernel())) {
        kernel = static_cast<short>(kernel | (POLLOUT));
      }
      // A writer waiting for room learns of a peer that died (its FIN comes unannounced) from
      // the kernel socket too; after an announced shutdown the FIN says nothing new.
      if (output && !fast->PeerEndedOutput()) kernel = static_cast<short>(kernel | POLLRDHUP);
      if (kernel != 0 || count == 0) out[count++] = {fd, kernel, true, false};
      return count;
    }
    case Stage::kConnecting:
      // The end of the handshake (POLLOUT, or an error) moves the socket on; a caller that only
      // wants input must wake for it too.
      out[count++] = {fd, static_cast<short>(wanted | POLLOUT | POLLRDHUP), true, false};
      return count;
    default:
      out[count++] = {fd, wanted, true, false};
      return count;
  }
}

}  // namespace loopfast::readiness
