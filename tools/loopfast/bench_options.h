// The command line of `loopfast bench`: its usage text, parsing and checking the options, and
// how a run's parameter (message size, write size or rate) is described in progress lines.
#ifndef LOOPFAST_TOOLS_BENCH_OPTIONS_H_
#define LOOPFAST_TOOLS_BENCH_OPTIONS_H_

#include <cstddef>
#include <cstdio>
#include <string>

#include "bench_types.h"

namespace loopfast::tool::bench {

void BenchUsage(FILE *out);

// Parses argv (argv[1] the mode) into `options`; prints the problem and returns false on a bad
// command line. The mode itself is not checked here.
bool ParseOptions(int argc, char **argv, Options *options);

// "64 B messages", "65536 B writes", "1000 transactions/s"; "" for a mode without a parameter.
std::string DescribeParameter(const Options &options, size_t parameter);

}  // namespace loopfast::tool::bench

#endif  // LOOPFAST_TOOLS_BENCH_OPTIONS_H_
