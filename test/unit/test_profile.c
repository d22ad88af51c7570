/* profile.c: --version parsing (real runc/crun output from Debian 12, youki's two formats),
 * what a probe changes, argv per profile, refusals with their exact messages, the synthesized
 * features document, and probing through an event loop: the installed runc and crun,
 * test/fakes/fake-youki, a missing binary and test/fakes/fake-hang. */
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
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "runtime/profile.h"
#include "runtime/profile_internal.h"
#include "platform/reaper.h"
#include "runtime/runtime.h"
#include "testutil.h"
#include "base/util.h"

/* `runc --version` and `crun --version` on Debian 12 (runc 1.1.5+ds1-1+deb12u1, crun 1.8.1). */
static const char runc_text[] = "runc version 1.1.5+ds1\n"
                                "commit: 1.1.5+ds1-1+deb12u1\n"
                                "spec: 1.0.2-dev\n"
                                "go: go1.19.8\n"
                                "libseccomp: 2.5.4\n";
static const char crun_text[] = "crun version 1.8.1\n"
                                "commit: f8a096be060b22ccd3d5f3ebe44108517fbf6c30\n"
                                "rundir: /run/crun\n"
                                "spec: 1.0.0\n"
                                "+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF +YAJL\n";
/* youki >= 0.5.6 (crates/youki/src/commands/info.rs, print_youki) */
static const char youki_text[] = "youki version: 0.5.7\n"
                                 "commit: 0.5.7-3f1c5a2\n"
                                 "spec: 1.2.0\n"
                                 "rustc: 1.85.0\n"
                                 "libseccomp: 2.5.4\n";
/* youki < 0.5.6: clap's "<bin> <version>" with youki's version string */
static const char youki_old_text[] = "youki version 0.3.0\ncommit: 0.3.0-0-9e2b1f0\n";

/* ---- --version text ---- */

static void
test_version_runc (void **state)
{
  (void) state;
  struct profile_info info;
  const struct runtime_profile *p = profile_from_version (runc_text, &info);
  assert_ptr_equal (p, profile_by_name ("runc"));
  assert_string_equal (info.name, "runc");
  assert_string_equal (info.version, "1.1.5+ds1");
  assert_string_equal (info.commit, "1.1.5+ds1-1+deb12u1");
  assert_string_equal (info.spec, "1.0.2-dev");
  assert_string_equal (info.features, "");
  assert_int_equal (p->log_format, PROFILE_LOG_MSG);
}

static void
test_version_crun (void **state)
{
  (void) state;
  struct profile_info info;
  const struct runtime_profile *p = profile_from_version (crun_text, &info);
  assert_ptr_equal (p, profile_by_name ("crun"));
  assert_string_equal (info.version, "1.8.1");
  assert_string_equal (info.commit, "f8a096be060b22ccd3d5f3ebe44108517fbf6c30");
  assert_string_equal (info.spec, "1.0.0");
  assert_string_equal (info.features, "+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF +YAJL");
}

static void
test_version_youki (void **state)
{
  (void) state;
  struct profile_info info;
  const struct runtime_profile *p = profile_from_version (youki_text, &info);
  assert_ptr_equal (p, profile_by_name ("youki"));
  assert_string_equal (info.version, "0.5.7");
  assert_string_equal (info.commit, "0.5.7-3f1c5a2");
  assert_string_equal (info.spec, "1.2.0");
  assert_int_equal (p->log_format, PROFILE_LOG_MESSAGE);

  p = profile_from_version (youki_old_text, &info);
  assert_ptr_equal (p, profile_by_name ("youki"));
  assert_string_equal (info.version, "0.3.0");
  assert_string_equal (info.commit, "0.3.0-0-9e2b1f0");
  assert_string_equal (info.spec, "");
}

static void
test_version_unknown (void **state)
{
  (void) state;
  const struct runtime_profile *generic = profile_by_name ("generic");
  struct profile_info info;
  assert_ptr_equal (
      profile_from_version ("runsc version release-20230605.0\nspec: 1.1.0-rc.1\n", &info),
      generic);
  assert_string_equal (info.name, "runsc");
  assert_string_equal (info.version, "release-20230605.0");
  assert_string_equal (info.spec, "1.1.0-rc.1");

  assert_ptr_equal (profile_from_version ("Usage: frob [OPTIONS]\n", &info), generic);
  assert_string_equal (info.name, "");
  assert_string_equal (info.version, "");
  assert_ptr_equal (profile_from_version ("", &info), generic);
  assert_ptr_equal (profile_from_version (NULL, NULL), generic);
  /* "version" must be the second word: a runc lookalike is not runc */
  assert_ptr_equal (profile_from_version ("runc-ng version 2\n", &info), generic);
  assert_ptr_equal (profile_from_version ("runc\r\n", &info), generic);
  /* leading blank lines and CRs are not part of the answer */
  assert_ptr_equal (profile_from_version ("\n  \ncrun version 1.8.1\r\nspec: 1.0.0\r\n", &info),
                    profile_by_name ("crun"));
  assert_string_equal (info.version, "1.8.1");
  assert_string_equal (info.spec, "1.0.0");
}

static void
test_version_long_fields_cut (void **state)
{
  (void) state;
  char text[1024];
  memset (text, 'x', sizeof text);
  memcpy (text, "crun version 1.", 15);
  text[sizeof text - 1] = '\0';
  struct profile_info info;
  assert_ptr_equal (profile_from_version (text, &info), profile_by_name ("crun"));
  assert_int_equal (strlen (info.version), sizeof info.version - 1);
  assert_memory_equal (info.version, "1.xxx", 5);
}

/* ---- names ---- */

static void
test_names (void **state)
{
  (void) state;
  static const char *const names[] = { "runc", "crun", "youki", "generic" };
  for (size_t i = 0; i < ARRAY_SIZE (names); i++)
    {
      const struct runtime_profile *p = profile_by_name (names[i]);
      assert_non_null (p);
      assert_string_equal (p->name, names[i]);
      const struct runtime_profile *q = NULL;
      assert_int_equal (profile_parse_name (names[i], &q, NULL), 0);
      assert_ptr_equal (q, p);
    }
  assert_null (profile_by_name ("auto"));
  assert_null (profile_by_name ("RUNC"));
  assert_null (profile_by_name (NULL));

  const struct runtime_profile *q = profile_by_name ("runc");
  assert_int_equal (profile_parse_name ("auto", &q, NULL), 0);
  assert_null (q);
  q = profile_by_name ("runc");
  assert_int_equal (profile_parse_name (NULL, &q, NULL), 0);
  assert_null (q);
  assert_int_equal (profile_parse_name ("", &q, NULL), 0);
  assert_null (q);

  shim_error_t err = NULL;
  assert_true (profile_parse_name ("kata", &q, &err) < 0);
  assert_int_equal (err->code, SHIM_INVALID_ARGUMENT);
  assert_string_equal (err->msg,
                       "unknown runtime profile `kata` (known: auto, runc, crun, youki, generic)");
  shim_error_release (&err);
}

/* ---- what a probe changes ---- */

static void
resolve_text (const char *text, struct runtime_profile *out)
{
  struct profile_info info;
  profile_resolve (profile_from_version (text, &info), &info, out);
}

static void
test_resolve_caps (void **state)
{
  (void) state;
  struct runtime_profile p;
  resolve_text (crun_text, &p); /* Debian's crun: no CRIU, no `features` before 1.8.6 */
  assert_string_equal (p.name, "crun");
  assert_string_equal (p.version, "1.8.1");
  assert_false (profile_has_cap (&p, PROFILE_CAP_CRIU));
  assert_false (profile_has_cap (&p, PROFILE_CAP_FEATURES));
  assert_string_equal (p.missing[1], "was built without CRIU");

  resolve_text ("crun version 1.8.6\n+SYSTEMD +CRIU +YAJL\n", &p);
  assert_true (profile_has_cap (&p, PROFILE_CAP_CRIU | PROFILE_CAP_FEATURES));
  resolve_text ("crun version 1.14\n+SYSTEMD +CRIUX\n", &p); /* tokens match whole */
  assert_false (profile_has_cap (&p, PROFILE_CAP_CRIU));
  assert_true (profile_has_cap (&p, PROFILE_CAP_FEATURES));
  resolve_text ("crun version 1.8.1\n", &p); /* no build line: CRIU not ruled out */
  assert_true (profile_has_cap (&p, PROFILE_CAP_CRIU));

  resolve_text (runc_text, &p);
  assert_true (profile_has_cap (&p, PROFILE_CAP_CRIU | PROFILE_CAP_FEATURES));
  resolve_text ("runc version 1.0.0-rc93\n", &p);
  assert_false (profile_has_cap (&p, PROFILE_CAP_FEATURES));
  resolve_text ("runc version 1.10\n", &p); /* numeric, not string, comparison */
  assert_true (profile_has_cap (&p, PROFILE_CAP_FEATURES));

  resolve_text (youki_text, &p);
  assert_true (profile_has_cap (&p, PROFILE_CAP_FEATURES));
  resolve_text ("youki version: 0.5.1\n", &p);
  assert_false (profile_has_cap (&p, PROFILE_CAP_FEATURES));
  resolve_text ("youki version unknown\n", &p); /* no number: nothing ruled out */
  assert_true (profile_has_cap (&p, PROFILE_CAP_FEATURES));

  resolve_text ("something else\n", &p);
  assert_string_equal (p.name, "generic");
  assert_false (profile_has_cap (&p, PROFILE_CAP_FEATURES));
  assert_true (profile_has_cap (NULL, PROFILE_CAP_CRIU));

  profile_resolve (profile_by_name ("crun"), NULL, &p); /* forced: the table as it is */
  assert_string_equal (p.version, "");
  assert_true (profile_has_cap (&p, PROFILE_CAP_CRIU));
}

/* ---- argv per profile ---- */

static char **
argv_for (const char *profile, struct runtime_cfg *cfg, const struct runtime_call *call)
{
  cfg->profile = profile ? profile_by_name (profile) : NULL;
  struct runtime ctx = { .cfg = cfg, .namespace = "ns" };
  return runtime_argv (&ctx, call);
}

static void
test_argv_youki_checkpointt (void **state)
{
  (void) state;
  struct runtime_cfg cfg = { .binary = "youki" };
  struct runtime_criu criu
      = { .image_path = "/ck", .work_path = "/w", .cgroups_mode = "soft", .leave_running = true };
  struct runtime_call call = { .verb = RUNTIME_CHECKPOINT, .id = "c1", .criu = &criu };
  const char *want[] = {
    "youki",       "--root", "/run/containerd/runc/ns", "checkpointt", "--image-path",    "/ck",
    "--work-path", "/w",     "--manage-cgroups-mode",   "soft",        "--leave-running", "c1",
    NULL
  };
  assert_argv (argv_for ("youki", &cfg, &call), want);

  struct runtime_call kill = { .verb = RUNTIME_KILL, .id = "c1", .signal = 9, .all = true };
  const char *want_kill[]
      = { "youki", "--root", "/run/containerd/runc/ns", "kill", "--all", "c1", "9", NULL };
  assert_argv (argv_for ("youki", &cfg, &kill), want_kill);
}

static void
test_argv_crun_restore (void **state)
{
  (void) state;
  struct runtime_cfg cfg = { .binary = "crun", .no_pivot_root = true };
  struct runtime_criu criu = { .image_path = "/ck", .work_path = "/w", .shell_job = true };
  struct runtime_call call = { .verb = RUNTIME_RESTORE,
                               .id = "c1",
                               .bundle = "/b",
                               .pid_file = "/b/init.pid",
                               .console_socket = "/s",
                               .criu = &criu };
  const char *want[] = { "crun",
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
                         "--console-socket",
                         "/s",
                         "--bundle",
                         "/b",
                         "c1",
                         NULL };
  assert_argv (argv_for ("crun", &cfg, &call), want);

  /* crun's create does take --no-pivot */
  struct runtime_call create = { .verb = RUNTIME_CREATE, .id = "c1", .bundle = "/b" };
  const char *want_create[]
      = { "crun", "--root", "/run/containerd/runc/ns", "create", "--bundle", "/b", "--no-pivot",
          "c1",   NULL };
  assert_argv (argv_for ("crun", &cfg, &create), want_create);
}

/* Every verb, every flag: generic, runc and a NULL profile build the same argv. */
static void
test_argv_generic_is_runc (void **state)
{
  (void) state;
  char *empty[] = { "network", NULL };
  struct runtime_criu criu = { .image_path = "/ck",
                               .work_path = "/w",
                               .parent_path = "/p",
                               .cgroups_mode = "full",
                               .empty_ns = empty,
                               .tcp_established = true,
                               .ext_unix_sk = true,
                               .shell_job = true,
                               .file_locks = true,
                               .leave_running = true };
  struct runtime_cfg cfg
      = { .systemd_cgroup = true, .no_pivot_root = true, .no_new_keyring = true };
  for (int v = 0; v < RUNTIME_VERB_COUNT; v++)
    {
      struct runtime_call call = { .verb = v,
                                   .id = "c1",
                                   .bundle = "/b",
                                   .pid_file = "/p",
                                   .console_socket = "/s",
                                   .process_file = "/proc.json",
                                   .signal = 15,
                                   .all = true,
                                   .force = true,
                                   .criu = &criu };
      char **plain = argv_for (NULL, &cfg, &call);
      char **runc = argv_for ("runc", &cfg, &call);
      char **generic = argv_for ("generic", &cfg, &call);
      assert_int_equal (strv_len (plain), strv_len (runc));
      assert_int_equal (strv_len (plain), strv_len (generic));
      for (size_t i = 0; plain[i]; i++)
        {
          assert_string_equal (plain[i], runc[i]);
          assert_string_equal (plain[i], generic[i]);
        }
      assert_string_equal (plain[4], runtime_verb_name (v));
      strv_free (plain);
      strv_free (runc);
      strv_free (generic);
    }
}

static void
test_verb_names (void **state)
{
  (void) state;
  assert_string_equal (profile_verb_name (profile_by_name ("youki"), RUNTIME_CHECKPOINT),
                       "checkpointt");
  assert_string_equal (profile_verb_name (profile_by_name ("youki"), RUNTIME_RESTORE), "restore");
  assert_string_equal (profile_verb_name (NULL, RUNTIME_CHECKPOINT), "checkpoint");
  assert_string_equal (profile_verb_name (profile_by_name ("crun"), RUNTIME_PS), "ps");
  assert_true (
      profile_drops_flag (profile_by_name ("crun"), RUNTIME_RESTORE, RUNTIME_FLAG_NO_SUBREAPER));
  assert_false (
      profile_drops_flag (profile_by_name ("crun"), RUNTIME_CREATE, RUNTIME_FLAG_NO_PIVOT));
  assert_false (profile_drops_flag (NULL, RUNTIME_RESTORE, RUNTIME_FLAG_NO_SUBREAPER));
  assert_string_equal (runtime_flag_name (RUNTIME_FLAG_EMPTY_NS), "--empty-ns");
  assert_string_equal (runtime_flag_name (RUNTIME_FLAG_EMPTY_NS | RUNTIME_FLAG_ALL), "?");
}

/* ---- refusals ---- */

static void
assert_refused (const struct runtime_profile *p, const struct runtime_call *call,
                const struct runtime_cfg *cfg, int code, const char *msg)
{
  shim_error_t err = NULL;
  assert_true (profile_check_call (p, call, cfg, &err) < 0);
  assert_non_null (err);
  assert_string_equal (err->msg, msg);
  assert_int_equal (err->code, code);
  shim_error_release (&err);
}

static void
assert_allowed (const struct runtime_profile *p, const struct runtime_call *call,
                const struct runtime_cfg *cfg)
{
  shim_error_t err = NULL;
  assert_int_equal (profile_check_call (p, call, cfg, &err), 0);
  assert_null (err);
}

static void
test_check_verbs_and_caps (void **state)
{
  (void) state;
  const struct runtime_profile *youki = profile_by_name ("youki");
  struct runtime_criu criu = { .image_path = "/ck" };
  struct runtime_call restore
      = { .verb = RUNTIME_RESTORE, .id = "c1", .bundle = "/b", .criu = &criu };
  assert_refused (youki, &restore, NULL, SHIM_UNIMPLEMENTED, "youki does not support restore");

  struct runtime_profile crun;
  resolve_text (crun_text, &crun);
  struct runtime_call ckpt = { .verb = RUNTIME_CHECKPOINT, .id = "c1", .criu = &criu };
  assert_refused (&crun, &ckpt, NULL, SHIM_FAILED_PRECONDITION,
                  "crun 1.8.1 was built without CRIU: checkpoint is unavailable");
  assert_refused (&crun, &restore, NULL, SHIM_FAILED_PRECONDITION,
                  "crun 1.8.1 was built without CRIU: restore is unavailable");
  struct runtime_call create = { .verb = RUNTIME_CREATE, .id = "c1", .bundle = "/b" };
  assert_allowed (&crun, &create, NULL);

  struct runtime_call bad = { .verb = (enum runtime_verb) 99, .id = "c1" };
  assert_refused (NULL, &bad, NULL, SHIM_UNIMPLEMENTED, "generic does not support unknown");
}

static void
test_check_flags (void **state)
{
  (void) state;
  const struct runtime_profile *youki = profile_by_name ("youki");
  const struct runtime_profile *crun = profile_by_name ("crun");
  char *empty[] = { "network", NULL };
  struct runtime_criu criu = { .image_path = "/ck", .empty_ns = empty };
  struct runtime_call ckpt = { .verb = RUNTIME_CHECKPOINT, .id = "c1", .criu = &criu };
  assert_refused (crun, &ckpt, NULL, SHIM_UNIMPLEMENTED,
                  "crun does not support --empty-ns for checkpoint");
  assert_refused (youki, &ckpt, NULL, SHIM_UNIMPLEMENTED,
                  "youki does not support --empty-ns for checkpoint");
  assert_allowed (profile_by_name ("runc"), &ckpt, NULL);
  assert_allowed (NULL, &ckpt, NULL);

  criu = (struct runtime_criu){ .image_path = "/ck", .parent_path = "/prev" };
  assert_refused (youki, &ckpt, NULL, SHIM_UNIMPLEMENTED,
                  "youki does not support --parent-path for checkpoint");
  assert_allowed (crun, &ckpt, NULL);

  /* dropped, not refused: crun's restore never pivots or reaps on its own */
  struct runtime_cfg cfg = { .no_pivot_root = true };
  struct runtime_criu plain = { .image_path = "/ck" };
  struct runtime_call restore
      = { .verb = RUNTIME_RESTORE, .id = "c1", .bundle = "/b", .criu = &plain };
  assert_allowed (crun, &restore, &cfg);
  assert_true (runtime_call_flags (&restore, &cfg)
               & (RUNTIME_FLAG_NO_PIVOT | RUNTIME_FLAG_NO_SUBREAPER));

  cfg = (struct runtime_cfg){ .systemd_cgroup = true, .no_new_keyring = true };
  struct runtime_call create
      = { .verb = RUNTIME_CREATE, .id = "c1", .bundle = "/b", .console_socket = "/s" };
  assert_allowed (youki, &create, &cfg);
  assert_allowed (crun, &create, &cfg);
  assert_int_equal (runtime_call_flags (&create, &cfg), RUNTIME_FLAG_SYSTEMD_CGROUP
                                                            | RUNTIME_FLAG_NO_NEW_KEYRING
                                                            | RUNTIME_FLAG_CONSOLE_SOCKET);
}

static void
test_check_signals (void **state)
{
  (void) state;
  const struct runtime_profile *youki = profile_by_name ("youki");
  struct runtime_call kill = { .verb = RUNTIME_KILL, .id = "c1", .signal = 31 };
  assert_allowed (youki, &kill, NULL);
  kill.signal = 34; /* SIGRTMIN */
  assert_refused (youki, &kill, NULL, SHIM_UNIMPLEMENTED,
                  "youki does not support signal 34 (its kill takes 1-31)");
  assert_allowed (profile_by_name ("runc"), &kill, NULL);
  assert_allowed (profile_by_name ("crun"), &kill, NULL);
  assert_allowed (NULL, &kill, NULL);
}

/* ---- the synthesized features document ---- */

static const char *
json_string (const cJSON *o, const char *key)
{
  return cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (o, key));
}

static void
test_features_json (void **state)
{
  (void) state;
  struct profile_info info;
  struct runtime_profile crun;
  profile_resolve (profile_from_version (crun_text, &info), &info, &crun);
  char *text = profile_features_json (&crun, &info);
  cJSON *doc = cJSON_Parse (text);
  assert_non_null (doc);
  assert_string_equal (json_string (doc, "ociVersionMin"), "1.0.0");
  assert_string_equal (json_string (doc, "ociVersionMax"), "1.0.0");
  assert_true (cJSON_GetArraySize (cJSON_GetObjectItem (doc, "hooks")) >= 6);
  const cJSON *lx = cJSON_GetObjectItem (doc, "linux");
  assert_int_equal (cJSON_GetArraySize (cJSON_GetObjectItem (lx, "namespaces")), 7);
  assert_true (cJSON_IsTrue (cJSON_GetObjectItem (cJSON_GetObjectItem (lx, "cgroup"), "systemd")));
  assert_true (cJSON_IsTrue (cJSON_GetObjectItem (cJSON_GetObjectItem (lx, "seccomp"), "enabled")));
  assert_true (cJSON_IsTrue (cJSON_GetObjectItem (cJSON_GetObjectItem (lx, "selinux"), "enabled")));
  const cJSON *ann = cJSON_GetObjectItem (doc, "annotations");
  assert_string_equal (json_string (ann, "io.github.cshim.profile"), "crun");
  assert_string_equal (json_string (ann, "io.github.cshim.synthesized"), "true");
  assert_string_equal (json_string (ann, "io.github.cshim.runtime.version"), "1.8.1");
  assert_string_equal (json_string (ann, "io.github.cshim.checkpoint.enabled"), "false");
  cJSON_Delete (doc);
  free (text);

  text = profile_features_json (NULL, NULL);
  doc = cJSON_Parse (text);
  assert_non_null (doc);
  assert_string_equal (json_string (doc, "ociVersionMax"), "1.0.0");
  lx = cJSON_GetObjectItem (doc, "linux");
  assert_null (cJSON_GetObjectItem (lx, "seccomp")); /* unknown: left out */
  ann = cJSON_GetObjectItem (doc, "annotations");
  assert_string_equal (json_string (ann, "io.github.cshim.profile"), "generic");
  assert_null (cJSON_GetObjectItem (ann, "io.github.cshim.runtime.version"));
  cJSON_Delete (doc);
  free (text);

  profile_from_version (youki_text, &info);
  text = profile_features_json (profile_by_name ("youki"), &info);
  doc = cJSON_Parse (text);
  assert_string_equal (json_string (doc, "ociVersionMax"), "1.2.0");
  ann = cJSON_GetObjectItem (doc, "annotations");
  assert_string_equal (json_string (ann, "io.github.cshim.log.format"), "json (message, LEVEL)");
  cJSON_Delete (doc);
  free (text);
}

/* ---- probing through the loop ---- */

struct fixture
{
  struct event_base *base;
  struct reaper *reaper;
  char dir[64];
  char *fakes; /* test/fakes, absolute */
  char *record;
};

struct probed
{
  int calls;
  const struct runtime_profile *p;
  const struct profile_info *info;
  shim_error_t err;
  uint64_t at_ms;
};

static int
setup (void **state)
{
  struct fixture *f = xcalloc (1, sizeof *f);
  loop_with_reaper_new (&f->base, &f->reaper);
  snprintf (f->dir, sizeof f->dir, "/tmp/cshim-prof-XXXXXX");
  assert_non_null (mkdtemp (f->dir));
  f->fakes = fakes_path ("");
  f->record = xasprintf ("%s/record", f->dir);
  setenv ("FAKE_RUNTIME_RECORD", f->record, 1);
  cleanup_free char *cache = xasprintf ("%s/probe-cache", f->dir);
  setenv ("CSHIM_PROBE_CACHE_DIR", cache, 1);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fixture *f = *state;
  profile_cache_clear ();
  unsetenv ("FAKE_RUNTIME_RECORD");
  unsetenv ("CSHIM_PROBE_CACHE_DIR");
  assert_int_equal (remove_tree (f->dir), 0);
  free (f->record);
  free (f->fakes);
  loop_with_reaper_free (f->base, f->reaper);
  free (f);
  return 0;
}

struct calls_wanted
{
  const struct probed *p;
  int calls;
};

static bool
calls_reached (void *arg)
{
  const struct calls_wanted *w = arg;
  return w->p->calls >= w->calls;
}

/* Runs the loop until the probe callback has run calls times in all, or timeout_ms. */
static bool
run_until_calls (struct event_base *base, const struct probed *p, int calls, unsigned timeout_ms)
{
  struct calls_wanted w = { p, calls };
  return run_until (base, calls_reached, &w, timeout_ms);
}

static void
probed_cb (const struct runtime_profile *p, const struct profile_info *info, shim_error_t err,
           void *arg)
{
  struct probed *o = arg;
  o->calls++;
  o->p = p;
  o->info = info;
  shim_error_release (&o->err);
  o->err = err;
  o->at_ms = now_monotonic_ms ();
}

static void
probe (struct fixture *f, const char *binary, struct probed *o)
{
  shim_error_t err = NULL;
  int before = o->calls;
  assert_int_equal (profile_probe (f->base, f->reaper, binary, probed_cb, o, &err), 0);
  assert_null (err);
  assert_int_equal (o->calls, before); /* never from inside profile_probe() */
}

static size_t
record_lines (const struct fixture *f)
{
  cleanup_free char *text = NULL;
  if (access (f->record, F_OK) < 0)
    return 0;
  assert_int_equal (read_file (f->record, 1 << 20, &text, NULL, NULL), 0);
  size_t n = 0;
  for (const char *p = text; (p = strchr (p, '\n')) != NULL; p++)
    n++;
  return n;
}

static void
test_probe_installed (void **state)
{
  struct fixture *f = *state;
  static const char *const bins[][2]
      = { { "/usr/sbin/runc", "runc" }, { "/usr/bin/crun", "crun" } };
  for (size_t i = 0; i < ARRAY_SIZE (bins); i++)
    {
      if (access (bins[i][0], X_OK) < 0)
        continue;
      struct probed o = { 0 };
      probe (f, bins[i][0], &o);
      assert_true (run_until_calls (f->base, &o, 1, 10000));
      assert_null (o.err);
      assert_string_equal (o.p->name, bins[i][1]);
      assert_string_equal (o.info->name, bins[i][1]);
      assert_true (o.info->version[0] >= '0' && o.info->version[0] <= '9');
      assert_string_equal (o.p->version, o.info->version);
      assert_true (o.info->spec[0] != '\0');
      /* what the build line says decides checkpoint, as for Debian's crun */
      bool criu = o.info->features[0] == '\0' || strstr (o.info->features, "+CRIU");
      assert_int_equal (profile_has_cap (o.p, PROFILE_CAP_CRIU), criu);
    }
}

static void
test_probe_youki_cached (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *youki = xasprintf ("%s/fake-youki", f->fakes);
  struct probed o = { 0 };
  probe (f, youki, &o);
  assert_true (run_until_calls (f->base, &o, 1, 10000));
  assert_null (o.err);
  assert_string_equal (o.p->name, "youki");
  assert_string_equal (o.p->version, "0.5.7");
  assert_string_equal (o.info->spec, "1.2.0");
  assert_true (profile_has_cap (o.p, PROFILE_CAP_FEATURES));
  assert_int_equal (record_lines (f), 1);
  const struct runtime_profile *first = o.p;

  probe (f, youki, &o); /* a hit: still delivered from the loop, nothing spawned */
  assert_true (run_until_calls (f->base, &o, 2, 1000));
  assert_ptr_equal (o.p, first);
  assert_null (o.err);
  assert_int_equal (record_lines (f), 1);
}

/* Another shim process (here: an emptied in-memory cache) finds the outcome on disk and runs
 * nothing, until the binary changes. */
static void
test_probe_disk_cache (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *copy = xasprintf ("cp '%s/fake-youki' '%s/youki'", f->fakes, f->dir);
  assert_int_equal (system (copy), 0);
  cleanup_free char *youki = xasprintf ("%s/youki", f->dir);
  struct probed o = { 0 };
  probe (f, youki, &o);
  assert_true (run_until_calls (f->base, &o, 1, 10000));
  assert_int_equal (record_lines (f), 1);

  profile_cache_clear ();
  probe (f, youki, &o);
  assert_true (run_until_calls (f->base, &o, 2, 1000));
  assert_null (o.err);
  assert_string_equal (o.p->name, "youki");
  assert_string_equal (o.p->version, "0.5.7");
  assert_int_equal (record_lines (f), 1);

  profile_cache_clear ();
  cleanup_free char *touch = xasprintf ("echo >> '%s'", youki);
  assert_int_equal (system (touch), 0);
  probe (f, youki, &o);
  assert_true (run_until_calls (f->base, &o, 3, 10000));
  assert_int_equal (record_lines (f), 2);
}

static size_t
count_of (const char *text, const char *needle)
{
  size_t n = 0;
  for (const char *p = text; (p = strstr (p, needle)) != NULL; p++)
    n++;
  return n;
}

/* A cache directory that cannot be made: every probe still works, runs `--version` (nothing
 * on disk), and the failure is logged once (later ones at debug level, off here). */
static void
test_probe_disk_cache_unwritable (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *blocker = xasprintf ("%s/not-a-dir", f->dir);
  write_text (blocker, "");
  cleanup_free char *cache = xasprintf ("%s/probe-cache", blocker);
  setenv ("CSHIM_PROBE_CACHE_DIR", cache, 1);
  cleanup_free char *youki = xasprintf ("%s/fake-youki", f->fakes);
  cleanup_free char *log_path = xasprintf ("%s/stderr", f->dir);
  int fd = open (log_path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  assert_true (fd >= 0);
  int saved = dup (STDERR_FILENO);
  dup2 (fd, STDERR_FILENO);
  int reached = 0, errors = 0;
  for (int i = 1; i <= 3; i++)
    {
      struct probed o = { 0 };
      probe (f, youki, &o);
      reached += run_until_calls (f->base, &o, 1, 10000);
      errors += o.err != NULL;
      shim_error_release (&o.err);
      profile_cache_clear (); /* as a new shim process would start */
    }
  dup2 (saved, STDERR_FILENO);
  close (saved);
  close (fd);
  assert_int_equal (reached, 3);
  assert_int_equal (errors, 0);
  assert_int_equal (record_lines (f), 3);
  cleanup_free char *log = NULL;
  assert_int_equal (read_file (log_path, 1 << 20, &log, NULL, NULL), 0);
  assert_int_equal (count_of (log, "probe cache not written"), 1);
  assert_non_null (strstr (log, "Not a directory"));
}

static void
test_probe_shared_run (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *youki = xasprintf ("%s/fake-youki", f->fakes);
  struct probed a = { 0 }, b = { 0 };
  probe (f, youki, &a);
  probe (f, youki, &b); /* while the first is running */
  assert_true (run_until_calls (f->base, &a, 1, 10000));
  assert_true (run_until_calls (f->base, &b, 1, 1000));
  assert_ptr_equal (a.p, b.p);
  assert_non_null (a.p);
  assert_int_equal (record_lines (f), 1);
}

static void
test_probe_path_lookup_and_change (void **state)
{
  struct fixture *f = *state;
  /* a copy in a directory of its own, found through PATH */
  cleanup_free char *copy = xasprintf ("cp '%s/fake-youki' '%s/youki'", f->fakes, f->dir);
  assert_int_equal (system (copy), 0);
  const char *old_path = getenv ("PATH");
  cleanup_free char *saved = xstrdup (old_path ? old_path : "/usr/bin:/bin");
  cleanup_free char *path = xasprintf ("%s:%s", f->dir, saved);
  setenv ("PATH", path, 1);

  struct probed o = { 0 };
  probe (f, "youki", &o);
  assert_true (run_until_calls (f->base, &o, 1, 10000));
  assert_non_null (o.p);
  assert_string_equal (o.p->name, "youki");
  const struct runtime_profile *before = o.p;

  /* the file changes (an upgrade): probed again; the old profile stays readable */
  cleanup_free char *edit = xasprintf ("echo '# upgraded' >> '%s/youki'", f->dir);
  assert_int_equal (system (edit), 0);
  setenv ("FAKE_YOUKI_VERSION", "0.5.1", 1);
  probe (f, "youki", &o);
  assert_true (run_until_calls (f->base, &o, 2, 10000));
  unsetenv ("FAKE_YOUKI_VERSION");
  setenv ("PATH", saved, 1);
  assert_int_equal (record_lines (f), 2);
  assert_ptr_not_equal (o.p, before);
  assert_string_equal (o.p->version, "0.5.1");
  assert_false (profile_has_cap (o.p, PROFILE_CAP_FEATURES));
  assert_string_equal (before->version, "0.5.7");
}

static void
test_probe_unknown_is_generic (void **state)
{
  struct fixture *f = *state;
  /* fake-runtime prints nothing for --version */
  cleanup_free char *fake = xasprintf ("%s/fake-runtime", f->fakes);
  struct probed o = { 0 };
  probe (f, fake, &o);
  assert_true (run_until_calls (f->base, &o, 1, 10000));
  assert_null (o.err);
  assert_string_equal (o.p->name, "generic");
  assert_string_equal (o.info->name, "");
}

static void
test_probe_missing_binary (void **state)
{
  struct fixture *f = *state;
  struct probed o = { 0 };
  probe (f, "/nonexistent/runc", &o);
  assert_true (run_until_calls (f->base, &o, 1, 10000));
  assert_null (o.p);
  assert_null (o.info);
  assert_non_null (o.err);
  assert_int_equal (o.err->code, SHIM_FAILED_PRECONDITION);
  assert_int_equal (o.err->errno_, ENOENT);
  assert_string_equal (o.err->msg,
                       "runtime /nonexistent/runc cannot be run: No such file or directory");
  shim_error_release (&o.err);

  /* failures are not cached: the next Create tries again */
  probe (f, "/nonexistent/runc", &o);
  assert_true (run_until_calls (f->base, &o, 2, 10000));
  assert_non_null (o.err);
  shim_error_release (&o.err);
}

static void
test_probe_crash (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *script = xasprintf ("%s/segv", f->dir);
  int fd = open (script, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
  assert_true (fd >= 0);
  const char *text = "#!/bin/sh\nulimit -c 0\nkill -s SEGV $$\n";
  assert_int_equal (write_all (fd, text, strlen (text)), 0);
  close (fd);
  struct probed o = { 0 };
  probe (f, script, &o);
  assert_true (run_until_calls (f->base, &o, 1, 10000));
  assert_non_null (o.err);
  cleanup_free char *want = xasprintf ("runtime %s crashed on --version (signal 11)", script);
  assert_string_equal (o.err->msg, want);
  shim_error_release (&o.err);
}

static void
test_probe_hang_deadline (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *hang = xasprintf ("%s/fake-hang", f->fakes);
  struct probed o = { 0 };
  uint64_t t0 = now_monotonic_ms ();
  probe (f, hang, &o);
  assert_true (run_until_calls (f->base, &o, 1, PROFILE_PROBE_TIMEOUT_MS + 5000));
  uint64_t took = o.at_ms - t0;
  assert_true (took >= PROFILE_PROBE_TIMEOUT_MS - 100);
  assert_true (took < PROFILE_PROBE_TIMEOUT_MS + 2000);
  assert_non_null (o.err);
  assert_int_equal (o.err->code, SHIM_DEADLINE_EXCEEDED);
  cleanup_free char *want
      = xasprintf ("runtime %s did not answer --version within 5000 ms (killed)", hang);
  assert_string_equal (o.err->msg, want);
  shim_error_release (&o.err);
}

static void
test_cache_clear_drops_pending (void **state)
{
  struct fixture *f = *state;
  struct probed o = { 0 };
  probe (f, "/usr/sbin/runc", &o);
  assert_true (run_until_calls (f->base, &o, 1, 10000));
  probe (f, "/usr/sbin/runc", &o); /* delivery pending */
  profile_cache_clear ();
  assert_false (run_until_calls (f->base, &o, 2, 200));
  assert_int_equal (o.calls, 1);
}

/* The cache file format: the header must name the same file, the rest is the text. */
static void
test_cache_parse (void **state)
{
  (void) state;
  const struct file_id id = { 8, 1234, 4096, { 1700000000, 5 } };
  char *text = profile_cache_parse ("8 1234 4096 1700000000 5\ncrun version 1.8.1\n", &id);
  assert_string_equal (text, "crun version 1.8.1\n");
  free (text);
  assert_null (profile_cache_parse ("8 1234 4096 1700000000 6\ncrun version 1.8.1\n", &id));
  assert_null (profile_cache_parse ("8 1234 4096\ncrun version 1.8.1\n", &id));
  assert_null (profile_cache_parse ("", &id));
}

int
main (void)
{
  signal (SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_version_runc),
    cmocka_unit_test (test_version_crun),
    cmocka_unit_test (test_version_youki),
    cmocka_unit_test (test_version_unknown),
    cmocka_unit_test (test_version_long_fields_cut),
    cmocka_unit_test (test_names),
    cmocka_unit_test (test_resolve_caps),
    cmocka_unit_test (test_argv_youki_checkpointt),
    cmocka_unit_test (test_argv_crun_restore),
    cmocka_unit_test (test_argv_generic_is_runc),
    cmocka_unit_test (test_verb_names),
    cmocka_unit_test (test_check_verbs_and_caps),
    cmocka_unit_test (test_check_flags),
    cmocka_unit_test (test_check_signals),
    cmocka_unit_test (test_features_json),
    cmocka_unit_test (test_cache_parse),
    cmocka_unit_test_setup_teardown (test_probe_installed, setup, teardown),
    cmocka_unit_test_setup_teardown (test_probe_youki_cached, setup, teardown),
    cmocka_unit_test_setup_teardown (test_probe_shared_run, setup, teardown),
    cmocka_unit_test_setup_teardown (test_probe_disk_cache, setup, teardown),
    cmocka_unit_test_setup_teardown (test_probe_disk_cache_unwritable, setup, teardown),
    cmocka_unit_test_setup_teardown (test_probe_path_lookup_and_change, setup, teardown),
    cmocka_unit_test_setup_teardown (test_probe_unknown_is_generic, setup, teardown),
    cmocka_unit_test_setup_teardown (test_probe_missing_binary, setup, teardown),
    cmocka_unit_test_setup_teardown (test_probe_crash, setup, teardown),
    cmocka_unit_test_setup_teardown (test_probe_hang_deadline, setup, teardown),
    cmocka_unit_test_setup_teardown (test_cache_clear_drops_pending, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
