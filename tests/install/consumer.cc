// The C++ wrapper from an installed loopfast.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <loopfast/loopfast.hpp>

int main() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (loopfast::SetFastPath(fd, true)) return 1;
  close(fd);
  std::puts(loopfast::PathOf(fd) == loopfast::Path::kNone ? "ok" : "unexpected");
  return 0;
}
