// The one line a program's log shows when loopfast starts (at LOOPFAST_LOG=info): proof that it
// is loaded, and how it is configured.
#ifndef LOOPFAST_SOCKET_STARTUP_H_
#define LOOPFAST_SOCKET_STARTUP_H_

#include <string>

namespace loopfast {

// "loopfast 0.1.0 loaded: transparent mode (LOOPFAST_DEFAULT=1), spin adaptive, up to 50 us, ..."
std::string DescribeStartup();
// Logs DescribeStartup() at info level (does nothing, and reads nothing, below it).
void LogStartup();

}  // namespace loopfast

#endif  // LOOPFAST_SOCKET_STARTUP_H_
