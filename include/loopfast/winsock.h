/* Winsock-compatible entry points so that Windows code setting SIO_LOOPBACK_FAST_PATH compiles
 * and runs unchanged on Linux. Only what that code needs is here: WSAIoctl, WSAGetLastError,
 * WSASetLastError, the WSAE* error codes and the overlapped types.
 *
 * Overlapped use (S15): Linux has no I/O completion ports or APCs. SIO_LOOPBACK_FAST_PATH never
 * needs to wait, so a call with an OVERLAPPED completes at once: WSAIoctl returns 0,
 * lpOverlapped->Internal is 0 and InternalHigh the bytes returned (0), and a completion routine,
 * when given, is called before WSAIoctl returns with (0, 0, lpOverlapped, 0). Windows would run
 * it later, at an alertable wait; code that needs that ordering must not rely on it here. */
#ifndef LOOPFAST_WINSOCK_H_
#define LOOPFAST_WINSOCK_H_

#include <loopfast/loopfast.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int SOCKET;
typedef uint32_t DWORD;
typedef DWORD *LPDWORD;
typedef int BOOL;
typedef void *LPVOID;
typedef void *HANDLE;
#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif
#define SOCKET_ERROR (-1)
#define INVALID_SOCKET (-1)

typedef struct _WSAOVERLAPPED {
  uintptr_t Internal;     /* completion status (0 = success) */
  uintptr_t InternalHigh; /* bytes transferred */
  DWORD Offset;
  DWORD OffsetHigh;
  HANDLE hEvent;
} WSAOVERLAPPED, *LPWSAOVERLAPPED;

typedef void (*LPWSAOVERLAPPED_COMPLETION_ROUTINE)(DWORD dwError, DWORD cbTransferred,
                                                   LPWSAOVERLAPPED lpOverlapped, DWORD dwFlags);

/* Error codes, values as in <winerror.h>. */
#define WSA_IO_PENDING 997
#define WSA_OPERATION_ABORTED 995
#define WSAEINTR 10004
#define WSAEBADF 10009
#define WSAEACCES 10013
#define WSAEFAULT 10014
#define WSAEINVAL 10022
#define WSAEMFILE 10024
#define WSAEWOULDBLOCK 10035
#define WSAEINPROGRESS 10036
#define WSAEALREADY 10037
#define WSAENOTSOCK 10038
#define WSAEOPNOTSUPP 10045
#define WSAENETDOWN 10050
#define WSAENOBUFS 10055
#define WSAEISCONN 10056

/* Same contract as Windows: 0 on success, SOCKET_ERROR with WSAGetLastError() on failure. */
int WSAIoctl(SOCKET s, DWORD dwIoControlCode, LPVOID lpvInBuffer, DWORD cbInBuffer,
             LPVOID lpvOutBuffer, DWORD cbOutBuffer, LPDWORD lpcbBytesReturned,
             LPWSAOVERLAPPED lpOverlapped, LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine);

/* The calling thread's last Winsock error (a WSAE* code, 0 after success). */
int WSAGetLastError(void);
void WSASetLastError(int iError);

/* errno value → WSAE* code (WSAEINVAL for values with no closer match). */
int loopfast_errno_to_wsa(int errno_value);

#ifdef __cplusplus
}
#endif

#endif /* LOOPFAST_WINSOCK_H_ */
