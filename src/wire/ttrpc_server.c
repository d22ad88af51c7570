#include "wire/ttrpc_server.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bsd/sys/queue.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "base/ev.h"
#include "base/log.h"
#include "base/util.h"
#include "ttrpc.pb-c.h"
#include "wire/ttrpc_call.h"
#include "wire/ttrpc_wire.h"

/* Reads per readiness callback: a maximal frame arrives in few wake-ups, yet one busy
 * connection cannot starve the others. */
#define CONN_READS_PER_CB 16
/* A peer that sends requests but does not read the answers is not read from either once
 * this much output waits for it, even under budget: one peer never takes it all. */
#define CONN_OUT_HIGH_WATER (8u << 20)
#define SERVER_ACCEPTS_PER_CB 16
/* Out of fds: the listener stays readable, so pause it instead of spinning. */
#define SERVER_ACCEPT_PAUSE_MS 100
/* glibc keeps freed heap pages mapped: once this much charged memory was given back since the
 * last trim, return the free pages to the kernel, at most once per TRIM_DELAY_MS. */
#define TRIM_MIN (2u << 20)
#define TRIM_DELAY_MS 200

struct ttrpc_conn
{
  LIST_ENTRY (ttrpc_conn) link;
  struct ttrpc_server *server; /* NULL once closed */
  int fd; /* -1 once closed */
  struct event *read_ev; /* pending unless paused */
  struct event *hup_ev; /* pending while paused: the peer may still go away */
  struct event *write_ev; /* added only while output is pending */
  struct evbuffer *in;
  struct evbuffer *out;
  struct ttrpc_reader reader;
  uint32_t last_stream_id;
  /* One while open, one per call, one while a read callback runs: parked calls and
   * handlers that free the server must not leave dangling pointers. */
  unsigned refs;
  size_t calls_held; /* charges of this connection's calls */
  size_t held; /* charged to the server's budget: in + out + calls_held */
  uint64_t progress_ms; /* last byte read or written, or the last resume */
  bool paused; /* not read: output over its high water, or over budget */
  bool reading; /* in conn_read_cb, which decides on pausing when done */
  bool pause_logged;
};

struct ttrpc_server
{
  struct event_base *base;
  int listen_fd;
  struct event *accept_ev;
  struct event *accept_pause_ev;
  /* The first from ttrpc_server_new, a second from ttrpc_server_add_service. */
  struct ttrpc_service services[2];
  size_t n_services;
  LIST_HEAD (, ttrpc_conn) conns;
  size_t n_conns;
  struct ttrpc_limits limits;
  size_t used; /* sum of the connections' held */
  size_t peak; /* highest used since the last trim */
  struct event *stall_ev; /* pending while used >= conn_reserve */
  struct event *resume_ev; /* made active when the budget frees */
  struct event *trim_ev;
  ttrpc_closed_fn closed_cb;
  void *closed_arg;
};

static void conn_read_cb (evutil_socket_t fd, short what, void *arg);
static void conn_write_cb (evutil_socket_t fd, short what, void *arg);
static void conn_hup_cb (evutil_socket_t fd, short what, void *arg);

/* The budget. */

static bool
server_over_budget (const struct ttrpc_server *s)
{
  return s->used >= s->limits.budget;
}

/* Arms what follows a change of the total: the stall check while some connection may hold
 * its reserve, the resume of paused connections when the budget frees, a trim after a large
 * release. */
static void
server_budget_changed (struct ttrpc_server *s, bool was_over)
{
  bool watch = s->used >= s->limits.conn_reserve;
  if (watch && !event_pending (s->stall_ev, EV_TIMEOUT, NULL))
    {
      struct timeval tick = timeval_from_ms (s->limits.stall_ms / 4 + 1);
      event_add (s->stall_ev, &tick);
    }
  else if (!watch)
    event_del (s->stall_ev);
  if (was_over && !server_over_budget (s))
    event_active (s->resume_ev, EV_TIMEOUT, 0);
  if (s->peak - s->used >= TRIM_MIN && !evtimer_pending (s->trim_ev, NULL))
    {
      struct timeval tv = timeval_from_ms (TRIM_DELAY_MS);
      evtimer_add (s->trim_ev, &tv);
    }
}

static void
conn_charge (struct ttrpc_conn *conn, size_t held)
{
  struct ttrpc_server *s = conn->server;
  bool was_over = server_over_budget (s);
  s->used = s->used - conn->held + held;
  conn->held = held;
  if (s->used > s->peak)
    s->peak = s->used;
  server_budget_changed (s, was_over);
}

static void
conn_account (struct ttrpc_conn *conn)
{
  if (conn->fd >= 0)
    conn_charge (conn, evbuffer_get_length (conn->in) + evbuffer_get_length (conn->out)
                           + conn->calls_held);
}

static void
server_trim_cb (evutil_socket_t fd, short what, void *arg)
{
  struct ttrpc_server *s = arg;
  (void) fd;
  (void) what;
  malloc_trim (0);
  s->peak = s->used;
}

/* Connections. */

static void
conn_unref (struct ttrpc_conn *conn)
{
  if (--conn->refs == 0)
    free (conn);
}

/* Drops the fd, events and buffers; the struct lives on while calls refer to it. */
static void
conn_close (struct ttrpc_conn *conn, const char *why)
{
  struct ttrpc_server *s = conn->server;
  if (conn->fd < 0)
    return;
  log_debug ("ttrpc: connection %d closed: %s", conn->fd, why);
  conn_charge (conn, 0);
  event_freep (&conn->read_ev);
  event_freep (&conn->write_ev);
  event_freep (&conn->hup_ev);
  evbuffer_free (steal_ptr (&conn->in));
  evbuffer_free (steal_ptr (&conn->out));
  close_fd (&conn->fd);
  LIST_REMOVE (conn, link);
  s->n_conns--;
  conn->server = NULL;
  if (s->closed_cb)
    s->closed_cb (s->n_conns, s->closed_arg);
  conn_unref (conn);
}

/* How much one read may take: what keeps all clients within the budget or this one within its
 * reserve, and no more than the room left for one frame. */
static size_t
conn_read_max (const struct ttrpc_conn *conn)
{
  const struct ttrpc_limits *l = &conn->server->limits;
  size_t used = conn->server->used, room = ttrpc_reader_room (conn->in);
  size_t shared = used < l->budget ? l->budget - used : 0;
  size_t own = conn->held < l->conn_reserve ? l->conn_reserve - conn->held : 0;
  size_t max = shared > own ? shared : own;
  return max < room ? max : room;
}

static bool
conn_wants_input (const struct ttrpc_conn *conn)
{
  return conn->fd >= 0 && evbuffer_get_length (conn->out) < CONN_OUT_HIGH_WATER
         && conn_read_max (conn) > 0;
}

static void
conn_set_paused (struct ttrpc_conn *conn, bool paused)
{
  const struct ttrpc_server *s = conn->server;
  if (paused == conn->paused)
    return;
  conn->paused = paused;
  if (!paused)
    {
      log_debug ("ttrpc: connection %d resumed", conn->fd);
      conn->progress_ms = now_monotonic_ms ();
      event_del (conn->hup_ev);
      event_add (conn->read_ev, NULL);
      return;
    }
  event_del (conn->read_ev);
  event_add (conn->hup_ev, NULL);
  log_msg (conn->pause_logged ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN,
           "ttrpc: connection %d paused: it holds %zu bytes (%zu of output), all clients %zu "
           "(budget %zu)",
           conn->fd, conn->held, evbuffer_get_length (conn->out), s->used, s->limits.budget);
  conn->pause_logged = true;
}

/* Watches for output space only while output is pending; reads only while conn_wants_input. */
static void
conn_sync_events (struct ttrpc_conn *conn)
{
  if (conn->fd < 0)
    return;
  size_t pending = evbuffer_get_length (conn->out);
  bool writing = event_pending (conn->write_ev, EV_WRITE, NULL);
  if (pending > 0 && !writing)
    event_add (conn->write_ev, NULL);
  else if (pending == 0 && writing)
    event_del (conn->write_ev);
  if (!conn->reading)
    conn_set_paused (conn, !conn_wants_input (conn));
}

static void
conn_new (struct ttrpc_server *s, int fd)
{
  struct ttrpc_conn *conn = xcalloc (1, sizeof *conn);
  conn->server = s;
  conn->fd = fd;
  conn->refs = 1;
  conn->progress_ms = now_monotonic_ms ();
  LIST_INSERT_HEAD (&s->conns, conn, link);
  s->n_conns++;
  conn->read_ev = xevent_new (s->base, fd, EV_READ | EV_PERSIST, conn_read_cb, conn);
  conn->write_ev = xevent_new (s->base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, conn);
  conn->hup_ev = xevent_new (s->base, fd, EV_CLOSED | EV_PERSIST, conn_hup_cb, conn);
  conn->in = xevbuffer_new ();
  conn->out = xevbuffer_new ();
  log_debug ("ttrpc: connection %d accepted", fd);
  event_add (conn->read_ev, NULL);
}

/* Sends what the socket takes now; a byte sent is progress. */
static int
conn_write (struct ttrpc_conn *conn)
{
  size_t before = evbuffer_get_length (conn->out);
  int r = ttrpc_io_write (conn->out, conn->fd);
  if (evbuffer_get_length (conn->out) < before)
    conn->progress_ms = now_monotonic_ms ();
  return r;
}

static void
conn_write_cb (evutil_socket_t fd, short what, void *arg)
{
  struct ttrpc_conn *conn = arg;
  (void) fd;
  (void) what;
  if (conn_write (conn) < 0)
    {
      conn_close (conn, strerror (errno));
      return;
    }
  conn_account (conn);
  conn_sync_events (conn);
}

/* A paused connection is not read, so its EOF would go unseen: nothing it sent after the
 * pause can be answered once it is gone. */
static void
conn_hup_cb (evutil_socket_t fd, short what, void *arg)
{
  (void) fd;
  (void) what;
  conn_close (arg, "closed by peer while paused");
}

/* For ttrpc_call.c. */

void
ttrpc_conn_hold (struct ttrpc_conn *conn, size_t charge)
{
  conn->refs++;
  conn->calls_held += charge;
  conn_account (conn);
}

void
ttrpc_conn_release (struct ttrpc_conn *conn, size_t charge)
{
  conn->calls_held -= charge;
  conn_account (conn);
  conn_sync_events (conn);
  conn_unref (conn);
}

struct evbuffer *
ttrpc_conn_output (const struct ttrpc_conn *conn)
{
  return conn->fd >= 0 ? conn->out : NULL;
}

void
ttrpc_conn_flush (struct ttrpc_conn *conn)
{
  if (conn->fd < 0)
    return;
  (void) conn_write (conn);
  conn_account (conn);
  conn_sync_events (conn);
}

/* Frames. */

/* Stream rules as the Go server applies them; bad input gets a status on its stream and
 * the connection stays up. */
static void
conn_handle_frame (struct ttrpc_conn *conn, const struct ttrpc_frame *f)
{
  const struct ttrpc_header *h = &f->header;

  if (h->type != TTRPC_TYPE_REQUEST && h->type != TTRPC_TYPE_DATA)
    return; /* unknown types are ignored for forward compatibility */
  if (h->stream_id % 2 == 0)
    ttrpc_call_refuse (conn, h->stream_id, SHIM_INVALID_ARGUMENT,
                       "StreamID must be odd for client initiated streams");
  else if (h->type == TTRPC_TYPE_DATA)
    ttrpc_call_refuse (conn, h->stream_id, SHIM_UNIMPLEMENTED, "streaming is not supported");
  else if (h->stream_id <= conn->last_stream_id)
    ttrpc_call_refuse (conn, h->stream_id, SHIM_INVALID_ARGUMENT,
                       "StreamID cannot be re-used and must increment");
  else
    {
      conn->last_stream_id = h->stream_id;
      if (h->flags != 0)
        ttrpc_call_refuse (conn, h->stream_id, SHIM_UNIMPLEMENTED, "streaming is not supported");
      else
        ttrpc_call_dispatch (conn, h->stream_id, f->data, h->length, conn->server->services,
                             conn->server->n_services);
    }
}

static void
conn_process_input (struct ttrpc_conn *conn)
{
  struct ttrpc_frame f;

  /* conn->fd turns -1 if a handler freed the server: stop at once then. */
  while (conn->fd >= 0)
    {
      enum ttrpc_read_status st = ttrpc_reader_next (&conn->reader, conn->in, &f);
      if (st == TTRPC_READ_NEED_MORE)
        break;
      if (st == TTRPC_READ_OVERSIZE)
        ttrpc_call_refuse (conn, f.header.stream_id, SHIM_RESOURCE_EXHAUSTED,
                           "message length %u exceed maximum message size of %u", f.header.length,
                           TTRPC_MAX_DATA);
      else
        conn_handle_frame (conn, &f);
      free (f.data);
    }
}

static void
conn_read_cb (evutil_socket_t fd, short what, void *arg)
{
  struct ttrpc_conn *conn = arg;
  (void) what;

  conn->refs++;
  conn->reading = true;
  for (int i = 0; i < CONN_READS_PER_CB && conn_wants_input (conn); i++)
    {
      ssize_t n = ttrpc_io_read (conn->in, fd, conn_read_max (conn));
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        break;
      if (n <= 0)
        {
          conn_close (conn, n == 0 ? "closed by peer" : strerror (errno));
          break;
        }
      conn->progress_ms = now_monotonic_ms ();
      conn_process_input (conn);
      conn_account (conn);
    }
  conn->reading = false;
  conn_sync_events (conn);
  conn_unref (conn);
}

/* Stalls. */

/* Not read for lack of budget, with nothing to send: it waits for others to free memory. */
static bool
conn_waits_for_budget (const struct ttrpc_conn *conn)
{
  return conn->paused && evbuffer_get_length (conn->out) == 0;
}

static bool
conn_stalled (const struct ttrpc_conn *conn, uint64_t now)
{
  const struct ttrpc_limits *l = &conn->server->limits;
  return conn->held >= l->conn_reserve && now - conn->progress_ms >= l->stall_ms;
}

/* Closes the connections that hold memory without progress. Those that only wait for the
 * budget go when no other can: partial frames that fill the budget together would otherwise
 * wait for each other forever. */
static void
server_stall_cb (evutil_socket_t fd, short what, void *arg)
{
  struct ttrpc_server *s = arg;
  uint64_t now = now_monotonic_ms ();
  struct ttrpc_conn *conn, *next;
  size_t closed = 0;
  (void) fd;
  (void) what;

  for (int waiting = 0; waiting < 2 && closed == 0; waiting++)
    LIST_FOREACH_SAFE (conn, &s->conns, link, next)
    {
      if (!conn_stalled (conn, now) || conn_waits_for_budget (conn) != waiting)
        continue;
      log_warn ("ttrpc: connection %d closed: it held %zu bytes (%zu of output) without "
                "progress for %llu ms, all clients %zu (budget %zu)",
                conn->fd, conn->held, evbuffer_get_length (conn->out),
                (unsigned long long) (now - conn->progress_ms), s->used, s->limits.budget);
      conn_close (conn, "stalled");
      closed++;
    }
}

/* The budget freed: read the paused connections again. */
static void
server_resume_cb (evutil_socket_t fd, short what, void *arg)
{
  struct ttrpc_server *s = arg;
  struct ttrpc_conn *conn;
  (void) fd;
  (void) what;
  LIST_FOREACH (conn, &s->conns, link)
  conn_sync_events (conn);
}

/* Listener. */

static bool
server_admits (const struct ttrpc_server *s, int fd)
{
  if (s->n_conns < s->limits.max_conns)
    return ttrpc_io_peer_allowed (fd);
  log_warn ("ttrpc: refused a connection: %zu open (max %zu)", s->n_conns, s->limits.max_conns);
  return false;
}

static void
server_accept_pause (struct ttrpc_server *s, int errno_)
{
  struct timeval tv = { 0, SERVER_ACCEPT_PAUSE_MS * 1000 };
  log_warn ("ttrpc: accept: %s; pausing the listener", strerror (errno_));
  event_del (s->accept_ev);
  evtimer_add (s->accept_pause_ev, &tv);
}

static void
server_accept_resume_cb (evutil_socket_t fd, short what, void *arg)
{
  struct ttrpc_server *s = arg;
  (void) fd;
  (void) what;
  event_add (s->accept_ev, NULL);
}

static void
server_accept_cb (evutil_socket_t listen_fd, short what, void *arg)
{
  struct ttrpc_server *s = arg;
  (void) what;

  for (int i = 0; i < SERVER_ACCEPTS_PER_CB; i++)
    {
      int fd = accept4 (listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
        continue;
      if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM))
        server_accept_pause (s, errno);
      else if (fd < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        log_warn ("ttrpc: accept: %s", strerror (errno));
      if (fd < 0)
        return;
      if (server_admits (s, fd))
        conn_new (s, fd);
      else
        close (fd);
    }
}

struct ttrpc_server *
ttrpc_server_new (struct event_base *base, int listen_fd, const struct ttrpc_method *methods,
                  size_t n_methods, void *arg, shim_error_t *err)
{
  cleanup_close int fd = listen_fd;

  if (set_nonblock (fd, true) < 0 || set_cloexec (fd, true) < 0)
    {
      shim_error_make (err, errno, SHIM_INTERNAL, "ttrpc listener fd %d", fd);
      return NULL;
    }
  struct ttrpc_server *s = xcalloc (1, sizeof *s);
  s->base = base;
  s->services[0] = (struct ttrpc_service){ methods, n_methods, arg };
  s->n_services = 1;
  s->listen_fd = -1;
  LIST_INIT (&s->conns);
  s->limits
      = (struct ttrpc_limits){ TTRPC_BUDGET, TTRPC_CONN_RESERVE, TTRPC_MAX_CONNS, TTRPC_STALL_MS };
  s->accept_ev = xevent_new (base, fd, EV_READ | EV_PERSIST, server_accept_cb, s);
  s->accept_pause_ev = xevtimer_new (base, server_accept_resume_cb, s);
  s->stall_ev = xevent_new (base, -1, EV_PERSIST, server_stall_cb, s);
  s->resume_ev = xevtimer_new (base, server_resume_cb, s);
  s->trim_ev = xevtimer_new (base, server_trim_cb, s);
  if (event_add (s->accept_ev, NULL) < 0)
    {
      ttrpc_server_free (s);
      shim_error_make (err, 0, SHIM_INTERNAL, "ttrpc listener: cannot watch fd %d", fd);
      return NULL;
    }
  s->listen_fd = steal_fd (&fd);
  return s;
}

void
ttrpc_server_add_service (struct ttrpc_server *s, const struct ttrpc_method *methods, size_t n,
                          void *arg)
{
  s->services[1] = (struct ttrpc_service){ methods, n, arg };
  s->n_services = 2;
}

void
ttrpc_server_free (struct ttrpc_server *s)
{
  if (s == NULL)
    return;
  s->closed_cb = NULL;
  while (!LIST_EMPTY (&s->conns))
    conn_close (LIST_FIRST (&s->conns), "server shut down");
  event_freep (&s->accept_ev);
  event_freep (&s->accept_pause_ev);
  event_freep (&s->stall_ev);
  event_freep (&s->resume_ev);
  event_freep (&s->trim_ev);
  close_fd (&s->listen_fd);
  free (s);
}

size_t
ttrpc_server_connection_count (const struct ttrpc_server *s)
{
  return s->n_conns;
}

void
ttrpc_server_set_limits (struct ttrpc_server *s, const struct ttrpc_limits *limits)
{
  bool was_over = server_over_budget (s);
  s->limits = *limits;
  server_budget_changed (s, was_over);
}

size_t
ttrpc_server_memory (const struct ttrpc_server *s)
{
  return s->used;
}

void
ttrpc_server_on_close (struct ttrpc_server *s, ttrpc_closed_fn cb, void *arg)
{
  s->closed_cb = cb;
  s->closed_arg = arg;
}
