// Google Benchmark micro-benchmarks of the ring: the cost of moving bytes through it with no
// system call, first in one thread, then between two threads (a cross-core hand-off, the floor
// under the fast path's figures; the cross-process figures are `loopfast bench`'s).
#include <benchmark/benchmark.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "ring/ring.h"

namespace loopfast {
namespace {

// A ring with its own control block and memory, window starting at the whole capacity.
struct OwnedRing {
  explicit OwnedRing(uint32_t capacity) : data(capacity) {
    SpscRing::Initialize(&control, capacity);
    producer = SpscRing(&control, data.data(), capacity);
    consumer = SpscRing(&control, data.data(), capacity);
  }
  RingControl control;
  std::vector<uint8_t> data;
  SpscRing producer;
  SpscRing consumer;
};

void BM_RingWriteRead(benchmark::State &state) {
  const size_t message = static_cast<size_t>(state.range(0));
  OwnedRing ring(1u << 20);
  std::vector<uint8_t> in(message, 7), out(message);
  for (auto _ : state) {
    benchmark::DoNotOptimize(ring.producer.Write(in.data(), message));
    benchmark::DoNotOptimize(ring.consumer.Read(out.data(), message));
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(message));
}
BENCHMARK(BM_RingWriteRead)->Arg(1)->Arg(64)->Arg(4096)->Arg(65536);

// Pins the calling thread to `cpu` when there are two CPUs or more: the two sides of a
// hand-off must not share one (each would spin away the other's time slice).
void PinToCpu(int cpu) {
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus < 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % cpus, &set);
  sched_setaffinity(0, sizeof set, &set);
}

// After this many empty polls a spinning side yields: on a busy or single-CPU machine the
// peer may need this CPU to make progress.
constexpr int kSpinsBeforeYield = 4096;

// Reads exactly `size` bytes, spinning; false if `stop` is set first or the ring is corrupt.
bool SpinRead(SpscRing &ring, uint8_t *data, size_t size, const std::atomic<bool> &stop) {
  size_t done = 0;
  for (int idle = 0; done < size;) {
    const int64_t n = ring.Read(data + done, size - done);
    if (n < 0) return false;
    done += size_t(n);
    if (n == 0 && stop.load(std::memory_order_relaxed)) return false;
    if (n == 0 && ++idle % kSpinsBeforeYield == 0) sched_yield();
  }
  return true;
}

// Writes exactly `size` bytes, spinning; false if `stop` is set first or the ring is corrupt.
bool SpinWrite(SpscRing &ring, const uint8_t *data, size_t size, const std::atomic<bool> &stop) {
  size_t done = 0;
  for (int idle = 0; done < size;) {
    const int64_t n = ring.Write(data + done, size - done);
    if (n < 0) return false;
    done += size_t(n);
    if (n == 0 && stop.load(std::memory_order_relaxed)) return false;
    if (n == 0 && ++idle % kSpinsBeforeYield == 0) sched_yield();
  }
  return true;
}

// Request/response between two threads over two rings, both spinning: a round trip is two
// cache-line hand-offs plus the copies (no doorbell, no lock, no system call).
void BM_RingPingPongThreads(benchmark::State &state) {
  const size_t message = static_cast<size_t>(state.range(0));
  OwnedRing requests(1u << 20), responses(1u << 20);
  std::atomic<bool> stop{false};
  PinToCpu(0);
  std::thread responder([&] {
    PinToCpu(1);
    std::vector<uint8_t> buffer(message);
    while (SpinRead(requests.consumer, buffer.data(), message, stop) &&
           SpinWrite(responses.producer, buffer.data(), message, stop)) {
    }
  });
  std::vector<uint8_t> buffer(message, 7);
  for (auto _ : state) {
    if (!SpinWrite(requests.producer, buffer.data(), message, stop) ||
        !SpinRead(responses.consumer, buffer.data(), message, stop)) {
      state.SkipWithError("ring corrupt");
      break;
    }
  }
  stop.store(true);
  responder.join();
  state.SetItemsProcessed(int64_t(state.iterations()));  // round trips
}
BENCHMARK(BM_RingPingPongThreads)->Arg(1)->Arg(1024)->UseRealTime();

// One-way stream between two threads, writes and reads of `message` bytes, 4 MiB ring (the
// fast path's largest window): the copy-bound ceiling of `loopfast bench stream`.
void BM_RingStreamThreads(benchmark::State &state) {
  const size_t message = static_cast<size_t>(state.range(0));
  OwnedRing ring(4u << 20);
  std::atomic<bool> stop{false};
  PinToCpu(0);
  std::thread consumer([&] {
    PinToCpu(1);
    std::vector<uint8_t> buffer(message);
    while (SpinRead(ring.consumer, buffer.data(), message, stop)) {
    }
  });
  std::vector<uint8_t> buffer(message, 7);
  for (auto _ : state) {
    if (!SpinWrite(ring.producer, buffer.data(), message, stop)) {
      state.SkipWithError("ring corrupt");
      break;
    }
  }
  stop.store(true);
  consumer.join();
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(message));
}
BENCHMARK(BM_RingStreamThreads)->Arg(4096)->Arg(65536)->UseRealTime();

}  // namespace
}  // namespace loopfast
