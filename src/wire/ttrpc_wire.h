#ifndef CSHIM_TTRPC_WIRE_H
#define CSHIM_TTRPC_WIRE_H

/* ttrpc framing, pure: no fds, no event loop (containerd/ttrpc PROTOCOL.md).
 * A frame is a 10-byte big-endian header followed by `length` bytes of data. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct evbuffer;

#define TTRPC_HEADER_LEN 10
#define TTRPC_MAX_DATA (4u << 20)

enum ttrpc_type
{
  TTRPC_TYPE_REQUEST = 0x01,
  TTRPC_TYPE_RESPONSE = 0x02,
  TTRPC_TYPE_DATA = 0x03,
};

enum ttrpc_flags
{
  TTRPC_FLAG_REMOTE_CLOSED = 0x01,
  TTRPC_FLAG_REMOTE_OPEN = 0x02,
  TTRPC_FLAG_NO_DATA = 0x04,
};

struct ttrpc_header
{
  uint32_t length;
  uint32_t stream_id;
  uint8_t type;
  uint8_t flags;
};

void ttrpc_header_encode (const struct ttrpc_header *h, uint8_t out[TTRPC_HEADER_LEN]);
void ttrpc_header_decode (const uint8_t in[TTRPC_HEADER_LEN], struct ttrpc_header *h);

/* Incremental frame reader over an evbuffer that accumulates socket input. Oversized frames
 * are reported once (TTRPC_READ_OVERSIZE, header filled in) and their data is then skipped
 * as it arrives, so the connection survives. */
enum ttrpc_read_status
{
  TTRPC_READ_NEED_MORE = 0,
  TTRPC_READ_FRAME = 1,
  TTRPC_READ_OVERSIZE = 2,
};

struct ttrpc_reader
{
  size_t skip; /* data bytes of an oversized frame still to discard */
};

struct ttrpc_frame
{
  struct ttrpc_header header;
  uint8_t *data; /* malloc'd, header.length bytes (NULL when 0); owned by the caller */
};

enum ttrpc_read_status ttrpc_reader_next (struct ttrpc_reader *r, struct evbuffer *in,
                                          struct ttrpc_frame *out);

/* Appends one whole frame (header + data) to out. Returns -1 if len > TTRPC_MAX_DATA. */
int ttrpc_frame_append (struct evbuffer *out, uint32_t stream_id, uint8_t type, uint8_t flags,
                        const void *data, size_t len);

/* Free space a connection may read into `in` now. After ttrpc_reader_next has returned
 * TTRPC_READ_NEED_MORE, `in` holds less than one maximal frame (header + TTRPC_MAX_DATA),
 * so this is >= 1; reading no more than this keeps unparsed input bounded by one frame. */
size_t ttrpc_reader_room (const struct evbuffer *in);

/* Socket I/O shared by the ttrpc server and client; the only functions here that touch an
 * fd (non-blocking). ttrpc_io_read does one read of at most max bytes (and at most 64 KiB)
 * into in: bytes read, 0 at EOF, -1 with errno (EAGAIN when nothing is ready).
 * ttrpc_io_write sends as much of out as the socket takes now, with MSG_NOSIGNAL so a
 * vanished peer is an error instead of SIGPIPE: 0 (including EAGAIN), -1 with errno. */
ssize_t ttrpc_io_read (struct evbuffer *in, int fd, size_t max);
int ttrpc_io_write (struct evbuffer *out, int fd);
/* Whether the peer of a connected unix socket has our effective uid and gid (SO_PEERCRED),
 * as ttrpc's UnixSocketRequireSameUser checks; a refusal is logged. */
bool ttrpc_io_peer_allowed (int fd);

#endif
