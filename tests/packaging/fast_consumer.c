/* A program built against the installed packages (cc fast_consumer.c $(pkg-config --cflags
 * --libs loopfast)) that makes a fast connection: a listener and a client in two processes,
 * both opting in with the public API, one exchange, and both ends must report the fast path.
 * Prints "fast" and exits 0, or says why not and exits 1. */
#include <arpa/inet.h>
#include <loopfast/loopfast.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
  struct sockaddr_in address;
  socklen_t length = sizeof address;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  if (listener < 0 || loopfast_set_fast_path(listener, 1) != 0 ||
      bind(listener, (struct sockaddr *)&address, sizeof address) != 0 ||
      listen(listener, 1) != 0 ||
      getsockname(listener, (struct sockaddr *)&address, &length) != 0) {
    perror("listener");
    return 1;
  }
  pid_t server = fork();
  if (server == 0) {
    int fd = accept(listener, NULL, NULL);
    char byte;
    if (fd < 0 || recv(fd, &byte, 1, MSG_WAITALL) != 1 || send(fd, &byte, 1, 0) != 1) _exit(2);
    _exit(loopfast_path_of(fd) == LOOPFAST_PATH_FAST ? 0 : 3);
  }
  close(listener);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  char byte = 'x';
  if (fd < 0 || loopfast_set_fast_path(fd, 1) != 0 ||
      connect(fd, (struct sockaddr *)&address, sizeof address) != 0 || send(fd, &byte, 1, 0) != 1 ||
      recv(fd, &byte, 1, MSG_WAITALL) != 1) {
    perror("client");
    return 1;
  }
  int status = 0;
  waitpid(server, &status, 0);
  if (loopfast_path_of(fd) != LOOPFAST_PATH_FAST || !WIFEXITED(status) || WEXITSTATUS(status)) {
    printf("not fast: client %d (%s), server status %d\n", loopfast_path_of(fd),
           loopfast_fallback_reason(fd), status);
    return 1;
  }
  printf("fast\n");
  return 0;
}
