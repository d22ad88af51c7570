#include "wire/ttrpc_wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "base/log.h"
#include "base/util.h"

/* One read never asks the evbuffer for more than this: reserving the full room of a
 * maximal frame would allocate 4 MiB per connection up front. */
#define TTRPC_IO_CHUNK (64u << 10)
#define TTRPC_IO_IOVS 16

static void
put_be32 (uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t) (v >> 24);
  p[1] = (uint8_t) (v >> 16);
  p[2] = (uint8_t) (v >> 8);
  p[3] = (uint8_t) v;
}

static uint32_t
get_be32 (const uint8_t *p)
{
  return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
}

void
ttrpc_header_encode (const struct ttrpc_header *h, uint8_t out[TTRPC_HEADER_LEN])
{
  put_be32 (out, h->length);
  put_be32 (out + 4, h->stream_id);
  out[8] = h->type;
  out[9] = h->flags;
}

void
ttrpc_header_decode (const uint8_t in[TTRPC_HEADER_LEN], struct ttrpc_header *h)
{
  h->length = get_be32 (in);
  h->stream_id = get_be32 (in + 4);
  h->type = in[8];
  h->flags = in[9];
}

/* Discards whatever part of an oversized frame's data has arrived. */
static void
reader_skip (struct ttrpc_reader *r, struct evbuffer *in)
{
  size_t avail = evbuffer_get_length (in);
  size_t n = r->skip < avail ? r->skip : avail;
  if (n == 0)
    return;
  evbuffer_drain (in, n);
  r->skip -= n;
}

enum ttrpc_read_status
ttrpc_reader_next (struct ttrpc_reader *r, struct evbuffer *in, struct ttrpc_frame *out)
{
  uint8_t raw[TTRPC_HEADER_LEN];
  struct ttrpc_header h;

  reader_skip (r, in);
  if (r->skip > 0 || evbuffer_copyout (in, raw, sizeof raw) < (ev_ssize_t) sizeof raw)
    return TTRPC_READ_NEED_MORE;
  ttrpc_header_decode (raw, &h);
  if (h.length > TTRPC_MAX_DATA)
    {
      /* Report it now, from the header alone, and never buffer its data. */
      evbuffer_drain (in, TTRPC_HEADER_LEN);
      r->skip = h.length;
      reader_skip (r, in);
      out->header = h;
      out->data = NULL;
      return TTRPC_READ_OVERSIZE;
    }
  if (evbuffer_get_length (in) < TTRPC_HEADER_LEN + (size_t) h.length)
    return TTRPC_READ_NEED_MORE;
  evbuffer_drain (in, TTRPC_HEADER_LEN);
  out->header = h;
  out->data = NULL;
  if (h.length > 0)
    {
      out->data = xmalloc (h.length);
      evbuffer_remove (in, out->data, h.length);
    }
  return TTRPC_READ_FRAME;
}

int
ttrpc_frame_append (struct evbuffer *out, uint32_t stream_id, uint8_t type, uint8_t flags,
                    const void *data, size_t len)
{
  uint8_t raw[TTRPC_HEADER_LEN];
  struct ttrpc_header h
      = { .length = (uint32_t) len, .stream_id = stream_id, .type = type, .flags = flags };

  if (len > TTRPC_MAX_DATA)
    return -1;
  ttrpc_header_encode (&h, raw);
  if (evbuffer_expand (out, sizeof raw + len) < 0 || evbuffer_add (out, raw, sizeof raw) < 0)
    return -1;
  if (len > 0 && evbuffer_add (out, data, len) < 0)
    return -1;
  return 0;
}

size_t
ttrpc_reader_room (const struct evbuffer *in)
{
  size_t limit = TTRPC_HEADER_LEN + (size_t) TTRPC_MAX_DATA;
  size_t used = evbuffer_get_length (in);
  return used < limit ? limit - used : 0;
}

/* Trims iov to max bytes in total; returns how many entries are still in use. */
static int
iov_clamp (struct iovec *iov, int n, size_t max)
{
  int used = 0;
  for (; used < n && max > 0; used++)
    {
      if (iov[used].iov_len > max)
        iov[used].iov_len = max;
      max -= iov[used].iov_len;
    }
  return used;
}

ssize_t
ttrpc_io_read (struct evbuffer *in, int fd, size_t max)
{
  struct evbuffer_iovec vec[2];
  struct iovec iov[2];
  ssize_t r;

  if (max == 0)
    {
      /* Callers read at most ttrpc_reader_room (), which is never 0 between frames: a
       * zero-length readv would look like EOF. */
      errno = ENOBUFS;
      return -1;
    }
  if (max > TTRPC_IO_CHUNK)
    max = TTRPC_IO_CHUNK;
  int n = evbuffer_reserve_space (in, (ev_ssize_t) max, vec, 2);
  if (n <= 0)
    {
      errno = ENOMEM;
      return -1;
    }
  for (int i = 0; i < n; i++)
    iov[i] = (struct iovec){ .iov_base = vec[i].iov_base, .iov_len = vec[i].iov_len };
  /* The reservation may be larger than asked; never read past max, that bounds the input. */
  n = iov_clamp (iov, n, max);
  do
    r = readv (fd, iov, n);
  while (r < 0 && errno == EINTR);
  int saved = errno;
  int used = iov_clamp (iov, n, r > 0 ? (size_t) r : 0);
  for (int i = 0; i < used; i++)
    vec[i].iov_len = iov[i].iov_len;
  evbuffer_commit_space (in, vec, used);
  errno = saved;
  return r;
}

int
ttrpc_io_write (struct evbuffer *out, int fd)
{
  struct evbuffer_iovec vec[TTRPC_IO_IOVS];
  struct iovec iov[TTRPC_IO_IOVS];

  while (evbuffer_get_length (out) > 0)
    {
      int n = evbuffer_peek (out, -1, NULL, vec, TTRPC_IO_IOVS);
      if (n > TTRPC_IO_IOVS)
        n = TTRPC_IO_IOVS;
      for (int i = 0; i < n; i++)
        iov[i] = (struct iovec){ .iov_base = vec[i].iov_base, .iov_len = vec[i].iov_len };
      struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t) n };
      ssize_t w = sendmsg (fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
      evbuffer_drain (out, (size_t) w);
    }
  return 0;
}

bool
ttrpc_io_peer_allowed (int fd)
{
  struct ucred cred;
  socklen_t len = sizeof cred;

  if (getsockopt (fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    {
      log_warn ("ttrpc: rejected connection: SO_PEERCRED: %s", strerror (errno));
      return false;
    }
  if (cred.uid != geteuid () || cred.gid != getegid ())
    {
      log_warn ("ttrpc: rejected connection from pid %d uid %u gid %u: invalid credentials",
                (int) cred.pid, (unsigned) cred.uid, (unsigned) cred.gid);
      return false;
    }
  return true;
}
