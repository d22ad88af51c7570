/* Events over ttrpc to a fake containerd (the real ttrpc server on a unix socket, serving
 * Events/Forward): queued events arrive in order, one at a time; an unavailable containerd is
 * retried with the event kept in its place; an event containerd rejects, or one too large to
 * send, is dropped without stalling the rest. */

#include "testutil.h"

#include "containerd/events/task.pb-c.h"
#include "containerd/services/events/ttrpc/v1/events.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "base/log.h"
#include "wire/publisher.h"
#include "wire/ttrpc_server.h"

#define MAX_SEEN 64

struct fx
{
  struct event_base *base;
  char dir[64];
  char path[100];
  struct ttrpc_server *server;
  struct publisher *pub;
  /* what the fake containerd got, in order: "<namespace> <topic> <container id>" */
  char *seen[MAX_SEEN];
  int n_seen;
  int refuse_unavailable; /* answer this many calls Unavailable first */
  const char *reject_id; /* answer InvalidArgument for this container */
  bool drained;
};

static void
forward_handler (struct ttrpc_call *call, const ProtobufCMessage *req, void *arg)
{
  struct fx *fx = arg;
  const Containerd__Services__Events__Ttrpc__V1__ForwardRequest *fwd = (const void *) req;
  const Containerd__Services__Events__Ttrpc__V1__Envelope *env = fwd->envelope;
  assert_non_null (env);
  assert_string_equal (env->namespace_, ttrpc_call_namespace (call));
  Containerd__Events__TaskStart *ev = containerd__events__task_start__unpack (
      NULL, env->event->value.len, env->event->value.data);
  assert_non_null (ev);
  if (fx->n_seen++ < MAX_SEEN)
    fx->seen[fx->n_seen - 1]
        = xasprintf ("%s %s %s", env->namespace_, env->topic, ev->container_id);
  bool reject = fx->reject_id && strcmp (ev->container_id, fx->reject_id) == 0;
  containerd__events__task_start__free_unpacked (ev, NULL);

  shim_error_t err = NULL;
  if (fx->refuse_unavailable > 0)
    {
      fx->refuse_unavailable--;
      shim_error_make (&err, 0, SHIM_UNAVAILABLE, "not now");
      ttrpc_call_fail (call, &err);
    }
  else if (reject)
    {
      shim_error_make (&err, 0, SHIM_INVALID_ARGUMENT, "no such event type");
      ttrpc_call_fail (call, &err);
    }
  else
    {
      Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
      ttrpc_call_reply (call, &empty.base);
    }
}

static const struct ttrpc_method methods[] = {
  { "containerd.services.events.ttrpc.v1.Events", "Forward",
    &containerd__services__events__ttrpc__v1__forward_request__descriptor, forward_handler },
};

static void
server_start (struct fx *fx)
{
  shim_error_t err = NULL;
  fx->server = ttrpc_server_new (fx->base, listen_unix (fx->path), methods, ARRAY_SIZE (methods),
                                 fx, &err);
  assert_non_null (fx->server);
}

static int
setup (void **state)
{
  struct fx *fx = xcalloc (1, sizeof *fx);
  log_init ("test", "publisher", false);
  fx->base = event_base_new ();
  snprintf (fx->dir, sizeof fx->dir, "/tmp/test-pub-XXXXXX");
  assert_non_null (mkdtemp (fx->dir));
  snprintf (fx->path, sizeof fx->path, "%s/ttrpc.sock", fx->dir);
  fx->pub = publisher_new (fx->base, fx->path);
  *state = fx;
  return 0;
}

static int
teardown (void **state)
{
  struct fx *fx = *state;
  publisher_free (fx->pub);
  if (fx->server)
    ttrpc_server_free (fx->server);
  for (int i = 0; i < fx->n_seen && i < MAX_SEEN; i++)
    free (fx->seen[i]);
  event_base_free (fx->base);
  remove_tree (fx->dir);
  free (fx);
  return 0;
}

static void
publish (struct fx *fx, const char *ns, const char *topic, const char *id)
{
  Containerd__Events__TaskStart ev = CONTAINERD__EVENTS__TASK_START__INIT;
  ev.container_id = (char *) id;
  ev.pid = 1;
  publisher_publish (fx->pub, ns, topic, &ev.base);
}

/* Runs the loop until the queue is empty, which publisher_drain reports. */
static void
drain (struct fx *fx)
{
  fx->drained = false;
  publisher_drain (fx->pub, 10000, raise_flag, &fx->drained);
  run_until_or_fail (fx->base, flag_raised, &fx->drained);
  assert_int_equal (publisher_pending (fx->pub), 0);
}

static void
assert_seen (const struct fx *fx, const char *const *want)
{
  int n = 0;
  for (; want[n]; n++)
    {
      assert_true (n < fx->n_seen);
      assert_string_equal (fx->seen[n], want[n]);
    }
  assert_int_equal (fx->n_seen, n);
}

static void
test_queued_events_arrive_in_order (void **state)
{
  struct fx *fx = *state;
  server_start (fx);
  publish (fx, "ns1", "/tasks/create", "c1");
  publish (fx, "ns1", "/tasks/start", "c1");
  publish (fx, "ns2", "/tasks/create", "c2");
  publish (fx, "ns1", "/tasks/exit", "c1");
  assert_int_equal (publisher_pending (fx->pub), 4);
  drain (fx);
  assert_seen (fx, (const char *const[]){ "ns1 /tasks/create c1", "ns1 /tasks/start c1",
                                          "ns2 /tasks/create c2", "ns1 /tasks/exit c1", NULL });
}

/* containerd answers Unavailable (restarting): the event is sent again, keeping its place. */
static void
test_unavailable_is_retried_in_place (void **state)
{
  struct fx *fx = *state;
  server_start (fx);
  fx->refuse_unavailable = 1;
  publish (fx, "ns1", "/tasks/create", "c1");
  publish (fx, "ns1", "/tasks/start", "c1");
  drain (fx);
  assert_seen (fx, (const char *const[]){ "ns1 /tasks/create c1", "ns1 /tasks/create c1",
                                          "ns1 /tasks/start c1", NULL });
}

/* No containerd at all yet (its socket is missing), then it comes: nothing is lost. */
static void
test_events_wait_for_containerd (void **state)
{
  struct fx *fx = *state;
  publish (fx, "ns1", "/tasks/create", "c1");
  publish (fx, "ns1", "/tasks/start", "c1");
  run_for_ms (fx->base, 50); /* any try meanwhile fails: no socket */
  assert_int_equal (publisher_pending (fx->pub), 2);
  server_start (fx);
  drain (fx);
  assert_seen (fx, (const char *const[]){ "ns1 /tasks/create c1", "ns1 /tasks/start c1", NULL });
}

static void
test_rejected_event_is_dropped (void **state)
{
  struct fx *fx = *state;
  server_start (fx);
  fx->reject_id = "bad";
  publish (fx, "ns1", "/tasks/create", "c1");
  publish (fx, "ns1", "/tasks/create", "bad");
  publish (fx, "ns1", "/tasks/start", "c1");
  drain (fx);
  /* tried once, not again */
  assert_seen (fx, (const char *const[]){ "ns1 /tasks/create c1", "ns1 /tasks/create bad",
                                          "ns1 /tasks/start c1", NULL });
}

/* An event over ttrpc's 4 MiB frame can never be sent: dropped, the next one goes. */
static void
test_oversized_event_is_dropped (void **state)
{
  struct fx *fx = *state;
  server_start (fx);
  size_t big_len = 5 * 1024 * 1024;
  char *big = xmalloc (big_len + 1);
  memset (big, 'x', big_len);
  big[big_len] = '\0';
  publish (fx, "ns1", "/tasks/create", "c1");
  publish (fx, "ns1", "/tasks/create", big);
  publish (fx, "ns1", "/tasks/start", "c1");
  free (big);
  drain (fx);
  assert_seen (fx, (const char *const[]){ "ns1 /tasks/create c1", "ns1 /tasks/start c1", NULL });
}

/* The queue holds 4096 events: past that the oldest go, but never the one being sent. */
static void
test_overflow_drops_the_oldest_waiting (void **state)
{
  struct fx *fx = *state;
  for (int i = 0; i < 4100; i++)
    {
      char id[16];
      snprintf (id, sizeof id, "c%d", i);
      publish (fx, "ns1", "/tasks/create", id);
    }
  assert_int_equal (publisher_pending (fx->pub), 4096);
  server_start (fx);
  drain (fx);
  assert_int_equal (fx->n_seen, 4096);
  assert_string_equal (fx->seen[0], "ns1 /tasks/create c0"); /* in flight: kept */
  assert_string_equal (fx->seen[1], "ns1 /tasks/create c5"); /* c1..c4 dropped */
  assert_string_equal (fx->seen[2], "ns1 /tasks/create c6");
}

int
main (void)
{
  signal (SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_queued_events_arrive_in_order, setup, teardown),
    cmocka_unit_test_setup_teardown (test_unavailable_is_retried_in_place, setup, teardown),
    cmocka_unit_test_setup_teardown (test_events_wait_for_containerd, setup, teardown),
    cmocka_unit_test_setup_teardown (test_rejected_event_is_dropped, setup, teardown),
    cmocka_unit_test_setup_teardown (test_oversized_event_is_dropped, setup, teardown),
    cmocka_unit_test_setup_teardown (test_overflow_drops_the_oldest_waiting, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
