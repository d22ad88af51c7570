/* The Task API adapter end to end without containerd: a ttrpc client calls the Task service
 * over a real socket, the model drives test/fakes/fake-model-runtime, and the events go through
 * the real publisher to a ttrpc Events server the test runs: replies, id checks and the order
 * of TaskX events. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/log.h"
#include "base/pb.h"
#include "base/util.h"
#include "containerd/services/events/ttrpc/v1/events.pb-c.h"
#include "containerd/task/v2/task.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "runtimeoptions/v1/options.pb-c.h"
#include "service/shim.h"
#include "service/task_service.h"
#include "testutil.h"
#include "wire/publisher.h"
#include "wire/ttrpc_client.h"
#include "wire/ttrpc_server.h"

#define SVC "containerd.task.v2.Task"
#define MAX_TOPICS 16

struct fx
{
  struct shim shim;
  struct event_base *base;
  struct reaper *reaper;
  char dir[64];
  char *fake;
  struct ttrpc_server *server, *events;
  struct ttrpc_client *client;
  struct task_service *svc;
  char topics[MAX_TOPICS][32];
  int n_topics;
  struct answer answer;
};

/* ---- containerd's Events service: records each topic ---- */

static void
forward (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  struct fx *f = arg;
  const Containerd__Services__Events__Ttrpc__V1__ForwardRequest *req = (const void *) msg;
  assert_true (f->n_topics < MAX_TOPICS);
  snprintf (f->topics[f->n_topics++], sizeof f->topics[0], "%s", req->envelope->topic);
  Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
  ttrpc_call_reply (call, &empty.base);
}

static const struct ttrpc_method events_methods[] = {
  { "containerd.services.events.ttrpc.v1.Events", "Forward",
    &containerd__services__events__ttrpc__v1__forward_request__descriptor, forward },
};

static void
request_exit (struct shim *shim)
{
  (void) shim;
}

static int
setup (void **state)
{
  struct fx *f = xcalloc (1, sizeof *f);
  shim_error_t err = NULL;
  log_init ("test", "task", getenv ("TEST_DEBUG") != NULL);
  loop_with_reaper_new (&f->base, &f->reaper);
  strcpy (f->dir, "/tmp/cshim-task-XXXXXX");
  assert_non_null (mkdtemp (f->dir));
  f->fake = fakes_path ("fake-model-runtime");
  cleanup_free char *spec = xasprintf ("%s/config.json", f->dir);
  write_text (spec, "{\"linux\":{\"namespaces\":[{\"type\":\"pid\"}]}}");
  cleanup_free char *sock = xasprintf ("%s/t.sock", f->dir);
  cleanup_free char *ev_sock = xasprintf ("%s/e.sock", f->dir);
  f->events = ttrpc_server_new (f->base, listen_unix (ev_sock), events_methods, 1, f, &err);
  cleanup_free char *ev_addr = xasprintf ("unix://%s", ev_sock);
  f->shim = (struct shim){ .base = f->base,
                           .reaper = f->reaper,
                           .publisher = publisher_new (f->base, ev_addr),
                           .namespace = "test",
                           .id = "t",
                           .request_exit = request_exit };
  f->svc = task_service_new (&f->shim);
  size_t n;
  const struct ttrpc_method *methods = task_service_methods (&n);
  f->server = ttrpc_server_new (f->base, listen_unix (sock), methods, n, f->svc, &err);
  assert_non_null (f->server);
  cleanup_free char *addr = xasprintf ("unix://%s", sock);
  f->client = ttrpc_client_new (f->base, addr);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fx *f = *state;
  ttrpc_client_free (f->client);
  ttrpc_server_free (f->server);
  task_service_free (f->svc);
  publisher_free (f->shim.publisher);
  ttrpc_server_free (f->events);
  kill_fake_containers (f->dir);
  /* A cancelled runtime call frees its spawn only once it is reaped: none is left. */
  assert_true (run_until (f->base, no_children, NULL, 5000));
  free (f->answer.payload);
  loop_with_reaper_free (f->base, f->reaper);
  remove_tree (f->dir);
  free (f->fake);
  free (f);
  return 0;
}

/* ---- client side ---- */

/* Calls method(req) and runs the loop until it is answered. */
static struct answer *
call (struct fx *f, const char *method, const ProtobufCMessage *req)
{
  struct answer *a = send_call (f->client, &f->answer, SVC, method, req);
  run_until_or_fail (f->base, answered, a);
  return a;
}

static uint32_t
create (struct fx *f, const char *id, int code)
{
  Containerd__Task__V2__CreateTaskRequest req = CONTAINERD__TASK__V2__CREATE_TASK_REQUEST__INIT;
  /* Our options as containerd's CRI sends them: runtimeoptions naming a JSON config file. */
  cleanup_free char *json = xasprintf ("{\"binary\":\"%s\",\"profile\":\"runc\"}", f->fake);
  cleanup_free char *path = xasprintf ("%s/test-options.json", f->dir);
  write_text (path, json);
  Runtimeoptions__V1__Options ro = RUNTIMEOPTIONS__V1__OPTIONS__INIT;
  ro.config_path = path;
  Google__Protobuf__Any *any = pb_any_pack (&ro.base);
  req.id = (char *) id;
  req.bundle = f->dir;
  req.options = any;
  struct answer *a = call (f, "Create", &req.base);
  pb_any_free (any);
  assert_int_equal (a->code, code);
  if (code)
    return 0;
  Containerd__Task__V2__CreateTaskResponse *resp
      = containerd__task__v2__create_task_response__unpack (NULL, a->len, a->payload);
  uint32_t pid = resp->pid;
  containerd__task__v2__create_task_response__free_unpacked (resp, NULL);
  return pid;
}

/* A message with one bytes field numbered 1, to put any id bytes on the wire. */
struct raw_ids
{
  ProtobufCMessage base;
  ProtobufCBinaryData id;
};

static const ProtobufCFieldDescriptor raw_ids_fields[] = {
  { "id", 1, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_BYTES, 0, offsetof (struct raw_ids, id), NULL,
    NULL, 0, 0, NULL, NULL },
};
static const unsigned raw_ids_by_name[] = { 0 };
static const ProtobufCIntRange raw_ids_ranges[] = { { 1, 0 }, { 0, 1 } };
static const ProtobufCMessageDescriptor raw_ids_descriptor = {
  PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
  "test.RawIds",
  "RawIds",
  "test_RawIds",
  "test",
  sizeof (struct raw_ids),
  1,
  raw_ids_fields,
  raw_ids_by_name,
  1,
  raw_ids_ranges,
  NULL,
  NULL,
  NULL,
  NULL,
};

static bool
n_topics (void *arg)
{
  struct fx *f = arg;
  return f->n_topics >= 4;
}

/* ---- tests ---- */

/* Create, Start, Kill, Wait, Delete through the Task API: the replies, and TaskCreate,
 * TaskStart, TaskExit, TaskDelete in that order. */
static void
test_lifecycle (void **state)
{
  struct fx *f = *state;
  assert_true (create (f, "c1", 0) > 0);
  Containerd__Task__V2__StartRequest start = CONTAINERD__TASK__V2__START_REQUEST__INIT;
  start.id = "c1";
  assert_int_equal (call (f, "Start", &start.base)->code, 0);
  Containerd__Task__V2__KillRequest kill_req = CONTAINERD__TASK__V2__KILL_REQUEST__INIT;
  kill_req.id = "c1";
  kill_req.signal = SIGKILL;
  assert_int_equal (call (f, "Kill", &kill_req.base)->code, 0);
  Containerd__Task__V2__WaitRequest wait = CONTAINERD__TASK__V2__WAIT_REQUEST__INIT;
  wait.id = "c1";
  struct answer *a = call (f, "Wait", &wait.base);
  Containerd__Task__V2__WaitResponse *w
      = containerd__task__v2__wait_response__unpack (NULL, a->len, a->payload);
  assert_int_equal (w->exit_status, 137);
  containerd__task__v2__wait_response__free_unpacked (w, NULL);
  Containerd__Task__V2__DeleteRequest del = CONTAINERD__TASK__V2__DELETE_REQUEST__INIT;
  del.id = "c1";
  assert_int_equal (call (f, "Delete", &del.base)->code, 0);
  run_until_or_fail (f->base, n_topics, f);
  const char *want[] = { "/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete" };
  assert_int_equal (f->n_topics, 4);
  for (int i = 0; i < 4; i++)
    assert_string_equal (f->topics[i], want[i]);
}

/* Ids are checked on the wire bytes before any handler: a new id must be an identifier
 * (InvalidArgument), any other id that is not one names nothing (NotFound), even when its C
 * string (cut at a NUL) would name something; Connect answers for any id. */
static void
test_id_checks (void **state)
{
  struct fx *f = *state;
  create (f, "bad/id", 3 /* InvalidArgument */);
  create (f, "c1", 0);
  create (f, "c1", 6 /* AlreadyExists */);
  Containerd__Task__V2__StateRequest st = CONTAINERD__TASK__V2__STATE_REQUEST__INIT;
  st.id = "c1";
  assert_int_equal (call (f, "State", &st.base)->code, 0);
  /* "c1\0x" on the wire, as field 1 (id) of a message that carries bytes: the decoded
   * StateRequest would read "c1". */
  struct raw_ids raw
      = { .base = { &raw_ids_descriptor, 0, NULL }, .id = { 4, (uint8_t *) "c1\0x" } };
  struct answer *a = send_call (f->client, &f->answer, SVC, "State", &raw.base);
  run_until_or_fail (f->base, answered, a);
  assert_int_equal (a->code, 5 /* NotFound */);
  Containerd__Task__V2__ConnectRequest conn = CONTAINERD__TASK__V2__CONNECT_REQUEST__INIT;
  conn.id = "no/such";
  assert_int_equal (call (f, "Connect", &conn.base)->code, 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_lifecycle, setup, teardown),
    cmocka_unit_test_setup_teardown (test_id_checks, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
