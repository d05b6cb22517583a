// Cache-line size for layouts shared between processes; fixed, not the compiler's guess, so the
// shared-memory layout is the same for every build.
#ifndef LOOPFAST_BASE_CACHELINE_H_
#define LOOPFAST_BASE_CACHELINE_H_

#include <cstddef>

namespace loopfast {

inline constexpr std::size_t kCacheLine = 64;

// Polite spinning: tells the CPU this is a wait loop (less power, faster exit on x86).
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace loopfast

#endif  // LOOPFAST_BASE_CACHELINE_H_
