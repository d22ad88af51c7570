#include "wire/publisher.h"

#include <bsd/sys/queue.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "containerd/services/events/ttrpc/v1/events.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "base/log.h"
#include "base/pb.h"
#include "platform/spawn.h"
#include "wire/ttrpc_client.h"
#include "base/ev.h"
#include "base/util.h"

#define PUBLISHER_MAX_QUEUE 4096
#define PUBLISHER_CALL_TIMEOUT_MS 5000
#define PUBLISHER_MAX_BACKOFF_MS 5000
/* A publish binary cannot say why it failed: after this many tries (about 5 minutes of
 * back-off) an event is taken as rejected, so that it cannot stall the queue for good. */
#define PUBLISHER_BINARY_MAX_ATTEMPTS 60

static const char service_name[] = "containerd.services.events.ttrpc.v1.Events";

struct pending_event
{
  TAILQ_ENTRY (pending_event) link;
  char *namespace;
  char *topic;
  ProtobufCMessage *request; /* ForwardRequest, owned (protobuf-c unpacked form) */
  unsigned attempts;
};

TAILQ_HEAD (event_queue, pending_event);

struct publisher
{
  struct event_base *base;
  struct ttrpc_client *client;
  /* Without a ttrpc address: `<binary> --address <address> publish ...` per event. */
  struct reaper *reaper;
  char *binary;
  char *address;
  struct spawn *spawn;
  struct event_queue queue;
  size_t count;
  unsigned long dropped;
  struct pending_event *in_flight;
  struct event *retry_timer;
  struct event *drain_timer;
  void (*drain_cb) (void *);
  void *drain_arg;
};

static void publisher_kick (struct publisher *p);

struct publisher *
publisher_new (struct event_base *base, const char *ttrpc_address)
{
  struct publisher *p = xcalloc (1, sizeof *p);
  p->base = base;
  p->client = ttrpc_address && ttrpc_address[0] ? ttrpc_client_new (base, ttrpc_address) : NULL;
  TAILQ_INIT (&p->queue);
  return p;
}

static void
pending_free (struct pending_event *e)
{
  free (e->namespace);
  free (e->topic);
  if (e->request)
    protobuf_c_message_free_unpacked (e->request, NULL);
  free (e);
}

void
publisher_free (struct publisher *p)
{
  if (p == NULL)
    return;
  struct pending_event *e, *tmp;
  TAILQ_FOREACH_SAFE (e, &p->queue, link, tmp)
  pending_free (e);
  if (p->retry_timer)
    event_free (p->retry_timer);
  if (p->drain_timer)
    event_free (p->drain_timer);
  if (p->client)
    ttrpc_client_free (p->client);
  if (p->spawn)
    spawn_cancel (p->spawn);
  free (p->binary);
  free (p->address);
  free (p);
}

void
publisher_use_binary (struct publisher *p, struct reaper *reaper, const char *binary,
                      const char *address)
{
  if (p->client || binary == NULL || binary[0] == '\0' || address == NULL || address[0] == '\0')
    return;
  p->reaper = reaper;
  p->binary = xstrdup (binary);
  p->address = xstrdup (address);
}

static bool
can_send (const struct publisher *p)
{
  return p->client != NULL || p->binary != NULL;
}

size_t
publisher_pending (const struct publisher *p)
{
  return p->count;
}

/* Builds the ForwardRequest now, so the envelope carries the time the event happened. It is
 * kept in protobuf-c's unpacked form, which owns all its memory. */
static ProtobufCMessage *
make_forward (const char *namespace, const char *topic, const ProtobufCMessage *event)
{
  struct timespec now = now_realtime ();
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  pb_timestamp_set (&ts, &now);
  Google__Protobuf__Any *any = pb_any_pack (event);
  Containerd__Services__Events__Ttrpc__V1__Envelope env
      = CONTAINERD__SERVICES__EVENTS__TTRPC__V1__ENVELOPE__INIT;
  env.timestamp = &ts;
  env.namespace_ = (char *) namespace;
  env.topic = (char *) topic;
  env.event = any;
  Containerd__Services__Events__Ttrpc__V1__ForwardRequest req
      = CONTAINERD__SERVICES__EVENTS__TTRPC__V1__FORWARD_REQUEST__INIT;
  req.envelope = &env;
  size_t len;
  cleanup_free uint8_t *buf = pb_pack (&req.base, &len);
  pb_any_free (any);
  ProtobufCMessage *m = protobuf_c_message_unpack (
      &containerd__services__events__ttrpc__v1__forward_request__descriptor, NULL, len, buf);
  if (m == NULL)
    abort (); /* only on OOM: we just packed it */
  return m;
}

static void
drop_oldest (struct publisher *p)
{
  struct pending_event *e = TAILQ_FIRST (&p->queue);
  if (e == NULL || e == p->in_flight)
    e = e ? TAILQ_NEXT (e, link) : NULL;
  if (e == NULL)
    return;
  TAILQ_REMOVE (&p->queue, e, link);
  p->count--;
  p->dropped++;
  log_error ("event queue full: dropped %s (%lu dropped so far)", e->topic, p->dropped);
  pending_free (e);
}

void
publisher_publish (struct publisher *p, const char *namespace, const char *topic,
                   const ProtobufCMessage *event)
{
  if (p->count >= PUBLISHER_MAX_QUEUE)
    drop_oldest (p);
  struct pending_event *e = xcalloc (1, sizeof *e);
  e->namespace = xstrdup (namespace);
  e->topic = xstrdup (topic);
  e->request = make_forward (namespace, topic, event);
  TAILQ_INSERT_TAIL (&p->queue, e, link);
  p->count++;
  log_debug ("event %s queued (%zu pending)", topic, p->count);
  publisher_kick (p);
}

static void
drain_done (struct publisher *p)
{
  void (*cb) (void *) = p->drain_cb;
  if (cb == NULL)
    return;
  p->drain_cb = NULL;
  if (p->drain_timer)
    event_del (p->drain_timer);
  cb (p->drain_arg);
}

static void
schedule_retry (struct publisher *p, unsigned attempts)
{
  unsigned ms = attempts * 1000u;
  if (ms > PUBLISHER_MAX_BACKOFF_MS)
    ms = PUBLISHER_MAX_BACKOFF_MS;
  struct timeval tv = timeval_from_ms (ms);
  evtimer_add (p->retry_timer, &tv);
}

/* The head event is done with, delivered or not: the next one goes. */
static void
finish_head (struct publisher *p, struct pending_event *e, bool delivered)
{
  if (delivered)
    log_debug ("event %s forwarded", e->topic);
  else
    log_error ("event %s dropped (%lu dropped so far)", e->topic, ++p->dropped);
  TAILQ_REMOVE (&p->queue, e, link);
  p->count--;
  pending_free (e);
  if (p->count == 0)
    drain_done (p);
  publisher_kick (p);
}

static void
forward_done_cb (int code, const char *message, const uint8_t *payload, size_t len, void *arg)
{
  struct publisher *p = arg;
  struct pending_event *e = p->in_flight;
  (void) payload;
  (void) len;
  p->in_flight = NULL;
  if (code == SHIM_OK)
    {
      finish_head (p, e, true);
      return;
    }
  e->attempts++;
  log_warn ("forward %s failed (attempt %u): %s", e->topic, e->attempts, message);
  /* containerd away (unavailable, no answer in time): keep the event and its place. An
   * answer that rejects it would reject it again: drop it rather than stall the queue. */
  if (code == SHIM_UNAVAILABLE || code == SHIM_DEADLINE_EXCEEDED)
    schedule_retry (p, e->attempts);
  else
    finish_head (p, e, false);
}

static void
forward_raw (struct publisher *p, struct pending_event *e)
{
  struct ttrpc_kv md = { "containerd-namespace-ttrpc", e->namespace };
  cleanup_error shim_error_t err = NULL;
  p->in_flight = e;
  if (ttrpc_client_call (p->client, service_name, "Forward", e->request, &md, 1,
                         PUBLISHER_CALL_TIMEOUT_MS, forward_done_cb, p, &err)
      < 0)
    {
      /* Only an oversized event fails here, and it always will. */
      p->in_flight = NULL;
      log_error ("forward %s: %s", e->topic, err->msg);
      finish_head (p, e, false);
    }
}

static void
publish_done_cb (const struct spawn_result *res, void *arg)
{
  struct publisher *p = arg;
  struct pending_event *e = p->in_flight;
  p->spawn = NULL;
  p->in_flight = NULL;
  if (res->exit_code == 0 && !res->timed_out)
    {
      finish_head (p, e, true);
      return;
    }
  e->attempts++;
  if (res->exec_errno != 0)
    log_warn ("cannot run %s: %s", p->binary, strerror (res->exec_errno));
  else
    log_warn ("%s publish %s failed (attempt %u, exit %d%s): %.*s", p->binary, e->topic,
              e->attempts, res->exit_code, res->timed_out ? ", timed out" : "", (int) res->err_len,
              res->err ? res->err : "");
  /* A binary that does not run will never run. */
  if (res->exec_errno != 0 || e->attempts >= PUBLISHER_BINARY_MAX_ATTEMPTS)
    finish_head (p, e, false);
  else
    schedule_retry (p, e->attempts);
}

/* The legacy path of runtime v2: the publish binary (containerd itself) reads the event's
 * Any on stdin and publishes it over gRPC. One child at a time keeps the order. */
static void
publish_binary (struct publisher *p, struct pending_event *e)
{
  const Containerd__Services__Events__Ttrpc__V1__ForwardRequest *req = (const void *) e->request;
  size_t len = 0;
  cleanup_free uint8_t *any = pb_pack (&req->envelope->event->base, &len);
  char *const argv[] = { p->binary,
                         (char *) "--address",
                         p->address,
                         (char *) "publish",
                         (char *) "--topic",
                         e->topic,
                         (char *) "--namespace",
                         e->namespace,
                         NULL };
  struct spawn_req sreq = {
    .argv = argv,
    .stdin_fd = SPAWN_FD_NULL,
    .stdin_data = any,
    .stdin_len = len,
    .stdout_fd = SPAWN_FD_NULL,
    .stderr_fd = SPAWN_FD_CAPTURE,
    .timeout_ms = PUBLISHER_CALL_TIMEOUT_MS,
    .capture_max = 4096,
  };
  cleanup_error shim_error_t err = NULL;
  p->in_flight = e;
  p->spawn = spawn_start (p->base, p->reaper, &sreq, publish_done_cb, p, &err);
  if (p->spawn == NULL)
    {
      /* Out of processes for now: try again later, in place. */
      p->in_flight = NULL;
      log_warn ("publish %s: %s", e->topic, err->msg);
      schedule_retry (p, ++e->attempts);
    }
}

static void
retry_cb (evutil_socket_t fd, short what, void *arg)
{
  (void) fd;
  (void) what;
  publisher_kick (arg);
}

/* Sends the head of the queue unless a send or a back-off is already under way. */
static void
publisher_kick (struct publisher *p)
{
  if (p->retry_timer == NULL)
    p->retry_timer = xevtimer_new (p->base, retry_cb, p);
  if (p->in_flight || evtimer_pending (p->retry_timer, NULL) || TAILQ_EMPTY (&p->queue))
    return;
  if (p->client)
    forward_raw (p, TAILQ_FIRST (&p->queue));
  else if (p->binary)
    publish_binary (p, TAILQ_FIRST (&p->queue));
  else
    log_warn ("no TTRPC_ADDRESS nor publish binary: %zu events cannot be published", p->count);
}

static void
drain_timeout_cb (evutil_socket_t fd, short what, void *arg)
{
  struct publisher *p = arg;
  (void) fd;
  (void) what;
  log_warn ("%zu events still unpublished", p->count);
  drain_done (p);
}

void
publisher_drain (struct publisher *p, unsigned timeout_ms, void (*cb) (void *arg), void *arg)
{
  p->drain_cb = cb;
  p->drain_arg = arg;
  if (p->count == 0 || !can_send (p))
    {
      drain_done (p);
      return;
    }
  if (p->drain_timer == NULL)
    p->drain_timer = xevtimer_new (p->base, drain_timeout_cb, p);
  struct timeval tv = timeval_from_ms (timeout_ms);
  evtimer_add (p->drain_timer, &tv);
}
