// Memory accounting for `loopfast bench many` (bench_memory.h).
#include "bench_memory.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>

namespace loopfast::tool::bench {
namespace {

struct KibField {
  const char *key;
  int64_t *total;
};

// Adds the "Key:   123 kB" lines of a /proc file to the fields named; false if one is missing.
bool AddKibFields(const char *path, std::initializer_list<KibField> fields) {
  FILE *file = std::fopen(path, "re");
  if (file == nullptr) return false;
  char line[256];
  size_t found = 0;
  while (std::fgets(line, sizeof line, file) != nullptr) {
    for (const KibField &field : fields) {
      const size_t length = std::strlen(field.key);
      if (std::strncmp(line, field.key, length) == 0 && line[length] == ':') {
        *field.total += std::strtoll(line + length + 1, nullptr, 10);
        ++found;
      }
    }
  }
  std::fclose(file);
  return found == fields.size();
}

}  // namespace

MemorySnapshot TakeMemorySnapshot(const std::vector<pid_t> &pids) {
  MemorySnapshot s;
  s.ok = AddKibFields("/proc/meminfo", {{"MemAvailable", &s.available},
                                        {"Slab", &s.slab},
                                        {"SUnreclaim", &s.unreclaimable_slab},
                                        {"Shmem", &s.shmem},
                                        {"PageTables", &s.page_tables}});
  for (const pid_t pid : pids) {
    const std::string path = "/proc/" + std::to_string(pid) + "/smaps_rollup";
    s.ok = AddKibFields(path.c_str(), {{"Pss", &s.pss}, {"Pss_Shmem", &s.pss_shmem}}) && s.ok;
  }
  return s;
}

MemoryCost CostPerConnection(const MemorySnapshot &before, const MemorySnapshot &after,
                             size_t connections) {
  MemoryCost cost;
  if (!before.ok || !after.ok || connections == 0) return cost;
  const double n = double(connections);
  cost.measured = true;
  cost.available = double(before.available - after.available) / n;  // a drop is a cost
  cost.pss = double(after.pss - before.pss) / n;
  cost.pss_shmem = double(after.pss_shmem - before.pss_shmem) / n;
  cost.slab = double(after.slab - before.slab) / n;
  cost.unreclaimable_slab = double(after.unreclaimable_slab - before.unreclaimable_slab) / n;
  cost.shmem = double(after.shmem - before.shmem) / n;
  cost.page_tables = double(after.page_tables - before.page_tables) / n;
  return cost;
}

void AwaitQuietMemory() {
  usleep(250000);
  int64_t previous = 0;
  for (int sample = 0; sample < 30; ++sample) {
    int64_t slab = 0;
    if (!AddKibFields("/proc/meminfo", {{"Slab", &slab}})) return;
    if (sample > 0 && std::llabs(slab - previous) < 256) return;
    previous = slab;
    usleep(100000);
  }
}

}  // namespace loopfast::tool::bench
