/* Options decoding: the three option types containerd sends and our JSON config. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/config.h"
#include "containerd/linux/runc/runc.pb-c.h"
#include "containerd/runc/v1/options.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "base/pb.h"
#include "runtimeoptions/v1/options.pb-c.h"
#include "base/util.h"

static void
test_defaults (void **state)
{
  (void) state;
  struct task_options o;
  config_init (&o);
  assert_string_equal (o.runtime.binary, "runc");
  assert_string_equal (o.runtime.root, "/run/containerd/runc");
  assert_int_equal (o.runtime.timeout_ms, CONFIG_DEFAULT_TIMEOUT_MS);
  assert_null (o.runtime.extra_args);
  config_release (&o);
}

static void
test_runc_options (void **state)
{
  (void) state;
  Containerd__Runc__V1__Options r = CONTAINERD__RUNC__V1__OPTIONS__INIT;
  r.binary_name = "/usr/bin/crun";
  r.root = "/run/x";
  r.systemd_cgroup = true;
  r.no_pivot_root = true;
  r.io_uid = 1000;
  Google__Protobuf__Any *any = pb_any_pack (&r.base);
  assert_string_equal (any->type_url, "containerd.runc.v1.Options");
  struct task_options o;
  config_init (&o);
  shim_error_t err = NULL;
  assert_int_equal (config_apply_any (&o, any, &err), 0);
  assert_string_equal (o.runtime.binary, "/usr/bin/crun");
  assert_string_equal (o.runtime.root, "/run/x");
  assert_true (o.runtime.systemd_cgroup);
  assert_true (o.runtime.no_pivot_root);
  assert_int_equal (o.io_uid, 1000);
  pb_any_free (any);
  config_release (&o);
}

static void
test_prefixed_type_url (void **state)
{
  (void) state;
  Containerd__Linux__Runc__CreateOptions c = CONTAINERD__LINUX__RUNC__CREATE_OPTIONS__INIT;
  c.no_new_keyring = true;
  c.shim_cgroup = "/shim";
  Google__Protobuf__Any *any = pb_any_pack (&c.base);
  free (any->type_url);
  any->type_url = xstrdup ("types.containerd.io/containerd.linux.runc.CreateOptions");
  struct task_options o;
  config_init (&o);
  shim_error_t err = NULL;
  assert_int_equal (config_apply_any (&o, any, &err), 0);
  assert_true (o.runtime.no_new_keyring);
  assert_string_equal (o.shim_cgroup, "/shim");
  assert_string_equal (o.runtime.binary, "runc");
  pb_any_free (any);
  config_release (&o);
}

static char *
write_tmp (const char *text)
{
  char *path = xstrdup ("/tmp/cshim-test-config-XXXXXX");
  int fd = mkstemp (path);
  assert_true (fd >= 0);
  assert_int_equal (write_all (fd, text, strlen (text)), 0);
  close (fd);
  return path;
}

static void
test_runtimeoptions_config_path (void **state)
{
  (void) state;
  char *path = write_tmp ("{\"binary\": \"/usr/bin/crun\", \"root\": \"/run/crun-x\","
                          " \"runtime_args\": [\"--debug\"], \"timeout_ms\": 5000}");
  Runtimeoptions__V1__Options r = RUNTIMEOPTIONS__V1__OPTIONS__INIT;
  r.config_path = path;
  Google__Protobuf__Any *any = pb_any_pack (&r.base);
  struct task_options o;
  config_init (&o);
  shim_error_t err = NULL;
  assert_int_equal (config_apply_any (&o, any, &err), 0);
  assert_string_equal (o.runtime.binary, "/usr/bin/crun");
  assert_string_equal (o.runtime.root, "/run/crun-x");
  assert_int_equal (strv_len (o.runtime.extra_args), 1);
  assert_string_equal (o.runtime.extra_args[0], "--debug");
  assert_int_equal (o.runtime.timeout_ms, 5000);
  unlink (path);
  free (path);
  pb_any_free (any);
  config_release (&o);
}

static void
expect_json_error (const char *json, const char *needle)
{
  struct task_options o;
  config_init (&o);
  shim_error_t err = NULL;
  assert_true (config_apply_json (&o, json, "test", &err) < 0);
  assert_non_null (err);
  assert_int_equal (err->code, SHIM_INVALID_ARGUMENT);
  if (strstr (err->msg, needle) == NULL)
    fail_msg ("`%s` does not mention `%s`", err->msg, needle);
  shim_error_release (&err);
  config_release (&o);
}

static void
test_json_errors (void **state)
{
  (void) state;
  expect_json_error ("{\"binery\": \"x\"}", "unknown key `binery`");
  expect_json_error ("{\"binary\": 3}", "`binary` must be a non-empty string");
  expect_json_error ("{\"systemd_cgroup\": \"yes\"}", "`systemd_cgroup` must be a boolean");
  expect_json_error ("{\"timeout_ms\": -1}", "`timeout_ms` must be a non-negative integer");
  expect_json_error ("{\"timeout_ms\": 0}", "`timeout_ms` must be > 0");
  expect_json_error ("{\"runtime_args\": [1]}", "array of strings");
  expect_json_error ("[1, 2]", "not a JSON object");
  expect_json_error ("{", "not a JSON object");
  expect_json_error ("{\"profile\": \"kata\"}",
                     "`profile` must be one of `auto`, `runc`, `crun`, `youki`, `generic`");
  expect_json_error ("{\"io_policy\": \"drop-oldest\"}",
                     "`io_policy` must be one of `block`, `drop`");
  expect_json_error ("{\"trace\": 1}", "`trace` must be a boolean");
  expect_json_error ("{\"profile\": 3}", "`profile` must be one of `auto`");
  expect_json_error ("{\"profile\": \"\"}", "`profile` must be one of `auto`");
  expect_json_error ("{\"runtime_args\": \"--a\"}", "`runtime_args` must be an array of strings");
  expect_json_error ("{\"io_uid\": 4294967296}", "`io_uid` must be a non-negative integer");
  expect_json_error ("{\"io_uid\": 1.5}", "`io_uid` must be a non-negative integer");
}

/* An empty array clears the list; a whole number up to 2^32-1 is a uint32. */
static void
test_json_edge_values (void **state)
{
  (void) state;
  struct task_options o;
  config_init (&o);
  shim_error_t err = NULL;
  assert_int_equal (
      config_apply_json (&o, "{\"runtime_args\":[\"--a\"],\"io_uid\":4294967295}", "test", &err),
      0);
  assert_int_equal (strv_len (o.runtime.extra_args), 1);
  assert_int_equal (o.io_uid, 4294967295u);
  assert_int_equal (config_apply_json (&o, "{\"runtime_args\":[]}", "test", &err), 0);
  assert_null (o.runtime.extra_args);
  assert_null (err);
  config_release (&o);
}

/* Tracing is asked for by the config or by CSHIM_TRACE=1, nothing else. */
static void
test_trace_enabled (void **state)
{
  (void) state;
  struct task_options o;
  config_init (&o);
  unsetenv ("CSHIM_TRACE");
  assert_false (config_trace_enabled (&o));
  setenv ("CSHIM_TRACE", "0", 1);
  assert_false (config_trace_enabled (&o));
  setenv ("CSHIM_TRACE", "1", 1);
  assert_true (config_trace_enabled (&o));
  unsetenv ("CSHIM_TRACE");
  o.trace = true;
  assert_true (config_trace_enabled (&o));
  config_release (&o);
}

/* `delete` after a shim that never saved its config (or lost it): an error, and the options
 * stay the defaults it then uses. */
static void
test_load_missing_keeps_defaults (void **state)
{
  (void) state;
  char dir[] = "/tmp/cshim-test-bundle-XXXXXX";
  assert_non_null (mkdtemp (dir));
  struct task_options o;
  config_init (&o);
  shim_error_t err = NULL;
  assert_true (config_load (&o, dir, &err) < 0);
  assert_non_null (err);
  assert_int_equal (err->errno_, ENOENT);
  shim_error_release (&err);
  assert_string_equal (o.runtime.binary, CONFIG_DEFAULT_BINARY);
  assert_string_equal (o.runtime.root, CONFIG_DEFAULT_ROOT);
  assert_int_equal (o.runtime.timeout_ms, CONFIG_DEFAULT_TIMEOUT_MS);
  rmdir (dir);
  config_release (&o);
}

static void
test_json_operational_keys (void **state)
{
  (void) state;
  struct task_options o;
  config_init (&o);
  assert_string_equal (o.profile, "auto");
  assert_string_equal (o.io_policy, "block");
  assert_false (o.trace);
  assert_int_equal (o.exec_io_drain_ms, CONFIG_DEFAULT_EXEC_IO_DRAIN_MS);
  shim_error_t err = NULL;
  assert_int_equal (config_apply_json (&o,
                                       "{\"profile\":\"youki\",\"trace\":true,"
                                       "\"trace_dir\":\"/tmp/t\",\"exec_io_drain_ms\":500,"
                                       "\"io_policy\":\"drop\"}",
                                       "test", &err),
                    0);
  assert_string_equal (o.profile, "youki");
  assert_true (o.trace);
  assert_string_equal (o.trace_dir, "/tmp/t");
  assert_int_equal (o.exec_io_drain_ms, 500);
  assert_string_equal (o.io_policy, "drop");
  config_release (&o);
}

static Google__Protobuf__Any *
runtime_options_body (const char *path, const char *body)
{
  Runtimeoptions__V1__Options r = RUNTIMEOPTIONS__V1__OPTIONS__INIT;
  r.config_path = (char *) (path ? path : "");
  r.config_body.data = (uint8_t *) body;
  r.config_body.len = body ? strlen (body) : 0;
  return pb_any_pack (&r.base);
}

/* CRI 1.7+ sends the runtime's `options` table as TOML in config_body. */
static void
test_config_body_toml (void **state)
{
  (void) state;
  Google__Protobuf__Any *any = runtime_options_body (
      NULL, "TypeUrl = \"runtimeoptions.v1.Options\"\n# a comment\n"
            "binary = \"/usr/bin/crun\"\nsystemd_cgroup = true\ntimeout_ms = 9000\n"
            "runtime_args = [\"--debug\", 'x y']\n");
  struct task_options o;
  config_init (&o);
  shim_error_t err = NULL;
  assert_int_equal (config_apply_any (&o, any, &err), 0);
  assert_string_equal (o.runtime.binary, "/usr/bin/crun");
  assert_true (o.runtime.systemd_cgroup);
  assert_int_equal (o.runtime.timeout_ms, 9000);
  assert_int_equal (strv_len (o.runtime.extra_args), 2);
  assert_string_equal (o.runtime.extra_args[1], "x y");
  pb_any_free (any);
  config_release (&o);

  /* Unknown keys are still errors; so is what is not flat TOML. */
  config_init (&o);
  any = runtime_options_body (NULL, "binery = \"x\"\n");
  assert_true (config_apply_any (&o, any, &err) < 0);
  assert_non_null (strstr (err->msg, "unknown key `binery`"));
  shim_error_release (&err);
  pb_any_free (any);
  any = runtime_options_body (NULL, "[table]\nbinary = \"x\"\n");
  assert_true (config_apply_any (&o, any, &err) < 0);
  assert_non_null (strstr (err->msg, "line 1"));
  shim_error_release (&err);
  pb_any_free (any);
  config_release (&o);
}

/* With ConfigPath, the body is CRI's echo of the same table: the file is the config. */
static void
test_config_path_wins_over_body (void **state)
{
  (void) state;
  char *path = write_tmp ("{\"binary\": \"/usr/bin/crun\"}");
  Google__Protobuf__Any *any = runtime_options_body (path, "ConfigPath = \"x\"\nbogus = 1\n");
  struct task_options o;
  config_init (&o);
  shim_error_t err = NULL;
  assert_int_equal (config_apply_any (&o, any, &err), 0);
  assert_string_equal (o.runtime.binary, "/usr/bin/crun");
  unlink (path);
  free (path);
  pb_any_free (any);
  config_release (&o);
}

static void
test_runc_criu_options (void **state)
{
  (void) state;
  Containerd__Runc__V1__Options r = CONTAINERD__RUNC__V1__OPTIONS__INIT;
  r.criu_path = "/opt/criu";
  r.criu_work_path = "/w";
  Google__Protobuf__Any *any = pb_any_pack (&r.base);
  struct task_options o;
  config_init (&o);
  shim_error_t err = NULL;
  assert_int_equal (config_apply_any (&o, any, &err), 0);
  assert_int_equal (strv_len (o.runtime.extra_args), 2);
  assert_string_equal (o.runtime.extra_args[0], "--criu");
  assert_string_equal (o.runtime.extra_args[1], "/opt/criu");
  assert_string_equal (o.criu_work_path, "/w");
  pb_any_free (any);
  config_release (&o);
}

static void
test_missing_config_file (void **state)
{
  (void) state;
  Runtimeoptions__V1__Options r = RUNTIMEOPTIONS__V1__OPTIONS__INIT;
  r.config_path = "/nonexistent/cshim.json";
  Google__Protobuf__Any *any = pb_any_pack (&r.base);
  struct task_options o;
  config_init (&o);
  shim_error_t err = NULL;
  assert_true (config_apply_any (&o, any, &err) < 0);
  assert_non_null (strstr (err->msg, "/nonexistent/cshim.json"));
  shim_error_release (&err);
  pb_any_free (any);
  config_release (&o);
}

static void
test_unknown_type (void **state)
{
  (void) state;
  Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
  any.type_url = "example.Unknown";
  struct task_options o;
  config_init (&o);
  shim_error_t err = NULL;
  assert_true (config_apply_any (&o, &any, &err) < 0);
  assert_int_equal (err->code, SHIM_INVALID_ARGUMENT);
  shim_error_release (&err);
  any.type_url = "";
  assert_int_equal (config_apply_any (&o, &any, &err), 0);
  config_release (&o);
}

static void
test_save_load_round_trip (void **state)
{
  (void) state;
  char dir[] = "/tmp/cshim-test-bundle-XXXXXX";
  assert_non_null (mkdtemp (dir));
  struct task_options o, back;
  config_init (&o);
  shim_error_t err = NULL;
  assert_int_equal (config_apply_json (&o,
                                       "{\"binary\":\"crun\",\"systemd_cgroup\":true,"
                                       "\"runtime_args\":[\"--a\",\"--b\"]}",
                                       "test", &err),
                    0);
  assert_int_equal (config_save (&o, dir, &err), 0);
  assert_int_equal (config_save (&o, dir, &err), 0); /* rewritten in place */
  DIR *d = opendir (dir); /* the temp file was renamed: cshim.json is all there is */
  assert_non_null (d);
  for (struct dirent *e; (e = readdir (d));)
    assert_true (e->d_name[0] == '.' || strcmp (e->d_name, CONFIG_BUNDLE_FILE) == 0);
  closedir (d);
  config_init (&back);
  assert_int_equal (config_load (&back, dir, &err), 0);
  assert_string_equal (back.runtime.binary, "crun");
  assert_true (back.runtime.systemd_cgroup);
  assert_int_equal (strv_len (back.runtime.extra_args), 2);
  assert_string_equal (back.runtime.extra_args[1], "--b");
  cleanup_free char *file = xasprintf ("%s/%s", dir, CONFIG_BUNDLE_FILE);
  unlink (file);
  rmdir (dir);
  config_release (&o);
  config_release (&back);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_defaults),
    cmocka_unit_test (test_runc_options),
    cmocka_unit_test (test_prefixed_type_url),
    cmocka_unit_test (test_runtimeoptions_config_path),
    cmocka_unit_test (test_json_errors),
    cmocka_unit_test (test_json_operational_keys),
    cmocka_unit_test (test_runc_criu_options),
    cmocka_unit_test (test_config_body_toml),
    cmocka_unit_test (test_config_path_wins_over_body),
    cmocka_unit_test (test_missing_config_file),
    cmocka_unit_test (test_unknown_type),
    cmocka_unit_test (test_save_load_round_trip),
    cmocka_unit_test (test_json_edge_values),
    cmocka_unit_test (test_trace_enabled),
    cmocka_unit_test (test_load_missing_keeps_defaults),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
