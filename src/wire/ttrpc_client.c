#include "wire/ttrpc_client.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <bsd/sys/queue.h>
#include <bsd/sys/tree.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "google/rpc/status.pb-c.h"
#include "base/log.h"
#include "ttrpc.pb-c.h"
#include "wire/ttrpc_wire.h"
#include "base/ev.h"
#include "base/util.h"

#define CLIENT_READS_PER_CB 16
/* AF_UNIX reports a full listen backlog as EAGAIN and offers no readiness event for it
 * (an unconnected socket polls writable at once), so connect() is retried on a timer. */
#define CLIENT_CONNECT_RETRY_MS 20
#define CLIENT_CONNECT_RETRIES 50

struct client_call
{
  RB_ENTRY (client_call) node; /* in client->pending while awaiting its response */
  TAILQ_ENTRY (client_call) done_link; /* in client->done while its completion is queued */
  uint32_t stream_id;
  bool done;
  ttrpc_client_cb cb;
  void *arg;
  /* Deadline timer, and also activated by hand to deliver a completion: every callback
   * runs from here, from the loop, with nothing of the client on the stack. */
  struct event *ev;
  struct ttrpc_client *client;
  int code;
  char *message;
  Ttrpc__Response *resp;
};

RB_HEAD (client_call_tree, client_call);

struct ttrpc_client
{
  struct event_base *base;
  char *path;
  /* Connection state: fd -1 while disconnected; connecting until connect() completes. */
  int fd;
  bool connecting;
  unsigned connect_retries;
  struct event *read_ev;
  struct event *write_ev;
  struct event *retry_ev;
  struct evbuffer *in;
  struct evbuffer *out;
  struct ttrpc_reader reader;
  uint32_t next_stream_id;
  struct client_call_tree pending;
  TAILQ_HEAD (, client_call) done;
};

static int
client_call_cmp (const struct client_call *a, const struct client_call *b)
{
  return a->stream_id < b->stream_id ? -1 : a->stream_id > b->stream_id;
}

/* RB_GENERATE_STATIC relies on a __unused macro that libbsd leaves undefined (it clashes
 * with Linux headers), so spell the attribute out: the tree functions we never call must
 * not trip -Werror=unused-function. */
RB_GENERATE_INTERNAL (client_call_tree, client_call, node, client_call_cmp,
                      __attribute__ ((unused)) static)

static void client_read_cb (evutil_socket_t fd, short what, void *arg);
static void client_write_cb (evutil_socket_t fd, short what, void *arg);
static void client_retry_cb (evutil_socket_t fd, short what, void *arg);

/* Calls. */

static void
call_free (struct client_call *call)
{
  event_freep (&call->ev);
  free (call->message);
  if (call->resp)
    ttrpc__response__free_unpacked (call->resp, NULL);
  free (call);
}

/* Runs the callback: on a completion queued by call_complete, or on the deadline. */
static void
call_event_cb (evutil_socket_t fd, short what, void *arg)
{
  struct client_call *call = arg;
  struct ttrpc_client *c = call->client;
  const uint8_t *payload = NULL;
  size_t len = 0;
  (void) fd;
  (void) what;

  if (call->done)
    TAILQ_REMOVE (&c->done, call, done_link);
  else
    {
      /* A response arriving later finds no call and is ignored. */
      RB_REMOVE (client_call_tree, &c->pending, call);
      call->code = SHIM_DEADLINE_EXCEEDED;
      call->message = xstrdup ("context deadline exceeded");
    }
  if (call->code == SHIM_OK && call->resp)
    {
      payload = call->resp->payload.data;
      len = call->resp->payload.len;
    }
  /* Unlinked above, so the callback may even free the client. */
  call->cb (call->code, call->message ? call->message : "", payload, len, call->arg);
  call_free (call);
}

/* Records the outcome and queues the callback; the caller has taken call out of pending.
 * Takes ownership of message and resp. */
static void
call_complete (struct ttrpc_client *c, struct client_call *call, int code, char *message,
               Ttrpc__Response *resp)
{
  call->done = true;
  call->code = code;
  call->message = message;
  call->resp = resp;
  TAILQ_INSERT_TAIL (&c->done, call, done_link);
  event_del (call->ev);
  event_active (call->ev, EV_TIMEOUT, 0);
}

static void
call_complete_response (struct ttrpc_client *c, struct client_call *call, const uint8_t *data,
                        size_t len)
{
  Ttrpc__Response *resp = ttrpc__response__unpack (NULL, len, data);
  if (resp == NULL)
    {
      call_complete (c, call, SHIM_INTERNAL, xstrdup ("invalid ttrpc response"), NULL);
      return;
    }
  /* Go clients accept a missing status as success; so do we. */
  const Google__Rpc__Status *st = resp->status;
  if (st == NULL || st->code == SHIM_OK)
    call_complete (c, call, SHIM_OK, NULL, resp);
  else
    {
      char *msg = xstrdup (st->message ? st->message : "");
      int code = st->code;
      ttrpc__response__free_unpacked (resp, NULL);
      call_complete (c, call, code, msg, NULL);
    }
}

/* Connection. */

static void
client_disconnect (struct ttrpc_client *c, const char *why)
{
  struct client_call *call;

  if (c->fd >= 0)
    log_debug ("ttrpc client: %s: %s", c->path, why);
  if (c->read_ev)
    event_free (c->read_ev);
  if (c->write_ev)
    event_free (c->write_ev);
  if (c->retry_ev)
    event_free (c->retry_ev);
  if (c->in)
    evbuffer_free (c->in);
  if (c->out)
    evbuffer_free (c->out);
  c->read_ev = c->write_ev = c->retry_ev = NULL;
  c->in = c->out = NULL;
  if (c->fd >= 0)
    close (c->fd);
  c->fd = -1;
  c->connecting = false;
  while ((call = RB_MIN (client_call_tree, &c->pending)) != NULL)
    {
      RB_REMOVE (client_call_tree, &c->pending, call);
      call_complete (c, call, SHIM_UNAVAILABLE, xasprintf ("ttrpc: %s: %s", c->path, why), NULL);
    }
}

static void
client_sync_events (struct ttrpc_client *c)
{
  if (c->fd < 0 || c->connecting)
    return;
  size_t pending = evbuffer_get_length (c->out);
  bool writing = event_pending (c->write_ev, EV_WRITE, NULL);
  if (pending > 0 && !writing)
    event_add (c->write_ev, NULL);
  else if (pending == 0 && writing)
    event_del (c->write_ev);
}

static void
client_connected (struct ttrpc_client *c)
{
  c->connecting = false;
  c->connect_retries = 0;
  event_add (c->read_ev, NULL);
  if (ttrpc_io_write (c->out, c->fd) < 0)
    {
      client_disconnect (c, strerror (errno));
      return;
    }
  client_sync_events (c);
}

/* One connect() attempt; 0 when connected or still under way, -1 with errno. */
static int
client_try_connect (struct ttrpc_client *c)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  struct timeval retry = { 0, CLIENT_CONNECT_RETRY_MS * 1000 };

  memcpy (sa.sun_path, c->path, strlen (c->path));
  if (connect (c->fd, (struct sockaddr *) &sa, sizeof sa) == 0 || errno == EISCONN)
    {
      client_connected (c);
      return 0;
    }
  c->connecting = true;
  if (errno == EINPROGRESS || errno == EALREADY || errno == EINTR)
    return event_add (c->write_ev, NULL);
  if (errno == EAGAIN && c->connect_retries++ < CLIENT_CONNECT_RETRIES)
    return evtimer_add (c->retry_ev, &retry);
  return -1;
}

static int
client_connect (struct ttrpc_client *c, shim_error_t *err)
{
  if (strlen (c->path) >= sizeof (((struct sockaddr_un *) NULL)->sun_path))
    return shim_error_make (err, ENAMETOOLONG, SHIM_UNAVAILABLE, "connect `%s`", c->path);
  c->fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (c->fd < 0)
    return shim_error_make (err, errno, SHIM_UNAVAILABLE, "socket for `%s`", c->path);
  c->read_ev = xevent_new (c->base, c->fd, EV_READ | EV_PERSIST, client_read_cb, c);
  c->write_ev = xevent_new (c->base, c->fd, EV_WRITE | EV_PERSIST, client_write_cb, c);
  c->retry_ev = xevtimer_new (c->base, client_retry_cb, c);
  c->in = xevbuffer_new ();
  c->out = xevbuffer_new ();
  c->reader = (struct ttrpc_reader){ 0 };
  c->next_stream_id = 1;
  c->connect_retries = 0;
  if (client_try_connect (c) < 0)
    {
      int saved = errno;
      client_disconnect (c, strerror (saved));
      return shim_error_make (err, saved, SHIM_UNAVAILABLE, "connect `%s`", c->path);
    }
  return 0;
}

static void
client_retry_cb (evutil_socket_t fd, short what, void *arg)
{
  struct ttrpc_client *c = arg;
  (void) fd;
  (void) what;
  if (client_try_connect (c) < 0)
    client_disconnect (c, strerror (errno));
}

/* Completes an in-progress connect(); false (with errno) if it failed. */
static bool
client_finish_connect (struct ttrpc_client *c)
{
  int so_error = 0;
  socklen_t len = sizeof so_error;
  if (getsockopt (c->fd, SOL_SOCKET, SO_ERROR, &so_error, &len) < 0)
    return false;
  if (so_error != 0)
    {
      errno = so_error;
      return false;
    }
  event_del (c->write_ev);
  client_connected (c);
  return true;
}

static void
client_write_cb (evutil_socket_t fd, short what, void *arg)
{
  struct ttrpc_client *c = arg;
  (void) what;
  if (c->connecting)
    {
      if (!client_finish_connect (c))
        client_disconnect (c, strerror (errno));
      return;
    }
  if (ttrpc_io_write (c->out, fd) < 0)
    {
      client_disconnect (c, strerror (errno));
      return;
    }
  client_sync_events (c);
}

static void
client_handle_frame (struct ttrpc_client *c, enum ttrpc_read_status st, const struct ttrpc_frame *f)
{
  struct client_call key = { .stream_id = f->header.stream_id };
  struct client_call *call;

  if (st == TTRPC_READ_FRAME && f->header.type != TTRPC_TYPE_RESPONSE)
    return;
  call = RB_FIND (client_call_tree, &c->pending, &key);
  if (call == NULL)
    return; /* its deadline passed already */
  RB_REMOVE (client_call_tree, &c->pending, call);
  if (st == TTRPC_READ_OVERSIZE)
    call_complete (c, call, SHIM_RESOURCE_EXHAUSTED,
                   xasprintf ("message length %u exceed maximum message size of %u",
                              f->header.length, TTRPC_MAX_DATA),
                   NULL);
  else
    call_complete_response (c, call, f->data, f->header.length);
}

static void
client_process_input (struct ttrpc_client *c)
{
  struct ttrpc_frame f;
  enum ttrpc_read_status st;

  while ((st = ttrpc_reader_next (&c->reader, c->in, &f)) != TTRPC_READ_NEED_MORE)
    {
      client_handle_frame (c, st, &f);
      free (f.data);
    }
}

static void
client_read_cb (evutil_socket_t fd, short what, void *arg)
{
  struct ttrpc_client *c = arg;
  (void) what;

  for (int i = 0; i < CLIENT_READS_PER_CB; i++)
    {
      /* Never more than the room left for one frame: unparsed input stays bounded. */
      ssize_t n = ttrpc_io_read (c->in, fd, ttrpc_reader_room (c->in));
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
      if (n <= 0)
        {
          client_disconnect (c, n == 0 ? "connection closed" : strerror (errno));
          return;
        }
      client_process_input (c);
    }
}

/* API. */

struct ttrpc_client *
ttrpc_client_new (struct event_base *base, const char *address)
{
  struct ttrpc_client *c = xcalloc (1, sizeof *c);
  const char *prefix = "unix://";

  if (strncmp (address, prefix, strlen (prefix)) == 0)
    address += strlen (prefix);
  c->base = base;
  c->path = xstrdup (address);
  c->fd = -1;
  RB_INIT (&c->pending);
  TAILQ_INIT (&c->done);
  return c;
}

void
ttrpc_client_free (struct ttrpc_client *c)
{
  struct client_call *call;

  if (c == NULL)
    return;
  while ((call = RB_MIN (client_call_tree, &c->pending)) != NULL)
    {
      RB_REMOVE (client_call_tree, &c->pending, call);
      call_free (call);
    }
  client_disconnect (c, "client closed");
  while ((call = TAILQ_FIRST (&c->done)) != NULL)
    {
      TAILQ_REMOVE (&c->done, call, done_link);
      call_free (call);
    }
  free (c->path);
  free (c);
}

/* Packs the ttrpc envelope for one call into a malloc'd buffer. */
static int
client_pack_request (const char *service, const char *method, const ProtobufCMessage *req,
                     const struct ttrpc_kv *md, size_t n_md, unsigned timeout_ms, uint8_t **out,
                     size_t *out_len, shim_error_t *err)
{
  Ttrpc__Request r = TTRPC__REQUEST__INIT;
  cleanup_free Ttrpc__KeyValue *kvs = xcalloc (n_md, sizeof *kvs);
  cleanup_free Ttrpc__KeyValue **kvp = xcalloc (n_md, sizeof *kvp);
  cleanup_free uint8_t *payload = NULL;

  for (size_t i = 0; i < n_md; i++)
    {
      ttrpc__key_value__init (&kvs[i]);
      kvs[i].key = (char *) md[i].key;
      kvs[i].value = (char *) md[i].value;
      kvp[i] = &kvs[i];
    }
  r.service = (char *) service;
  r.method = (char *) method;
  r.metadata = kvp;
  r.n_metadata = n_md;
  r.timeout_nano = (int64_t) timeout_ms * 1000000;
  r.payload.len = req ? protobuf_c_message_get_packed_size (req) : 0;
  payload = xmalloc (r.payload.len);
  if (req)
    protobuf_c_message_pack (req, payload);
  r.payload.data = payload;
  *out_len = ttrpc__request__get_packed_size (&r);
  if (*out_len > TTRPC_MAX_DATA)
    return shim_error_make (err, 0, SHIM_RESOURCE_EXHAUSTED,
                            "message length %zu exceed maximum message size of %u", *out_len,
                            TTRPC_MAX_DATA);
  *out = xmalloc (*out_len);
  ttrpc__request__pack (&r, *out);
  return 0;
}

static struct client_call *
client_call_new (struct ttrpc_client *c, unsigned timeout_ms, ttrpc_client_cb cb, void *arg)
{
  struct client_call *call = xcalloc (1, sizeof *call);
  call->client = c;
  call->cb = cb;
  call->arg = arg;
  call->ev = xevtimer_new (c->base, call_event_cb, call);
  if (timeout_ms > 0)
    {
      struct timeval tv = timeval_from_ms (timeout_ms);
      evtimer_add (call->ev, &tv);
    }
  return call;
}

int
ttrpc_client_call (struct ttrpc_client *c, const char *service, const char *method,
                   const ProtobufCMessage *req, const struct ttrpc_kv *metadata, size_t n_metadata,
                   unsigned timeout_ms, ttrpc_client_cb cb, void *arg, shim_error_t *err)
{
  cleanup_free uint8_t *frame = NULL;
  size_t len;
  int ret = client_pack_request (service, method, req, metadata, n_metadata, timeout_ms, &frame,
                                 &len, err);
  if (ret < 0)
    return ret;

  struct client_call *call = client_call_new (c, timeout_ms, cb, arg);
  shim_error_t conn_err = NULL;
  if (c->fd < 0 && client_connect (c, &conn_err) < 0)
    {
      /* Reported through the callback, from the loop, like any transport failure. */
      call_complete (c, call, SHIM_UNAVAILABLE, steal_ptr (&conn_err->msg), NULL);
      shim_error_release (&conn_err);
      return 0;
    }
  call->stream_id = c->next_stream_id;
  c->next_stream_id += 2;
  RB_INSERT (client_call_tree, &c->pending, call);
  ttrpc_frame_append (c->out, call->stream_id, TTRPC_TYPE_REQUEST, 0, frame, len);
  if (!c->connecting && ttrpc_io_write (c->out, c->fd) < 0)
    client_disconnect (c, strerror (errno));
  else
    client_sync_events (c);
  return 0;
}
