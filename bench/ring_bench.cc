// Google Benchmark micro-benchmarks of the ring: the cost of moving bytes through it, with no
// system call and no second thread (the cross-process figures are `loopfast bench`'s).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "ring/ring.h"

namespace loopfast {
namespace {

void BM_RingWriteRead(benchmark::State &state) {
  const size_t message = static_cast<size_t>(state.range(0));
  constexpr uint32_t kCapacity = 1u << 20;
  RingControl control;
  SpscRing::Initialize(&control, kCapacity);
  std::vector<uint8_t> data(kCapacity);
  SpscRing producer(&control, data.data(), kCapacity);
  SpscRing consumer(&control, data.data(), kCapacity);
  std::vector<uint8_t> in(message, 7), out(message);
  for (auto _ : state) {
    benchmark::DoNotOptimize(producer.Write(in.data(), message));
    benchmark::DoNotOptimize(consumer.Read(out.data(), message));
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(message));
}
BENCHMARK(BM_RingWriteRead)->Arg(1)->Arg(64)->Arg(4096)->Arg(65536);

}  // namespace
}  // namespace loopfast
