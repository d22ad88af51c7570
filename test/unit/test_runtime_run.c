/* runtime_run() end to end against test/fakes/fake-runtime (found through $CSHIM_FAKE_RUNTIME,
 * else through fakes_path (), which finds test/fakes from the repo root `make unit` runs in). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/log.h"
#include "runtime/profile.h"
#include "platform/reaper.h"
#include "runtime/runtime.h"
#include "platform/spawn.h"
#include "testutil.h"
#include "base/util.h"

struct fixture
{
  struct event_base *base;
  struct reaper *reaper;
  char dir[64];
  char *fake;
  char *log_path, *record_path, *pid_path, *stdin_path, *before_path;
  struct runtime_cfg cfg;
  struct runtime rt;
};

struct outcome
{
  int calls;
  int exit_code;
  uint64_t started_ms, done_ms;
  shim_error_t err; /* stolen from the result */
  char *out;
};

static const char *const fake_vars[] = {
  "FAKE_RUNTIME_RECORD", "FAKE_RUNTIME_EXIT",       "FAKE_RUNTIME_LOG_ERROR", "FAKE_RUNTIME_STDERR",
  "FAKE_RUNTIME_STDOUT", "FAKE_RUNTIME_STDIN",      "FAKE_RUNTIME_SLEEP",     "FAKE_RUNTIME_PID",
  "FAKE_YOUKI_RUNC",     "FAKE_RUNTIME_LOG_BEFORE",
};

static char *
fake_runtime_path (void)
{
  const char *env = getenv ("CSHIM_FAKE_RUNTIME");
  if (env && env[0])
    return xstrdup (env);
  return fakes_path ("fake-runtime");
}

static int
setup (void **state)
{
  struct fixture *f = xcalloc (1, sizeof *f);
  loop_with_reaper_new (&f->base, &f->reaper);
  snprintf (f->dir, sizeof f->dir, "/tmp/cshim-rt-XXXXXX");
  assert_non_null (mkdtemp (f->dir));
  f->fake = fake_runtime_path ();
  f->log_path = xasprintf ("%s/log.json", f->dir);
  f->record_path = xasprintf ("%s/record", f->dir);
  f->pid_path = xasprintf ("%s/init.pid", f->dir);
  f->stdin_path = xasprintf ("%s/stdin", f->dir);
  f->before_path = xasprintf ("%s/log-before", f->dir);
  f->cfg = (struct runtime_cfg){ .binary = f->fake, .root = f->dir, .timeout_ms = 10000 };
  f->rt = (struct runtime){ .base = f->base,
                            .reaper = f->reaper,
                            .cfg = &f->cfg,
                            .namespace = "testns",
                            .log_path = f->log_path };
  setenv ("FAKE_RUNTIME_RECORD", f->record_path, 1);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fixture *f = *state;
  for (size_t i = 0; i < ARRAY_SIZE (fake_vars); i++)
    unsetenv (fake_vars[i]);
  unlink (f->log_path);
  unlink (f->record_path);
  unlink (f->pid_path);
  unlink (f->stdin_path);
  unlink (f->before_path);
  rmdir (f->dir);
  free (f->log_path);
  free (f->record_path);
  free (f->pid_path);
  free (f->stdin_path);
  free (f->before_path);
  free (f->fake);
  loop_with_reaper_free (f->base, f->reaper);
  free (f);
  log_init (NULL, NULL, false);
  return 0;
}

static bool
outcome_done (void *arg)
{
  return ((struct outcome *) arg)->calls > 0;
}

static void
outcome_cb (struct runtime_result *res, void *arg)
{
  struct outcome *o = arg;
  o->calls++;
  o->exit_code = res->exit_code;
  o->started_ms = res->started_ms;
  o->done_ms = now_monotonic_ms ();
  o->err = steal_ptr (&res->err);
  o->out = xstrndup (res->out ? res->out : "", res->out_len);
}

static void
outcome_release (struct outcome *o)
{
  shim_error_release (&o->err);
  free (o->out);
}

static uint64_t
run_call (struct fixture *f, const struct runtime_call *call, const struct runtime_io *io,
          struct outcome *o)
{
  shim_error_t err = NULL;
  uint64_t t0 = now_monotonic_ms ();
  struct spawn *s = runtime_run (&f->rt, call, io, outcome_cb, o, &err);
  assert_null (err);
  assert_non_null (s);
  assert_true (run_until (f->base, outcome_done, o, 15000));
  assert_int_equal (o->calls, 1);
  return now_monotonic_ms () - t0;
}

static void
append (const char *path, const char *text)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  assert_true (fd >= 0);
  assert_int_equal (write_all (fd, text, strlen (text)), 0);
  close (fd);
}

static char *
slurp (const char *path)
{
  char *text = NULL;
  shim_error_t err = NULL;
  assert_int_equal (read_file (path, 1 << 20, &text, NULL, &err), 0);
  return text;
}

static void
test_success_records_argv (void **state)
{
  struct fixture *f = *state;
  log_init ("testns", "c1", true); /* also walks the debug-log path */
  struct runtime_call call = { .verb = RUNTIME_KILL, .id = "c1", .signal = 15, .all = true };
  struct outcome o = { 0 };
  run_call (f, &call, NULL, &o);
  assert_int_equal (o.exit_code, 0);
  assert_null (o.err);

  cleanup_free char *rec = slurp (f->record_path);
  cleanup_free char *want = xasprintf ("%s\t--root\t%s/testns\t--log\t%s\t--log-format\tjson\t"
                                       "kill\t--all\tc1\t15\n",
                                       f->fake, f->dir, f->log_path);
  assert_string_equal (rec, want);
  outcome_release (&o);
}

static void
test_create_pid_file (void **state)
{
  struct fixture *f = *state;
  struct runtime_call call = {
    .verb = RUNTIME_CREATE,
    .id = "c1",
    .bundle = f->dir,
    .pid_file = f->pid_path,
  };
  struct outcome o = { 0 };
  uint64_t took = run_call (f, &call, NULL, &o);
  assert_null (o.err);
  assert_true (took < 1000); /* the "container" does not hold the captured pipes */

  cleanup_free char *text = slurp (f->pid_path);
  pid_t pid = 0;
  shim_error_t err = NULL;
  assert_int_equal (runtime_parse_pid (text, &pid, &err), 0);
  assert_true (pid > 0);
  assert_int_equal (kill (pid, 0), 0);
  kill (pid, SIGKILL);
  /* The "container" was re-parented to us; the reaper holds its exit for whoever asks. */
  assert_true (run_until (f->base, pid_reaped, &pid, 5000));
  assert_true (reaper_take_cached (f->reaper, pid, NULL, NULL));
  outcome_release (&o);
}

static void
test_failure_uses_new_log_error (void **state)
{
  struct fixture *f = *state;
  append (f->log_path, "{\"level\":\"error\",\"msg\":\"an old failure\",\"time\":\"x\"}\n"
                       "{\"level\":\"info\",\"msg\":\"old info\"}\n");
  setenv ("FAKE_RUNTIME_EXIT", "1", 1);
  setenv ("FAKE_RUNTIME_LOG_ERROR", "container with id exists: c1", 1);
  setenv ("FAKE_RUNTIME_STDERR", "something on stderr", 1);
  struct runtime_call call = {
    .verb = RUNTIME_CREATE,
    .id = "c1",
    .bundle = f->dir,
    .pid_file = f->pid_path,
  };
  struct outcome o = { 0 };
  run_call (f, &call, NULL, &o);
  assert_int_equal (o.exit_code, 1);
  assert_non_null (o.err);
  assert_string_equal (o.err->msg, "create failed: container with id exists: c1");
  assert_int_equal (o.err->code, SHIM_ALREADY_EXISTS);
  assert_int_equal (access (f->pid_path, F_OK), -1); /* no pid file on failure */
  outcome_release (&o);
}

static void
test_failure_stderr_not_old_log (void **state)
{
  struct fixture *f = *state;
  append (f->log_path, "{\"level\":\"error\",\"msg\":\"an old failure\"}\n");
  setenv ("FAKE_RUNTIME_EXIT", "1", 1);
  setenv ("FAKE_RUNTIME_STDERR", "  container not running  ", 1);
  struct runtime_call call = { .verb = RUNTIME_KILL, .id = "c1", .signal = 9 };
  struct outcome o = { 0 };
  run_call (f, &call, NULL, &o);
  assert_non_null (o.err);
  assert_string_equal (o.err->msg, "kill failed: container not running");
  assert_int_equal (o.err->code, SHIM_NOT_FOUND);
  outcome_release (&o);
}

static void
test_failure_exit_status_only (void **state)
{
  struct fixture *f = *state;
  setenv ("FAKE_RUNTIME_EXIT", "3", 1);
  struct runtime_call call = { .verb = RUNTIME_DELETE, .id = "c1", .force = true };
  struct outcome o = { 0 };
  run_call (f, &call, NULL, &o);
  assert_int_equal (o.exit_code, 3);
  assert_non_null (o.err);
  assert_string_equal (o.err->msg, "delete failed: exit status 3");
  assert_int_equal (o.err->code, SHIM_UNKNOWN);
  outcome_release (&o);
}

static void
test_missing_binary (void **state)
{
  struct fixture *f = *state;
  f->cfg.binary = "/nonexistent/runc";
  struct runtime_call call = {
    .verb = RUNTIME_CREATE,
    .id = "c1",
    .bundle = f->dir,
    .pid_file = f->pid_path,
  };
  struct outcome o = { 0 };
  run_call (f, &call, NULL, &o);
  assert_non_null (o.err);
  assert_string_equal (o.err->msg,
                       "create failed: exec /nonexistent/runc: No such file or directory");
  assert_int_equal (o.err->code, SHIM_FAILED_PRECONDITION);
  assert_int_equal (o.err->errno_, ENOENT);
  outcome_release (&o);
}

static void
test_missing_bundle_dir (void **state)
{
  struct fixture *f = *state;
  struct runtime_call call = {
    .verb = RUNTIME_CREATE,
    .id = "c1",
    .bundle = "/nonexistent/bundle",
    .pid_file = f->pid_path,
  };
  struct outcome o = { 0 };
  run_call (f, &call, NULL, &o);
  assert_non_null (o.err);
  assert_string_equal (o.err->msg,
                       "create failed: chdir /nonexistent/bundle: No such file or directory");
  outcome_release (&o);
}

/* The handle's working directory (a container's bundle) is where every call runs, whatever
 * the call's own bundle says. */
static void
test_handle_cwd_wins (void **state)
{
  struct fixture *f = *state;
  f->rt.cwd = "/nonexistent/cwd";
  struct runtime_call call = { .verb = RUNTIME_CREATE, .id = "c1", .bundle = f->dir };
  struct outcome o = { 0 };
  run_call (f, &call, NULL, &o);
  assert_non_null (o.err);
  assert_string_equal (o.err->msg,
                       "create failed: chdir /nonexistent/cwd: No such file or directory");
  outcome_release (&o);
}

static void
test_deadline (void **state)
{
  struct fixture *f = *state;
  f->cfg.timeout_ms = 300;
  setenv ("FAKE_RUNTIME_SLEEP", "10", 1);
  struct runtime_call call = { .verb = RUNTIME_STATE, .id = "c1" };
  struct outcome o = { 0 };
  uint64_t took = run_call (f, &call, NULL, &o);
  assert_true (took < 2000);
  assert_non_null (o.err);
  cleanup_free char *want
      = xasprintf ("state failed: runtime %s did not finish within 300 ms (killed)", f->fake);
  assert_string_equal (o.err->msg, want);
  assert_int_equal (o.err->code, SHIM_DEADLINE_EXCEEDED);
  outcome_release (&o);
}

static void
test_stdout_and_stdin (void **state)
{
  struct fixture *f = *state;
  setenv ("FAKE_RUNTIME_STDOUT", "[1,2,3]", 1);
  struct runtime_call ps = { .verb = RUNTIME_PS, .id = "c1" };
  struct outcome o = { 0 };
  run_call (f, &ps, NULL, &o);
  assert_null (o.err);
  assert_string_equal (o.out, "[1,2,3]");
  outcome_release (&o);

  unsetenv ("FAKE_RUNTIME_STDOUT");
  setenv ("FAKE_RUNTIME_STDIN", f->stdin_path, 1);
  const char *resources = "{\"memory\":{\"limit\":1048576}}";
  struct runtime_io io = {
    .stdin_fd = SPAWN_FD_NULL,
    .stdout_fd = SPAWN_FD_CAPTURE,
    .stderr_fd = SPAWN_FD_CAPTURE,
    .stdin_data = resources,
    .stdin_len = strlen (resources),
  };
  struct runtime_call up = { .verb = RUNTIME_UPDATE, .id = "c1" };
  struct outcome u = { 0 };
  run_call (f, &up, &io, &u);
  assert_null (u.err);
  cleanup_free char *got = slurp (f->stdin_path);
  assert_string_equal (got, resources);
  outcome_release (&u);
}

static void
unexpected_cb (struct runtime_result *res, void *arg)
{
  (void) res;
  (*(int *) arg)++;
}

static void
test_cancel (void **state)
{
  struct fixture *f = *state;
  setenv ("FAKE_RUNTIME_SLEEP", "10", 1);
  struct runtime_call call = { .verb = RUNTIME_START, .id = "c1" };
  int calls = 0;
  shim_error_t err = NULL;
  struct spawn *s = runtime_run (&f->rt, &call, NULL, unexpected_cb, &calls, &err);
  assert_non_null (s);
  pid_t pid = spawn_pid (s);
  spawn_cancel (s);
  assert_true (run_until (f->base, pid_reaped, &pid, 5000));
  assert_int_equal (calls, 0);
}

/* Released by runtime_run when the callback leaves it. */
static void
peek_cb (struct runtime_result *res, void *arg)
{
  struct outcome *o = arg;
  o->calls++;
  o->exit_code = res->exit_code;
  o->started_ms = res->started_ms;
  o->done_ms = now_monotonic_ms ();
  assert_non_null (res->err);
  assert_string_equal (res->err->msg, "pause failed: exit status 2");
}

static void
test_error_not_stolen (void **state)
{
  struct fixture *f = *state;
  setenv ("FAKE_RUNTIME_EXIT", "2", 1);
  struct runtime_call call = { .verb = RUNTIME_PAUSE, .id = "c1" };
  struct outcome o = { 0 };
  shim_error_t err = NULL;
  assert_non_null (runtime_run (&f->rt, &call, NULL, peek_cb, &o, &err));
  assert_true (run_until (f->base, outcome_done, &o, 5000));
  assert_int_equal (o.exit_code, 2);
}

/* ---- profiles and the broken runtimes in test/fakes ---- */

/* Another script next to fake-runtime. */
static char *
sibling_fake (const struct fixture *f, const char *name)
{
  const char *slash = strrchr (f->fake, '/');
  return xasprintf ("%.*s/%s", (int) (slash - f->fake), f->fake, name);
}

static void
test_profile_refuses_before_spawning (void **state)
{
  struct fixture *f = *state;
  f->cfg.profile = profile_by_name ("youki");
  struct runtime_criu criu = { .image_path = "/ck" };
  struct runtime_call call = {
    .verb = RUNTIME_RESTORE, .id = "c1", .bundle = f->dir, .pid_file = f->pid_path, .criu = &criu
  };
  int calls = 0;
  shim_error_t err = NULL;
  assert_null (runtime_run (&f->rt, &call, NULL, unexpected_cb, &calls, &err));
  assert_non_null (err);
  assert_string_equal (err->msg, "restore failed: youki does not support restore");
  assert_int_equal (err->code, SHIM_UNIMPLEMENTED);
  shim_error_release (&err);
  assert_int_equal (access (f->record_path, F_OK), -1); /* nothing ran */
  assert_int_equal (calls, 0);
}

static void
test_profile_spelling_reaches_runtime (void **state)
{
  struct fixture *f = *state;
  f->cfg.profile = profile_by_name ("youki");
  struct runtime_criu criu = { .image_path = "/ck", .leave_running = true };
  struct runtime_call call = { .verb = RUNTIME_CHECKPOINT, .id = "c1", .criu = &criu };
  struct outcome o = { 0 };
  run_call (f, &call, NULL, &o);
  assert_null (o.err);
  cleanup_free char *rec = slurp (f->record_path);
  cleanup_free char *want = xasprintf ("%s\t--root\t%s/testns\t--log\t%s\t--log-format\tjson\t"
                                       "checkpointt\t--image-path\t/ck\t--leave-running\tc1\n",
                                       f->fake, f->dir, f->log_path);
  assert_string_equal (rec, want);
  outcome_release (&o);
}

/* fake-youki in front of fake-runtime: the runtime's error reaches the log in youki's shape
 * ("message", "ERROR") and is still what the failure says. */
static void
test_youki_log_format (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *youki = sibling_fake (f, "fake-youki");
  f->cfg.binary = youki;
  f->cfg.profile = profile_by_name ("youki");
  setenv ("FAKE_YOUKI_RUNC", f->fake, 1);
  setenv ("FAKE_RUNTIME_EXIT", "1", 1);
  setenv ("FAKE_RUNTIME_LOG_ERROR", "container \"c1\" does not exist", 1);
  struct runtime_call call = { .verb = RUNTIME_STATE, .id = "c1" };
  struct outcome o = { 0 };
  run_call (f, &call, NULL, &o);
  assert_non_null (o.err);
  assert_string_equal (o.err->msg, "state failed: container \"c1\" does not exist");
  assert_int_equal (o.err->code, SHIM_NOT_FOUND);
  cleanup_free char *log = slurp (f->log_path);
  assert_non_null (strstr (log, "\"level\":\"ERROR\",\"message\":\"container \\\"c1\\\" does"));
  assert_null (strstr (log, "\"msg\""));
  outcome_release (&o);
}

static void
test_crash_names_signal (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *crash = sibling_fake (f, "fake-crash");
  f->cfg.binary = crash;
  struct runtime_call call = {
    .verb = RUNTIME_CREATE,
    .id = "c1",
    .bundle = f->dir,
    .pid_file = f->pid_path,
  };
  struct outcome o = { 0 };
  run_call (f, &call, NULL, &o);
  assert_int_equal (o.exit_code, 128 + SIGSEGV);
  assert_non_null (o.err);
  cleanup_free char *want = xasprintf ("create failed: runtime %s killed by signal %d (%s)", crash,
                                       SIGSEGV, strsignal (SIGSEGV));
  assert_string_equal (o.err->msg, want);
  outcome_release (&o);
}

static void
test_garbage_log_falls_back_to_stderr (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *garbage = sibling_fake (f, "fake-garbage-log");
  f->cfg.binary = garbage;
  append (f->log_path, "{\"level\":\"error\",\"msg\":\"an old failure\"}\n");
  struct runtime_call call = {
    .verb = RUNTIME_CREATE,
    .id = "c1",
    .bundle = f->dir,
    .pid_file = f->pid_path,
  };
  struct outcome o = { 0 };
  run_call (f, &call, NULL, &o);
  assert_int_equal (o.exit_code, 1);
  assert_non_null (o.err);
  assert_string_equal (o.err->msg,
                       "create failed: fake-garbage-log: create failed; log.json is not JSON");
  outcome_release (&o);
}

static void
test_no_pidfile_succeeds_without_one (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *nopid = sibling_fake (f, "fake-no-pidfile");
  f->cfg.binary = nopid;
  struct runtime_call call = {
    .verb = RUNTIME_CREATE,
    .id = "c1",
    .bundle = f->dir,
    .pid_file = f->pid_path,
  };
  struct outcome o = { 0 };
  run_call (f, &call, NULL, &o);
  assert_null (o.err); /* the runtime says yes; reading the pid file is the caller's check */
  assert_int_equal (access (f->pid_path, F_OK), -1);
  outcome_release (&o);
}

static void
test_hang_killed_at_deadline (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *hang = sibling_fake (f, "fake-hang");
  f->cfg.binary = hang;
  f->cfg.timeout_ms = 300;
  struct runtime_call call = {
    .verb = RUNTIME_CREATE,
    .id = "c1",
    .bundle = f->dir,
    .pid_file = f->pid_path,
  };
  struct outcome o = { 0 };
  uint64_t took = run_call (f, &call, NULL, &o);
  assert_true (took < 2000);
  assert_non_null (o.err);
  assert_int_equal (o.err->code, SHIM_DEADLINE_EXCEEDED);
  outcome_release (&o);
}

/* The result says when the runtime was spawned: after runtime_run() was called, before the
 * callback ran, on success and on failure alike. */
static void
test_result_started_ms (void **state)
{
  struct fixture *f = *state;
  for (int fail = 0; fail <= 1; fail++)
    {
      if (fail)
        setenv ("FAKE_RUNTIME_EXIT", "1", 1);
      struct runtime_call call = { .verb = RUNTIME_KILL, .id = "c1", .signal = 9 };
      struct outcome o = { 0 };
      uint64_t before = now_monotonic_ms ();
      run_call (f, &call, NULL, &o);
      assert_int_equal (o.err != NULL, fail);
      assert_true (o.started_ms >= before);
      assert_true (o.started_ms <= o.done_ms);
      outcome_release (&o);
    }
}

/* n bytes (n >= 27) of info-level log lines, none longer than 127 bytes. */
static char *
info_lines (size_t n)
{
  char *text = xmalloc (n + 1), *p = text;
  while (n > 0)
    {
      size_t line = n > 127 ? 100 : n; /* what is left after a 100-byte line stays >= 27 */
      p += sprintf (p, "{\"level\":\"info\",\"msg\":\"%0*d\"}\n", (int) line - 26, 0);
      n -= line;
    }
  return text;
}

static char *
error_line (const char *msg)
{
  return xasprintf ("{\"level\":\"error\",\"msg\":\"%s\"}\n", msg);
}

/* Makes the fake runtime append text to its log during the call, and fail. */
static void
log_during_call (struct fixture *f, const char *text)
{
  write_text (f->before_path, text);
  setenv ("FAKE_RUNTIME_LOG_BEFORE", f->before_path, 1);
  setenv ("FAKE_RUNTIME_EXIT", "1", 1);
  setenv ("FAKE_RUNTIME_STDERR", "from stderr", 1);
}

static void
expect_error (struct fixture *f, const char *want)
{
  struct runtime_call call = { .verb = RUNTIME_KILL, .id = "c1", .signal = 9 };
  struct outcome o = { 0 };
  run_call (f, &call, NULL, &o);
  assert_non_null (o.err);
  assert_string_equal (o.err->msg, want);
  outcome_release (&o);
}

/* A call that logs more than RUNTIME_LOG_TAIL_MAX: only the tail is read, so an error line
 * before it is not seen (stderr explains instead), and the last error line is found. */
static void
test_log_tail_bounded (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *early = error_line ("early failure");
  cleanup_free char *noise = info_lines (2 * RUNTIME_LOG_TAIL_MAX);
  cleanup_free char *text = xasprintf ("%s%s", early, noise);
  log_during_call (f, text);
  expect_error (f, "kill failed: from stderr");

  setenv ("FAKE_RUNTIME_LOG_ERROR", "late failure", 1);
  expect_error (f, "kill failed: late failure");
}

/* The tail starts inside a line: that piece is skipped even when it reads as a JSON error
 * object of its own; a whole line right after the tail's first byte is read. */
static void
test_log_tail_cut_first_line (void **state)
{
  struct fixture *f = *state;
  const char *inner = "{\"level\":\"error\",\"msg\":\"a piece\"}";
  cleanup_free char *fill = info_lines (RUNTIME_LOG_TAIL_MAX - strlen (inner) - 2);
  /* The tail is the last RUNTIME_LOG_TAIL_MAX bytes: it starts exactly at inner. */
  cleanup_free char *text
      = xasprintf ("{\"level\":\"info\",\"msg\":\"outer\",\"inner\":%s}\n%s", inner, fill);
  log_during_call (f, text);
  expect_error (f, "kill failed: from stderr");

  /* Now the tail's first byte is the newline that ends the line before a whole error line. */
  unlink (f->log_path);
  cleanup_free char *whole = error_line ("whole line");
  cleanup_free char *fill2 = info_lines (RUNTIME_LOG_TAIL_MAX - 1 - strlen (whole));
  cleanup_free char *text2
      = xasprintf ("{\"level\":\"error\",\"msg\":\"before the tail\"}\n%s%s", whole, fill2);
  log_during_call (f, text2);
  expect_error (f, "kill failed: whole line");
}

/* A line longer than the bound: an error that big is not read (stderr explains), and a huge
 * line before the error line does not hide it. */
static void
test_log_tail_huge_line (void **state)
{
  struct fixture *f = *state;
  size_t n = 3 * RUNTIME_LOG_TAIL_MAX;
  cleanup_free char *big = xmalloc (n + 1);
  memset (big, 'x', n);
  big[n] = '\0';
  cleanup_free char *huge_error = error_line (big);
  log_during_call (f, huge_error);
  expect_error (f, "kill failed: from stderr");

  cleanup_free char *huge_info = xasprintf ("{\"level\":\"info\",\"msg\":\"%s\"}\n", big);
  log_during_call (f, huge_info);
  setenv ("FAKE_RUNTIME_LOG_ERROR", "after a huge line", 1);
  expect_error (f, "kill failed: after a huge line");
}

int
main (void)
{
  signal (SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_success_records_argv, setup, teardown),
    cmocka_unit_test_setup_teardown (test_create_pid_file, setup, teardown),
    cmocka_unit_test_setup_teardown (test_failure_uses_new_log_error, setup, teardown),
    cmocka_unit_test_setup_teardown (test_failure_stderr_not_old_log, setup, teardown),
    cmocka_unit_test_setup_teardown (test_failure_exit_status_only, setup, teardown),
    cmocka_unit_test_setup_teardown (test_missing_binary, setup, teardown),
    cmocka_unit_test_setup_teardown (test_missing_bundle_dir, setup, teardown),
    cmocka_unit_test_setup_teardown (test_handle_cwd_wins, setup, teardown),
    cmocka_unit_test_setup_teardown (test_deadline, setup, teardown),
    cmocka_unit_test_setup_teardown (test_stdout_and_stdin, setup, teardown),
    cmocka_unit_test_setup_teardown (test_cancel, setup, teardown),
    cmocka_unit_test_setup_teardown (test_error_not_stolen, setup, teardown),
    cmocka_unit_test_setup_teardown (test_profile_refuses_before_spawning, setup, teardown),
    cmocka_unit_test_setup_teardown (test_profile_spelling_reaches_runtime, setup, teardown),
    cmocka_unit_test_setup_teardown (test_youki_log_format, setup, teardown),
    cmocka_unit_test_setup_teardown (test_crash_names_signal, setup, teardown),
    cmocka_unit_test_setup_teardown (test_garbage_log_falls_back_to_stderr, setup, teardown),
    cmocka_unit_test_setup_teardown (test_no_pidfile_succeeds_without_one, setup, teardown),
    cmocka_unit_test_setup_teardown (test_hang_killed_at_deadline, setup, teardown),
    cmocka_unit_test_setup_teardown (test_result_started_ms, setup, teardown),
    cmocka_unit_test_setup_teardown (test_log_tail_bounded, setup, teardown),
    cmocka_unit_test_setup_teardown (test_log_tail_cut_first_line, setup, teardown),
    cmocka_unit_test_setup_teardown (test_log_tail_huge_line, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
