// What `loopfast run` and `loopfast capture` share: run's options, and starting the program
// with the library preloaded.
#ifndef LOOPFAST_TOOLS_LAUNCH_H_
#define LOOPFAST_TOOLS_LAUNCH_H_

namespace loopfast::tool {

// Adds LIST to a comma-separated variable (the option may be given more than once).
void AppendList(const char *variable, const char *list);

// If argv[*index] is one of `loopfast run`'s environment options (--spin-us, --log, --log-file,
// --include-port, --exclude-port, --include-address, --exclude-address, --disable), sets its
// LOOPFAST_* variable, moves *index to its value, and returns true. A missing value exits with
// status 2 and a message naming `command` ("loopfast run").
bool ApplyRunOption(const char *command, int argc, char **argv, int *index);

// Runs `program` (argv-style, null-terminated) with libloopfast.so preloaded and the switch on
// by default. Returns only on failure: 127, after a message naming `command`.
int ExecWithFastPath(const char *command, char **program);

}  // namespace loopfast::tool

#endif  // LOOPFAST_TOOLS_LAUNCH_H_
