/* spawn.c with a real event_base, a real reaper and real children. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "platform/reaper.h"
#include "platform/spawn.h"
#include "testutil.h"
#include "base/util.h"

struct fixture
{
  struct event_base *base;
  struct reaper *reaper;
};

/* A copy of the result, taken inside the callback (its buffers die with it). */
struct outcome
{
  int calls;
  struct spawn_result res;
  char *out, *err;
};

static int
setup (void **state)
{
  struct fixture *f = xcalloc (1, sizeof *f);
  loop_with_reaper_new (&f->base, &f->reaper);
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
outcome_done (void *arg)
{
  return ((struct outcome *) arg)->calls > 0;
}

static void
outcome_cb (const struct spawn_result *res, void *arg)
{
  struct outcome *o = arg;
  o->calls++;
  o->res = *res;
  o->out = xstrndup (res->out, res->out_len);
  o->err = xstrndup (res->err, res->err_len);
  assert_int_equal (strlen (res->out), res->out_len); /* NUL-terminated */
}

static void
outcome_release (struct outcome *o)
{
  free (o->out);
  free (o->err);
}

/* Runs req to completion; returns how long that took. */
static uint64_t
run_req (struct fixture *f, struct spawn_req *req, struct outcome *o)
{
  shim_error_t err = NULL;
  uint64_t t0 = now_monotonic_ms ();
  struct spawn *s = spawn_start (f->base, f->reaper, req, outcome_cb, o, &err);
  assert_null (err);
  assert_non_null (s);
  assert_true (spawn_pid (s) > 0);
  assert_true (run_until (f->base, outcome_done, o, 10000));
  assert_int_equal (o->calls, 1);
  return now_monotonic_ms () - t0;
}

static struct spawn_req
capture_req (char *const *argv)
{
  return (struct spawn_req){
    .argv = argv,
    .stdin_fd = SPAWN_FD_NULL,
    .stdout_fd = SPAWN_FD_CAPTURE,
    .stderr_fd = SPAWN_FD_CAPTURE,
  };
}

static void
test_capture_and_exit_code (void **state)
{
  char *argv[] = { "/bin/sh", "-c", "echo out; echo err >&2; exit 3", NULL };
  struct spawn_req req = capture_req (argv);
  struct outcome o = { 0 };
  run_req (*state, &req, &o);
  assert_int_equal (o.res.exit_code, 3);
  assert_true (WIFEXITED (o.res.status));
  assert_int_equal (o.res.exec_errno, 0);
  assert_false (o.res.timed_out);
  assert_string_equal (o.out, "out\n");
  assert_string_equal (o.err, "err\n");
  outcome_release (&o);
}

static void
test_killed_by_signal (void **state)
{
  char *argv[] = { "/bin/sh", "-c", "kill -9 $$", NULL };
  struct spawn_req req = capture_req (argv);
  struct outcome o = { 0 };
  run_req (*state, &req, &o);
  assert_true (WIFSIGNALED (o.res.status));
  assert_int_equal (o.res.exit_code, 128 + 9);
  outcome_release (&o);
}

static void
test_stdin_data (void **state)
{
  char *argv[] = { "cat", NULL };
  struct spawn_req req = capture_req (argv);
  req.stdin_data = "hello, stdin";
  req.stdin_len = strlen ("hello, stdin");
  struct outcome o = { 0 };
  run_req (*state, &req, &o);
  assert_int_equal (o.res.exit_code, 0);
  assert_string_equal (o.out, "hello, stdin");
  outcome_release (&o);
}

/* More than a pipe holds in both directions, and more than the capture cap. */
static void
test_big_stdin_capped_capture (void **state)
{
  size_t n = 300 * 1024;
  char *data = xmalloc (n);
  for (size_t i = 0; i < n; i++)
    data[i] = 'a' + i % 26;
  char *argv[] = { "cat", NULL };
  struct spawn_req req = capture_req (argv);
  req.stdin_data = data;
  req.stdin_len = n;
  struct outcome o = { 0 };
  run_req (*state, &req, &o);
  assert_int_equal (o.res.exit_code, 0);
  assert_int_equal (o.res.out_len, 64 * 1024);
  assert_memory_equal (o.out, data, 64 * 1024);
  outcome_release (&o);

  req.capture_max = 10;
  struct outcome small = { 0 };
  run_req (*state, &req, &small);
  assert_int_equal (small.res.out_len, 10);
  assert_memory_equal (small.out, data, 10);
  outcome_release (&small);
  free (data);
}

static void
test_missing_binary (void **state)
{
  char *argv[] = { "/nonexistent/binary", "x", NULL };
  struct spawn_req req = capture_req (argv);
  struct outcome o = { 0 };
  run_req (*state, &req, &o);
  assert_int_equal (o.res.exec_errno, ENOENT);
  assert_int_equal (o.res.exit_code, 127);
  outcome_release (&o);

  char *argv2[] = { "cshim-no-such-program-in-path", NULL };
  req.argv = argv2;
  struct outcome o2 = { 0 };
  run_req (*state, &req, &o2);
  assert_int_equal (o2.res.exec_errno, ENOENT);
  outcome_release (&o2);
}

static void
test_path_lookup_and_env (void **state)
{
  char *argv[] = { "sh", "-c", "echo \"$CSHIM_T\"", NULL };
  char *envp[] = { "CSHIM_T=from-envp", NULL };
  struct spawn_req req = capture_req (argv);
  req.envp = envp;
  struct outcome o = { 0 };
  run_req (*state, &req, &o);
  assert_int_equal (o.res.exit_code, 0);
  assert_string_equal (o.out, "from-envp\n");
  outcome_release (&o);
}

static void
test_deadline (void **state)
{
  char *argv[] = { "sleep", "10", NULL };
  struct spawn_req req = capture_req (argv);
  req.timeout_ms = 200;
  struct outcome o = { 0 };
  uint64_t took = run_req (*state, &req, &o);
  assert_true (o.res.timed_out);
  assert_int_equal (o.res.exit_code, 128 + SIGKILL);
  assert_true (took < 2000);
  /* libevent times with a coarse clock: a few ms early is normal. */
  assert_true (o.res.duration_ms >= 180 && o.res.duration_ms < 2000);
  outcome_release (&o);
}

/* The deadline reaches the whole process group, not just the direct child. */
static void
test_deadline_kills_group (void **state)
{
  char *argv[] = { "/bin/sh", "-c", "sleep 10; echo never", NULL };
  struct spawn_req req = capture_req (argv);
  req.timeout_ms = 200;
  struct outcome o = { 0 };
  uint64_t took = run_req (*state, &req, &o);
  assert_true (o.res.timed_out);
  assert_true (took < 1000); /* no grace wait: the grandchild died too and closed stdout */
  assert_string_equal (o.out, "");
  outcome_release (&o);
}

static void
test_grandchild_holds_stdout (void **state)
{
  struct fixture *f = *state;
  /* The background sleep keeps stdout open after sh exits, as a container does with runc's. */
  char *argv[] = { "/bin/sh", "-c", "sleep 30 & echo $!", NULL };
  struct spawn_req req = capture_req (argv);
  struct outcome o = { 0 };
  uint64_t took = run_req (f, &req, &o);
  assert_int_equal (o.res.exit_code, 0);
  assert_false (o.res.timed_out);
  assert_true (took < 1500);
  pid_t grandchild = (pid_t) atoi (o.out);
  assert_true (grandchild > 0);
  kill (grandchild, SIGKILL);
  /* Re-parented to us (subreaper): the reaper collects it. */
  assert_true (run_until (f->base, pid_reaped, &grandchild, 5000));
  assert_true (reaper_take_cached (f->reaper, grandchild, NULL, NULL));
  outcome_release (&o);
}

static void
never_cb (const struct spawn_result *res, void *arg)
{
  (void) res;
  int *calls = arg;
  (*calls)++;
}

/* A cancel cleanup gets the arg the spawn was started with: never_cb's counter here. */
static void
cleanup_count_cb (void *arg)
{
  *(int *) arg += 100;
}

static void
test_cancel (void **state)
{
  struct fixture *f = *state;
  char *argv[] = { "sleep", "10", NULL };
  struct spawn_req req = capture_req (argv);
  req.stdin_data = "x";
  req.stdin_len = 1;
  req.timeout_ms = 5000;
  int calls = 0;
  shim_error_t err = NULL;
  struct spawn *s = spawn_start (f->base, f->reaper, &req, never_cb, &calls, &err);
  assert_non_null (s);
  spawn_set_cancel_cleanup (s, cleanup_count_cb);
  pid_t pid = spawn_pid (s);
  spawn_cancel (s);
  assert_true (run_until (f->base, pid_reaped, &pid, 5000));
  /* Reaped by the reaper (not left as a zombie) and handed to the spawn, not the cache. */
  assert_false (reaper_take_cached (f->reaper, pid, NULL, NULL));
  assert_int_equal (waitpid (pid, NULL, WNOHANG), -1);
  assert_int_equal (errno, ECHILD);
  assert_int_equal (calls, 100); /* cleaned up once, never called back */
}

/* A first child whose callback chains a second on the same handle. */
struct chain
{
  struct spawn *s;
  char *const *second;
  int first_calls;
  pid_t first_pid;
  struct outcome second_outcome;
};

static void
chain_first_cb (const struct spawn_result *res, void *arg)
{
  struct chain *ch = arg;
  ch->first_calls++;
  ch->first_pid = res->pid;
  assert_int_equal (res->exit_code, 3);
  struct spawn_req req = capture_req (ch->second);
  req.timeout_ms = 5000;
  shim_error_t err = NULL;
  assert_int_equal (spawn_chain (ch->s, &req, outcome_cb, &ch->second_outcome, &err), 0);
  assert_null (err);
  /* Only from inside the callback, once. */
  assert_true (spawn_chain (ch->s, &req, outcome_cb, &ch->second_outcome, &err) < 0);
  shim_error_release (&err);
}

/* A cancel cleanup gets the arg of the child in flight: the chained one's here. */
static void
chain_cleanup_cb (void *arg)
{
  struct outcome *o = arg;
  o->res.exit_code = -42;
}

static struct spawn *
chain_start (struct fixture *f, struct chain *ch)
{
  char *argv[] = { "sh", "-c", "exit 3", NULL };
  struct spawn_req req = capture_req (argv);
  shim_error_t err = NULL;
  ch->s = spawn_start (f->base, f->reaper, &req, chain_first_cb, ch, &err);
  assert_non_null (ch->s);
  return ch->s;
}

static bool
chain_first_done (void *arg)
{
  return ((struct chain *) arg)->first_calls > 0;
}

static void
test_chain (void **state)
{
  struct fixture *f = *state;
  char *second[] = { "sh", "-c", "echo second; echo err >&2", NULL };
  struct chain ch = { .second = second };
  chain_start (f, &ch);
  assert_true (run_until (f->base, outcome_done, &ch.second_outcome, 10000));
  assert_int_equal (ch.first_calls, 1);
  assert_int_equal (ch.second_outcome.calls, 1);
  assert_string_equal (ch.second_outcome.out, "second\n");
  assert_string_equal (ch.second_outcome.err, "err\n");
  assert_int_equal (ch.second_outcome.res.exit_code, 0);
  assert_true (ch.second_outcome.res.pid != ch.first_pid);
  outcome_release (&ch.second_outcome);
}

/* Whoever holds the handle cancels the chained child through it. */
static void
test_chain_cancel (void **state)
{
  struct fixture *f = *state;
  char *second[] = { "sleep", "10", NULL };
  struct chain ch = { .second = second };
  struct spawn *s = chain_start (f, &ch);
  spawn_set_cancel_cleanup (s, chain_cleanup_cb);
  assert_true (run_until (f->base, chain_first_done, &ch, 10000));
  pid_t pid = spawn_pid (s);
  assert_true (pid > 0 && pid != ch.first_pid);
  spawn_cancel (s);
  assert_true (run_until (f->base, pid_reaped, &pid, 5000));
  run_until (f->base, outcome_done, &ch.second_outcome, 100);
  assert_int_equal (ch.second_outcome.calls, 0);
  assert_int_equal (ch.second_outcome.res.exit_code, -42);
}

/* Canceling after the child is gone but while its pipes are still held frees at once. */
static void
test_cancel_after_reap (void **state)
{
  struct fixture *f = *state;
  int p[2];
  assert_int_equal (pipe2 (p, O_CLOEXEC), 0);
  char *argv[] = { "/bin/sh", "-c", "sleep 30 & echo $! >&3", NULL };
  struct spawn_req req = capture_req (argv);
  req.extra_fds = &p[1];
  req.n_extra_fds = 1;
  int calls = 0;
  shim_error_t err = NULL;
  struct spawn *s = spawn_start (f->base, f->reaper, &req, never_cb, &calls, &err);
  assert_non_null (s);
  close (p[1]);
  pid_t pid = spawn_pid (s);
  assert_true (run_until (f->base, pid_reaped, &pid, 5000));
  spawn_cancel (s);
  run_until (f->base, outcome_done, &(struct outcome){ 0 }, 300);
  assert_int_equal (calls, 0);

  char buf[32] = { 0 };
  assert_true (read (p[0], buf, sizeof buf - 1) > 0);
  close (p[0]);
  pid_t grandchild = (pid_t) atoi (buf);
  assert_true (grandchild > 0);
  kill (grandchild, SIGKILL);
  assert_true (run_until (f->base, pid_reaped, &grandchild, 5000));
}

static void
test_extra_fds (void **state)
{
  int p[2], q[2];
  assert_int_equal (pipe2 (p, O_CLOEXEC), 0);
  assert_int_equal (pipe2 (q, O_CLOEXEC), 0);
  char *argv[] = { "/bin/sh", "-c", "echo three >&3; echo four >&4", NULL };
  struct spawn_req req = capture_req (argv);
  int extra[] = { p[1], q[1] };
  req.extra_fds = extra;
  req.n_extra_fds = 2;
  struct outcome o = { 0 };
  run_req (*state, &req, &o);
  assert_int_equal (o.res.exit_code, 0);
  close (p[1]);
  close (q[1]);
  char buf[64] = { 0 };
  assert_int_equal (read (p[0], buf, sizeof buf - 1), 6);
  assert_string_equal (buf, "three\n");
  memset (buf, 0, sizeof buf);
  assert_int_equal (read (q[0], buf, sizeof buf - 1), 5);
  assert_string_equal (buf, "four\n");
  close (p[0]);
  close (q[0]);
  outcome_release (&o);
}

/* Sources whose numbers are also targets: stdout and stderr swapped, and fd 1 as extra fd 3. */
static void
test_fd_collisions (void **state)
{
  int a[2], b[2];
  assert_int_equal (pipe2 (a, O_CLOEXEC), 0);
  assert_int_equal (pipe2 (b, O_CLOEXEC), 0);
  int saved1 = fcntl (1, F_DUPFD_CLOEXEC, 100), saved2 = fcntl (2, F_DUPFD_CLOEXEC, 100);
  dup2 (a[1], 1);
  dup2 (b[1], 2);
  close (a[1]);
  close (b[1]);

  char *argv[] = { "/bin/sh", "-c", "echo O; echo E >&2; echo T >&3", NULL };
  struct spawn_req req = { .argv = argv,
                           .stdin_fd = SPAWN_FD_NULL,
                           .stdout_fd = 2,
                           .stderr_fd = 1,
                           .extra_fds = (int[]){ 1 },
                           .n_extra_fds = 1 };
  struct outcome o = { 0 };
  run_req (*state, &req, &o);

  dup2 (saved1, 1);
  dup2 (saved2, 2);
  close (saved1);
  close (saved2);
  assert_int_equal (o.res.exit_code, 0);
  char buf[64] = { 0 };
  assert_true (read (a[0], buf, sizeof buf - 1) > 0);
  assert_string_equal (buf, "E\nT\n"); /* what went to the child's stderr and fd 3 */
  memset (buf, 0, sizeof buf);
  assert_true (read (b[0], buf, sizeof buf - 1) > 0);
  assert_string_equal (buf, "O\n");
  close (a[0]);
  close (b[0]);
  outcome_release (&o);
}

static void
test_cwd (void **state)
{
  char *argv[] = { "/bin/sh", "-c", "pwd", NULL };
  struct spawn_req req = capture_req (argv);
  req.cwd = "/usr/share";
  struct outcome o = { 0 };
  run_req (*state, &req, &o);
  assert_string_equal (o.out, "/usr/share\n");
  outcome_release (&o);

  req.cwd = "/nonexistent/dir";
  struct outcome bad = { 0 };
  run_req (*state, &req, &bad);
  assert_int_equal (bad.res.exec_errno, ENOENT);
  outcome_release (&bad);
}

/* Only 0, 1, 2 reach the child; the shim's signal mask and ignored signals do not. Only the
 * classic signals (1-31) are compared: the environment may ignore
 * real-time signals that libc reserves and that nobody can reset. The open fds are listed
 * with builtins only (stat, no fork): a pipeline would race with the shell's own pipe ends. */
static void
test_child_environment (void **state)
{
  char *argv[] = { "/bin/sh", "-c",
                   "i=0; while [ $i -lt 256 ]; do [ -e /proc/$$/fd/$i ] && printf '%d ' $i;"
                   " i=$((i + 1)); done; for k in SigBlk SigIgn; do"
                   " v=$(grep \"^$k\" /proc/$$/status | cut -f2);"
                   " printf '%s %d\\n' $k $(( 0x$v & 0x7fffffff )); done",
                   NULL };
  struct spawn_req req = capture_req (argv);
  sigset_t block, old;
  sigemptyset (&block);
  sigaddset (&block, SIGTERM);
  sigprocmask (SIG_BLOCK, &block, &old);
  struct outcome o = { 0 };
  run_req (*state, &req, &o);
  sigprocmask (SIG_SETMASK, &old, NULL);
  assert_string_equal (o.out, "0 1 2 SigBlk 0\nSigIgn 0\n");
  outcome_release (&o);
}

static void
test_stdio_null_and_fd (void **state)
{
  int p[2];
  assert_int_equal (pipe2 (p, O_CLOEXEC), 0);
  char *argv[] = { "/bin/sh", "-c", "cat; echo to-fd; echo gone >&2", NULL };
  struct spawn_req req
      = { .argv = argv, .stdin_fd = SPAWN_FD_NULL, .stdout_fd = p[1], .stderr_fd = SPAWN_FD_NULL };
  struct outcome o = { 0 };
  run_req (*state, &req, &o);
  close (p[1]);
  assert_int_equal (o.res.exit_code, 0);
  assert_int_equal (o.res.out_len, 0);
  assert_int_equal (o.res.err_len, 0);
  char buf[64] = { 0 };
  assert_true (read (p[0], buf, sizeof buf - 1) > 0);
  assert_string_equal (buf, "to-fd\n");
  close (p[0]);
  outcome_release (&o);
}

static void
test_bad_request (void **state)
{
  struct fixture *f = *state;
  shim_error_t err = NULL;
  char *argv[] = { NULL };
  struct spawn_req req = capture_req (argv);
  assert_null (spawn_start (f->base, f->reaper, &req, never_cb, NULL, &err));
  assert_non_null (err);
  shim_error_release (&err);

  char *argv2[] = { "true", NULL };
  req = capture_req (argv2);
  req.stdin_fd = SPAWN_FD_CAPTURE; /* only stdout/stderr can be captured */
  assert_null (spawn_start (f->base, f->reaper, &req, never_cb, NULL, &err));
  assert_non_null (err);
  assert_int_equal (err->code, SHIM_INVALID_ARGUMENT);
  shim_error_release (&err);
}

int
main (void)
{
  /* The shim ignores SIGPIPE (a child closing stdin early must not kill it); so do we. */
  signal (SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_capture_and_exit_code, setup, teardown),
    cmocka_unit_test_setup_teardown (test_chain, setup, teardown),
    cmocka_unit_test_setup_teardown (test_chain_cancel, setup, teardown),
    cmocka_unit_test_setup_teardown (test_killed_by_signal, setup, teardown),
    cmocka_unit_test_setup_teardown (test_stdin_data, setup, teardown),
    cmocka_unit_test_setup_teardown (test_big_stdin_capped_capture, setup, teardown),
    cmocka_unit_test_setup_teardown (test_missing_binary, setup, teardown),
    cmocka_unit_test_setup_teardown (test_path_lookup_and_env, setup, teardown),
    cmocka_unit_test_setup_teardown (test_deadline, setup, teardown),
    cmocka_unit_test_setup_teardown (test_deadline_kills_group, setup, teardown),
    cmocka_unit_test_setup_teardown (test_grandchild_holds_stdout, setup, teardown),
    cmocka_unit_test_setup_teardown (test_cancel, setup, teardown),
    cmocka_unit_test_setup_teardown (test_cancel_after_reap, setup, teardown),
    cmocka_unit_test_setup_teardown (test_extra_fds, setup, teardown),
    cmocka_unit_test_setup_teardown (test_fd_collisions, setup, teardown),
    cmocka_unit_test_setup_teardown (test_cwd, setup, teardown),
    cmocka_unit_test_setup_teardown (test_child_environment, setup, teardown),
    cmocka_unit_test_setup_teardown (test_stdio_null_and_fd, setup, teardown),
    cmocka_unit_test_setup_teardown (test_bad_request, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
