#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/log.h"
#include "testutil.h"
#include "ttrpc.pb-c.h"
#include "wire/ttrpc_client.h"
#include "wire/ttrpc_server.h"
#include "base/util.h"

#define SVC "test.v1.Echo"
#define MAX_PARKED 8
#define MAX_RESULTS 8

struct result
{
  int code;
  char message[128];
  char key[64];
  char value[64];
  int calls; /* how often the callback ran for this slot */
};

struct fx
{
  struct event_base *base;
  char dir[64];
  char path[100]; /* fits sun_path */
  struct ttrpc_server *server;
  struct ttrpc_client *client;
  struct ttrpc_call *parked[MAX_PARKED];
  size_t n_parked;
  struct result results[MAX_RESULTS];
  int64_t last_timeout_ns;
  int n_done;
  bool free_client_in_cb;
};

/* Server side. */

static void
echo_handler (struct ttrpc_call *call, const ProtobufCMessage *req, void *arg)
{
  const Ttrpc__KeyValue *in = (const Ttrpc__KeyValue *) req;
  Ttrpc__KeyValue out = TTRPC__KEY_VALUE__INIT;
  struct fx *fx = arg;
  fx->last_timeout_ns = ttrpc_call_timeout_ns (call);
  out.key = in->key;
  out.value = (char *) ttrpc_call_namespace (call);
  ttrpc_call_reply (call, &out.base);
}

static void
park_handler (struct ttrpc_call *call, const ProtobufCMessage *req, void *arg)
{
  struct fx *fx = arg;
  (void) req;
  assert_true (fx->n_parked < MAX_PARKED);
  fx->parked[fx->n_parked++] = call;
}

static void
fail_handler (struct ttrpc_call *call, const ProtobufCMessage *req, void *arg)
{
  shim_error_t err = NULL;
  (void) req;
  (void) arg;
  shim_error_make (&err, 0, SHIM_FAILED_PRECONDITION, "cannot start a running process");
  ttrpc_call_fail (call, &err);
}

static const struct ttrpc_method methods[] = {
  { SVC, "Echo", &ttrpc__key_value__descriptor, echo_handler },
  { SVC, "Park", &ttrpc__key_value__descriptor, park_handler },
  { SVC, "Fail", &ttrpc__key_value__descriptor, fail_handler },
};

static void
server_start (struct fx *fx)
{
  shim_error_t err = NULL;
  unlink (fx->path);
  fx->server = ttrpc_server_new (fx->base, listen_unix (fx->path), methods, ARRAY_SIZE (methods),
                                 fx, &err);
  assert_non_null (fx->server);
}

/* Loop helpers. */

static int want_done;

static bool
done_reached (void *arg)
{
  return ((struct fx *) arg)->n_done >= want_done;
}

/* Runs the loop until n callbacks ran in total, failing after 5 s. */
static void
wait_done (struct fx *fx, int n)
{
  want_done = n;
  run_until_or_fail (fx->base, done_reached, fx);
  assert_int_equal (fx->n_done, n);
}

static void
wait_parked (struct fx *fx, size_t n)
{
  for (int i = 0; i < 500 && fx->n_parked < n; i++)
    run_for_ms (fx->base, 10);
  assert_int_equal (fx->n_parked, n);
}

/* Client side. */

struct slot
{
  struct fx *fx;
  int index;
};

static struct slot slots[MAX_RESULTS];

static void
result_cb (int code, const char *message, const uint8_t *payload, size_t len, void *arg)
{
  struct slot *slot = arg;
  struct fx *fx = slot->fx;
  struct result *r = &fx->results[slot->index];

  r->calls++;
  r->code = code;
  snprintf (r->message, sizeof r->message, "%s", message);
  if (code == SHIM_OK)
    {
      Ttrpc__KeyValue *kv = ttrpc__key_value__unpack (NULL, len, payload);
      assert_non_null (kv);
      snprintf (r->key, sizeof r->key, "%s", kv->key);
      snprintf (r->value, sizeof r->value, "%s", kv->value);
      ttrpc__key_value__free_unpacked (kv, NULL);
    }
  fx->n_done++;
  if (fx->free_client_in_cb)
    {
      ttrpc_client_free (fx->client);
      fx->client = NULL;
    }
}

static void
call (struct fx *fx, int slot, const char *method, const char *key, unsigned timeout_ms)
{
  Ttrpc__KeyValue req = TTRPC__KEY_VALUE__INIT;
  const struct ttrpc_kv md[]
      = { { "containerd-namespace-ttrpc", "default" }, { "x-trace", "abc" } };
  shim_error_t err = NULL;
  int done_before = fx->n_done;

  req.key = (char *) key;
  slots[slot] = (struct slot){ fx, slot };
  assert_int_equal (ttrpc_client_call (fx->client, SVC, method, &req.base, md, ARRAY_SIZE (md),
                                       timeout_ms, result_cb, &slots[slot], &err),
                    0);
  assert_null (err);
  /* never called back from inside ttrpc_client_call */
  assert_int_equal (fx->n_done, done_before);
}

static void
expect_result (struct fx *fx, int slot, int code, const char *message)
{
  assert_int_equal (fx->results[slot].calls, 1);
  assert_int_equal (fx->results[slot].code, code);
  if (message)
    assert_string_equal (fx->results[slot].message, message);
}

/* Fixture. */

static int
setup (void **state)
{
  struct fx *fx = xcalloc (1, sizeof *fx);
  log_init ("test", "ttrpc", getenv ("TEST_DEBUG") != NULL);
  snprintf (fx->dir, sizeof fx->dir, "/tmp/ttrpc-client-XXXXXX");
  assert_non_null (mkdtemp (fx->dir));
  snprintf (fx->path, sizeof fx->path, "%s/s.sock", fx->dir);
  fx->base = event_base_new ();
  server_start (fx);
  cleanup_free char *address = xasprintf ("unix://%s", fx->path);
  fx->client = ttrpc_client_new (fx->base, address);
  *state = fx;
  return 0;
}

static int
teardown (void **state)
{
  struct fx *fx = *state;
  ttrpc_client_free (fx->client);
  for (size_t i = 0; i < fx->n_parked; i++)
    if (fx->parked[i])
      ttrpc_call_reply (fx->parked[i], NULL);
  ttrpc_server_free (fx->server);
  event_base_free (fx->base);
  unlink (fx->path);
  rmdir (fx->dir);
  free (fx);
  return 0;
}

/* Tests. */

static void
test_round_trip (void **state)
{
  struct fx *fx = *state;
  call (fx, 0, "Echo", "ping", 0);
  call (fx, 1, "Echo", "pong", 1500);
  wait_done (fx, 2);
  expect_result (fx, 0, SHIM_OK, "");
  assert_string_equal (fx->results[0].key, "ping");
  assert_string_equal (fx->results[0].value, "default");
  expect_result (fx, 1, SHIM_OK, "");
  assert_string_equal (fx->results[1].key, "pong");
  assert_int_equal (fx->last_timeout_ns, 1500000000);
  /* the connection is reused */
  call (fx, 2, "Echo", "again", 0);
  wait_done (fx, 3);
  expect_result (fx, 2, SHIM_OK, "");
  assert_int_equal (fx->last_timeout_ns, 0);
  assert_int_equal (ttrpc_server_connection_count (fx->server), 1);
}

static void
test_server_error (void **state)
{
  struct fx *fx = *state;
  call (fx, 0, "Fail", "x", 0);
  call (fx, 1, "Missing", "x", 0);
  wait_done (fx, 2);
  expect_result (fx, 0, SHIM_FAILED_PRECONDITION,
                 "cannot start a running process: failed precondition");
  expect_result (fx, 1, SHIM_UNIMPLEMENTED, "method Missing");
}

static void
test_out_of_order (void **state)
{
  struct fx *fx = *state;
  Ttrpc__KeyValue a = TTRPC__KEY_VALUE__INIT, b = TTRPC__KEY_VALUE__INIT;
  call (fx, 0, "Park", "a", 0);
  call (fx, 1, "Park", "b", 0);
  wait_parked (fx, 2);
  a.key = (char *) "for-a";
  b.key = (char *) "for-b";
  ttrpc_call_reply (steal_ptr (&fx->parked[1]), &b.base);
  wait_done (fx, 1);
  expect_result (fx, 1, SHIM_OK, "");
  assert_string_equal (fx->results[1].key, "for-b");
  ttrpc_call_reply (steal_ptr (&fx->parked[0]), &a.base);
  wait_done (fx, 2);
  assert_string_equal (fx->results[0].key, "for-a");
}

static void
test_deadline (void **state)
{
  struct fx *fx = *state;
  Ttrpc__KeyValue out = TTRPC__KEY_VALUE__INIT;
  call (fx, 0, "Park", "slow", 50);
  wait_done (fx, 1);
  expect_result (fx, 0, SHIM_DEADLINE_EXCEEDED, NULL);
  /* the late answer is ignored and the connection keeps working */
  wait_parked (fx, 1);
  ttrpc_call_reply (steal_ptr (&fx->parked[0]), &out.base);
  call (fx, 1, "Echo", "next", 0);
  wait_done (fx, 2);
  expect_result (fx, 0, SHIM_DEADLINE_EXCEEDED, NULL);
  expect_result (fx, 1, SHIM_OK, "");
  assert_string_equal (fx->results[1].key, "next");
}

static void
test_server_gone_then_back (void **state)
{
  struct fx *fx = *state;
  call (fx, 0, "Park", "a", 0);
  call (fx, 1, "Park", "b", 5000);
  wait_parked (fx, 2);
  ttrpc_server_free (fx->server);
  fx->server = NULL;
  wait_done (fx, 2);
  expect_result (fx, 0, SHIM_UNAVAILABLE, NULL);
  expect_result (fx, 1, SHIM_UNAVAILABLE, NULL);
  /* nothing listens now: the next call fails, through the callback */
  call (fx, 2, "Echo", "nobody", 0);
  wait_done (fx, 3);
  expect_result (fx, 2, SHIM_UNAVAILABLE, NULL);
  server_start (fx);
  call (fx, 3, "Echo", "back", 0);
  wait_done (fx, 4);
  expect_result (fx, 3, SHIM_OK, "");
  assert_string_equal (fx->results[3].key, "back");
}

static void
test_missing_socket (void **state)
{
  struct fx *fx = *state;
  ttrpc_client_free (fx->client);
  cleanup_free char *path = xasprintf ("%s/missing.sock", fx->dir);
  fx->client = ttrpc_client_new (fx->base, path);
  call (fx, 0, "Echo", "x", 1000);
  wait_done (fx, 1);
  expect_result (fx, 0, SHIM_UNAVAILABLE, NULL);
  assert_non_null (strstr (fx->results[0].message, "missing.sock"));
  /* the deadline of a call that already failed never fires a second callback */
  run_for_ms (fx->base, 20);
  assert_int_equal (fx->results[0].calls, 1);
}

static void
test_free_with_pending_calls (void **state)
{
  struct fx *fx = *state;
  call (fx, 0, "Park", "a", 0);
  call (fx, 1, "Park", "b", 30);
  wait_parked (fx, 2);
  call (fx, 2, "Echo", "queued", 0);
  ttrpc_client_free (fx->client);
  fx->client = NULL;
  run_for_ms (fx->base, 60);
  assert_int_equal (fx->n_done, 0);
}

static void
test_free_from_callback (void **state)
{
  struct fx *fx = *state;
  ttrpc_client_free (fx->client);
  cleanup_free char *path = xasprintf ("%s/missing.sock", fx->dir);
  fx->client = ttrpc_client_new (fx->base, path);
  call (fx, 0, "Echo", "x", 0);
  call (fx, 1, "Echo", "y", 0);
  fx->free_client_in_cb = true;
  wait_done (fx, 1);
  run_for_ms (fx->base, 20);
  /* the second completion was queued but the client is gone: no callback */
  assert_int_equal (fx->n_done, 1);
  assert_null (fx->client);
}

static void
test_oversized_request (void **state)
{
  struct fx *fx = *state;
  Ttrpc__KeyValue req = TTRPC__KEY_VALUE__INIT;
  shim_error_t err = NULL;
  cleanup_free char *big = xmalloc (5u << 20);

  memset (big, 'x', (5u << 20) - 1);
  big[(5u << 20) - 1] = '\0';
  req.key = big;
  slots[0] = (struct slot){ fx, 0 };
  assert_true (
      ttrpc_client_call (fx->client, SVC, "Echo", &req.base, NULL, 0, 0, result_cb, &slots[0], &err)
      < 0);
  assert_non_null (err);
  assert_int_equal (err->code, SHIM_RESOURCE_EXHAUSTED);
  shim_error_release (&err);
  run_for_ms (fx->base, 20);
  assert_int_equal (fx->n_done, 0);
}

static bool accepted;
static int late_listen_fd;

static void
start_server_cb (evutil_socket_t fd, short what, void *arg)
{
  struct fx *fx = arg;
  shim_error_t err = NULL;
  (void) fd;
  (void) what;
  fx->server = ttrpc_server_new (fx->base, late_listen_fd, methods, ARRAY_SIZE (methods), fx, &err);
  assert_non_null (fx->server);
  accepted = true;
}

/* A full listen backlog makes a non-blocking AF_UNIX connect fail with EAGAIN: the
 * client retries until the server catches up. */
static void
test_connect_backlog_full (void **state)
{
  struct fx *fx = *state;
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  cleanup_free char *path = xasprintf ("%s/slow.sock", fx->dir);
  int lfd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int filler = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

  memcpy (sa.sun_path, path, strlen (path));
  assert_int_equal (bind (lfd, (struct sockaddr *) &sa, sizeof sa), 0);
  assert_int_equal (listen (lfd, 0), 0);
  assert_int_equal (connect (filler, (struct sockaddr *) &sa, sizeof sa), 0);
  ttrpc_server_free (fx->server);
  fx->server = NULL;
  ttrpc_client_free (fx->client);
  fx->client = ttrpc_client_new (fx->base, path);
  call (fx, 0, "Echo", "patient", 2000);
  /* the listener starts accepting 100 ms later */
  struct timeval tv = { 0, 100000 };
  accepted = false;
  late_listen_fd = lfd;
  event_base_once (fx->base, -1, EV_TIMEOUT, start_server_cb, fx, &tv);
  wait_done (fx, 1);
  assert_true (accepted);
  expect_result (fx, 0, SHIM_OK, "");
  assert_string_equal (fx->results[0].key, "patient");
  close (filler);
  unlink (path);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_round_trip, setup, teardown),
    cmocka_unit_test_setup_teardown (test_server_error, setup, teardown),
    cmocka_unit_test_setup_teardown (test_out_of_order, setup, teardown),
    cmocka_unit_test_setup_teardown (test_deadline, setup, teardown),
    cmocka_unit_test_setup_teardown (test_server_gone_then_back, setup, teardown),
    cmocka_unit_test_setup_teardown (test_missing_socket, setup, teardown),
    cmocka_unit_test_setup_teardown (test_free_with_pending_calls, setup, teardown),
    cmocka_unit_test_setup_teardown (test_free_from_callback, setup, teardown),
    cmocka_unit_test_setup_teardown (test_oversized_request, setup, teardown),
    cmocka_unit_test_setup_teardown (test_connect_backlog_full, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
