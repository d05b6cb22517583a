/* A program built against an installed loopfast: the C API, from C. */
#include <loopfast/loopfast.h>
#include <loopfast/winsock.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  BOOL on = TRUE;
  DWORD returned = 1;
  if (WSAIoctl(fd, SIO_LOOPBACK_FAST_PATH, &on, sizeof on, NULL, 0, &returned, NULL, NULL) != 0) {
    fprintf(stderr, "WSAIoctl failed: %d\n", WSAGetLastError());
    return 1;
  }
  if (loopfast_set_fast_path(fd, 0) != 0 || returned != 0) return 1;
  close(fd);
  printf("loopfast %s\n", loopfast_version());
  return 0;
}
