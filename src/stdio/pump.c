#include "stdio/pump.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/param.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/ev.h"
#include "base/log.h"
#include "base/util.h"

#define PUMP_CHUNK (64 * 1024)
/* How often an ended output stream looks whether its reader has taken the last bytes, and
 * for how long at most (a reader that stopped reading must not keep the stream, or the
 * loop's timer, alive). */
#define PUMP_FLUSH_POLL_MS 2
#define PUMP_FLUSH_MAX_MS 2000
/* How often a FIFO with no reader yet is looked at: at once from Create on (a client opens its
 * end a moment after Create), then backing off to this for one that comes much later. */
#define PUMP_READER_WAIT_MAX_MS 250
/* Bytes one stream may move per wakeup: a writer that never lets the pipe run dry must not
 * keep the loop from everything else. The read event is level-triggered: the rest follows on
 * the next turn. */
#define PUMP_BUDGET (1024 * 1024)

/* What one transfer ended on. */
enum
{
  PUMP_SINK_FULL = 0, /* wait until the sink has room */
  PUMP_SRC_EMPTY = 1, /* wait for input */
  PUMP_NO_SPLICE = 2, /* splice cannot serve these fds: copy through the buffer */
  PUMP_EOF = -1, /* the source ended (or, for stdin, the container's end went away) */
  PUMP_SINK_FAILED = -2, /* writing failed: the pump now discards (output streams) */
};

static void pump_cb (evutil_socket_t fd, short what, void *arg);

void
pump_init (struct pump *p, const char *name, pump_done_cb cb, void *arg)
{
  memset (p, 0, sizeof *p);
  p->name = name;
  p->owner = "";
  p->src = p->dst = -1;
  p->done = true;
  p->done_cb = cb;
  p->done_arg = arg;
}

/* Which FIFO the sink is, so that a reopen finds the same one. */
static void
remember_fifo (struct pump *p, const struct stat *st)
{
  p->reopen_fifo = true;
  p->fifo_dev = st->st_dev;
  p->fifo_ino = st->st_ino;
}

void
pump_set_fifo_sink (struct pump *p, int dst)
{
  struct stat st;
  if (fstat (dst, &st) == 0 && S_ISFIFO (st.st_mode))
    remember_fifo (p, &st);
}

static void look_for_reader (struct pump *p);

static void
reader_timer_cb (evutil_socket_t fd, short what, void *arg)
{
  (void) fd;
  (void) what;
  look_for_reader (arg);
}

bool
pump_await_fifo_reader (struct pump *p)
{
  struct stat st;
  if (stat (p->sink, &st) < 0)
    return false;
  if (!S_ISFIFO (st.st_mode))
    {
      errno = ENXIO;
      return false;
    }
  remember_fifo (p, &st);
  p->await_reader = true;
  p->dst = -1;
  p->reader_timer = xevtimer_new (p->base, reader_timer_cb, p);
  look_for_reader (p);
  return true;
}

/* ---- a sink that fails ---- */

/* EPIPE from a FIFO means its reader went away, and a new one may come (ctr task attach,
 * containerd restarted); EPIPE from a logging binary's pipe means the logger is dead and
 * nothing brings it back. Anything else (ENOSPC, EIO, EDQUOT) may heal. */
static bool
sink_can_heal (const struct pump *p)
{
  return p->sink_errno != EPIPE || p->reopen_fifo;
}

static void
sink_failed (struct pump *p, int errno_)
{
  p->sink_errno = errno_;
  p->discarded = p->buf_len; /* what the sink did not take is lost */
  p->buf_off = p->buf_len = 0;
  if (p->ev_write)
    event_del (p->ev_write);
  const char *then = !sink_can_heal (p) ? "discarding the rest of the output"
                     : p->reopen_fifo   ? "discarding the output until a reader opens it again"
                                        : "discarding the output until it works again";
  /* A reader that goes away is how a client detaches (ctr run -d): news, not trouble. */
  log_msg (errno_ == EPIPE && p->reopen_fifo ? LOG_LEVEL_INFO : LOG_LEVEL_WARN,
           "%s of %s: writing to `%s` failed: %s; %s", p->name, p->owner, p->sink,
           strerror (errno_), then);
}

static void
sink_recovered (struct pump *p)
{
  log_msg (LOG_LEVEL_WARN, "%s of %s: `%s` takes output again; %llu bytes were discarded", p->name,
           p->owner, p->sink, p->discarded);
  p->discarded_total += p->discarded;
  p->discarded = 0;
  p->sink_errno = 0;
}

/* A write to the sink failed with errno_. An output stream goes on and discards; for stdin
 * the sink is the container's end, and a container that closed its stdin ends the stream. */
static int
sink_error (struct pump *p, int errno_)
{
  if (!p->output)
    return PUMP_EOF;
  sink_failed (p, errno_);
  return PUMP_SINK_FAILED;
}

/* One write of what buf holds, PUMP_WRITE_MAX at most; what the sink took leaves the buffer
 * (an offset: a partial write to a full FIFO moves no bytes around). The result and errno are
 * write's. */
static ssize_t
sink_write (struct pump *p)
{
  ssize_t w;
  do
    w = write (p->dst, p->buf + p->buf_off, MIN (p->buf_len, (size_t) PUMP_WRITE_MAX));
  while (w < 0 && errno == EINTR);
  if (w > 0)
    {
      p->buf_off = (size_t) w == p->buf_len ? 0 : p->buf_off + w;
      p->buf_len -= w;
      p->progress += w;
    }
  return w;
}

/* The FIFO's reader went away: a reader that opened it again makes it writable again. The
 * inode check keeps a file put in the FIFO's place from getting the output. */
static bool
sink_reopen_fifo (struct pump *p)
{
  int fd = open (p->sink, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return false; /* ENXIO: still no reader */
  struct stat st;
  if (fstat (fd, &st) < 0 || st.st_dev != p->fifo_dev || st.st_ino != p->fifo_ino)
    {
      close (fd);
      return false;
    }
  if (p->grown) /* a new pipe if the FIFO had no open end left */
    (void) fcntl (fd, F_SETPIPE_SZ, PUMP_PIPE_SIZE);
  event_freep (&p->ev_write); /* it watched the old fd */
  close_fd (&p->dst);
  p->dst = fd;
  p->ev_write = xevent_new (p->base, p->dst, EV_WRITE, pump_cb, p);
  return true;
}

/* Offers the chunk in buf to the failing sink. True when the sink took some of it or is only
 * full: it works again, and the copy goes on from buf. */
static bool
sink_retry (struct pump *p)
{
  if (!sink_can_heal (p))
    return false;
  if (p->sink_errno == EPIPE && !sink_reopen_fifo (p))
    return false;
  if (sink_write (p) < 0 && errno != EAGAIN)
    return false;
  sink_recovered (p);
  return true;
}

static int pump_copy (struct pump *p);

/* The copy path's buffer, at the size the stream's pace asks for (pump.h). */
static void
pump_buffer (struct pump *p)
{
  if (p->buf)
    return;
  if (p->busy)
    {
      void *m
          = mmap (NULL, PUMP_BIG_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (m != MAP_FAILED)
        {
          p->buf = m;
          p->buf_size = PUMP_BIG_CHUNK;
          return;
        }
    }
  p->buf = xmalloc (PUMP_CHUNK);
  p->buf_size = PUMP_CHUNK;
}

static void
pump_free_buffer (struct pump *p)
{
  if (p->buf && p->buf_size == PUMP_BIG_CHUNK)
    munmap (p->buf, PUMP_BIG_CHUNK);
  else
    free (p->buf);
  p->buf = NULL;
  p->buf_off = p->buf_len = 0;
}

/* The sink fails: keep the container's pipe drained, so its writer never blocks nor dies, and
 * offer each chunk to the sink first. */
static int
pump_discard_failing (struct pump *p)
{
  pump_buffer (p);
  for (size_t moved = 0; moved < PUMP_BUDGET;)
    {
      ssize_t n = read (p->src, p->buf, p->buf_size);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return n < 0 && errno == EAGAIN ? PUMP_SRC_EMPTY : PUMP_EOF;
      moved += n;
      p->buf_len = n;
      if (sink_retry (p))
        {
          /* Failing again at once: come back on the next turn rather than loop here. */
          int r = pump_copy (p);
          return r == PUMP_SINK_FAILED ? PUMP_SRC_EMPTY : r;
        }
      p->discarded += n;
      p->buf_off = p->buf_len = 0;
    }
  return PUMP_SRC_EMPTY;
}

/* ---- copying ---- */

/* splice said EAGAIN, which does not say which side blocked: a non-empty source means a full
 * sink. An empty source may also be at its end: with a full sink, splice answers EAGAIN
 * rather than 0 there, and waiting for input would spin (the pipe stays readable at EOF). */
static int
splice_blocked_on (const struct pump *p)
{
  int avail = 0;
  if (ioctl (p->src, FIONREAD, &avail) == 0 && avail > 0)
    return PUMP_SINK_FULL;
  struct pollfd pfd = { .fd = p->src, .events = POLLIN };
  return poll (&pfd, 1, 0) == 1 && (pfd.revents & POLLHUP) ? PUMP_EOF : PUMP_SRC_EMPTY;
}

/* Moves what is available. Any error but EAGAIN goes to the copy path, which knows which
 * side it came from. */
static int
pump_splice (struct pump *p)
{
  for (size_t moved = 0;;)
    {
      if (moved >= PUMP_BUDGET)
        return PUMP_SRC_EMPTY;
      ssize_t n
          = splice (p->src, NULL, p->dst, NULL, PUMP_CHUNK, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
      if (n > 0)
        {
          moved += n;
          p->progress += n;
          continue;
        }
      if (n == 0)
        return PUMP_EOF;
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN)
        return splice_blocked_on (p);
      p->use_splice = false;
      return PUMP_NO_SPLICE;
    }
}

static int
pump_flush_buf (struct pump *p)
{
  while (p->buf_len > 0)
    if (sink_write (p) < 0)
      return errno == EAGAIN ? PUMP_SINK_FULL : sink_error (p, errno);
  return PUMP_SRC_EMPTY;
}

static int
pump_copy (struct pump *p)
{
  pump_buffer (p);
  for (size_t moved = 0;; moved += p->buf_len)
    {
      int r = pump_flush_buf (p);
      if (r != PUMP_SRC_EMPTY)
        return r;
      if (moved >= PUMP_BUDGET) /* only with an empty buffer: nothing is left behind */
        return PUMP_SRC_EMPTY;
      ssize_t n = read (p->src, p->buf, p->buf_size);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0) /* EIO: a PTY master whose other side closed */
        return errno == EAGAIN ? PUMP_SRC_EMPTY : PUMP_EOF;
      if (n == 0)
        return PUMP_EOF;
      p->buf_len = n;
    }
}

static int
pump_transfer (struct pump *p)
{
  if (p->sink_errno)
    return pump_discard_failing (p);
  /* Bytes left in the buffer go first: splicing past them would reorder the stream. */
  if (p->use_splice && p->buf_len == 0)
    {
      int r = pump_splice (p);
      if (r != PUMP_NO_SPLICE)
        return r;
    }
  int r = pump_copy (p);
  return r == PUMP_SINK_FAILED ? pump_discard_failing (p) : r;
}

/* The sink is full and the policy says the writer must not stall: discard what is there. */
static int
pump_drop (struct pump *p)
{
  char scratch[4096];
  for (size_t moved = 0;;)
    {
      if (moved >= PUMP_BUDGET)
        return PUMP_SRC_EMPTY;
      ssize_t n = read (p->src, scratch, sizeof scratch);
      if (n > 0)
        {
          moved += n;
          if (p->dropped == 0)
            log_warn ("%s of %s: the reader of `%s` is not keeping up: dropping output", p->name,
                      p->owner, p->sink);
          p->dropped += n;
          continue;
        }
      if (n < 0 && errno == EINTR)
        continue;
      return n < 0 && errno == EAGAIN ? PUMP_SRC_EMPTY : PUMP_EOF;
    }
}

/* ---- the end of a stream ---- */

/* Bytes still in an output's pipe sink (a FIFO or a logger's pipe) that its reader has not
 * taken; 0 for any other sink, and for a sink that fails (nobody takes them). */
static int
sink_unread (const struct pump *p)
{
  struct stat st;
  int unread = 0;
  if (!p->output || p->sink_errno || p->dst < 0 || fstat (p->dst, &st) < 0 || !S_ISFIFO (st.st_mode)
      || ioctl (p->dst, FIONREAD, &unread) < 0)
    return 0;
  return unread;
}

static void
flush_cb (evutil_socket_t fd, short what, void *arg)
{
  struct pump *p = arg;
  (void) fd;
  (void) what;
  int unread = sink_unread (p);
  /* A reader that is still taking bytes is slow, not gone: it gets the time it needs. */
  if (unread < p->flush_unread)
    {
      p->progress += p->flush_unread - unread;
      p->flush_until = now_monotonic_ms () + PUMP_FLUSH_MAX_MS;
    }
  p->flush_unread = unread;
  if (unread > 0 && now_monotonic_ms () < p->flush_until)
    {
      struct timeval tv = timeval_from_ms (PUMP_FLUSH_POLL_MS);
      evtimer_add (p->flush_timer, &tv);
      return;
    }
  pump_close (p);
}

/* The source ended. The stream is done only once the reader has taken every byte from the
 * sink: a client such as ctr closes its end of the FIFO when it learns of the exit, and
 * whatever it had not read yet would be lost. The drain deadline still ends the wait for a
 * reader that never takes them. */
static void
pump_finish (struct pump *p)
{
  if (sink_unread (p) == 0)
    {
      pump_close (p);
      return;
    }
  event_del (p->ev_read);
  event_del (p->ev_write);
  if (p->flush_timer == NULL)
    p->flush_timer = xevtimer_new (p->base, flush_cb, p);
  p->flush_until = now_monotonic_ms () + PUMP_FLUSH_MAX_MS;
  p->flush_unread = sink_unread (p);
  flush_cb (-1, 0, p);
}

/* What the wakeup moved sets the stream's sizes (pump.h). F_SETPIPE_SZ is best effort: it
 * fails on what is not a pipe (a file, a PTY), and the default size works. A buffer that
 * still holds bytes keeps its size until they are written. */
static void
pump_pace (struct pump *p, unsigned long long moved)
{
  bool busy = p->output && moved >= PUMP_GROW_AFTER;
  if (busy && !p->grown)
    {
      p->grown = true;
      (void) fcntl (p->src, F_SETPIPE_SZ, PUMP_PIPE_SIZE);
      (void) fcntl (p->dst, F_SETPIPE_SZ, PUMP_PIPE_SIZE);
    }
  if (busy != p->busy && p->buf_len == 0)
    {
      p->busy = busy;
      pump_free_buffer (p); /* the next copy takes the size that fits */
    }
}

static void
pump_step (struct pump *p)
{
  if (p->await_reader) /* io_policy drop: the writer never waits, not even for a first reader */
    {
      if (pump_drop (p) < 0)
        pump_finish (p);
      return;
    }
  unsigned long long before = p->progress;
  int r = pump_transfer (p);
  pump_pace (p, p->progress - before);
  if (r == PUMP_SINK_FULL && p->drop_when_full)
    r = pump_drop (p);
  if (r < 0)
    {
      pump_finish (p);
      return;
    }
  if (r == PUMP_SINK_FULL)
    {
      event_del (p->ev_read);
      event_add (p->ev_write, NULL);
    }
  else
    event_add (p->ev_read, NULL);
}

static void
pump_cb (evutil_socket_t fd, short what, void *arg)
{
  (void) fd;
  (void) what;
  pump_step (arg);
}

/* Opens the FIFO write-only if it has a reader now; else looks again later. Looked for from
 * Create on: a client may wait for its blocking open of the other end before it calls Start. */
static void
look_for_reader (struct pump *p)
{
  if (sink_reopen_fifo (p))
    {
      p->await_reader = false;
      event_freep (&p->reader_timer);
      log_debug ("%s of %s: `%s` has a reader", p->name, p->owner, p->sink);
      if (p->ev_read) /* started already */
        event_add (p->ev_read, NULL);
      return;
    }
  p->reader_wait_ms = MIN (p->reader_wait_ms ? 2 * p->reader_wait_ms : 1, PUMP_READER_WAIT_MAX_MS);
  struct timeval tv = timeval_from_ms (p->reader_wait_ms);
  evtimer_add (p->reader_timer, &tv);
}

void
pump_start (struct pump *p, struct event_base *base)
{
  if (p->done || p->ev_read || p->src < 0 || (p->dst < 0 && !p->await_reader))
    return;
  p->base = base;
  p->use_splice = true;
  p->ev_read = xevent_new (base, p->src, EV_READ | EV_PERSIST, pump_cb, p);
  if (p->await_reader)
    {
      if (p->drop_when_full)
        event_add (p->ev_read, NULL);
      look_for_reader (p); /* Start: the client has certainly begun to open its end */
      return;
    }
  if (p->ev_write == NULL) /* or the FIFO got its reader before Start (look_for_reader) */
    p->ev_write = xevent_new (base, p->dst, EV_WRITE, pump_cb, p);
  event_add (p->ev_read, NULL);
}

/* The source has no writer left: it ends once it is empty. */
static bool
source_hung_up (const struct pump *p)
{
  struct pollfd pfd = { .fd = p->src, .events = POLLIN };
  return p->src >= 0 && poll (&pfd, 1, 0) == 1 && (pfd.revents & POLLHUP);
}

bool
pump_draining_by_itself (struct pump *p)
{
  bool moved = p->progress != p->progress_seen;
  p->progress_seen = p->progress;
  return !p->done && moved && source_hung_up (p);
}

void
pump_last_transfer (struct pump *p)
{
  if (!p->done && p->ev_read && !p->await_reader)
    pump_transfer (p);
}

/* The closing line of a stream that lost output: how much, and why. */
static void
pump_log_losses (const struct pump *p)
{
  if (p->await_reader)
    log_warn ("%s of %s ended before `%s` had a reader: its output was not read", p->name, p->owner,
              p->sink);
  if (p->sink_errno)
    log_warn ("%s of %s ended while `%s` still failed (%s): %llu bytes were discarded", p->name,
              p->owner, p->sink, strerror (p->sink_errno), p->discarded_total + p->discarded);
  else if (p->discarded_total)
    log_warn ("%s of %s ended: %llu bytes were discarded while `%s` failed", p->name, p->owner,
              p->discarded_total, p->sink);
  if (p->dropped)
    log_warn ("%s of %s ended: %llu bytes were dropped (io_policy drop)", p->name, p->owner,
              p->dropped);
}

void
pump_close (struct pump *p)
{
  event_freep (&p->ev_read);
  event_freep (&p->ev_write);
  event_freep (&p->flush_timer);
  event_freep (&p->reader_timer);
  close_fd (&p->src);
  close_fd (&p->dst);
  pump_free_buffer (p);
  bool was_done = p->done;
  p->done = true;
  if (!was_done)
    pump_log_losses (p);
  free (p->sink);
  p->sink = NULL;
  if (!was_done && p->done_cb)
    p->done_cb (p, p->done_arg);
}
