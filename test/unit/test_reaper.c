/* reaper.c with a real event_base and real children. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "platform/reaper.h"
#include "testutil.h"
#include "base/util.h"

struct fixture
{
  struct event_base *base;
  struct reaper *reaper;
};

struct seen
{
  int calls;
  pid_t pid;
  int status;
  struct timespec when;
};

static int
setup (void **state)
{
  struct fixture *f = xcalloc (1, sizeof *f);
  shim_error_t err = NULL;
  f->base = event_base_new ();
  f->reaper = reaper_new (f->base, &err);
  assert_null (err);
  assert_non_null (f->reaper);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fixture *f = *state;
  loop_with_reaper_free (f->base, f->reaper);
  free (f);
  return 0;
}

static bool
seen_called (void *arg)
{
  return ((struct seen *) arg)->calls > 0;
}

static void
record_cb (pid_t pid, int status, const struct timespec *when, void *arg)
{
  struct seen *s = arg;
  s->calls++;
  s->pid = pid;
  s->status = status;
  s->when = *when;
}

static pid_t
fork_exit (int code)
{
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    _exit (code);
  return pid;
}

static void
test_exit_before_watch (void **state)
{
  struct fixture *f = *state;
  pid_t pid = fork_exit (7);
  assert_true (run_until (f->base, pid_reaped, &pid, 5000));

  struct seen s = { 0 };
  struct reaper_watch *w = reaper_watch (f->reaper, pid, record_cb, &s);
  assert_non_null (w);
  assert_int_equal (s.calls, 0); /* never from inside reaper_watch() */
  assert_true (run_until (f->base, seen_called, &s, 5000));
  assert_int_equal (s.calls, 1);
  assert_int_equal (s.pid, pid);
  assert_true (WIFEXITED (s.status));
  assert_int_equal (WEXITSTATUS (s.status), 7);
  assert_true (s.when.tv_sec > 0);
  assert_false (reaper_take_cached (f->reaper, pid, NULL, NULL));
}

static void
test_watch_then_exit (void **state)
{
  struct fixture *f = *state;
  struct seen s = { 0 };
  pid_t pid = fork_exit (5);
  assert_non_null (reaper_watch (f->reaper, pid, record_cb, &s));
  assert_true (run_until (f->base, seen_called, &s, 5000));
  assert_int_equal (s.pid, pid);
  assert_int_equal (WEXITSTATUS (s.status), 5);
  assert_int_equal (wait_status_to_exit_code (s.status), 5);
}

static void
test_signalled (void **state)
{
  struct fixture *f = *state;
  struct seen s = { 0 };
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      pause ();
      _exit (0);
    }
  assert_non_null (reaper_watch (f->reaper, pid, record_cb, &s));
  kill (pid, SIGKILL);
  assert_true (run_until (f->base, seen_called, &s, 5000));
  assert_true (WIFSIGNALED (s.status));
  assert_int_equal (wait_status_to_exit_code (s.status), 128 + SIGKILL);
}

static void
test_stop_is_not_exit (void **state)
{
  struct fixture *f = *state;
  struct seen s = { 0 };
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      raise (SIGSTOP);
      _exit (3);
    }
  assert_non_null (reaper_watch (f->reaper, pid, record_cb, &s));
  assert_false (run_until (f->base, seen_called, &s, 300));
  kill (pid, SIGCONT);
  assert_true (run_until (f->base, seen_called, &s, 5000));
  assert_int_equal (s.calls, 1);
  assert_true (WIFEXITED (s.status));
  assert_int_equal (WEXITSTATUS (s.status), 3);
}

static void
test_unwatch (void **state)
{
  struct fixture *f = *state;
  struct seen s = { 0 };
  pid_t pid = fork_exit (9);
  struct reaper_watch *w = reaper_watch (f->reaper, pid, record_cb, &s);
  assert_non_null (w);
  reaper_unwatch (f->reaper, w);
  assert_true (run_until (f->base, pid_reaped, &pid, 5000));
  run_until (f->base, seen_called, &s, 100);
  assert_int_equal (s.calls, 0);

  /* Unclaimed, so it went to the cache. */
  int status = 0;
  struct timespec when = { 0 };
  assert_true (reaper_take_cached (f->reaper, pid, &status, &when));
  assert_int_equal (WEXITSTATUS (status), 9);
  assert_false (reaper_take_cached (f->reaper, pid, &status, &when));
}

/* The new process behind a reused pid must not get the exit an earlier one left in the cache:
 * an exit reaped before the watcher's process could exist is dropped. */
static void
test_stale_exit_dropped (void **state)
{
  struct fixture *f = *state;
  struct seen s = { 0 };
  pid_t pid = fork_exit (3);
  assert_true (run_until (f->base, pid_reaped, &pid, 5000));
  uint64_t since = now_monotonic_ms () + 1;
  while (now_monotonic_ms () < since)
    usleep (500);
  struct reaper_watch *w = reaper_watch_since (f->reaper, pid, since, record_cb, &s);
  assert_non_null (w);
  run_until (f->base, seen_called, &s, 100);
  assert_int_equal (s.calls, 0);
  assert_false (reaper_take_cached (f->reaper, pid, NULL, NULL));
  reaper_unwatch (f->reaper, w);
}

/* An exit reaped after the call that created the process started is that process's. */
static void
test_exit_since_call_start_delivered (void **state)
{
  struct fixture *f = *state;
  struct seen s = { 0 };
  uint64_t since = now_monotonic_ms ();
  pid_t pid = fork_exit (4);
  assert_true (run_until (f->base, pid_reaped, &pid, 5000));
  assert_non_null (reaper_watch_since (f->reaper, pid, since, record_cb, &s));
  assert_true (run_until (f->base, seen_called, &s, 5000));
  assert_int_equal (WEXITSTATUS (s.status), 4);
}

static void
test_unwatch_pending_delivery (void **state)
{
  struct fixture *f = *state;
  struct seen s = { 0 };
  pid_t pid = fork_exit (1);
  assert_true (run_until (f->base, pid_reaped, &pid, 5000));
  struct reaper_watch *w = reaper_watch (f->reaper, pid, record_cb, &s);
  reaper_unwatch (f->reaper, w);
  run_until (f->base, seen_called, &s, 100);
  assert_int_equal (s.calls, 0);
}

static void
test_one_watch_per_pid (void **state)
{
  struct fixture *f = *state;
  struct seen s = { 0 }, other = { 0 };
  pid_t pid = fork_exit (2);
  assert_non_null (reaper_watch (f->reaper, pid, record_cb, &s));
  assert_null (reaper_watch (f->reaper, pid, record_cb, &other));
  assert_true (run_until (f->base, seen_called, &s, 5000));
  assert_int_equal (other.calls, 0);
}

#define MANY 50

struct many
{
  struct seen seen[MANY];
  int done;
};

static bool
all_seen (void *arg)
{
  struct many *m = arg;
  for (int i = 0; i < MANY; i++)
    if (m->seen[i].calls == 0)
      return false;
  return true;
}

static void
test_many_children (void **state)
{
  struct fixture *f = *state;
  struct many m = { 0 };
  pid_t pids[MANY];
  for (int i = 0; i < MANY; i++)
    {
      pids[i] = fork_exit (i);
      /* Half are watched before their exit is seen, half after. */
      if (i % 2 == 0)
        assert_non_null (reaper_watch (f->reaper, pids[i], record_cb, &m.seen[i]));
    }
  for (int i = 0; i < MANY; i++)
    assert_true (run_until (f->base, pid_reaped, &pids[i], 5000));
  for (int i = 1; i < MANY; i += 2)
    assert_non_null (reaper_watch (f->reaper, pids[i], record_cb, &m.seen[i]));
  assert_true (run_until (f->base, all_seen, &m, 5000));
  for (int i = 0; i < MANY; i++)
    {
      assert_int_equal (m.seen[i].calls, 1);
      assert_int_equal (m.seen[i].pid, pids[i]);
      assert_int_equal (WEXITSTATUS (m.seen[i].status), i);
    }
}

static void
test_cache_bounded (void **state)
{
  struct fixture *f = *state;
  enum
  {
    N = 1030
  };
  pid_t *pids = xcalloc (N, sizeof *pids);
  for (int i = 0; i < N; i++)
    {
      pids[i] = fork_exit (0);
      /* The first exit is cached before any other, and each batch of 64 before the next: a
       * child that a busy machine runs late must not be cached after younger ones. */
      if (i == 0 || i % 64 == 63)
        for (int j = i == 0 ? 0 : i - 63; j <= i; j++)
          assert_true (run_until (f->base, pid_reaped, &pids[j], 5000));
    }
  for (int i = 0; i < N; i++)
    assert_true (run_until (f->base, pid_reaped, &pids[i], 5000));
  assert_false (reaper_take_cached (f->reaper, pids[0], NULL, NULL));
  assert_true (reaper_take_cached (f->reaper, pids[N - 1], NULL, NULL));
  free (pids);
}

static void
test_reaper_reap_direct (void **state)
{
  struct fixture *f = *state;
  struct seen s = { 0 };
  pid_t pid = fork_exit (4);
  assert_non_null (reaper_watch (f->reaper, pid, record_cb, &s));
  /* Without the loop: reaper_reap() itself dispatches once the child is a zombie. */
  uint64_t deadline = now_monotonic_ms () + 5000;
  while (s.calls == 0 && now_monotonic_ms () < deadline)
    {
      usleep (1000);
      reaper_reap (f->reaper);
    }
  assert_int_equal (s.calls, 1);
  assert_int_equal (WEXITSTATUS (s.status), 4);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_exit_before_watch, setup, teardown),
    cmocka_unit_test_setup_teardown (test_watch_then_exit, setup, teardown),
    cmocka_unit_test_setup_teardown (test_signalled, setup, teardown),
    cmocka_unit_test_setup_teardown (test_stop_is_not_exit, setup, teardown),
    cmocka_unit_test_setup_teardown (test_unwatch, setup, teardown),
    cmocka_unit_test_setup_teardown (test_unwatch_pending_delivery, setup, teardown),
    cmocka_unit_test_setup_teardown (test_stale_exit_dropped, setup, teardown),
    cmocka_unit_test_setup_teardown (test_exit_since_call_start_delivered, setup, teardown),
    cmocka_unit_test_setup_teardown (test_one_watch_per_pid, setup, teardown),
    cmocka_unit_test_setup_teardown (test_many_children, setup, teardown),
    cmocka_unit_test_setup_teardown (test_cache_bounded, setup, teardown),
    cmocka_unit_test_setup_teardown (test_reaper_reap_direct, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
