// The two one-bit signals carried by the TCP handshake itself, so that each side learns the
// other opted in from facts the kernel vouches for, at no extra round trip:
//   client → server: the SYN's TTL (IPv4) or hop limit (IPv6), read from TCP_SAVED_SYN: "this
//     connection's client claimed a slot in its session" (an accept that finds no claim for a
//     marked connection must not treat it as plain TCP: the client may already be writing);
//   server → client: the SYN-ACK's MSS option, read back with TCP_MAXSEG.
// Both are set before the packet that carries them exists. On loopback neither TTL nor a
// 30 KB MSS changes anything a program sees.
#ifndef LOOPFAST_SESSION_MARKERS_H_
#define LOOPFAST_SESSION_MARKERS_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include "base/result.h"

namespace loopfast::session {

// Client, before connect(). `family` is the socket's.
Status SetClientMarker(int fd, int family);
// Puts the program's own TTL / hop limit back (-1: the route's default).
void RestoreClientMarker(int fd, int family, int program_ttl, int program_hops);

// Client, once connected: did the listener that answered advertise the marker MSS?
bool ListenerMarkerSeen(int fd);

// Listener, before listen(): advertise the marker and keep each SYN for accept-time checks.
Status SetListenerMarker(int fd);

// What an accepted connection's saved SYN says: whether the client marked it, and the address
// the client dialled (the accepted socket's local end), read from the SYN's headers.
struct SavedSyn {
  bool marked = false;
  struct sockaddr_storage local {};   // the address dialled: AF_INET or AF_INET6, 0 if unreadable
  struct sockaddr_storage remote {};  // the client's address, likewise
};
// Reads (and frees) the accepted socket's saved SYN.
SavedSyn ReadSavedSyn(int fd);
// Parses a saved SYN (IPv4 or IPv6 header, then TCP); exposed for tests and fuzzing.
SavedSyn ParseSavedSyn(const unsigned char *syn, unsigned length);

}  // namespace loopfast::session

#endif  // LOOPFAST_SESSION_MARKERS_H_
