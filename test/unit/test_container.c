/* The process state table and the rule that orders exits within a container. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "model/container.h"
#include "model/process.h"
#include "base/util.h"

static void
expect_refused (enum process_state s, enum process_verb v, int code, const char *msg)
{
  shim_error_t err = NULL;
  assert_true (process_check (s, v, &err) < 0);
  assert_int_equal (err->code, code);
  assert_string_equal (err->msg, msg);
  shim_error_release (&err);
}

static void
test_state_table (void **state)
{
  (void) state;
  shim_error_t err = NULL;
  assert_int_equal (process_check (PROCESS_CREATED, PROCESS_START, &err), 0);
  assert_int_equal (process_next (PROCESS_CREATED, PROCESS_START), PROCESS_RUNNING);
  assert_int_equal (process_next (PROCESS_RUNNING, PROCESS_EXIT), PROCESS_STOPPED);
  assert_int_equal (process_next (PROCESS_RUNNING, PROCESS_PAUSE), PROCESS_PAUSED);
  assert_int_equal (process_next (PROCESS_PAUSED, PROCESS_RESUME), PROCESS_RUNNING);
  assert_int_equal (process_next (PROCESS_STOPPED, PROCESS_DELETE), PROCESS_DELETED);
  assert_int_equal (process_next (PROCESS_CREATED, PROCESS_DELETE), PROCESS_DELETED);
  /* A refused verb leaves the state alone. */
  assert_int_equal (process_next (PROCESS_RUNNING, PROCESS_START), PROCESS_RUNNING);
  /* The stock shim's refusals: plain errors (Unknown), NotFound once finished or deleted. */
  expect_refused (PROCESS_RUNNING, PROCESS_START, SHIM_UNKNOWN, "cannot start a running process");
  expect_refused (PROCESS_RUNNING, PROCESS_DELETE, SHIM_UNKNOWN, "cannot delete a running process");
  expect_refused (PROCESS_CREATED, PROCESS_PAUSE, SHIM_UNKNOWN,
                  "cannot pause task in created state");
  expect_refused (PROCESS_STOPPED, PROCESS_KILL, SHIM_NOT_FOUND, "process already finished");
  expect_refused (PROCESS_DELETED, PROCESS_DELETE, SHIM_NOT_FOUND,
                  "cannot delete a deleted process");
  expect_refused (PROCESS_STOPPED, PROCESS_EXEC, SHIM_UNKNOWN, "cannot exec in a stopped state");
  expect_refused (PROCESS_PAUSED, PROCESS_EXEC, SHIM_UNKNOWN, "cannot exec in a paused state");
  assert_int_equal (process_check (PROCESS_PAUSED, PROCESS_KILL, &err), 0);
  assert_string_equal (process_state_name (PROCESS_PAUSED), "paused");
}

static void
test_every_cell_defined (void **state)
{
  (void) state;
  /* Every state/verb pair either passes or gives a message: no silent hole in the table. */
  for (int s = 0; s < PROCESS_N_STATES; s++)
    for (int v = 0; v < PROCESS_N_VERBS; v++)
      {
        shim_error_t err = NULL;
        if (process_check (s, v, &err) < 0)
          {
            assert_non_null (err);
            assert_true (strlen (err->msg) > 0);
            shim_error_release (&err);
          }
      }
}

static void
exit_now (struct process *p, int code)
{
  struct timespec t = { 100, 5 };
  process_record_exit (p, code << 8, &t);
}

static void
test_exit_waits_for_start (void **state)
{
  (void) state;
  struct container *c = container_new ("c1", "/b");
  c->init.starting = true;
  exit_now (&c->init, 3);
  assert_int_equal (c->init.exit_status, 3);
  assert_int_equal (c->init.state, PROCESS_STOPPED);
  /* Reaped while Start ran, before TaskStart went out: held back. */
  assert_null (container_next_exit (c));
  c->init.starting = false;
  c->init.started = true;
  assert_ptr_equal (container_next_exit (c), &c->init);
  c->init.exit_published = true;
  assert_null (container_next_exit (c));
  container_free (c);
}

static void
test_created_init_killed_exits (void **state)
{
  (void) state;
  struct container *c = container_new ("c1", "/b");
  c->init.pid = 42;
  /* Killed in CREATED, never started: its exit goes out (Wait must not hang). */
  struct timespec t = { 1, 0 };
  process_record_exit (&c->init, SIGKILL, &t);
  assert_int_equal (c->init.exit_status, 137);
  assert_int_equal (c->init.state, PROCESS_STOPPED);
  assert_ptr_equal (container_next_exit (c), &c->init);
  container_free (c);
}

static void
test_starting_exec_holds_init_exit (void **state)
{
  (void) state;
  struct container *c = container_new ("c1", "/b");
  c->init.started = true;
  struct process *e = container_add_exec (c, "e1");
  e->starting = true;
  exit_now (&c->init, 0);
  /* The exec's start event is still to come, and its exit after it. */
  assert_null (container_next_exit (c));
  e->starting = false;
  process_record_failed_start (e);
  assert_ptr_equal (container_next_exit (c), e);
  e->exit_published = true;
  assert_ptr_equal (container_next_exit (c), &c->init);
  container_free (c);
}

static void
test_kill_all_from_spec (void **state)
{
  (void) state;
  assert_false (container_spec_kills_all_on_exit (
      "{\"linux\":{\"namespaces\":[{\"type\":\"mount\"},{\"type\":\"pid\"}]}}"));
  assert_false (container_spec_kills_all_on_exit (
      "{\"linux\":{\"namespaces\":[{\"type\":\"pid\",\"path\":\"\"}]}}"));
  /* Host pid namespace, or another's joined by path: nothing ends its processes. */
  assert_true (
      container_spec_kills_all_on_exit ("{\"linux\":{\"namespaces\":[{\"type\":\"mount\"}]}}"));
  assert_true (container_spec_kills_all_on_exit (
      "{\"linux\":{\"namespaces\":[{\"type\":\"pid\",\"path\":\"/proc/9/ns/pid\"}]}}"));
  assert_true (container_spec_kills_all_on_exit ("{}"));
  assert_true (container_spec_kills_all_on_exit ("not json"));
  assert_true (container_spec_kills_all_on_exit (NULL));
}

static void
test_kill_all_holds_init_exit (void **state)
{
  (void) state;
  struct container *c = container_new ("c1", "/b");
  c->init.started = true;
  c->killing_all = (struct spawn *) c; /* any non-NULL: the kill is in flight */
  exit_now (&c->init, 0);
  assert_null (container_next_exit (c));
  c->killing_all = NULL;
  assert_ptr_equal (container_next_exit (c), &c->init);
  container_free (c);
}

static void
test_exec_paused_with_container (void **state)
{
  (void) state;
  struct container *c = container_new ("c1", "/b");
  struct process *e = container_add_exec (c, "e1");
  e->state = PROCESS_RUNNING;
  c->init.state = PROCESS_RUNNING;
  assert_int_equal (process_visible_state (e), PROCESS_RUNNING);
  c->init.state = PROCESS_PAUSED;
  assert_int_equal (process_visible_state (e), PROCESS_PAUSED);
  assert_int_equal (process_visible_state (&c->init), PROCESS_PAUSED);
  container_free (c);
}

static void
test_resize_refused_once_exec_exited (void **state)
{
  (void) state;
  shim_error_t err = NULL;
  struct container *c = container_new ("c1", "/b");
  struct process *e = container_add_exec (c, "e1");
  e->state = PROCESS_RUNNING;
  assert_int_equal (process_check_resize (e, &err), 0);
  e->state = PROCESS_STOPPED;
  assert_true (process_check_resize (e, &err) < 0);
  assert_int_equal (err->code, SHIM_UNKNOWN);
  assert_string_equal (err->msg, "cannot resize a stopped container");
  shim_error_release (&err);
  /* The init resizes its console whatever its state, as the stock shim's does. */
  c->init.state = PROCESS_STOPPED;
  assert_int_equal (process_check_resize (&c->init, &err), 0);
  container_free (c);
}

static void
test_exec_start_needs_running_init (void **state)
{
  (void) state;
  shim_error_t err = NULL;
  struct container *c = container_new ("c1", "/b");
  c->init.state = PROCESS_RUNNING;
  assert_int_equal (container_check_exec_start (c, &err), 0);
  c->init.state = PROCESS_PAUSED;
  assert_true (container_check_exec_start (c, &err) < 0);
  assert_int_equal (err->code, SHIM_UNKNOWN);
  shim_error_release (&err);
  c->init.state = PROCESS_STOPPED;
  assert_true (container_check_exec_start (c, &err) < 0);
  assert_int_equal (err->code, SHIM_FAILED_PRECONDITION);
  assert_string_equal (err->msg, "container c1 init process is not running");
  shim_error_release (&err);
  container_free (c);
}

static void
test_init_exit_after_exec_exits (void **state)
{
  (void) state;
  struct container *c = container_new ("c1", "/b");
  c->init.started = true;
  struct process *e1 = container_add_exec (c, "e1");
  struct process *e2 = container_add_exec (c, "e2");
  struct process *never = container_add_exec (c, "never-started");
  (void) never;
  e1->started = e2->started = true;
  exit_now (&c->init, 0);
  /* Two execs still running: the init exit waits. */
  assert_null (container_next_exit (c));
  exit_now (e2, 1);
  assert_ptr_equal (container_next_exit (c), e2);
  e2->exit_published = true;
  assert_null (container_next_exit (c));
  exit_now (e1, 2);
  assert_ptr_equal (container_next_exit (c), e1);
  e1->exit_published = true;
  assert_ptr_equal (container_next_exit (c), &c->init);
  assert_ptr_equal (container_process (c, "e2"), e2);
  assert_ptr_equal (container_process (c, ""), &c->init);
  assert_null (container_process (c, "nope"));
  container_free (c);
}

static void
test_failed_start_releases_waiters (void **state)
{
  (void) state;
  struct container *c = container_new ("c1", "/b");
  exit_now (&c->init, 1);
  assert_ptr_equal (container_next_exit (c), &c->init);
  container_free (c);
}

static void
test_failed_exec_start_answers_waits (void **state)
{
  (void) state;
  struct container *c = container_new ("c1", "/b");
  c->init.started = true;
  struct process *e = container_add_exec (c, "e1");
  /* The runtime could not start it: no pid, yet its Waits must not hang. */
  process_record_failed_start (e);
  assert_true (e->exited);
  assert_int_equal (e->exit_status, 255);
  assert_false (e->started);
  assert_ptr_equal (container_next_exit (c), e);
  container_free (c);
}

static void
test_signal_exit_status (void **state)
{
  (void) state;
  struct container *c = container_new ("c1", "/b");
  struct timespec t = { 1, 0 };
  process_record_exit (&c->init, SIGKILL, &t); /* raw status of a SIGKILLed process */
  assert_int_equal (c->init.exit_status, 137);
  container_free (c);
}

static int run_order[4];
static int n_run, n_done, n_freed;

/* A typed op as the model makes them: the generic op first, then its own fields. */
struct test_op
{
  struct op op;
  int n;
};

static void
op_sync (struct op *op)
{
  run_order[n_run++] = ((struct test_op *) op)->n;
  struct model_result r = { 0 };
  container_op_finish (op->container, &r, NULL);
}

static void
op_async (struct op *op)
{
  run_order[n_run++] = ((struct test_op *) op)->n;
}

static void
op_free (struct op *op)
{
  n_freed++;
  free (op);
}

static void
op_done (const struct model_result *res, shim_error_t err, void *arg)
{
  (void) arg;
  assert_non_null (res);
  assert_null (err);
  n_done++;
}

static struct op *
test_op_new (struct container *c, int n, void (*run) (struct op *))
{
  struct test_op *t = xcalloc (1, sizeof *t);
  op_init (&t->op, c, run, op_free, op_done, NULL);
  t->n = n;
  return &t->op;
}

static void
test_op_queue (void **state)
{
  (void) state;
  struct container *c = container_new ("c1", "/b");
  n_run = n_done = n_freed = 0;
  container_submit (c, test_op_new (c, 1, op_async));
  container_submit (c, test_op_new (c, 2, op_sync));
  container_submit (c, test_op_new (c, 3, op_async));
  /* Only the first runs until it is done. */
  assert_int_equal (n_run, 1);
  struct model_result r = { 0 };
  container_op_finish (c, &r, NULL);
  assert_int_equal (n_run, 3);
  assert_int_equal (run_order[0], 1);
  assert_int_equal (run_order[1], 2);
  assert_int_equal (run_order[2], 3);
  container_op_finish (c, &r, NULL);
  assert_null (c->running_op);
  /* Each op was answered once and freed once, by its own free hook. */
  assert_int_equal (n_done, 3);
  assert_int_equal (n_freed, 3);
  container_free (c);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_state_table),
    cmocka_unit_test (test_every_cell_defined),
    cmocka_unit_test (test_created_init_killed_exits),
    cmocka_unit_test (test_starting_exec_holds_init_exit),
    cmocka_unit_test (test_kill_all_from_spec),
    cmocka_unit_test (test_kill_all_holds_init_exit),
    cmocka_unit_test (test_exec_paused_with_container),
    cmocka_unit_test (test_resize_refused_once_exec_exited),
    cmocka_unit_test (test_exec_start_needs_running_init),
    cmocka_unit_test (test_exit_waits_for_start),
    cmocka_unit_test (test_init_exit_after_exec_exits),
    cmocka_unit_test (test_failed_start_releases_waiters),
    cmocka_unit_test (test_failed_exec_start_answers_waits),
    cmocka_unit_test (test_signal_exit_status),
    cmocka_unit_test (test_op_queue),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
