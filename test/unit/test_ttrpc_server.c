#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "google/rpc/status.pb-c.h"
#include "base/log.h"
#include "testutil.h"
#include "ttrpc.pb-c.h"
#include "wire/ttrpc_server.h"
#include "wire/ttrpc_wire.h"
#include "base/util.h"

#define SVC "test.v1.Echo"
#define MAX_RESPS 16
#define MAX_PARKED 8

struct resp
{
  uint32_t stream_id;
  int code;
  char message[128];
  char key[64]; /* of the KeyValue payload */
  char value[64]; /* of the KeyValue payload */
};

/* A raw ttrpc peer in the test's own loop: frames out, decoded responses in. */
struct raw_client
{
  int fd;
  struct event *read_ev;
  struct event *write_ev;
  struct evbuffer *in;
  struct evbuffer *out;
  struct ttrpc_reader reader;
  struct resp resps[MAX_RESPS];
  size_t n_resps;
  bool eof;
};

struct fx
{
  struct event_base *base;
  char dir[64];
  char path[100]; /* fits sun_path */
  struct ttrpc_server *server;
  struct ttrpc_call *parked[MAX_PARKED];
  size_t n_parked;
  struct raw_client rc;
  size_t n_closed; /* ttrpc_server_on_close calls */
  size_t closed_remaining;
};

/* Handlers. */

static void
echo_handler (struct ttrpc_call *call, const ProtobufCMessage *req, void *arg)
{
  const Ttrpc__KeyValue *in = (const Ttrpc__KeyValue *) req;
  Ttrpc__KeyValue out = TTRPC__KEY_VALUE__INIT;
  (void) arg;
  out.key = in->key;
  out.value = (char *) ttrpc_call_namespace (call);
  /* answered from inside the handler */
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
  shim_error_make (&err, 0, SHIM_NOT_FOUND, "thing %s: not found", "x");
  ttrpc_call_fail (call, &err);
  assert_null (err);
}

static void
shutdown_handler (struct ttrpc_call *call, const ProtobufCMessage *req, void *arg)
{
  struct fx *fx = arg;
  Ttrpc__KeyValue out = TTRPC__KEY_VALUE__INIT;
  (void) req;
  ttrpc_server_free (fx->server);
  fx->server = NULL;
  assert_false (ttrpc_call_connected (call));
  ttrpc_call_reply (call, &out.base);
}

static const struct ttrpc_method methods[] = {
  { SVC, "Echo", &ttrpc__key_value__descriptor, echo_handler },
  { SVC, "Park", &ttrpc__key_value__descriptor, park_handler },
  { SVC, "Fail", &ttrpc__key_value__descriptor, fail_handler },
  { SVC, "Shutdown", &ttrpc__key_value__descriptor, shutdown_handler },
};

/* Loop conditions, for run_until_or_fail (fx->base, cond, fx). */

static size_t want_resps;

static bool
got_resps (void *arg)
{
  struct fx *fx = arg;
  return fx->rc.n_resps >= want_resps || fx->rc.eof;
}

static void
wait_resps (struct fx *fx, size_t n)
{
  want_resps = n;
  run_until_or_fail (fx->base, got_resps, fx);
  assert_int_equal (fx->rc.n_resps, n);
}

static size_t want_parked;

static bool
got_parked (void *arg)
{
  struct fx *fx = arg;
  return fx->n_parked >= want_parked;
}

static void
wait_parked (struct fx *fx, size_t n)
{
  want_parked = n;
  run_until_or_fail (fx->base, got_parked, fx);
}

/* Raw client. */

static void
rc_record (struct raw_client *rc, const struct ttrpc_frame *f)
{
  assert_int_equal (f->header.type, TTRPC_TYPE_RESPONSE);
  assert_int_equal (f->header.flags, 0);
  /* past MAX_RESPS responses are counted, not kept */
  struct resp spare, *r = rc->n_resps < MAX_RESPS ? &rc->resps[rc->n_resps] : &spare;
  rc->n_resps++;
  Ttrpc__Response *resp = ttrpc__response__unpack (NULL, f->header.length, f->data);
  assert_non_null (resp);
  /* status is always present, also on success */
  assert_non_null (resp->status);
  r->stream_id = f->header.stream_id;
  r->code = resp->status->code;
  snprintf (r->message, sizeof r->message, "%s", resp->status->message);
  if (r->code == 0)
    {
      Ttrpc__KeyValue *kv = ttrpc__key_value__unpack (NULL, resp->payload.len, resp->payload.data);
      assert_non_null (kv);
      snprintf (r->key, sizeof r->key, "%s", kv->key);
      snprintf (r->value, sizeof r->value, "%s", kv->value);
      ttrpc__key_value__free_unpacked (kv, NULL);
    }
  else
    assert_int_equal (resp->payload.len, 0);
  ttrpc__response__free_unpacked (resp, NULL);
}

static void
rc_read_cb (evutil_socket_t fd, short what, void *arg)
{
  struct raw_client *rc = arg;
  struct ttrpc_frame f;
  (void) what;
  ssize_t n = ttrpc_io_read (rc->in, fd, ttrpc_reader_room (rc->in));
  if (n < 0 && errno == EAGAIN)
    return;
  if (n <= 0)
    {
      rc->eof = true;
      event_del (rc->read_ev);
      return;
    }
  while (ttrpc_reader_next (&rc->reader, rc->in, &f) == TTRPC_READ_FRAME)
    {
      rc_record (rc, &f);
      free (f.data);
    }
}

static void
rc_write_cb (evutil_socket_t fd, short what, void *arg)
{
  struct raw_client *rc = arg;
  (void) what;
  /* the server closed a connection it found stalled */
  if (ttrpc_io_write (rc->out, fd) < 0)
    evbuffer_drain (rc->out, evbuffer_get_length (rc->out));
  if (evbuffer_get_length (rc->out) == 0)
    event_del (rc->write_ev);
}

static void
rc_connect_to (struct fx *fx, struct raw_client *rc)
{
  struct sockaddr_un sa = unix_addr (fx->path);
  rc->fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  assert_true (rc->fd >= 0);
  assert_int_equal (connect (rc->fd, (struct sockaddr *) &sa, sizeof sa), 0);
  rc->read_ev = event_new (fx->base, rc->fd, EV_READ | EV_PERSIST, rc_read_cb, rc);
  rc->write_ev = event_new (fx->base, rc->fd, EV_WRITE | EV_PERSIST, rc_write_cb, rc);
  rc->in = evbuffer_new ();
  rc->out = evbuffer_new ();
  event_add (rc->read_ev, NULL);
}

static void
rc_connect (struct fx *fx)
{
  rc_connect_to (fx, &fx->rc);
}

static void
rc_close (struct raw_client *rc)
{
  if (rc->fd < 0)
    return;
  event_free (rc->read_ev);
  event_free (rc->write_ev);
  evbuffer_free (rc->in);
  evbuffer_free (rc->out);
  close (rc->fd);
  rc->fd = -1;
}

static void
rc_send_frame (struct raw_client *rc, uint32_t id, uint8_t type, uint8_t flags, const void *data,
               size_t len)
{
  assert_int_equal (ttrpc_frame_append (rc->out, id, type, flags, data, len), 0);
  event_add (rc->write_ev, NULL);
}

static void
rc_send_raw_payload (struct raw_client *rc, uint32_t id, const char *method, const void *payload,
                     size_t len, const char *ns)
{
  Ttrpc__Request req = TTRPC__REQUEST__INIT;
  Ttrpc__KeyValue md[2] = { TTRPC__KEY_VALUE__INIT, TTRPC__KEY_VALUE__INIT };
  Ttrpc__KeyValue *mdp[2] = { &md[0], &md[1] };

  req.service
      = strchr (method, '/') ? xstrndup (method, strchr (method, '/') - method) : xstrdup (SVC);
  req.method = (char *) (strchr (method, '/') ? strchr (method, '/') + 1 : method);
  req.payload.data = (uint8_t *) payload;
  req.payload.len = len;
  req.timeout_nano = 2500000000;
  md[0].key = (char *) "x-other";
  md[0].value = (char *) "other-value";
  md[1].key = (char *) "containerd-namespace-ttrpc";
  md[1].value = (char *) ns;
  req.metadata = mdp;
  req.n_metadata = ns ? 2 : 1;
  size_t n = ttrpc__request__get_packed_size (&req);
  cleanup_free uint8_t *buf = xmalloc (n);
  ttrpc__request__pack (&req, buf);
  free (req.service);
  rc_send_frame (rc, id, TTRPC_TYPE_REQUEST, 0, buf, n);
}

/* method is "Method" (service SVC) or "Service/Method". */
static void
rc_send (struct raw_client *rc, uint32_t id, const char *method, const char *key, const char *ns)
{
  Ttrpc__KeyValue kv = TTRPC__KEY_VALUE__INIT;
  kv.key = (char *) key;
  size_t n = ttrpc__key_value__get_packed_size (&kv);
  cleanup_free uint8_t *buf = xmalloc (n);
  ttrpc__key_value__pack (&kv, buf);
  rc_send_raw_payload (rc, id, method, buf, n, ns);
}

static void
expect_resp (struct fx *fx, size_t i, uint32_t id, int code, const char *message)
{
  const struct resp *r = &fx->rc.resps[i];
  assert_int_equal (r->stream_id, id);
  assert_int_equal (r->code, code);
  assert_string_equal (r->message, message);
}

/* Fixture: a server on a unix socket in a temp dir, one raw client connected. */

static bool
server_has_conn (void *arg)
{
  struct fx *fx = arg;
  return ttrpc_server_connection_count (fx->server) == 1;
}

static int
setup (void **state)
{
  struct fx *fx = xcalloc (1, sizeof *fx);
  shim_error_t err = NULL;

  log_init ("test", "ttrpc", getenv ("TEST_DEBUG") != NULL);
  snprintf (fx->dir, sizeof fx->dir, "/tmp/ttrpc-server-XXXXXX");
  assert_non_null (mkdtemp (fx->dir));
  snprintf (fx->path, sizeof fx->path, "%s/s.sock", fx->dir);
  fx->base = event_base_new ();
  fx->server = ttrpc_server_new (fx->base, listen_unix (fx->path), methods, ARRAY_SIZE (methods),
                                 fx, &err);
  assert_non_null (fx->server);
  fx->rc.fd = -1;
  rc_connect (fx);
  run_until_or_fail (fx->base, server_has_conn, fx);
  *state = fx;
  return 0;
}

static int
teardown (void **state)
{
  struct fx *fx = *state;
  rc_close (&fx->rc);
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
test_unary_call (void **state)
{
  struct fx *fx = *state;
  rc_send (&fx->rc, 1, "Echo", "hello", "k8s.io");
  wait_resps (fx, 1);
  expect_resp (fx, 0, 1, 0, "");
  assert_string_equal (fx->rc.resps[0].key, "hello");
  assert_string_equal (fx->rc.resps[0].value, "k8s.io");
  /* without namespace metadata the namespace reads as "" */
  rc_send (&fx->rc, 3, "Echo", "again", NULL);
  wait_resps (fx, 2);
  expect_resp (fx, 1, 3, 0, "");
  assert_string_equal (fx->rc.resps[1].key, "again");
  assert_string_equal (fx->rc.resps[1].value, "");
}

static void
test_pipelined_calls (void **state)
{
  struct fx *fx = *state;
  /* all written at once: coalesced frames on the server side */
  for (uint32_t id = 1; id <= 15; id += 2)
    rc_send (&fx->rc, id, "Echo", "p", "ns");
  wait_resps (fx, 8);
  for (size_t i = 0; i < 8; i++)
    expect_resp (fx, i, 1 + 2 * i, 0, "");
}

static void
test_unknown_service_and_method (void **state)
{
  struct fx *fx = *state;
  rc_send (&fx->rc, 1, "nope.v1.Svc/Echo", "k", "ns");
  rc_send (&fx->rc, 3, "Nope", "k", "ns");
  wait_resps (fx, 2);
  expect_resp (fx, 0, 1, SHIM_UNIMPLEMENTED, "service nope.v1.Svc");
  expect_resp (fx, 1, 3, SHIM_UNIMPLEMENTED, "method Nope");
}

static void
test_handler_error (void **state)
{
  struct fx *fx = *state;
  rc_send (&fx->rc, 1, "Fail", "k", "ns");
  wait_resps (fx, 1);
  expect_resp (fx, 0, 1, SHIM_NOT_FOUND, "thing x: not found");
}

static void
test_stream_id_rules (void **state)
{
  struct fx *fx = *state;
  rc_send (&fx->rc, 2, "Echo", "even", "ns");
  rc_send (&fx->rc, 5, "Echo", "five", "ns");
  rc_send (&fx->rc, 5, "Echo", "again", "ns");
  rc_send (&fx->rc, 3, "Echo", "lower", "ns");
  rc_send (&fx->rc, 7, "Echo", "seven", "ns");
  wait_resps (fx, 5);
  expect_resp (fx, 0, 2, SHIM_INVALID_ARGUMENT,
               "StreamID must be odd for client initiated streams");
  expect_resp (fx, 1, 5, 0, "");
  expect_resp (fx, 2, 5, SHIM_INVALID_ARGUMENT, "StreamID cannot be re-used and must increment");
  expect_resp (fx, 3, 3, SHIM_INVALID_ARGUMENT, "StreamID cannot be re-used and must increment");
  expect_resp (fx, 4, 7, 0, "");
  assert_string_equal (fx->rc.resps[4].key, "seven");
}

static void
test_oversize_then_next_call (void **state)
{
  struct fx *fx = *state;
  const size_t big = 5u << 20;
  cleanup_free char *junk = xmalloc (big);
  uint8_t raw[TTRPC_HEADER_LEN];
  struct ttrpc_header h = { .length = big, .stream_id = 1, .type = TTRPC_TYPE_REQUEST };

  memset (junk, 'x', big);
  ttrpc_header_encode (&h, raw);
  evbuffer_add (fx->rc.out, raw, sizeof raw);
  evbuffer_add (fx->rc.out, junk, big);
  rc_send (&fx->rc, 3, "Echo", "after", "ns");
  wait_resps (fx, 2);
  expect_resp (fx, 0, 1, SHIM_RESOURCE_EXHAUSTED,
               "message length 5242880 exceed maximum message size of 4194304");
  expect_resp (fx, 1, 3, 0, "");
  assert_string_equal (fx->rc.resps[1].key, "after");
  assert_int_equal (ttrpc_server_connection_count (fx->server), 1);
}

static void
test_out_of_order_replies (void **state)
{
  struct fx *fx = *state;
  Ttrpc__KeyValue a = TTRPC__KEY_VALUE__INIT, b = TTRPC__KEY_VALUE__INIT;

  rc_send (&fx->rc, 1, "Park", "first", "ns");
  rc_send (&fx->rc, 3, "Park", "second", "ns");
  wait_parked (fx, 2);
  assert_string_equal (ttrpc_call_method (fx->parked[0]), "Park");
  a.key = (char *) "answer-1";
  b.key = (char *) "answer-3";
  ttrpc_call_reply (steal_ptr (&fx->parked[1]), &b.base);
  wait_resps (fx, 1);
  /* an unrelated call is answered while the first one stays parked */
  rc_send (&fx->rc, 5, "Echo", "five", "ns");
  wait_resps (fx, 2);
  ttrpc_call_reply (steal_ptr (&fx->parked[0]), &a.base);
  wait_resps (fx, 3);
  expect_resp (fx, 0, 3, 0, "");
  assert_string_equal (fx->rc.resps[0].key, "answer-3");
  expect_resp (fx, 1, 5, 0, "");
  expect_resp (fx, 2, 1, 0, "");
  assert_string_equal (fx->rc.resps[2].key, "answer-1");
}

static bool
server_no_conn (void *arg)
{
  struct fx *fx = arg;
  return ttrpc_server_connection_count (fx->server) == 0;
}

static void
test_peer_closes_while_parked (void **state)
{
  struct fx *fx = *state;
  Ttrpc__KeyValue out = TTRPC__KEY_VALUE__INIT;
  shim_error_t err = NULL;

  rc_send (&fx->rc, 1, "Park", "a", "ns");
  rc_send (&fx->rc, 3, "Park", "b", "ns");
  wait_parked (fx, 2);
  assert_true (ttrpc_call_connected (fx->parked[0]));
  rc_close (&fx->rc);
  run_until_or_fail (fx->base, server_no_conn, fx);
  assert_false (ttrpc_call_connected (fx->parked[0]));
  /* accessors still work on a parked call whose connection is gone */
  assert_string_equal (ttrpc_call_namespace (fx->parked[0]), "ns");
  ttrpc_call_reply (steal_ptr (&fx->parked[0]), &out.base);
  shim_error_make (&err, 0, SHIM_UNKNOWN, "too late");
  ttrpc_call_fail (steal_ptr (&fx->parked[1]), &err);
  assert_null (err);
}

static bool
rc_eof (void *arg)
{
  struct fx *fx = arg;
  return fx->rc.eof;
}

static void
test_server_freed_while_parked (void **state)
{
  struct fx *fx = *state;
  Ttrpc__KeyValue out = TTRPC__KEY_VALUE__INIT;

  rc_send (&fx->rc, 1, "Park", "a", "ns");
  wait_parked (fx, 1);
  ttrpc_server_free (fx->server);
  fx->server = NULL;
  run_until_or_fail (fx->base, rc_eof, fx);
  assert_false (ttrpc_call_connected (fx->parked[0]));
  ttrpc_call_reply (steal_ptr (&fx->parked[0]), &out.base);
  assert_int_equal (fx->rc.n_resps, 0);
}

static void
test_server_freed_by_handler (void **state)
{
  struct fx *fx = *state;
  /* the Echo after it arrives in the same read and must not be dispatched */
  rc_send (&fx->rc, 1, "Shutdown", "", "ns");
  rc_send (&fx->rc, 3, "Echo", "", "ns");
  run_until_or_fail (fx->base, rc_eof, fx);
  assert_null (fx->server);
  assert_int_equal (fx->rc.n_resps, 0);
}

static void
test_call_metadata (void **state)
{
  struct fx *fx = *state;
  rc_send (&fx->rc, 1, "Park", "a", "default");
  wait_parked (fx, 1);
  struct ttrpc_call *call = fx->parked[0];
  assert_string_equal (ttrpc_call_namespace (call), "default");
  assert_string_equal (ttrpc_call_metadata (call, "x-other"), "other-value");
  assert_null (ttrpc_call_metadata (call, "x-missing"));
  assert_int_equal (ttrpc_call_timeout_ns (call), 2500000000);
  assert_string_equal (ttrpc_call_method (call), "Park");
}

static void
test_bad_payload (void **state)
{
  struct fx *fx = *state;
  const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff };

  rc_send_raw_payload (&fx->rc, 1, "Echo", garbage, sizeof garbage, "ns");
  /* a Request frame whose data is not a ttrpc Request */
  rc_send_frame (&fx->rc, 3, TTRPC_TYPE_REQUEST, 0, garbage, sizeof garbage);
  rc_send (&fx->rc, 5, "Echo", "fine", "ns");
  wait_resps (fx, 3);
  expect_resp (fx, 0, 1, SHIM_INVALID_ARGUMENT, "invalid Echo request payload");
  expect_resp (fx, 1, 3, SHIM_INVALID_ARGUMENT, "invalid ttrpc request");
  expect_resp (fx, 2, 5, 0, "");
}

static void
test_streaming_refused (void **state)
{
  struct fx *fx = *state;
  Ttrpc__Request req = TTRPC__REQUEST__INIT;
  uint8_t buf[64];

  req.service = (char *) SVC;
  req.method = (char *) "Echo";
  size_t n = ttrpc__request__pack (&req, buf);
  rc_send_frame (&fx->rc, 1, TTRPC_TYPE_REQUEST, TTRPC_FLAG_REMOTE_OPEN, buf, n);
  rc_send_frame (&fx->rc, 1, TTRPC_TYPE_DATA, 0, "x", 1);
  /* unknown message types are ignored */
  rc_send_frame (&fx->rc, 3, 0x7f, 0, "x", 1);
  rc_send_frame (&fx->rc, 3, TTRPC_TYPE_RESPONSE, 0, NULL, 0);
  rc_send (&fx->rc, 3, "Echo", "fine", "ns");
  wait_resps (fx, 3);
  expect_resp (fx, 0, 1, SHIM_UNIMPLEMENTED, "streaming is not supported");
  expect_resp (fx, 1, 1, SHIM_UNIMPLEMENTED, "streaming is not supported");
  expect_resp (fx, 2, 3, 0, "");
}

static void
test_second_connection (void **state)
{
  struct fx *fx = *state;
  struct raw_client first = fx->rc;

  /* a second peer gets its own stream id space */
  rc_send (&first, 1, "Echo", "one", "ns");
  fx->rc = (struct raw_client){ .fd = -1 };
  rc_connect (fx);
  rc_send (&fx->rc, 1, "Echo", "two", "ns");
  wait_resps (fx, 1);
  expect_resp (fx, 0, 1, 0, "");
  assert_string_equal (fx->rc.resps[0].key, "two");
  assert_int_equal (ttrpc_server_connection_count (fx->server), 2);
  rc_close (&first);
}

/* Connects as nobody from a child: the server must hang up at once. */
static void
test_peer_credentials_rejected (void **state)
{
  struct fx *fx = *state;
  int status = 0;

  if (geteuid () != 0)
    skip ();
  assert_int_equal (chmod (fx->dir, 0755), 0);
  assert_int_equal (chmod (fx->path, 0777), 0);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      char c;
      struct sockaddr_un sa = unix_addr (fx->path);
      if (setgid (65534) < 0 || setuid (65534) < 0)
        _exit (2);
      int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (connect (fd, (struct sockaddr *) &sa, sizeof sa) < 0)
        _exit (3);
      _exit (read (fd, &c, 1) == 0 ? 0 : 1);
    }
  pid_t w = 0;
  for (int i = 0; i < 500 && (w = waitpid (pid, &status, WNOHANG)) == 0; i++)
    run_for_ms (fx->base, 10);
  assert_int_equal (w, pid);
  assert_true (WIFEXITED (status));
  assert_int_equal (WEXITSTATUS (status), 0);
  assert_int_equal (ttrpc_server_connection_count (fx->server), 1);
}

/* Memory budget, connection cap, close callback. */

#define T_BUDGET (64u << 10)
#define T_RESERVE (8u << 10)

static void
set_limits (struct fx *fx, size_t max_conns, unsigned stall_ms)
{
  struct ttrpc_limits l = { T_BUDGET, T_RESERVE, max_conns, stall_ms };
  ttrpc_server_set_limits (fx->server, &l);
}

/* Sends the header of a Request frame of length bytes and the first sent bytes of its data. */
static void
rc_send_partial (struct raw_client *rc, uint32_t id, size_t length, size_t sent)
{
  uint8_t raw[TTRPC_HEADER_LEN];
  struct ttrpc_header h = { .length = length, .stream_id = id, .type = TTRPC_TYPE_REQUEST };
  cleanup_free char *junk = xcalloc (1, sent);

  ttrpc_header_encode (&h, raw);
  evbuffer_add (rc->out, raw, sizeof raw);
  evbuffer_add (rc->out, junk, sent);
  event_add (rc->write_ev, NULL);
}

static size_t want_memory;

static bool
memory_is (void *arg)
{
  struct fx *fx = arg;
  return ttrpc_server_memory (fx->server) == want_memory;
}

static void
wait_memory (struct fx *fx, size_t n)
{
  want_memory = n;
  run_until_or_fail (fx->base, memory_is, fx);
}

static size_t want_conns;

static bool
conns_are (void *arg)
{
  struct fx *fx = arg;
  return ttrpc_server_connection_count (fx->server) == want_conns;
}

static void
wait_conns (struct fx *fx, size_t n)
{
  want_conns = n;
  run_until_or_fail (fx->base, conns_are, fx);
}

static bool
client_eof (void *arg)
{
  return ((struct raw_client *) arg)->eof;
}

static bool
client_answered (void *arg)
{
  return ((struct raw_client *) arg)->n_resps > 0 || ((struct raw_client *) arg)->eof;
}

static void
test_budget_accounting (void **state)
{
  struct fx *fx = *state;
  Ttrpc__KeyValue out = TTRPC__KEY_VALUE__INIT;

  assert_int_equal (ttrpc_server_memory (fx->server), 0);
  size_t before = evbuffer_get_length (fx->rc.out);
  rc_send (&fx->rc, 1, "Park", "a", "ns");
  size_t frame = evbuffer_get_length (fx->rc.out) - before - TTRPC_HEADER_LEN;
  wait_parked (fx, 1);
  /* a call holds its request, decoded, until it is answered */
  assert_int_equal (ttrpc_server_memory (fx->server), 2 * frame + TTRPC_CALL_OVERHEAD);
  ttrpc_call_reply (steal_ptr (&fx->parked[0]), &out.base);
  /* the answer went out at once */
  assert_int_equal (ttrpc_server_memory (fx->server), 0);
  wait_resps (fx, 1);
  /* unparsed input: the header and the data so far */
  rc_send_partial (&fx->rc, 3, 1000, 300);
  wait_memory (fx, TTRPC_HEADER_LEN + 300);
  rc_close (&fx->rc);
  wait_conns (fx, 0);
  assert_int_equal (ttrpc_server_memory (fx->server), 0);
}

static void
test_budget_pause_and_resume (void **state)
{
  struct fx *fx = *state;
  struct raw_client hog = { .fd = -1 }, big = { .fd = -1 };
  cleanup_free char *key = xmalloc (40 << 10);

  set_limits (fx, TTRPC_MAX_CONNS, TTRPC_STALL_MS);
  rc_connect_to (fx, &hog);
  rc_send_partial (&hog, 1, 100 << 10, 60 << 10);
  wait_memory (fx, TTRPC_HEADER_LEN + (60 << 10));
  /* a whole request too large for what is left: read up to the reserve, then paused */
  memset (key, 'k', (40 << 10) - 1);
  key[(40 << 10) - 1] = '\0';
  rc_connect_to (fx, &big);
  rc_send (&big, 1, "Echo", key, "ns");
  wait_memory (fx, TTRPC_HEADER_LEN + (60 << 10) + T_RESERVE);
  /* over budget, a small call on another connection is still served */
  rc_send (&fx->rc, 1, "Echo", "small", "ns");
  wait_resps (fx, 1);
  expect_resp (fx, 0, 1, 0, "");
  assert_int_equal (big.n_resps, 0);
  assert_int_equal (ttrpc_server_memory (fx->server), TTRPC_HEADER_LEN + (60 << 10) + T_RESERVE);
  /* the budget frees: the paused request is read and answered */
  rc_close (&hog);
  run_until_or_fail (fx->base, client_answered, &big);
  assert_int_equal (big.n_resps, 1);
  assert_int_equal (big.resps[0].code, 0);
  assert_int_equal (ttrpc_server_connection_count (fx->server), 2);
  rc_close (&big);
}

/* A partial frame that stops, within the budget: closed once stalled. */
static void
test_close_stalled_input (void **state)
{
  struct fx *fx = *state;
  struct raw_client hog = { .fd = -1 };

  set_limits (fx, TTRPC_MAX_CONNS, 100);
  rc_connect_to (fx, &hog);
  wait_conns (fx, 2);
  rc_send_partial (&hog, 1, 30 << 10, 20 << 10);
  run_until_or_fail (fx->base, client_eof, &hog);
  assert_int_equal (ttrpc_server_memory (fx->server), 0);
  /* one holding less than its reserve stays */
  rc_send_partial (&fx->rc, 1, 1000, 300);
  run_for_ms (fx->base, 300);
  assert_int_equal (ttrpc_server_connection_count (fx->server), 1);
  assert_int_equal (ttrpc_server_memory (fx->server), TTRPC_HEADER_LEN + 300);
  rc_close (&hog);
}

/* Partial frames that fill the budget wait for each other: closed once stalled. */
static void
test_budget_close_waiting (void **state)
{
  struct fx *fx = *state;
  struct raw_client hog = { .fd = -1 };

  set_limits (fx, TTRPC_MAX_CONNS, 100);
  rc_connect_to (fx, &hog);
  wait_conns (fx, 2);
  rc_send_partial (&hog, 1, 100 << 10, 80 << 10);
  run_until_or_fail (fx->base, client_eof, &hog);
  assert_int_equal (ttrpc_server_memory (fx->server), 0);
  /* the idle client, holding nothing, stays */
  rc_send (&fx->rc, 1, "Echo", "after", "ns");
  wait_resps (fx, 1);
  assert_int_equal (ttrpc_server_connection_count (fx->server), 1);
  rc_close (&hog);
}

/* A peer that sends requests but never reads the answers is closed once stalled. */
static void
test_budget_close_unread_output (void **state)
{
  struct fx *fx = *state;
  struct raw_client hog = { .fd = -1 };
  char key[4096];

  set_limits (fx, TTRPC_MAX_CONNS, 100);
  rc_connect_to (fx, &hog);
  wait_conns (fx, 2);
  event_del (hog.read_ev);
  memset (key, 'k', sizeof key - 1);
  key[sizeof key - 1] = '\0';
  for (uint32_t i = 0; i < 100; i++)
    rc_send (&hog, 1 + 2 * i, "Echo", key, "ns");
  wait_conns (fx, 1);
  assert_int_equal (ttrpc_server_memory (fx->server), 0);
  rc_send (&fx->rc, 1, "Echo", "after", "ns");
  wait_resps (fx, 1);
  rc_close (&hog);
}

static void
test_connection_cap (void **state)
{
  struct fx *fx = *state;
  struct raw_client second = { .fd = -1 }, third = { .fd = -1 };

  set_limits (fx, 2, TTRPC_STALL_MS);
  rc_connect_to (fx, &second);
  wait_conns (fx, 2);
  /* one too many: closed at once */
  rc_connect_to (fx, &third);
  run_until_or_fail (fx->base, client_eof, &third);
  assert_int_equal (ttrpc_server_connection_count (fx->server), 2);
  rc_send (&second, 1, "Echo", "two", "ns");
  run_until_or_fail (fx->base, client_answered, &second);
  assert_int_equal (second.resps[0].code, 0);
  /* a slot frees: the next one is served */
  rc_close (&second);
  wait_conns (fx, 1);
  rc_close (&third);
  third = (struct raw_client){ .fd = -1 };
  rc_connect_to (fx, &third);
  rc_send (&third, 1, "Echo", "three", "ns");
  run_until_or_fail (fx->base, client_answered, &third);
  assert_int_equal (third.resps[0].code, 0);
  rc_close (&third);
}

static void
closed_cb (size_t remaining, void *arg)
{
  struct fx *fx = arg;
  fx->n_closed++;
  fx->closed_remaining = remaining;
}

static void
test_close_callback (void **state)
{
  struct fx *fx = *state;
  struct raw_client second = { .fd = -1 };

  ttrpc_server_on_close (fx->server, closed_cb, fx);
  rc_connect_to (fx, &second);
  wait_conns (fx, 2);
  rc_close (&fx->rc);
  wait_conns (fx, 1);
  assert_int_equal (fx->n_closed, 1);
  assert_int_equal (fx->closed_remaining, 1);
  rc_close (&second);
  wait_conns (fx, 0);
  assert_int_equal (fx->n_closed, 2);
  assert_int_equal (fx->closed_remaining, 0);
  /* not called while the server is freed */
  rc_connect (fx);
  wait_conns (fx, 1);
  ttrpc_server_free (steal_ptr (&fx->server));
  assert_int_equal (fx->n_closed, 2);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_unary_call, setup, teardown),
    cmocka_unit_test_setup_teardown (test_pipelined_calls, setup, teardown),
    cmocka_unit_test_setup_teardown (test_unknown_service_and_method, setup, teardown),
    cmocka_unit_test_setup_teardown (test_handler_error, setup, teardown),
    cmocka_unit_test_setup_teardown (test_stream_id_rules, setup, teardown),
    cmocka_unit_test_setup_teardown (test_oversize_then_next_call, setup, teardown),
    cmocka_unit_test_setup_teardown (test_out_of_order_replies, setup, teardown),
    cmocka_unit_test_setup_teardown (test_peer_closes_while_parked, setup, teardown),
    cmocka_unit_test_setup_teardown (test_server_freed_while_parked, setup, teardown),
    cmocka_unit_test_setup_teardown (test_server_freed_by_handler, setup, teardown),
    cmocka_unit_test_setup_teardown (test_call_metadata, setup, teardown),
    cmocka_unit_test_setup_teardown (test_bad_payload, setup, teardown),
    cmocka_unit_test_setup_teardown (test_streaming_refused, setup, teardown),
    cmocka_unit_test_setup_teardown (test_second_connection, setup, teardown),
    cmocka_unit_test_setup_teardown (test_peer_credentials_rejected, setup, teardown),
    cmocka_unit_test_setup_teardown (test_budget_accounting, setup, teardown),
    cmocka_unit_test_setup_teardown (test_budget_pause_and_resume, setup, teardown),
    cmocka_unit_test_setup_teardown (test_close_stalled_input, setup, teardown),
    cmocka_unit_test_setup_teardown (test_budget_close_waiting, setup, teardown),
    cmocka_unit_test_setup_teardown (test_budget_close_unread_output, setup, teardown),
    cmocka_unit_test_setup_teardown (test_connection_cap, setup, teardown),
    cmocka_unit_test_setup_teardown (test_close_callback, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
