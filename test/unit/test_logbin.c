/* logbin.c: URI parsing, then real logger scripts run through spawn/reaper in a real loop. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <event2/event.h>

#include "stdio/logbin.h"
#include "platform/reaper.h"
#include "testutil.h"
#include "base/util.h"

/* ---- parsing ---- */

static void
expect_parse (const char *uri, const char *want_path, bool want_v2, const char *const *want_args)
{
  char *path = NULL, **args = NULL;
  bool v2 = !want_v2;
  shim_error_t err = NULL;
  if (logbin_parse_uri (uri, &path, &args, &v2, &err) < 0)
    fail_msg ("`%s`: %s", uri, err->msg);
  assert_string_equal (path, want_path);
  assert_int_equal (v2, want_v2);
  assert_non_null (args);
  size_t n = 0;
  for (; want_args[n]; n++)
    {
      assert_non_null (args[n]);
      assert_string_equal (args[n], want_args[n]);
    }
  assert_null (args[n]);
  free (path);
  strv_free (args);
}

static void
expect_parse_error (const char *uri, const char *needle)
{
  char *path = NULL, **args = NULL;
  bool v2 = false;
  shim_error_t err = NULL;
  if (logbin_parse_uri (uri, &path, &args, &v2, &err) == 0)
    fail_msg ("`%s` parsed as `%s`", uri, path);
  assert_non_null (err);
  assert_int_equal (err->code, SHIM_INVALID_ARGUMENT);
  if (strstr (err->msg, needle) == NULL)
    fail_msg ("`%s`: error `%s` lacks `%s`", uri, err->msg, needle);
  assert_null (path);
  assert_null (args);
  shim_error_release (&err);
}

static void
test_parse_plain (void **state)
{
  (void) state;
  expect_parse ("binary:///usr/bin/logger", "/usr/bin/logger", false, (const char *[]){ NULL });
  expect_parse ("binary:/usr/bin/logger", "/usr/bin/logger", false, (const char *[]){ NULL });
  expect_parse ("binary-v2:///usr/bin/logger", "/usr/bin/logger", true, (const char *[]){ NULL });
  expect_parse ("BINARY-V2:///x", "/x", true, (const char *[]){ NULL });
  expect_parse ("binary:///x?", "/x", false, (const char *[]){ NULL });
  expect_parse ("binary:///x#frag", "/x", false, (const char *[]){ NULL });
}

static void
test_parse_query (void **state)
{
  (void) state;
  expect_parse ("binary:///opt/logger?id=abc&mode=fast", "/opt/logger", false,
                (const char *[]){ "id", "abc", "mode", "fast", NULL });
  /* The first value of a repeated key; a bare key gets an empty value; empty pairs vanish. */
  expect_parse ("binary-v2:///x?&k=1&&j&k=2&=v&", "/x", true,
                (const char *[]){ "k", "1", "j", "", "", "v", NULL });
  expect_parse ("binary:///x?a=b=c", "/x", false, (const char *[]){ "a", "b=c", NULL });
  expect_parse ("binary:///x?a=1#b=2?c=3", "/x", false, (const char *[]){ "a", "1", NULL });
}

static void
test_parse_decoding (void **state)
{
  (void) state;
  /* Form decoding in the query ('+' is a space); in the path only %XX. */
  expect_parse ("binary:///opt/my%20log+ger?path=%2Fvar%2Flog+x&a+b=c%26d%3d", "/opt/my log+ger",
                false, (const char *[]){ "path", "/var/log x", "a b", "c&d=", NULL });
  expect_parse ("binary:///x?%C3%A9=%e2%82%ac", "/x", false,
                (const char *[]){ "\xc3\xa9", "\xe2\x82\xac", NULL });
}

static void
test_parse_errors (void **state)
{
  (void) state;
  expect_parse_error ("fifo:///x", "not a binary");
  expect_parse_error ("file:///x", "not a binary");
  expect_parse_error ("binaryx:///x", "not a binary");
  expect_parse_error ("/usr/bin/logger", "not a binary");
  expect_parse_error (":///x", "not a binary");
  expect_parse_error ("", "not a binary");
  expect_parse_error ("binary:logger", "absolute");
  expect_parse_error ("binary:", "absolute");
  expect_parse_error ("binary://", "absolute");
  expect_parse_error ("binary://?a=b", "absolute");
}

static void
test_parse_errors_more (void **state)
{
  (void) state;
  expect_parse_error ("binary://host/x", "host");
  expect_parse_error ("binary://usr/bin/logger", "host");
  expect_parse_error ("binary:///x%zz", "bad escape");
  expect_parse_error ("binary:///x%2", "bad escape");
  expect_parse_error ("binary:///x%00y", "bad escape");
  expect_parse_error ("binary:///x?a=%4", "bad escape");
  expect_parse_error ("binary:///x?a=1;b=2", "semicolon");
  expect_parse_error ("binary:///x\n", "control");
}

/* ---- the logger process ---- */

struct fixture
{
  struct event_base *base;
  struct reaper *reaper;
  char *dir;
};

struct outcome
{
  int calls;
  shim_error_t err;
  struct logbin *stop_in_cb;
};

static int
setup (void **state)
{
  struct fixture *f = xcalloc (1, sizeof *f);
  loop_with_reaper_new (&f->base, &f->reaper);
  f->dir = xstrdup ("/tmp/cshim-logbin-test-XXXXXX");
  assert_non_null (mkdtemp (f->dir));
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fixture *f = *state;
  assert_int_equal (remove_tree (f->dir), 0);
  loop_with_reaper_free (f->base, f->reaper);
  free (f->dir);
  free (f);
  return 0;
}

static bool
outcome_done (void *arg)
{
  return ((struct outcome *) arg)->calls > 0;
}

static void
ready_cb (shim_error_t err, void *arg)
{
  struct outcome *o = arg;
  o->calls++;
  o->err = err;
  if (o->stop_in_cb)
    logbin_stop (o->stop_in_cb);
}

static char *
write_script (struct fixture *f, const char *name, const char *body)
{
  char *path = xasprintf ("%s/%s", f->dir, name);
  cleanup_free char *text = xasprintf ("#!/bin/sh\n%s\n", body);
  FILE *fp = fopen (path, "w");
  assert_non_null (fp);
  fputs (text, fp);
  fclose (fp);
  assert_int_equal (chmod (path, 0755), 0);
  return path;
}

struct run
{
  struct logbin *l;
  pid_t pid;
  int out_w, err_w;
  struct outcome o;
};

static void
start (struct fixture *f, struct run *r, const char *uri)
{
  shim_error_t err = NULL;
  r->out_w = r->err_w = -1;
  r->l = logbin_start (f->base, f->reaper, uri, "k8s.io", "ctr-1", &r->out_w, &r->err_w, ready_cb,
                       &r->o, &err);
  if (r->l == NULL)
    fail_msg ("start `%s`: %s", uri, err->msg);
  assert_int_equal (r->o.calls, 0); /* never from inside logbin_start */
  assert_true (r->out_w >= 0 && r->err_w >= 0);
  assert_true (fcntl (r->out_w, F_GETFD) & FD_CLOEXEC);
  assert_true (fcntl (r->err_w, F_GETFD) & FD_CLOEXEC);
  r->pid = logbin_pid (r->l);
  assert_true (r->pid > 0);
}

static void
wait_ready (struct fixture *f, struct run *r)
{
  assert_true (run_until (f->base, outcome_done, &r->o, 10000));
  assert_int_equal (r->o.calls, 1);
}

/* Stops, waits until the process is gone (and so the logbin freed), closes our pipe ends. */
static void
finish (struct fixture *f, struct run *r)
{
  logbin_stop (r->l);
  assert_true (run_until (f->base, pid_reaped, &r->pid, 10000));
  close (r->out_w);
  close (r->err_w);
  shim_error_release (&r->o.err);
}

static char *
slurp (const char *path)
{
  char *s = NULL;
  shim_error_t err = NULL;
  if (read_file (path, 1 << 16, &s, NULL, &err) < 0)
    fail_msg ("%s", err->msg);
  return s;
}

static void
assert_error_has (struct outcome *o, const char *needle)
{
  assert_non_null (o->err);
  if (strstr (o->err->msg, needle) == NULL)
    fail_msg ("error `%s` lacks `%s`", o->err->msg, needle);
}

/* The exec'd environment, exactly, as the kernel recorded it. */
static void
assert_environ (pid_t pid)
{
  cleanup_free char *path = xasprintf ("/proc/%d/environ", (int) pid);
  cleanup_free char *env = NULL;
  size_t len = 0;
  shim_error_t err = NULL;
  assert_int_equal (read_file (path, 4096, &env, &len, &err), 0);
  const char want[] = "CONTAINER_ID=ctr-1\0CONTAINER_NAMESPACE=k8s.io";
  assert_int_equal (len, sizeof want);
  assert_memory_equal (env, want, sizeof want);
}

/* What the script saw: our two variables, plus PWD, which the shell exports by itself. */
static void
assert_shell_env (char *env)
{
  int seen = 0;
  for (char *save = NULL, *line = strtok_r (env, "\n", &save); line;
       line = strtok_r (NULL, "\n", &save))
    {
      if (strcmp (line, "CONTAINER_ID=ctr-1") == 0
          || strcmp (line, "CONTAINER_NAMESPACE=k8s.io") == 0)
        seen++;
      else if (strncmp (line, "PWD=", 4) != 0)
        fail_msg ("unexpected variable `%s`", line);
    }
  assert_int_equal (seen, 2);
}

static const char copy_logger[] = "printf '%%s\\n' \"$0\" \"$@\" > \"$2.argv\"\n"
                                  "env > \"$2.env\"\n"
                                  "%s\n"
                                  "cat <&3 > \"$2.out\" &\n"
                                  "cat <&4 > \"$2.err\"\n"
                                  "wait\n";

static void
run_copy_logger (struct fixture *f, bool v2)
{
  cleanup_free char *body = xasprintf (copy_logger, v2 ? "printf x >&5; exec 5>&-" : "exec 5>&-");
  cleanup_free char *script = write_script (f, "logger", body);
  cleanup_free char *base = xasprintf ("%s/o", f->dir);
  cleanup_free char *uri
      = xasprintf ("%s://%s?out=%s&x=a+b", v2 ? "binary-v2" : "binary", script, base);
  int fds_before = count_fds ();
  struct run r = { 0 };

  start (f, &r, uri);
  wait_ready (f, &r);
  assert_null (r.o.err);
  assert_environ (r.pid);
  assert_int_equal (write_all (r.out_w, "to stdout\n", 10), 0);
  assert_int_equal (write_all (r.err_w, "to stderr\n", 10), 0);
  close (steal_fd (&r.out_w));
  close (steal_fd (&r.err_w));
  /* EOF on both pipes: the logger finishes by itself; stop then only frees. */
  assert_true (run_until (f->base, pid_reaped, &r.pid, 10000));
  finish (f, &r);
  assert_int_equal (count_fds (), fds_before);

  cleanup_free char *argv_path = xasprintf ("%s.argv", base);
  cleanup_free char *out_path = xasprintf ("%s.out", base);
  cleanup_free char *err_path = xasprintf ("%s.err", base);
  cleanup_free char *env_path = xasprintf ("%s.env", base);
  cleanup_free char *want_argv = xasprintf ("%s\nout\n%s\nx\na b\n", script, base);
  cleanup_free char *argv = slurp (argv_path), *out = slurp (out_path), *errs = slurp (err_path);
  cleanup_free char *env = slurp (env_path);
  assert_string_equal (argv, want_argv);
  assert_string_equal (out, "to stdout\n");
  assert_string_equal (errs, "to stderr\n");
  assert_shell_env (env);
}

static void
test_v1_copies_streams (void **state)
{
  run_copy_logger (*state, false);
}

static void
test_v2_copies_streams (void **state)
{
  run_copy_logger (*state, true);
}

/* The logger is sleep(1) blocked in its sleep: exec done (close-on-exec fds closed) and the
 * dynamic loader, which briefly opens libraries, finished. */
static bool
in_sleep (void *arg)
{
  pid_t pid = *(pid_t *) arg;
  cleanup_free char *path = xasprintf ("/proc/%d/syscall", (int) pid);
  cleanup_free char *text = NULL;
  if (read_file (path, 4096, &text, NULL, NULL) < 0)
    return false;
  long nr = strtol (text, NULL, 10);
  return nr == SYS_clock_nanosleep || nr == SYS_nanosleep;
}

/* Once the logger exec'd sleep (so the shell's own fds are gone): /dev/null on 0-2, the two
 * pipes on 3 and 4, and nothing else of ours. */
static void
assert_logger_fds (struct fixture *f, pid_t pid)
{
  assert_true (run_until (f->base, in_sleep, &pid, 5000));
  cleanup_free char *dir = xasprintf ("/proc/%d/fd", (int) pid);
  DIR *d = opendir (dir);
  int n = 0;
  assert_non_null (d);
  for (struct dirent *e; (e = readdir (d));)
    {
      if (e->d_name[0] == '.')
        continue;
      int fd = atoi (e->d_name);
      char target[4096] = { 0 };
      cleanup_free char *link = xasprintf ("%s/%s", dir, e->d_name);
      assert_true (readlink (link, target, sizeof target - 1) > 0);
      if (fd > 4)
        fail_msg ("fd %d -> %s", fd, target);
      if (fd <= 2)
        assert_string_equal (target, "/dev/null");
      else
        assert_true (strncmp (target, "pipe:", 5) == 0);
      n++;
    }
  closedir (d);
  assert_int_equal (n, 5);
}

static void
test_logger_fds (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *script
      = write_script (f, "logger", "[ \"$1\" = v2 ] && printf x >&5\nexec 5>&-\nexec sleep 10");
  for (int v2 = 0; v2 < 2; v2++)
    {
      cleanup_free char *uri
          = xasprintf ("%s://%s?%s", v2 ? "binary-v2" : "binary", script, v2 ? "v2" : "v1");
      struct run r = { 0 };
      start (f, &r, uri);
      wait_ready (f, &r);
      assert_null (r.o.err);
      assert_logger_fds (f, r.pid);
      finish (f, &r);
    }
}

static void
test_v2_without_byte_fails (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *script = write_script (f, "logger", "exec 5>&-\nexec sleep 10");
  cleanup_free char *uri = xasprintf ("binary-v2://%s", script);
  struct run r = { 0 };
  start (f, &r, uri);
  wait_ready (f, &r);
  assert_error_has (&r.o, "without signalling readiness");
  assert_int_equal (kill (r.pid, 0), 0); /* still running: the caller stops it */
  finish (f, &r);
}

static void
test_v1_byte_is_ready (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *script = write_script (f, "logger", "printf x >&5\nexec sleep 10");
  cleanup_free char *uri = xasprintf ("binary://%s", script);
  struct run r = { 0 };
  start (f, &r, uri);
  wait_ready (f, &r);
  assert_null (r.o.err);
  finish (f, &r);
}

static void
test_exits_immediately (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *script = write_script (f, "logger", "exit 3");
  for (int v2 = 0; v2 < 2; v2++)
    {
      cleanup_free char *uri = xasprintf ("%s://%s", v2 ? "binary-v2" : "binary", script);
      struct run r = { 0 };
      start (f, &r, uri);
      wait_ready (f, &r);
      assert_non_null (r.o.err);
      if (!v2) /* v1 must not take the EOF of a dying logger for readiness */
        assert_error_has (&r.o, "exited with 3 before it was ready");
      finish (f, &r);
    }
}

static void
test_exec_failure (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *bad = xasprintf ("%s/bad-interp", f->dir);
  FILE *fp = fopen (bad, "w");
  assert_non_null (fp);
  fputs ("#!/nonexistent/interpreter\n", fp);
  fclose (fp);
  assert_int_equal (chmod (bad, 0755), 0);
  cleanup_free char *uri = xasprintf ("binary://%s", bad);
  struct run r = { 0 };
  start (f, &r, uri);
  wait_ready (f, &r);
  assert_error_has (&r.o, "could not be executed");
  assert_int_equal (r.o.err->errno_, ENOENT);
  finish (f, &r);
}

static void
expect_start_error (struct fixture *f, const char *uri, int want_errno)
{
  shim_error_t err = NULL;
  int out_w = -1, err_w = -1;
  struct outcome o = { 0 };
  int before = count_fds ();
  struct logbin *l
      = logbin_start (f->base, f->reaper, uri, "ns", "id", &out_w, &err_w, ready_cb, &o, &err);
  assert_null (l);
  assert_non_null (err);
  assert_int_equal (err->errno_, want_errno);
  assert_int_equal (out_w, -1);
  assert_int_equal (count_fds (), before);
  shim_error_release (&err);
}

static void
test_start_errors (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *missing = xasprintf ("binary://%s/missing", f->dir);
  cleanup_free char *dir = xasprintf ("binary://%s", f->dir);
  cleanup_free char *plain = xasprintf ("%s/plain", f->dir);
  cleanup_free char *plain_uri = xasprintf ("binary://%s", plain);
  fclose (fopen (plain, "w"));
  expect_start_error (f, missing, ENOENT);
  expect_start_error (f, dir, 0);
  expect_start_error (f, plain_uri, EACCES); /* no x bit at all: refused even to root */
  expect_start_error (f, "fifo:///bin/true", 0);
}

static void
test_ready_deadline (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *script = write_script (f, "logger", "exec sleep 10");
  cleanup_free char *uri = xasprintf ("binary://%s", script);
  struct run r = { 0 };
  start (f, &r, uri);
  logbin_set_ready_timeout_ms (r.l, 100);
  uint64_t t0 = now_monotonic_ms ();
  wait_ready (f, &r);
  assert_true (now_monotonic_ms () - t0 < 5000);
  assert_non_null (r.o.err);
  assert_int_equal (r.o.err->code, SHIM_DEADLINE_EXCEEDED);
  finish (f, &r);
}

/* SIGTERM is ignored: after the grace the logger (and its process group) gets SIGKILL. */
static void
test_stop_kills_after_grace (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *script = write_script (f, "logger", "trap '' TERM\nexec 5>&-\nread x <&4");
  cleanup_free char *uri = xasprintf ("binary://%s", script);
  struct run r = { 0 };
  start (f, &r, uri);
  wait_ready (f, &r);
  assert_null (r.o.err);
  logbin_set_term_grace_ms (r.l, 300);
  uint64_t t0 = now_monotonic_ms ();
  finish (f, &r);
  uint64_t took = now_monotonic_ms () - t0;
  assert_true (took >= 280);
  assert_true (took < 5000);
}

/* A logger that honours SIGTERM goes without waiting for the grace. */
static void
test_stop_terminates (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *script = write_script (f, "logger", "exec 5>&-\nexec sleep 10");
  cleanup_free char *uri = xasprintf ("binary://%s", script);
  struct run r = { 0 };
  start (f, &r, uri);
  wait_ready (f, &r);
  uint64_t t0 = now_monotonic_ms ();
  finish (f, &r);
  assert_true (now_monotonic_ms () - t0 < 5000); /* well under the 12 s grace */
}

static void
test_stop_before_ready (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *script = write_script (f, "logger", "exec sleep 10");
  cleanup_free char *uri = xasprintf ("binary-v2://%s", script);
  int before = count_fds ();
  struct run r = { 0 };
  start (f, &r, uri);
  finish (f, &r);
  assert_true (run_until (f->base, outcome_done, &r.o, 100) == false);
  assert_int_equal (r.o.calls, 0);
  assert_int_equal (count_fds (), before);
}

static void
test_stop_inside_callback (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *script = write_script (f, "logger", "exit 1");
  cleanup_free char *uri = xasprintf ("binary-v2://%s", script);
  struct run r = { 0 };
  start (f, &r, uri);
  r.o.stop_in_cb = r.l;
  wait_ready (f, &r);
  assert_non_null (r.o.err);
  assert_true (run_until (f->base, pid_reaped, &r.pid, 10000));
  close (r.out_w);
  close (r.err_w);
  shim_error_release (&r.o.err);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_plain),
    cmocka_unit_test (test_parse_query),
    cmocka_unit_test (test_parse_decoding),
    cmocka_unit_test (test_parse_errors),
    cmocka_unit_test (test_parse_errors_more),
    cmocka_unit_test_setup_teardown (test_v1_copies_streams, setup, teardown),
    cmocka_unit_test_setup_teardown (test_v2_copies_streams, setup, teardown),
    cmocka_unit_test_setup_teardown (test_logger_fds, setup, teardown),
    cmocka_unit_test_setup_teardown (test_v2_without_byte_fails, setup, teardown),
    cmocka_unit_test_setup_teardown (test_v1_byte_is_ready, setup, teardown),
    cmocka_unit_test_setup_teardown (test_exits_immediately, setup, teardown),
    cmocka_unit_test_setup_teardown (test_exec_failure, setup, teardown),
    cmocka_unit_test_setup_teardown (test_start_errors, setup, teardown),
    cmocka_unit_test_setup_teardown (test_ready_deadline, setup, teardown),
    cmocka_unit_test_setup_teardown (test_stop_kills_after_grace, setup, teardown),
    cmocka_unit_test_setup_teardown (test_stop_terminates, setup, teardown),
    cmocka_unit_test_setup_teardown (test_stop_before_ready, setup, teardown),
    cmocka_unit_test_setup_teardown (test_stop_inside_callback, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
