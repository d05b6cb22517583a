/* loopfast: a TCP loopback fast path for Linux (the SIO_LOOPBACK_FAST_PATH switch).
 *
 * Both ends of a loopback TCP connection opt in before connect()/accept(); their data then
 * moves through shared memory while the program keeps an ordinary TCP socket. Either end not
 * opting in, a non-loopback destination or a host filter means plain kernel TCP, silently.
 *
 * This header needs only libc headers and is usable from C and C++. */
#ifndef LOOPFAST_LOOPFAST_H_
#define LOOPFAST_LOOPFAST_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The Windows control code, same value as in <mstcpip.h>: _WSAIOW(IOC_VENDOR, 16). */
#ifndef SIO_LOOPBACK_FAST_PATH
#define SIO_LOOPBACK_FAST_PATH 0x98000010UL
#endif

/* Apply a control code to socket `fd`, in the Linux style: returns 0, or -1 with errno.
 *
 * SIO_LOOPBACK_FAST_PATH: `in` points to a 4-byte Boolean (the Windows BOOL; nonzero enables),
 * `in_len` must be 4, `out_len` must be 0 (`out` is ignored). `*bytes_returned`, when the
 * pointer is not NULL, is set to 0. A connecting socket must apply it before connect(); a
 * listening socket before it accepts its first connection.
 *
 * Errors: EINVAL (unknown code, bad in_len or out_len, not a TCP socket), EFAULT (`in` NULL or
 * unmapped), EBADF, ENOTSOCK, EISCONN (already connected), EALREADY (connect in progress),
 * EBUSY (listener that has already accepted), EOPNOTSUPP (fast path disabled on this host). */
int loopfast_ioctl(int fd, unsigned long code, const void *in, size_t in_len, void *out,
                   size_t out_len, size_t *bytes_returned);

/* Convenience: loopfast_ioctl with SIO_LOOPBACK_FAST_PATH and a Boolean. */
int loopfast_set_fast_path(int fd, int enable);

/* Which path a connected socket takes. */
enum loopfast_path {
  LOOPFAST_PATH_NONE = 0,   /* not a socket loopfast knows, or not connected yet */
  LOOPFAST_PATH_KERNEL = 1, /* ordinary kernel TCP */
  LOOPFAST_PATH_FAST = 2,   /* shared-memory fast path */
};

/* Returns the path of `fd` (LOOPFAST_PATH_*), or -1 with errno EBADF. A non-blocking connect
 * still under way reports LOOPFAST_PATH_NONE until it completes; a connection is fast (or not)
 * from the moment connect returns on one end and accept on the other. */
int loopfast_path_of(int fd);

/* Short, static, human-readable reason why an opted-in socket took kernel TCP ("" if fast or
 * never opted in). Never NULL. */
const char *loopfast_fallback_reason(int fd);

/* Rendezvous messages this process rejected as forged, malformed or unverifiable (a listening
 * process counts what strangers sent to its channels). */
unsigned long long loopfast_rendezvous_rejected(void);

/* Library version as "MAJOR.MINOR.PATCH". */
const char *loopfast_version(void);

#ifdef __cplusplus
}
#endif

#endif /* LOOPFAST_LOOPFAST_H_ */
