#include "wire/ttrpc_server.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bsd/sys/queue.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "google/rpc/status.pb-c.h"
#include "base/log.h"
#include "ttrpc.pb-c.h"
#include "wire/ttrpc_wire.h"
#include "base/ev.h"
#include "base/util.h"

#define TTRPC_NAMESPACE_KEY "containerd-namespace-ttrpc"
/* Reads per readiness callback: a maximal frame arrives in few wake-ups, yet one busy
 * connection cannot starve the others. */
#define CONN_READS_PER_CB 16
/* A peer that sends requests but does not read the answers is not read from either once
 * this much output waits for it, so the output stays bounded too. */
#define CONN_OUT_HIGH_WATER (8u << 20)
#define SERVER_ACCEPTS_PER_CB 16
/* Out of fds: the listener stays readable, so pause it instead of spinning. */
#define SERVER_ACCEPT_PAUSE_MS 100

struct ttrpc_conn
{
  LIST_ENTRY (ttrpc_conn) link;
  struct ttrpc_server *server; /* NULL once closed */
  int fd; /* -1 once closed */
  struct event *read_ev;
  struct event *write_ev; /* added only while output is pending */
  struct evbuffer *in;
  struct evbuffer *out;
  struct ttrpc_reader reader;
  uint32_t last_stream_id;
  /* One while open, one per call, one while a read callback runs: parked calls and
   * handlers that free the server must not leave dangling pointers. */
  unsigned refs;
};

struct ttrpc_server
{
  struct event_base *base;
  int listen_fd;
  struct event *accept_ev;
  struct event *accept_pause_ev;
  const struct ttrpc_method *methods;
  size_t n_methods;
  void *arg;
  /* A second service on the same socket (ttrpc_server_add_service), with its own arg. */
  const struct ttrpc_method *extra_methods;
  size_t n_extra;
  void *extra_arg;
  LIST_HEAD (, ttrpc_conn) conns;
  size_t n_conns;
};

struct ttrpc_call
{
  struct ttrpc_conn *conn;
  uint32_t stream_id;
  Ttrpc__Request *request; /* NULL when refused before the request was decoded */
  ProtobufCMessage *msg;
};

static void conn_read_cb (evutil_socket_t fd, short what, void *arg);
static void conn_write_cb (evutil_socket_t fd, short what, void *arg);

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
  if (conn->fd < 0)
    return;
  log_debug ("ttrpc: connection %d closed: %s", conn->fd, why);
  if (conn->read_ev)
    event_free (conn->read_ev);
  if (conn->write_ev)
    event_free (conn->write_ev);
  if (conn->in)
    evbuffer_free (conn->in);
  if (conn->out)
    evbuffer_free (conn->out);
  conn->read_ev = conn->write_ev = NULL;
  conn->in = conn->out = NULL;
  close (conn->fd);
  conn->fd = -1;
  LIST_REMOVE (conn, link);
  conn->server->n_conns--;
  conn->server = NULL;
  conn_unref (conn);
}

/* Watches for output space only while output is pending; stops reading while too much
 * output waits for the peer. */
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
  bool want_read = pending < CONN_OUT_HIGH_WATER;
  if (want_read && !event_pending (conn->read_ev, EV_READ, NULL))
    event_add (conn->read_ev, NULL);
  else if (!want_read)
    event_del (conn->read_ev);
}

static void
conn_new (struct ttrpc_server *s, int fd)
{
  struct ttrpc_conn *conn = xcalloc (1, sizeof *conn);
  conn->server = s;
  conn->fd = fd;
  conn->refs = 1;
  LIST_INSERT_HEAD (&s->conns, conn, link);
  s->n_conns++;
  conn->read_ev = xevent_new (s->base, fd, EV_READ | EV_PERSIST, conn_read_cb, conn);
  conn->write_ev = xevent_new (s->base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, conn);
  conn->in = xevbuffer_new ();
  conn->out = xevbuffer_new ();
  log_debug ("ttrpc: connection %d accepted", fd);
  conn_sync_events (conn);
}

static void
conn_write_cb (evutil_socket_t fd, short what, void *arg)
{
  struct ttrpc_conn *conn = arg;
  (void) what;
  if (ttrpc_io_write (conn->out, fd) < 0)
    {
      conn_close (conn, strerror (errno));
      return;
    }
  conn_sync_events (conn);
}

/* Calls. */

static struct ttrpc_call *
call_new (struct ttrpc_conn *conn, uint32_t stream_id)
{
  struct ttrpc_call *call = xcalloc (1, sizeof *call);
  call->conn = conn;
  call->stream_id = stream_id;
  conn->refs++;
  return call;
}

static void
call_free (struct ttrpc_call *call)
{
  if (call->msg)
    protobuf_c_message_free_unpacked (call->msg, NULL);
  if (call->request)
    ttrpc__request__free_unpacked (call->request, NULL);
  conn_unref (call->conn);
  free (call);
}

/* Queues the response frame and tries to send it at once. A write error is left for
 * conn_write_cb to act on: closing here could pull the connection out from under a
 * read callback that is dispatching this very call. */
static void
call_send (struct ttrpc_call *call, const Ttrpc__Response *resp)
{
  struct ttrpc_conn *conn = call->conn;
  if (conn->fd < 0)
    return;
  size_t len = ttrpc__response__get_packed_size (resp);
  cleanup_free uint8_t *buf = xmalloc (len);
  ttrpc__response__pack (resp, buf);
  if (ttrpc_frame_append (conn->out, call->stream_id, TTRPC_TYPE_RESPONSE, 0, buf, len) < 0)
    {
      log_error ("ttrpc: cannot queue response on stream %u (%zu bytes)", call->stream_id, len);
      return;
    }
  (void) ttrpc_io_write (conn->out, conn->fd);
  conn_sync_events (conn);
}

const char *
ttrpc_call_metadata (const struct ttrpc_call *call, const char *key)
{
  if (call->request == NULL)
    return NULL;
  for (size_t i = 0; i < call->request->n_metadata; i++)
    {
      const Ttrpc__KeyValue *kv = call->request->metadata[i];
      if (kv && kv->key && strcmp (kv->key, key) == 0)
        return kv->value ? kv->value : "";
    }
  return NULL;
}

const char *
ttrpc_call_namespace (const struct ttrpc_call *call)
{
  const char *ns = ttrpc_call_metadata (call, TTRPC_NAMESPACE_KEY);
  return ns ? ns : "";
}

const char *
ttrpc_call_method (const struct ttrpc_call *call)
{
  return call->request && call->request->method ? call->request->method : "";
}

ProtobufCBinaryData
ttrpc_call_payload (const struct ttrpc_call *call)
{
  ProtobufCBinaryData none = { 0, NULL };
  return call->request ? call->request->payload : none;
}

int64_t
ttrpc_call_timeout_ns (const struct ttrpc_call *call)
{
  return call->request ? call->request->timeout_nano : 0;
}

bool
ttrpc_call_connected (const struct ttrpc_call *call)
{
  return call->conn->fd >= 0;
}

static void call_fail (struct ttrpc_call *call, shim_error_t *err, bool classed);

void
ttrpc_call_reply (struct ttrpc_call *call, const ProtobufCMessage *resp)
{
  /* Status is always present, code 0 on success, as the Go server sends it. */
  Google__Rpc__Status status = GOOGLE__RPC__STATUS__INIT;
  Ttrpc__Response r = TTRPC__RESPONSE__INIT;
  cleanup_free uint8_t *payload = NULL;

  if (!ttrpc_call_connected (call))
    {
      call_free (call);
      return;
    }
  if (resp)
    {
      r.payload.len = protobuf_c_message_get_packed_size (resp);
      payload = xmalloc (r.payload.len);
      protobuf_c_message_pack (resp, payload);
      r.payload.data = payload;
    }
  r.status = &status;
  size_t len = ttrpc__response__get_packed_size (&r);
  if (len > TTRPC_MAX_DATA)
    {
      shim_error_t err = NULL;
      shim_error_make (&err, 0, SHIM_RESOURCE_EXHAUSTED,
                       "message length %zu exceed maximum message size of %u", len, TTRPC_MAX_DATA);
      call_fail (call, &err, false);
      return;
    }
  call_send (call, &r);
  call_free (call);
}

/* A handler's message as the Go shim's errdefs errors read: ending with the code's class
 * ("container not created: not found"), added unless it is there already. The server's own
 * protocol errors stay plain, as the Go ttrpc server's are. */
static char *
wire_message (int code, const char *msg, bool classed)
{
  const char *cls = classed ? shim_code_class (code) : NULL;
  size_t n = strlen (msg), k = cls ? strlen (cls) : 0;
  if (cls == NULL || (n >= k + 2 && strcmp (msg + n - k, cls) == 0 && msg[n - k - 2] == ':'))
    return xstrdup (msg);
  return xasprintf ("%s: %s", msg, cls);
}

static void
call_fail (struct ttrpc_call *call, shim_error_t *err, bool classed)
{
  Google__Rpc__Status status = GOOGLE__RPC__STATUS__INIT;
  Ttrpc__Response r = TTRPC__RESPONSE__INIT;
  shim_error_t e = err ? *err : NULL;

  /* Code 0 would read as success to the peer: an error always carries a failure code. */
  status.code = e && e->code != SHIM_OK ? e->code : SHIM_UNKNOWN;
  cleanup_free char *text
      = wire_message (status.code, e && e->msg ? e->msg : "unknown error", classed);
  status.message = text;
  log_debug ("ttrpc: stream %u %s failed: %s", call->stream_id, ttrpc_call_method (call),
             status.message);
  r.status = &status;
  call_send (call, &r);
  shim_error_release (err);
  call_free (call);
}

void
ttrpc_call_fail (struct ttrpc_call *call, shim_error_t *err)
{
  call_fail (call, err, true);
}

/* Answers a stream with an error before (or instead of) dispatching it. */
static void __attribute__ ((format (printf, 4, 5)))
conn_refuse (struct ttrpc_conn *conn, uint32_t stream_id, int code, const char *fmt, ...)
{
  shim_error_t err = NULL;
  cleanup_free char *msg = NULL;
  va_list ap;

  va_start (ap, fmt);
  if (vasprintf (&msg, fmt, ap) < 0)
    msg = NULL;
  va_end (ap);
  shim_error_make (&err, 0, code, "%s", msg ? msg : "ttrpc protocol error");
  call_fail (call_new (conn, stream_id), &err, false);
}

/* Dispatch. */

static const struct ttrpc_method *
table_lookup (const struct ttrpc_method *methods, size_t n, const Ttrpc__Request *req,
              bool *service_known)
{
  for (size_t i = 0; i < n; i++)
    {
      const struct ttrpc_method *m = &methods[i];
      if (strcmp (m->service, req->service) != 0)
        continue;
      *service_known = true;
      if (strcmp (m->method, req->method) == 0)
        return m;
    }
  return NULL;
}

/* The method for req and the arg its handler gets. */
static const struct ttrpc_method *
server_lookup (const struct ttrpc_server *s, const Ttrpc__Request *req, void **arg,
               shim_error_t *err)
{
  bool service_known = false;
  const struct ttrpc_method *m = table_lookup (s->methods, s->n_methods, req, &service_known);
  *arg = s->arg;
  if (m == NULL)
    {
      m = table_lookup (s->extra_methods, s->n_extra, req, &service_known);
      *arg = s->extra_arg;
    }
  if (m)
    return m;
  if (service_known)
    shim_error_make (err, 0, SHIM_UNIMPLEMENTED, "method %s", req->method);
  else
    shim_error_make (err, 0, SHIM_UNIMPLEMENTED, "service %s", req->service);
  return NULL;
}

/* Decodes a unary request and hands it to its handler, which owns the call from then on.
 * The handler may answer at once, park the call, or even free the server. */
static void
conn_dispatch (struct ttrpc_conn *conn, uint32_t stream_id, const uint8_t *data, size_t len)
{
  struct ttrpc_server *s = conn->server;
  struct ttrpc_call *call = call_new (conn, stream_id);
  shim_error_t err = NULL;

  call->request = ttrpc__request__unpack (NULL, len, data);
  if (call->request == NULL)
    {
      shim_error_make (&err, 0, SHIM_INVALID_ARGUMENT, "invalid ttrpc request");
      call_fail (call, &err, false);
      return;
    }
  void *arg;
  const struct ttrpc_method *m = server_lookup (s, call->request, &arg, &err);
  if (m == NULL)
    {
      call_fail (call, &err, false);
      return;
    }
  const ProtobufCBinaryData *p = &call->request->payload;
  call->msg = protobuf_c_message_unpack (m->input, NULL, p->len, p->data);
  if (call->msg == NULL)
    {
      shim_error_make (&err, 0, SHIM_INVALID_ARGUMENT, "invalid %s request payload", m->method);
      call_fail (call, &err, false);
      return;
    }
  log_debug ("ttrpc: stream %u call %s/%s", stream_id, m->service, m->method);
  m->handler (call, call->msg, arg);
}

/* Stream rules as the Go server applies them; bad input gets a status on its stream and
 * the connection stays up. */
static void
conn_handle_frame (struct ttrpc_conn *conn, const struct ttrpc_frame *f)
{
  const struct ttrpc_header *h = &f->header;

  if (h->type != TTRPC_TYPE_REQUEST && h->type != TTRPC_TYPE_DATA)
    return; /* unknown types are ignored for forward compatibility */
  if (h->stream_id % 2 == 0)
    conn_refuse (conn, h->stream_id, SHIM_INVALID_ARGUMENT,
                 "StreamID must be odd for client initiated streams");
  else if (h->type == TTRPC_TYPE_DATA)
    conn_refuse (conn, h->stream_id, SHIM_UNIMPLEMENTED, "streaming is not supported");
  else if (h->stream_id <= conn->last_stream_id)
    conn_refuse (conn, h->stream_id, SHIM_INVALID_ARGUMENT,
                 "StreamID cannot be re-used and must increment");
  else
    {
      conn->last_stream_id = h->stream_id;
      if (h->flags != 0)
        conn_refuse (conn, h->stream_id, SHIM_UNIMPLEMENTED, "streaming is not supported");
      else
        conn_dispatch (conn, h->stream_id, f->data, h->length);
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
        conn_refuse (conn, f.header.stream_id, SHIM_RESOURCE_EXHAUSTED,
                     "message length %u exceed maximum message size of %u", f.header.length,
                     TTRPC_MAX_DATA);
      else
        conn_handle_frame (conn, &f);
      free (f.data);
    }
}

static bool
conn_wants_input (const struct ttrpc_conn *conn)
{
  return conn->fd >= 0 && evbuffer_get_length (conn->out) < CONN_OUT_HIGH_WATER;
}

static void
conn_read_cb (evutil_socket_t fd, short what, void *arg)
{
  struct ttrpc_conn *conn = arg;
  (void) what;

  conn->refs++;
  for (int i = 0; i < CONN_READS_PER_CB && conn_wants_input (conn); i++)
    {
      /* Never more than the room left for one frame: unparsed input stays bounded. */
      ssize_t n = ttrpc_io_read (conn->in, fd, ttrpc_reader_room (conn->in));
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        break;
      if (n <= 0)
        {
          conn_close (conn, n == 0 ? "closed by peer" : strerror (errno));
          break;
        }
      conn_process_input (conn);
    }
  conn_sync_events (conn);
  conn_unref (conn);
}

/* Listener. */

static bool
server_peer_allowed (int fd)
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
      if (server_peer_allowed (fd))
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
  s->methods = methods;
  s->n_methods = n_methods;
  s->arg = arg;
  s->listen_fd = -1;
  LIST_INIT (&s->conns);
  s->accept_ev = xevent_new (base, fd, EV_READ | EV_PERSIST, server_accept_cb, s);
  s->accept_pause_ev = xevtimer_new (base, server_accept_resume_cb, s);
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
  s->extra_methods = methods;
  s->n_extra = n;
  s->extra_arg = arg;
}

void
ttrpc_server_free (struct ttrpc_server *s)
{
  if (s == NULL)
    return;
  while (!LIST_EMPTY (&s->conns))
    conn_close (LIST_FIRST (&s->conns), "server shut down");
  if (s->accept_ev)
    event_free (s->accept_ev);
  if (s->accept_pause_ev)
    event_free (s->accept_pause_ev);
  if (s->listen_fd >= 0)
    close (s->listen_fd);
  free (s);
}

size_t
ttrpc_server_connection_count (const struct ttrpc_server *s)
{
  return s->n_conns;
}
