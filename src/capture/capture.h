// Fast-path traffic as a pcap file. Bytes that move through the rings never reach `lo`, so
// tcpdump cannot see them; when LOOPFAST_CAPTURE names a file, each process writes what its
// fast connections move there itself, as Ethernet/IP/TCP packets with the connection's real
// addresses and ports and synthetic (but consistent) sequence numbers.
//
// Several processes and threads may append to one file: every Data/End call is one write(2)
// of whole records (at most kMaxWriteBytes) to a descriptor opened with O_APPEND, so records
// never interleave. Sequence numbers start from a hash of the direction's 4-tuple, so two
// processes capturing the two ends of a connection agree on them.
//
// Thread rules: any thread. A Flow serialises its own calls (its mutex is held across the write,
// so a direction's segments reach the file in sequence order).
#ifndef LOOPFAST_CAPTURE_CAPTURE_H_
#define LOOPFAST_CAPTURE_CAPTURE_H_

#include <sys/socket.h>
#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "base/result.h"
#include "config/policy.h"

namespace loopfast::capture {

// Largest payload of one data segment: an IPv4 packet's total length is at most 65535, less the
// IP header (20) and a TCP header with the timestamp option (32). Larger moves are split.
inline constexpr size_t kMaxSegmentPayload = 65483;
// Bound on the buffer one write(2) carries; a Data call larger than this is several writes,
// each of whole records.
inline constexpr size_t kMaxWriteBytes = 1 << 20;

// One end of a connection as it appears on the wire: IPv4-mapped IPv6 addresses are IPv4.
struct Endpoint {
  int family = AF_INET;      // AF_INET or AF_INET6
  uint8_t address[16] = {};  // network order; 4 bytes used for AF_INET
  uint16_t port = 0;         // host order
};

// One fast-path connection as this process sees it.
struct Flow {
  struct Direction {
    uint32_t initial_sequence = 0;
    uint64_t bytes = 0;     // payload bytes of this direction this process has accounted for
    bool finished = false;  // its FIN was written (FIN takes one sequence number)
    // The sequence number of the next byte (or FIN) in this direction.
    uint32_t NextSequence() const {
      return initial_sequence + 1 + static_cast<uint32_t>(bytes) + (finished ? 1 : 0);
    }
  };
  Endpoint local, peer;
  Direction outgoing;  // local -> peer
  Direction incoming;  // peer -> local
  // The peer's process writes the peer -> local packets into the same file (Sink::Begin).
  // May change after Begin: an accepting side learns it only once the client has attached.
  std::atomic<bool> peer_captured{false};
  std::mutex mutex;  // guards the directions and orders this flow's writes
};

// The initial sequence number of the direction source -> destination: the same in every
// process, different for the two directions.
uint32_t InitialSequence(const Endpoint &source, const Endpoint &destination);

// Converts a kernel socket address (AF_INET or AF_INET6; a mapped IPv6 address becomes IPv4).
// False for other families or short lengths.
bool ToEndpoint(const struct sockaddr *address, socklen_t length, Endpoint *out);

class Sink {
 public:
  // nullptr unless LOOPFAST_CAPTURE names a file (read once, thread-safe; never in a setuid
  // or otherwise privileged process). The file is opened for appending, created 0600, under
  // the rules of base/output_file.h (no symbolic link, no directory others may write, no file
  // of another user); the pcap global header is written once by whoever finds the file empty
  // (serialised with flock). LOOPFAST_CAPTURE_PORTS ("80,8000-8099") limits capture to
  // connections with a listed local or peer port. The sink lives as long as the process; a
  // forked child shares it (and the descriptor).
  static Sink *Get();

  // The same, for a path and port list given directly (tests). `ports` may be null or empty
  // (every connection). EINVAL for a malformed port list; a refused file as OpenOutputFile
  // says (`*refusal` names the rule, when given); open/flock/write errors as they are.
  static Result<std::unique_ptr<Sink>> Open(const char *path, const char *ports,
                                            const char **refusal = nullptr);

  // Takes `fd` (an O_APPEND descriptor whose file already has the pcap header) and owns it.
  Sink(int fd, std::vector<PortRange> ports);
  ~Sink();
  Sink(const Sink &) = delete;
  Sink &operator=(const Sink &) = delete;

  // A connection became fast. local/peer are the kernel socket's addresses (AF_INET or
  // AF_INET6). Writes a plausible three-way handshake (SYN, SYN-ACK, ACK) so Wireshark follows
  // the stream. `client` says which end this process is (the connecting side) so both
  // processes agree. nullptr when the connection is not to be captured (port filter, unknown
  // family, or the file failed earlier): callers skip the other calls then.
  std::unique_ptr<Flow> Begin(const struct sockaddr *local, socklen_t local_length,
                              const struct sockaddr *peer, socklen_t peer_length, bool client);
  // The same, for a connection whose other end is captured into the same file by its own
  // process and started capturing first (`peer_captured`): then only the peer writes the
  // handshake, and Data/End for the incoming direction write nothing (the peer writes those
  // packets) but still advance this end's acknowledgement numbers, so each packet appears once.
  // Calling them is optional.
  std::unique_ptr<Flow> Begin(const struct sockaddr *local, socklen_t local_length,
                              const struct sockaddr *peer, socklen_t peer_length, bool client,
                              bool peer_captured);
  // `bytes` bytes from iov (iovcnt entries; may cover less than the iovecs' total) moved on the
  // connection: outgoing = this process sent them, otherwise it received them.
  void Data(Flow &flow, bool outgoing, const struct iovec *iov, int iovcnt, size_t bytes);
  // A direction ended: outgoing = this process shut down writing / closed (FIN from us); else
  // it read end of stream (FIN from the peer). Each direction's FIN is written once.
  void End(Flow &flow, bool outgoing);

  // True when the port filter lets a connection between these ports (host order) be captured.
  bool Captures(uint16_t local_port, uint16_t peer_port) const;
  // Names the capture file (device and inode), never 0: two processes writing to the same file
  // tell each other so through their connection's shared memory.
  uint64_t FileId() const { return file_id_; }

 private:
  // One write(2) of whole records; after a failure the sink writes nothing more (a short write
  // would leave a torn record that later appends cannot repair).
  void Append(const uint8_t *data, size_t length);

  int fd_;
  uint64_t file_id_ = 1;
  std::vector<PortRange> ports_;
  std::atomic<bool> failed_{false};
};

}  // namespace loopfast::capture

#endif  // LOOPFAST_CAPTURE_CAPTURE_H_
