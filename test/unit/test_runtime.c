/* runtime.c, the pure parts: argv building, pid files, the JSON log, the error-code table. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "runtime/runtime.h"
#include "testutil.h"
#include "base/util.h"

static struct runtime_cfg plain_cfg;
static const struct runtime plain_ctx = { .cfg = &plain_cfg, .namespace = "default" };

/* ---- argv ---- */

static void
test_argv_create_minimal (void **state)
{
  (void) state;
  struct runtime_call call = {
    .verb = RUNTIME_CREATE,
    .id = "c1",
    .bundle = "/b",
    .pid_file = "/b/init.pid",
  };
  const char *want[] = { "runc",       "--root",      "/run/containerd/runc/default",
                         "create",     "--bundle",    "/b",
                         "--pid-file", "/b/init.pid", "c1",
                         NULL };
  assert_argv (runtime_argv (&plain_ctx, &call), want);
}

static void
test_argv_create_full (void **state)
{
  (void) state;
  char *extra[] = { "--debug", "--rootless=false", NULL };
  struct runtime_cfg cfg = {
    .binary = "/usr/bin/crun",
    .root = "/run/r/",
    .systemd_cgroup = true,
    .no_pivot_root = true,
    .no_new_keyring = true,
    .extra_args = extra,
  };
  struct runtime ctx = { .cfg = &cfg, .namespace = "k8s.io", .log_path = "/b/log.json" };
  struct runtime_call call = {
    .verb = RUNTIME_CREATE,
    .id = "c1",
    .bundle = "/b",
    .pid_file = "/b/init.pid",
    .console_socket = "/tmp/con.sock",
  };
  const char *want[] = { "/usr/bin/crun",
                         "--root",
                         "/run/r/k8s.io",
                         "--log",
                         "/b/log.json",
                         "--log-format",
                         "json",
                         "--systemd-cgroup",
                         "--debug",
                         "--rootless=false",
                         "create",
                         "--bundle",
                         "/b",
                         "--pid-file",
                         "/b/init.pid",
                         "--console-socket",
                         "/tmp/con.sock",
                         "--no-pivot",
                         "--no-new-keyring",
                         "c1",
                         NULL };
  assert_argv (runtime_argv (&ctx, &call), want);
}

static void
test_argv_defaults (void **state)
{
  (void) state;
  struct runtime_cfg cfg = { .binary = "", .root = "" };
  struct runtime ctx = { .cfg = &cfg, .namespace = "ns", .log_path = "" };
  struct runtime_call call = { .verb = RUNTIME_START, .id = "x" };
  const char *want[] = { "runc", "--root", "/run/containerd/runc/ns", "start", "x", NULL };
  assert_argv (runtime_argv (&ctx, &call), want);

  struct runtime no_cfg = { .cfg = NULL, .namespace = NULL };
  const char *want2[] = { "runc", "--root", "/run/containerd/runc", "start", "x", NULL };
  assert_argv (runtime_argv (&no_cfg, &call), want2);
}

static void
test_argv_root_join (void **state)
{
  (void) state;
  struct runtime_cfg cfg = { .root = "/var/run/youki//" };
  struct runtime ctx = { .cfg = &cfg, .namespace = "default" };
  struct runtime_call call = { .verb = RUNTIME_STATE, .id = "c" };
  const char *want[] = { "runc", "--root", "/var/run/youki/default", "state", "c", NULL };
  assert_argv (runtime_argv (&ctx, &call), want);
}

static void
test_argv_kill (void **state)
{
  (void) state;
  struct runtime_call call = { .verb = RUNTIME_KILL, .id = "c1", .signal = 15 };
  const char *want[]
      = { "runc", "--root", "/run/containerd/runc/default", "kill", "c1", "15", NULL };
  assert_argv (runtime_argv (&plain_ctx, &call), want);

  call.all = true;
  call.signal = 9;
  const char *want_all[]
      = { "runc", "--root", "/run/containerd/runc/default", "kill", "--all", "c1", "9", NULL };
  assert_argv (runtime_argv (&plain_ctx, &call), want_all);
}

static void
test_argv_delete (void **state)
{
  (void) state;
  struct runtime_call call = { .verb = RUNTIME_DELETE, .id = "c1" };
  const char *want[] = { "runc", "--root", "/run/containerd/runc/default", "delete", "c1", NULL };
  assert_argv (runtime_argv (&plain_ctx, &call), want);

  call.force = true;
  const char *want_force[]
      = { "runc", "--root", "/run/containerd/runc/default", "delete", "--force", "c1", NULL };
  assert_argv (runtime_argv (&plain_ctx, &call), want_force);
}

static void
test_argv_simple_verbs (void **state)
{
  (void) state;
  static const struct
  {
    enum runtime_verb verb;
    const char *name;
  } simple[] = {
    { RUNTIME_START, "start" },
    { RUNTIME_STATE, "state" },
    { RUNTIME_PAUSE, "pause" },
    { RUNTIME_RESUME, "resume" },
  };
  for (size_t i = 0; i < ARRAY_SIZE (simple); i++)
    {
      /* Fields of other verbs must not leak into these command lines. */
      struct runtime_call call = { .verb = simple[i].verb,
                                   .id = "c9",
                                   .bundle = "/b",
                                   .pid_file = "/p",
                                   .all = true,
                                   .force = true,
                                   .signal = 9 };
      const char *want[]
          = { "runc", "--root", "/run/containerd/runc/default", simple[i].name, "c9", NULL };
      assert_argv (runtime_argv (&plain_ctx, &call), want);
      assert_string_equal (runtime_verb_name (simple[i].verb), simple[i].name);
    }
}

static void
test_argv_ps_update (void **state)
{
  (void) state;
  struct runtime_call ps = { .verb = RUNTIME_PS, .id = "c1" };
  const char *want_ps[]
      = { "runc", "--root", "/run/containerd/runc/default", "ps", "--format", "json", "c1", NULL };
  assert_argv (runtime_argv (&plain_ctx, &ps), want_ps);

  struct runtime_call up = { .verb = RUNTIME_UPDATE, .id = "c1" };
  const char *want_up[] = { "runc",   "--root",      "/run/containerd/runc/default",
                            "update", "--resources", "-",
                            "c1",     NULL };
  assert_argv (runtime_argv (&plain_ctx, &up), want_up);
}

static void
test_argv_exec (void **state)
{
  (void) state;
  struct runtime_call call = {
    .verb = RUNTIME_EXEC,
    .id = "c1",
    .process_file = "/tmp/p.json",
    .pid_file = "/b/e1.pid",
  };
  const char *want[] = { "runc",     "--root",     "/run/containerd/runc/default",
                         "exec",     "--process",  "/tmp/p.json",
                         "--detach", "--pid-file", "/b/e1.pid",
                         "c1",       NULL };
  assert_argv (runtime_argv (&plain_ctx, &call), want);

  call.console_socket = "/tmp/c.sock";
  const char *want_tty[] = { "runc",
                             "--root",
                             "/run/containerd/runc/default",
                             "exec",
                             "--process",
                             "/tmp/p.json",
                             "--console-socket",
                             "/tmp/c.sock",
                             "--detach",
                             "--pid-file",
                             "/b/e1.pid",
                             "c1",
                             NULL };
  assert_argv (runtime_argv (&plain_ctx, &call), want_tty);
}

static void
test_argv_checkpoint (void **state)
{
  (void) state;
  char *empty[] = { "network", "ipc", NULL };
  struct runtime_criu criu = { .image_path = "/ck", .work_path = "/w", .leave_running = true };
  struct runtime_call call = { .verb = RUNTIME_CHECKPOINT, .id = "c1", .criu = &criu };
  const char *want[] = { "runc",
                         "--root",
                         "/run/containerd/runc/default",
                         "checkpoint",
                         "--image-path",
                         "/ck",
                         "--work-path",
                         "/w",
                         "--leave-running",
                         "c1",
                         NULL };
  assert_argv (runtime_argv (&plain_ctx, &call), want);

  criu = (struct runtime_criu){ .image_path = "/ck",
                                .work_path = "/w",
                                .parent_path = "/p",
                                .tcp_established = true,
                                .ext_unix_sk = true,
                                .shell_job = true,
                                .file_locks = true,
                                .empty_ns = empty,
                                .cgroups_mode = "soft" };
  const char *want_all[] = { "runc",
                             "--root",
                             "/run/containerd/runc/default",
                             "checkpoint",
                             "--image-path",
                             "/ck",
                             "--work-path",
                             "/w",
                             "--parent-path",
                             "/p",
                             "--tcp-established",
                             "--ext-unix-sk",
                             "--shell-job",
                             "--file-locks",
                             "--empty-ns",
                             "network",
                             "--empty-ns",
                             "ipc",
                             "--manage-cgroups-mode",
                             "soft",
                             "c1",
                             NULL };
  assert_argv (runtime_argv (&plain_ctx, &call), want_all);
}

static void
test_argv_restore (void **state)
{
  (void) state;
  struct runtime_criu criu = { .image_path = "/ck",
                               .work_path = "/w",
                               .shell_job = true,
                               .leave_running = true,
                               .parent_path = "/ignored" };
  struct runtime_cfg cfg = { .no_pivot_root = true };
  struct runtime ctx = { .cfg = &cfg, .namespace = "ns" };
  struct runtime_call call = {
    .verb = RUNTIME_RESTORE, .id = "c1", .bundle = "/b", .pid_file = "/b/init.pid", .criu = &criu
  };
  const char *want[] = { "runc",
                         "--root",
                         "/run/containerd/runc/ns",
                         "restore",
                         "--image-path",
                         "/ck",
                         "--work-path",
                         "/w",
                         "--shell-job",
                         "--detach",
                         "--pid-file",
                         "/b/init.pid",
                         "--no-pivot",
                         "--no-subreaper",
                         "--bundle",
                         "/b",
                         "c1",
                         NULL };
  assert_argv (runtime_argv (&ctx, &call), want);
}

static void
test_argv_extra_args_before_verb (void **state)
{
  (void) state;
  char *extra[] = { "--debug", NULL };
  struct runtime_cfg cfg = { .binary = "youki", .extra_args = extra };
  struct runtime ctx = { .cfg = &cfg, .namespace = "default", .log_path = "/l.json" };
  struct runtime_call call = { .verb = RUNTIME_PAUSE, .id = "c1" };
  const char *want[] = { "youki", "--root",  "/run/containerd/runc/default",
                         "--log", "/l.json", "--log-format",
                         "json",  "--debug", "pause",
                         "c1",    NULL };
  assert_argv (runtime_argv (&ctx, &call), want);
}

/* ---- pid files ---- */

static void
test_parse_pid_good (void **state)
{
  (void) state;
  static const struct
  {
    const char *text;
    pid_t pid;
  } good[] = {
    { "1234", 1234 }, { " 42\n", 42 }, { "\t7 \r\n", 7 }, { "1", 1 }, { "2147483647", 2147483647 }
  };
  for (size_t i = 0; i < ARRAY_SIZE (good); i++)
    {
      shim_error_t err = NULL;
      pid_t pid = 0;
      assert_int_equal (runtime_parse_pid (good[i].text, &pid, &err), 0);
      assert_null (err);
      assert_int_equal (pid, good[i].pid);
    }
}

static void
test_parse_pid_bad (void **state)
{
  (void) state;
  static const char *const bad[] = { "",      "  \n", "0",    "-5",         "+5",
                                     "12a",   "1 2",  "0x10", "2147483648", "99999999999999999999",
                                     "12\n13" };
  for (size_t i = 0; i < ARRAY_SIZE (bad); i++)
    {
      shim_error_t err = NULL;
      pid_t pid = 77;
      assert_true (runtime_parse_pid (bad[i], &pid, &err) < 0);
      assert_non_null (err);
      assert_int_equal (err->code, SHIM_UNKNOWN);
      assert_string_equal (err->msg, "invalid pid file contents");
      assert_int_equal (pid, 77);
      shim_error_release (&err);
    }
  shim_error_t err = NULL;
  pid_t pid;
  assert_true (runtime_parse_pid (NULL, &pid, &err) < 0);
  shim_error_release (&err);
}

/* ---- the JSON log ---- */

static void
check_log (const char *text, const char *want)
{
  char *got = runtime_log_last_error (text, strlen (text));
  if (want == NULL)
    assert_null (got);
  else
    {
      assert_non_null (got);
      assert_string_equal (got, want);
    }
  free (got);
}

static void
test_log_runtime_styles (void **state)
{
  (void) state;
  /* runc 1.1 */
  check_log ("{\"level\":\"error\",\"msg\":\"container with id exists: c1\","
             "\"time\":\"2024-01-01T00:00:00Z\"}\n",
             "container with id exists: c1");
  /* crun 1.8: other key order */
  check_log ("{\"msg\":\"executable file `x` not found in $PATH: No such file or directory\","
             "\"level\":\"error\",\"time\":\"2024-01-01T00:00:00.000000Z\"}\n",
             "executable file `x` not found in $PATH: No such file or directory");
  /* youki: tracing JSON */
  check_log ("{\"timestamp\":\"2024\",\"level\":\"ERROR\",\"message\":\"failed to create "
             "container\",\"target\":\"youki\"}\n",
             "failed to create container");
  check_log ("{\"level\":\"fatal\",\"msg\":\"boom\"}", "boom");
  check_log ("{\"level\":\"Panic\",\"message\":\"  spaced out \\n\"}", "spaced out");
}

static void
test_log_last_error_wins (void **state)
{
  (void) state;
  const char *text = "{\"level\":\"error\",\"msg\":\"first\"}\n"
                     "not json at all\n"
                     "{\"level\":\"info\",\"msg\":\"info line\"}\n"
                     "{\"level\":\"error\",\"msg\":\"second\"}\n"
                     "{\"level\":\"warning\",\"msg\":\"later warning\"}\n"
                     "{\"level\":\"debug\",\"msg\":\"later debug\"}\n"
                     "\n"
                     "{\"level\":\"error\",\"msg\":\"trunc";
  check_log (text, "second");
}

static void
test_log_skips (void **state)
{
  (void) state;
  check_log ("", NULL);
  check_log ("\n\n", NULL);
  check_log ("garbage\n{\"level\":\"info\",\"msg\":\"hello\"}\n", NULL);
  check_log ("{\"level\":\"error\"}\n", NULL); /* no message */
  check_log ("{\"level\":\"error\",\"msg\":42}\n", NULL); /* not a string */
  check_log ("{\"level\":\"error\",\"msg\":\"   \"}\n", NULL); /* blank */
  check_log ("[\"level\",\"error\"]\n", NULL); /* not an object */
  check_log ("{\"level\":7,\"msg\":\"x\"}\n", NULL);
  assert_null (runtime_log_last_error (NULL, 0));

  /* Bounded by len, not by a NUL. */
  const char *text = "{\"level\":\"error\",\"msg\":\"a\"}\n{\"level\":\"error\",\"msg\":\"b\"}\n";
  char *got = runtime_log_last_error (text, strlen (text) / 2);
  assert_non_null (got);
  assert_string_equal (got, "a");
  free (got);
}

/* ---- error codes ---- */

static void
test_error_codes (void **state)
{
  (void) state;
  static const struct
  {
    const char *msg;
    int code;
  } rows[] = {
    { "container does not exist", SHIM_NOT_FOUND },
    { "container \"x\" does not exist", SHIM_NOT_FOUND },
    { "stat /run/x: not exist", SHIM_NOT_FOUND },
    { "kill: No such process", SHIM_NOT_FOUND },
    { "container not running", SHIM_NOT_FOUND },
    { "cannot pause: container is not running", SHIM_NOT_FOUND },
    { "os: process already finished", SHIM_NOT_FOUND },
    { "container `c1` already exists", SHIM_ALREADY_EXISTS },
    { "container with id exists: c1", SHIM_UNKNOWN }, /* bare "exists" only at create */
    { "No such file or directory", SHIM_UNKNOWN }, /* only for existing-container verbs */
    { "permission denied", SHIM_UNKNOWN },
    { "", SHIM_UNKNOWN },
  };
  for (size_t i = 0; i < ARRAY_SIZE (rows); i++)
    assert_int_equal (runtime_error_code (rows[i].msg), rows[i].code);
  assert_int_equal (runtime_error_code (NULL), SHIM_UNKNOWN);
}

static void
test_verb_error_codes (void **state)
{
  (void) state;
  assert_int_equal (runtime_verb_error_code (RUNTIME_CREATE, "container with id exists: c1"),
                    SHIM_ALREADY_EXISTS);
  assert_int_equal (runtime_verb_error_code (RUNTIME_KILL, "container with id exists: c1"),
                    SHIM_UNKNOWN);
  const char *crun = "error opening file `/run/crun/c1/status`: No such file or directory";
  assert_int_equal (runtime_verb_error_code (RUNTIME_KILL, crun), SHIM_NOT_FOUND);
  assert_int_equal (runtime_verb_error_code (RUNTIME_DELETE, crun), SHIM_NOT_FOUND);
  assert_int_equal (runtime_verb_error_code (RUNTIME_STATE, crun), SHIM_NOT_FOUND);
  assert_int_equal (runtime_verb_error_code (RUNTIME_CREATE, crun), SHIM_UNKNOWN);
  assert_int_equal (
      runtime_verb_error_code (RUNTIME_EXEC, "exec: \"x\": no such file or directory"),
      SHIM_UNKNOWN);
  assert_int_equal (runtime_verb_error_code (RUNTIME_DELETE, "container does not exist"),
                    SHIM_NOT_FOUND);
  assert_int_equal (runtime_verb_error_code (RUNTIME_KILL, "container not running"),
                    SHIM_NOT_FOUND);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_argv_create_minimal),
    cmocka_unit_test (test_argv_checkpoint),
    cmocka_unit_test (test_argv_restore),
    cmocka_unit_test (test_argv_create_full),
    cmocka_unit_test (test_argv_defaults),
    cmocka_unit_test (test_argv_root_join),
    cmocka_unit_test (test_argv_kill),
    cmocka_unit_test (test_argv_delete),
    cmocka_unit_test (test_argv_simple_verbs),
    cmocka_unit_test (test_argv_ps_update),
    cmocka_unit_test (test_argv_exec),
    cmocka_unit_test (test_argv_extra_args_before_verb),
    cmocka_unit_test (test_parse_pid_good),
    cmocka_unit_test (test_parse_pid_bad),
    cmocka_unit_test (test_log_runtime_styles),
    cmocka_unit_test (test_log_last_error_wins),
    cmocka_unit_test (test_log_skips),
    cmocka_unit_test (test_error_codes),
    cmocka_unit_test (test_verb_error_codes),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
