// The two one-bit signals carried by the TCP handshake itself, so that each side learns the
// other opted in from facts the kernel vouches for, at no extra round trip:
//   client → server: the SYN's TTL (IPv4) or hop limit (IPv6), read from TCP_SAVED_SYN;
//   server → client: the SYN-ACK's MSS option, read back with TCP_MAXSEG.
// Both are set before the packet that carries them exists and are invisible to other
// processes' data. On loopback neither TTL nor a 30 KB MSS changes anything a program sees.
#ifndef LOOPFAST_RENDEZVOUS_MARKERS_H_
#define LOOPFAST_RENDEZVOUS_MARKERS_H_

#include "base/result.h"

namespace loopfast::rendezvous {

// Client, before connect(). `family` is the socket's. Returns the TTL/hop-limit setting to
// restore (the program's own, or -1 for the route default) via RestoreClientMarker.
Status SetClientMarker(int fd, int family);
void RestoreClientMarker(int fd, int family, int program_ttl, int program_hops);

// Client, once connected: did the listener that answered advertise the marker MSS?
bool ListenerMarkerSeen(int fd);

// Listener, before listen(): advertise the marker and keep each SYN for accept-time checks.
Status SetListenerMarker(int fd);

// Accepted socket: did the client's SYN carry the marker? (Reading frees the saved SYN.)
bool ClientMarkerSeen(int fd);

// Parses a saved SYN (IPv4 or IPv6 header first); exposed for tests and fuzzing.
bool SavedSynHasMarker(const unsigned char *syn, unsigned length);

}  // namespace loopfast::rendezvous

#endif  // LOOPFAST_RENDEZVOUS_MARKERS_H_
