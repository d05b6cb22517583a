// Winsock-compatible entry points (<loopfast/winsock.h>) over loopfast_ioctl.
#include "loopfast/winsock.h"

#include <cerrno>

#define LOOPFAST_EXPORT __attribute__((visibility("default")))

namespace {
thread_local int last_wsa_error = 0;
}  // namespace

extern "C" {

LOOPFAST_EXPORT int loopfast_errno_to_wsa(int errno_value) {
  switch (errno_value) {
    case 0:
      return 0;
    case EINTR:
      return WSAEINTR;
    case EBADF:
      return WSAENOTSOCK;  // Windows has no separate "bad descriptor" for sockets
    case EACCES:
      return WSAEACCES;
    case EFAULT:
      return WSAEFAULT;
    case EINVAL:
      return WSAEINVAL;
    case EMFILE:
      return WSAEMFILE;
    case EAGAIN:
      return WSAEWOULDBLOCK;
    case EINPROGRESS:
      return WSAEINPROGRESS;
    case EALREADY:
      return WSAEALREADY;
    case ENOTSOCK:
      return WSAENOTSOCK;
    case EOPNOTSUPP:
      return WSAEOPNOTSUPP;
    case ENETDOWN:
      return WSAENETDOWN;
    case ENOBUFS:
    case ENOMEM:
      return WSAENOBUFS;
    case EISCONN:
      return WSAEISCONN;
    default:  // EBUSY (listener already accepted) included: "not applicable now"
      return WSAEINVAL;
  }
}

LOOPFAST_EXPORT int WSAGetLastError(void) { return last_wsa_error; }
LOOPFAST_EXPORT void WSASetLastError(int iError) { last_wsa_error = iError; }

LOOPFAST_EXPORT int WSAIoctl(SOCKET s, DWORD dwIoControlCode, LPVOID lpvInBuffer, DWORD cbInBuffer,
                             LPVOID lpvOutBuffer, DWORD cbOutBuffer, LPDWORD lpcbBytesReturned,
                             LPWSAOVERLAPPED lpOverlapped,
                             LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine) {
  size_t returned = 0;
  const int saved_errno = errno;
  if (loopfast_ioctl(s, dwIoControlCode, lpvInBuffer, cbInBuffer, lpvOutBuffer, cbOutBuffer,
                     &returned) != 0) {
    last_wsa_error = loopfast_errno_to_wsa(errno);
    return SOCKET_ERROR;
  }
  errno = saved_errno;
  if (lpcbBytesReturned != nullptr) *lpcbBytesReturned = static_cast<DWORD>(returned);
  // The switch never waits, so an overlapped call has completed by now (see winsock.h).
  if (lpOverlapped != nullptr) {
    lpOverlapped->Internal = 0;
    lpOverlapped->InternalHigh = returned;
  }
  if (lpCompletionRoutine != nullptr) {
    lpCompletionRoutine(0, static_cast<DWORD>(returned), lpOverlapped, 0);
  }
  last_wsa_error = 0;
  return 0;
}

}  // extern "C"
