/* A tiny program linked with libloopfast, for tests/local_attacker_test.cc, which compiles it
 * at run time into a directory every user may enter (a setuid-root copy included: ld.so
 * ignores LD_PRELOAD and LD_LIBRARY_PATH there, so it links the library and finds it through
 * an absolute RUNPATH).
 *
 *   local_probe [--name HEX] [--hold]
 *
 * --name HEX: PR_SET_NAME to these bytes (hex pairs) first, as any process may name itself.
 * It makes one connection to itself over 127.0.0.1 with the switch on at both ends (the
 * explicit API), moves a message each way, and prints one line:
 *   "secure=S euid=U ruid=R path=fast|kernel pid=P fd=F"
 * (S: getauxval(AT_SECURE); F: the connecting end). With --hold it then keeps the connection
 * until its standard input closes. Exits 0, or 1 when the connection failed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loopfast/loopfast.h"

static int Name(const char *hex) {
  char name[16] = {0};
  size_t length = strlen(hex) / 2;
  if (length > 15) length = 15;
  for (size_t i = 0; i < length; ++i) {
    unsigned byte = 0;
    if (sscanf(hex + 2 * i, "%2x", &byte) != 1) return -1;
    name[i] = (char)byte;
  }
  return prctl(PR_SET_NAME, name, 0, 0, 0);
}

int main(int argc, char **argv) {
  int hold = 0;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) {
      if (Name(argv[++i]) != 0) return 1;
    } else if (strcmp(argv[i], "--hold") == 0) {
      hold = 1;
    }
  }
  struct sockaddr_in address = {0};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  const int client = socket(AF_INET, SOCK_STREAM, 0);
  loopfast_set_fast_path(listener, 1);
  loopfast_set_fast_path(client, 1);
  if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 ||
      listen(listener, 4) != 0 ||
      getsockname(listener, (struct sockaddr *)&address, &length) != 0 ||
      connect(client, (struct sockaddr *)&address, sizeof address) != 0) {
    perror("local_probe");
    return 1;
  }
  const int server = accept(listener, NULL, NULL);
  char request[] = "request: the probe's payload", reply[] = "reply", buffer[64];
  if (server < 0 || send(client, request, sizeof request, 0) != (ssize_t)sizeof request ||
      recv(server, buffer, sizeof request, MSG_WAITALL) != (ssize_t)sizeof request ||
      send(server, reply, sizeof reply, 0) != (ssize_t)sizeof reply ||
      recv(client, buffer, sizeof reply, MSG_WAITALL) != (ssize_t)sizeof reply) {
    perror("local_probe");
    return 1;
  }
  const int fast = loopfast_path_of(client) == LOOPFAST_PATH_FAST &&
                   loopfast_path_of(server) == LOOPFAST_PATH_FAST;
  printf("secure=%lu euid=%d ruid=%d path=%s pid=%d fd=%d\n", getauxval(AT_SECURE), (int)geteuid(),
         (int)getuid(), fast ? "fast" : "kernel", (int)getpid(), client);
  fflush(stdout);
  if (hold) {
    while (read(0, buffer, sizeof buffer) > 0) {
    }
  }
  close(server);
  close(client);
  close(listener);
  return 0;
}
