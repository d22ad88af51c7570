/* Events through the publish binary (no TTRPC_ADDRESS): one child per event, in order, the
 * event's Any on stdin, retried after a failure, never waited for. test/fakes/fake-publisher
 * records each call. */
#include "testutil.h"

#include "containerd/events/task.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "wire/publisher.h"

#define ADDRESS "/run/test/containerd.sock"

struct fixture
{
  struct event_base *base;
  struct reaper *reaper;
  struct publisher *pub;
  char dir[64];
  char *fake;
};

static int
setup (void **state)
{
  struct fixture *f = xcalloc (1, sizeof *f);
  loop_with_reaper_new (&f->base, &f->reaper);
  strcpy (f->dir, "/tmp/test-publisher-XXXXXX");
  assert_non_null (mkdtemp (f->dir));
  setenv ("FAKE_PUBLISH_DIR", f->dir, 1);
  f->fake = fakes_path ("fake-publisher");
  f->pub = publisher_new (f->base, NULL);
  publisher_use_binary (f->pub, f->reaper, f->fake, ADDRESS);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fixture *f = *state;
  publisher_free (f->pub);
  loop_with_reaper_free (f->base, f->reaper);
  assert_int_equal (remove_tree (f->dir), 0);
  free (f->fake);
  free (f);
  return 0;
}

static bool
queue_empty (void *arg)
{
  return publisher_pending (arg) == 0;
}

static void
publish_start (struct publisher *p, const char *id, uint32_t pid)
{
  Containerd__Events__TaskStart ev = CONTAINERD__EVENTS__TASK_START__INIT;
  ev.container_id = (char *) id;
  ev.pid = pid;
  publisher_publish (p, "ns1", "/tasks/start", &ev.base);
}

static void
publish_exit (struct publisher *p, const char *id, uint32_t status)
{
  Containerd__Events__TaskExit ev = CONTAINERD__EVENTS__TASK_EXIT__INIT;
  ev.container_id = (char *) id;
  ev.id = (char *) id;
  ev.exit_status = status;
  publisher_publish (p, "ns1", "/tasks/exit", &ev.base);
}

/* Call n's argv line, or NULL when there was no call n. */
static char *
call_args (const struct fixture *f, int n)
{
  cleanup_free char *path = xasprintf ("%s/%d.args", f->dir, n);
  char *text = NULL;
  return read_file (path, 4096, &text, NULL, NULL) == 0 ? text : NULL;
}

/* Call n's stdin, unpacked as the Any containerd's publish command reads. */
static Google__Protobuf__Any *
call_any (const struct fixture *f, int n)
{
  cleanup_free char *path = xasprintf ("%s/%d.stdin", f->dir, n);
  cleanup_free char *data = NULL;
  size_t len = 0;
  assert_int_equal (read_file (path, 65536, &data, &len, NULL), 0);
  return google__protobuf__any__unpack (NULL, len, (const uint8_t *) data);
}

static void
assert_call (const struct fixture *f, int n, const char *topic)
{
  cleanup_free char *want = xasprintf ("%s\t--address\t" ADDRESS "\tpublish\t--topic\t%s"
                                       "\t--namespace\tns1\n",
                                       f->fake, topic);
  cleanup_free char *args = call_args (f, n);
  assert_non_null (args);
  assert_string_equal (args, want);
}

static void
test_events_in_order_with_any_on_stdin (void **state)
{
  struct fixture *f = *state;
  publish_start (f->pub, "c1", 42);
  publish_exit (f->pub, "c1", 7);
  publish_start (f->pub, "c2", 43);
  /* Queued, not published yet: publishing never waits for the child. */
  assert_int_equal (publisher_pending (f->pub), 3);
  assert_true (run_until (f->base, queue_empty, f->pub, 10000));

  assert_call (f, 1, "/tasks/start");
  assert_call (f, 2, "/tasks/exit");
  assert_call (f, 3, "/tasks/start");
  cleanup_free char *none = call_args (f, 4);
  assert_null (none);

  Google__Protobuf__Any *any = call_any (f, 2);
  assert_non_null (any);
  assert_string_equal (any->type_url, "containerd.events.TaskExit");
  Containerd__Events__TaskExit *ev
      = containerd__events__task_exit__unpack (NULL, any->value.len, any->value.data);
  assert_non_null (ev);
  assert_string_equal (ev->container_id, "c1");
  assert_int_equal (ev->exit_status, 7);
  containerd__events__task_exit__free_unpacked (ev, NULL);
  google__protobuf__any__free_unpacked (any, NULL);

  any = call_any (f, 3);
  Containerd__Events__TaskStart *st
      = containerd__events__task_start__unpack (NULL, any->value.len, any->value.data);
  assert_string_equal (st->container_id, "c2");
  assert_int_equal (st->pid, 43);
  containerd__events__task_start__free_unpacked (st, NULL);
  google__protobuf__any__free_unpacked (any, NULL);
}

/* A failed publish is retried, and the event keeps its place ahead of later ones. */
static void
test_failure_is_retried_in_place (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *fail = xasprintf ("%s/fail-next", f->dir);
  write_text (fail, "");
  publish_start (f->pub, "c1", 42);
  publish_exit (f->pub, "c1", 0);
  assert_true (run_until (f->base, queue_empty, f->pub, 10000));
  assert_call (f, 1, "/tasks/start"); /* failed */
  assert_call (f, 2, "/tasks/start"); /* retried */
  assert_call (f, 3, "/tasks/exit");
  cleanup_free char *none = call_args (f, 4);
  assert_null (none);
}

/* A binary that cannot run never will: the event is dropped, the queue goes on. */
static void
test_missing_binary_drops (void **state)
{
  struct fixture *f = *state;
  struct publisher *p = publisher_new (f->base, NULL);
  publisher_use_binary (p, f->reaper, "/nonexistent/containerd", ADDRESS);
  publish_start (p, "c1", 42);
  assert_true (run_until (f->base, queue_empty, p, 10000));
  publisher_free (p);
}

/* With a ttrpc address the binary is not used. */
static void
test_ttrpc_address_wins (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *sock = xasprintf ("%s/none.sock", f->dir);
  struct publisher *p = publisher_new (f->base, sock);
  publisher_use_binary (p, f->reaper, f->fake, ADDRESS);
  publish_start (p, "c1", 42);
  run_for_ms (f->base, 200);
  cleanup_free char *none = call_args (f, 1);
  assert_null (none);
  publisher_free (p);
}

int
main (void)
{
  /* As the shim does (cli/main.c): an event written to a publish binary that could not start
   * (test_missing_binary_drops) must get EPIPE, not kill us, whether the child is gone yet or
   * not. */
  signal (SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_events_in_order_with_any_on_stdin, setup, teardown),
    cmocka_unit_test_setup_teardown (test_failure_is_retried_in_place, setup, teardown),
    cmocka_unit_test_setup_teardown (test_missing_binary_drops, setup, teardown),
    cmocka_unit_test_setup_teardown (test_ttrpc_address_wins, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
