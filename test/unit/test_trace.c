/* Runtime-call trace: the line (keys, escaping, bounds), the environment delta, the file
 * (directory, bundle pointer, appends, size cap, rotation) and the shim log copy. */
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
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/error.h"
#include "platform/spawn.h"
#include "testutil.h"
#include "runtime/trace.h"
#include "base/util.h"

static const char *const all_keys[] = {
  "time",      "id",         "namespace",   "verb",         "argv",      "cwd",
  "env",       "start",      "duration_ms", "pid",          "exit_code", "signal",
  "timed_out", "exec_errno", "stderr",      "stderr_bytes", "error",
};

static cJSON *
parse_line (const char *line)
{
  assert_non_null (line);
  assert_null (strchr (line, '\n'));
  cJSON *o = cJSON_Parse (line);
  assert_non_null (o);
  return o;
}

static cJSON *
format_parse (const struct trace_entry *e)
{
  cleanup_free char *line = trace_format (e);
  return parse_line (line);
}

static const char *
str_at (const cJSON *o, const char *key)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive (o, key);
  assert_true (cJSON_IsString (v));
  return v->valuestring;
}

static double
num_at (const cJSON *o, const char *key)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive (o, key);
  assert_true (cJSON_IsNumber (v));
  return v->valuedouble;
}

/* Every byte sequence of s is well-formed UTF-8 (what strict JSON readers insist on). */
static bool
is_utf8 (const char *s)
{
  const unsigned char *p = (const unsigned char *) s;
  while (*p)
    {
      size_t n = *p < 0x80             ? 1
                 : (*p & 0xe0) == 0xc0 ? 2
                 : (*p & 0xf0) == 0xe0 ? 3
                 : (*p & 0xf8) == 0xf0 ? 4
                                       : 0;
      if (n == 0 || (n == 2 && *p < 0xc2))
        return false;
      for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
          return false;
      p += n;
    }
  return true;
}

/* ---- the line ---- */

static void
test_format_every_key (void **state)
{
  (void) state;
  char *argv[] = { "runc", "--root", "/run/containerd/runc/default", "create", "c1", NULL };
  char *added[] = { "FOO=bar", "EMPTY=", NULL };
  char *removed[] = { "NOTIFY_SOCKET", NULL };
  struct trace_entry e = {
    .id = "c1",
    .namespace = "default",
    .verb = "create",
    .argv = argv,
    .cwd = "/b",
    .env_added = added,
    .env_removed = removed,
    .started = { .tv_sec = 1700000000, .tv_nsec = 900000000 },
    .duration_ms = 1234,
    .pid = 42,
    .exit_code = 1,
    .stderr_text = "oops\n",
    .stderr_len = 5,
    .error = "create failed: boom",
  };
  cleanup_free char *line = trace_format (&e);
  cJSON *o = parse_line (line);
  /* Keys in their documented order, nothing else. */
  const cJSON *item = o->child;
  for (size_t i = 0; i < ARRAY_SIZE (all_keys); i++, item = item->next)
    {
      assert_non_null (item);
      assert_string_equal (item->string, all_keys[i]);
    }
  assert_null (item);
  assert_string_equal (str_at (o, "start"), "2023-11-14T22:13:20.900000000Z");
  assert_string_equal (str_at (o, "time"), "2023-11-14T22:13:22.134000000Z");
  assert_string_equal (str_at (o, "verb"), "create");
  assert_int_equal (cJSON_GetArraySize (cJSON_GetObjectItem (o, "argv")), 5);
  assert_string_equal (cJSON_GetArrayItem (cJSON_GetObjectItem (o, "argv"), 3)->valuestring,
                       "create");
  const cJSON *env = cJSON_GetObjectItem (o, "env");
  assert_string_equal (str_at (cJSON_GetObjectItem (env, "added"), "FOO"), "bar");
  assert_string_equal (str_at (cJSON_GetObjectItem (env, "added"), "EMPTY"), "");
  assert_string_equal (cJSON_GetArrayItem (cJSON_GetObjectItem (env, "removed"), 0)->valuestring,
                       "NOTIFY_SOCKET");
  assert_int_equal (num_at (o, "duration_ms"), 1234);
  assert_int_equal (num_at (o, "pid"), 42);
  assert_int_equal (num_at (o, "exit_code"), 1);
  assert_int_equal (num_at (o, "signal"), 0);
  assert_true (cJSON_IsFalse (cJSON_GetObjectItem (o, "timed_out")));
  assert_string_equal (str_at (o, "stderr"), "oops\n");
  assert_int_equal (num_at (o, "stderr_bytes"), 5);
  assert_string_equal (str_at (o, "error"), "create failed: boom");
  cJSON_Delete (o);
}

static void
test_format_empty_entry (void **state)
{
  (void) state;
  struct trace_entry e = { 0 };
  cJSON *o = format_parse (&e);
  for (size_t i = 0; i < ARRAY_SIZE (all_keys); i++)
    assert_non_null (cJSON_GetObjectItemCaseSensitive (o, all_keys[i]));
  assert_true (cJSON_IsNull (cJSON_GetObjectItem (o, "argv")));
  assert_true (cJSON_IsNull (cJSON_GetObjectItem (o, "cwd")));
  assert_true (cJSON_IsNull (cJSON_GetObjectItem (o, "stderr")));
  assert_true (cJSON_IsNull (cJSON_GetObjectItem (o, "error")));
  const cJSON *env = cJSON_GetObjectItem (o, "env");
  assert_true (cJSON_IsObject (cJSON_GetObjectItem (env, "added")));
  assert_true (cJSON_IsArray (cJSON_GetObjectItem (env, "removed")));
  assert_int_equal (cJSON_GetArraySize (cJSON_GetObjectItem (env, "removed")), 0);
  cJSON_Delete (o);
}

static void
test_format_odd_bytes (void **state)
{
  (void) state;
  char *argv[] = { "q\"b\\s\n\t", "bad\xff\xfe",  "caf\xc3\xa9",     "ctl\x01\x1b",
                   "cut\xe2\x82", "over\xc0\xaf", "sur\xed\xa0\x80", NULL };
  static const char err_bytes[] = "line1\0nul\x80z";
  struct trace_entry e = {
    .argv = argv, .stderr_text = err_bytes, .stderr_len = sizeof err_bytes - 1, .error = "x\xff"
  };
  cleanup_free char *line = trace_format (&e);
  assert_true (is_utf8 (line));
  cJSON *o = parse_line (line);
  const cJSON *a = cJSON_GetObjectItem (o, "argv");
  assert_string_equal (cJSON_GetArrayItem (a, 0)->valuestring, "q\"b\\s\n\t");
  assert_string_equal (cJSON_GetArrayItem (a, 1)->valuestring, "bad\\xff\\xfe");
  assert_string_equal (cJSON_GetArrayItem (a, 2)->valuestring, "caf\xc3\xa9");
  assert_string_equal (cJSON_GetArrayItem (a, 3)->valuestring, "ctl\x01\x1b");
  assert_string_equal (cJSON_GetArrayItem (a, 4)->valuestring, "cut\\xe2\\x82");
  assert_string_equal (cJSON_GetArrayItem (a, 5)->valuestring, "over\\xc0\\xaf");
  assert_string_equal (cJSON_GetArrayItem (a, 6)->valuestring, "sur\\xed\\xa0\\x80");
  assert_string_equal (str_at (o, "stderr"), "line1\\x00nul\\x80z");
  assert_int_equal (num_at (o, "stderr_bytes"), sizeof err_bytes - 1);
  assert_string_equal (str_at (o, "error"), "x\\xff");
  cJSON_Delete (o);
}

static void
test_format_stderr_bounded (void **state)
{
  (void) state;
  size_t len = 10 * 1024;
  cleanup_free char *big = xmalloc (len);
  memset (big, 'a', len);
  memcpy (big + len - 4, "END\n", 4);
  struct trace_entry e = { .stderr_text = big, .stderr_len = len };
  cJSON *o = format_parse (&e);
  const char *s = str_at (o, "stderr");
  assert_int_equal (strlen (s), TRACE_STDERR_MAX);
  assert_string_equal (s + strlen (s) - 4, "END\n"); /* the tail is what explains */
  assert_int_equal (num_at (o, "stderr_bytes"), len);
  cJSON_Delete (o);

  /* A cut never starts inside a character. */
  char *wide = xmalloc (len + 1);
  for (size_t i = 0; i < len; i += 2)
    memcpy (wide + i, "\xc3\xa9", 2);
  wide[len] = 'x'; /* odd length: the cut falls on the second byte of a character */
  e.stderr_text = wide;
  e.stderr_len = len + 1;
  o = format_parse (&e);
  s = str_at (o, "stderr");
  assert_null (strstr (s, "\\x"));
  assert_true (strlen (s) <= TRACE_STDERR_MAX);
  assert_true (strlen (s) >= TRACE_STDERR_MAX - 3);
  cJSON_Delete (o);
  free (wide);
}

static void
test_format_error_bounded (void **state)
{
  (void) state;
  cleanup_free char *big = xmalloc (3 * TRACE_ERROR_MAX + 1);
  memset (big, 'e', 3 * TRACE_ERROR_MAX);
  big[3 * TRACE_ERROR_MAX] = '\0';
  struct trace_entry e = { .error = big };
  cJSON *o = format_parse (&e);
  const char *s = str_at (o, "error");
  assert_int_equal (strlen (s), TRACE_ERROR_MAX + 3);
  assert_string_equal (s + TRACE_ERROR_MAX, "...");
  cJSON_Delete (o);
}

static void
test_format_signal_and_timeout (void **state)
{
  (void) state;
  struct trace_entry e
      = { .exit_code = 137, .signal = SIGKILL, .timed_out = true, .duration_ms = 999 };
  cJSON *o = format_parse (&e);
  assert_int_equal (num_at (o, "exit_code"), 137);
  assert_int_equal (num_at (o, "signal"), SIGKILL);
  assert_true (cJSON_IsTrue (cJSON_GetObjectItem (o, "timed_out")));
  cJSON_Delete (o);
}

/* ---- environment ---- */

static void
test_env_delta_same (void **state)
{
  (void) state;
  char *base[] = { "A=1", "B=2", NULL };
  char *env[] = { "B=2", "A=1", NULL };
  char **added, **removed;
  trace_env_delta (base, env, &added, &removed);
  assert_null (added);
  assert_null (removed);
  trace_env_delta (NULL, NULL, &added, &removed);
  assert_null (added);
  assert_null (removed);
}

static void
test_env_delta_removed (void **state)
{
  (void) state;
  char *base[] = { "PATH=/bin", "NOTIFY_SOCKET=/run/systemd/notify", "HOME=/root", NULL };
  char *env[] = { "PATH=/bin", "HOME=/root", NULL };
  char **added, **removed;
  trace_env_delta (base, env, &added, &removed);
  assert_null (added);
  assert_int_equal (strv_len (removed), 1);
  assert_string_equal (removed[0], "NOTIFY_SOCKET");
  strv_free (removed);
}

static void
test_env_delta_added_changed (void **state)
{
  (void) state;
  char *base[] = { "A=1", "AB=x", "KEEP=k", "FLAG", NULL };
  char *env[] = { "A=2", "ABC=new", "KEEP=k", "FLAG", "B=", NULL };
  char **added, **removed;
  trace_env_delta (base, env, &added, &removed);
  /* A changed (new value, not removed); ABC is not AB; FLAG without '=' is unchanged. */
  assert_int_equal (strv_len (added), 3);
  assert_string_equal (added[0], "A=2");
  assert_string_equal (added[1], "ABC=new");
  assert_string_equal (added[2], "B=");
  assert_int_equal (strv_len (removed), 1);
  assert_string_equal (removed[0], "AB");
  strv_free (added);
  strv_free (removed);
}

static void
test_env_delta_empty_base (void **state)
{
  (void) state;
  char *env[] = { "X=1", NULL };
  char *base[] = { "Y=2", NULL };
  char **added, **removed;
  trace_env_delta (NULL, env, &added, &removed);
  assert_int_equal (strv_len (added), 1);
  assert_null (removed);
  strv_free (added);
  trace_env_delta (base, NULL, &added, &removed);
  assert_null (added);
  assert_int_equal (strv_len (removed), 1);
  assert_string_equal (removed[0], "Y");
  strv_free (removed);
}

/* ---- the file ---- */

struct fixture
{
  char tmp[64];
  char *dir; /* trace dir, not created yet */
  char *bundle;
};

static int
setup (void **state)
{
  struct fixture *f = xcalloc (1, sizeof *f);
  strcpy (f->tmp, "/tmp/cshim-trace-XXXXXX");
  assert_non_null (mkdtemp (f->tmp));
  f->dir = xasprintf ("%s/run/trace", f->tmp);
  f->bundle = xasprintf ("%s/bundle", f->tmp);
  assert_int_equal (mkdir (f->bundle, 0755), 0);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fixture *f = *state;
  assert_int_equal (remove_tree (f->tmp), 0);
  free (f->dir);
  free (f->bundle);
  free (f);
  return 0;
}

static char *
slurp (const char *path, size_t *len)
{
  char *text = NULL;
  shim_error_t err = NULL;
  assert_int_equal (read_file (path, 64 << 20, &text, len, &err), 0);
  return text;
}

static size_t
count_lines (const char *text)
{
  size_t n = 0;
  for (const char *p = text; (p = strchr (p, '\n')); p++)
    n++;
  return n;
}

static struct trace_entry
sample_entry (const char *verb)
{
  static char *argv[] = { "runc", "--root", "/run/containerd/runc/ns1", "state", "c1", NULL };
  struct trace_entry e
      = { .verb = verb, .argv = argv, .cwd = "/b", .duration_ms = 7, .started = now_realtime () };
  return e;
}

static void
test_open_creates_dir_and_pointer (void **state)
{
  struct fixture *f = *state;
  shim_error_t err = NULL;
  struct trace *t = trace_open (f->dir, "ns1", "c1", f->bundle, &err);
  assert_non_null (t);
  assert_null (err);
  cleanup_free char *want = xasprintf ("%s/ns1/c1.jsonl", f->dir);
  cleanup_free char *real_tmp = realpath (f->tmp, NULL);
  assert_non_null (strstr (trace_path (t), "/run/trace/ns1/c1.jsonl"));
  assert_true (strncmp (trace_path (t), real_tmp, strlen (real_tmp)) == 0);
  struct stat st;
  cleanup_free char *ns_dir = xasprintf ("%s/ns1", f->dir);
  assert_int_equal (stat (ns_dir, &st), 0);
  assert_true (S_ISDIR (st.st_mode));
  assert_int_equal (st.st_mode & 0777, 0700);
  /* The file itself only at the first write. */
  assert_int_equal (stat (want, &st), -1);
  cleanup_free char *link = xasprintf ("%s/%s", f->bundle, TRACE_POINTER_NAME);
  char target[PATH_MAX];
  ssize_t n = readlink (link, target, sizeof target - 1);
  assert_true (n > 0);
  target[n] = '\0';
  assert_string_equal (target, trace_path (t));

  struct trace_entry e = sample_entry ("state");
  trace_write (t, &e);
  assert_int_equal (stat (want, &st), 0);
  assert_int_equal (st.st_mode & 0777, 0600);
  cleanup_free char *via_link = slurp (link, NULL);
  assert_int_equal (count_lines (via_link), 1);
  trace_close (t);
}

static void
test_open_replaces_pointer (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *link = xasprintf ("%s/%s", f->bundle, TRACE_POINTER_NAME);
  assert_int_equal (symlink ("/nowhere/old.jsonl", link), 0);
  shim_error_t err = NULL;
  struct trace *t = trace_open (f->dir, "ns1", "c1", f->bundle, &err);
  assert_non_null (t);
  char target[PATH_MAX];
  ssize_t n = readlink (link, target, sizeof target - 1);
  assert_true (n > 0);
  target[n] = '\0';
  assert_string_equal (target, trace_path (t));
  trace_close (t);
}

static void
test_open_without_bundle (void **state)
{
  struct fixture *f = *state;
  shim_error_t err = NULL;
  struct trace *t = trace_open (f->dir, "ns1", "c1", NULL, &err);
  assert_non_null (t);
  trace_close (t);
  /* An unwritable bundle costs the pointer, not the trace. */
  cleanup_free char *missing = xasprintf ("%s/no-such-bundle", f->tmp);
  t = trace_open (f->dir, "ns1", "c1", missing, &err);
  assert_non_null (t);
  assert_null (err);
  trace_close (t);
}

static void
test_open_rejects_bad_names (void **state)
{
  struct fixture *f = *state;
  const char *bad[][2] = { { "ns", "../x" }, { "ns", "" },  { "a/b", "c" }, { "..", "c" },
                           { "ns", "." },    { NULL, "c" }, { "ns", NULL } };
  for (size_t i = 0; i < ARRAY_SIZE (bad); i++)
    {
      shim_error_t err = NULL;
      assert_null (trace_open (f->dir, bad[i][0], bad[i][1], f->bundle, &err));
      assert_non_null (err);
      assert_int_equal (err->code, SHIM_INVALID_ARGUMENT);
      shim_error_release (&err);
    }
}

static void
test_open_dir_fails (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *file = xasprintf ("%s/plain", f->tmp);
  cleanup_close int fd = open (file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  assert_true (fd >= 0);
  shim_error_t err = NULL;
  assert_null (trace_open (file, "ns1", "c1", NULL, &err));
  assert_non_null (err);
  assert_int_equal (err->errno_, ENOTDIR);
  shim_error_release (&err);
}

static void
test_write_appends (void **state)
{
  struct fixture *f = *state;
  shim_error_t err = NULL;
  struct trace *t = trace_open (f->dir, "ns1", "c1", f->bundle, &err);
  assert_non_null (t);
  const char *verbs[] = { "create", "start", "kill", "delete" };
  for (size_t i = 0; i < ARRAY_SIZE (verbs); i++)
    {
      struct trace_entry e = sample_entry (verbs[i]);
      trace_write (t, &e);
    }
  trace_close (t);
  /* A second trace of the same id (a later container, `delete`) appends. */
  t = trace_open (f->dir, "ns1", "c1", f->bundle, &err);
  struct trace_entry e = sample_entry ("state");
  e.id = "other";
  trace_write (t, &e);
  cleanup_free char *text = slurp (trace_path (t), NULL);
  trace_close (t);
  assert_int_equal (count_lines (text), 5);
  char *save = NULL;
  size_t i = 0;
  for (char *l = strtok_r (text, "\n", &save); l; l = strtok_r (NULL, "\n", &save), i++)
    {
      cJSON *o = parse_line (l);
      assert_string_equal (str_at (o, "verb"), i < 4 ? verbs[i] : "state");
      assert_string_equal (str_at (o, "id"), i < 4 ? "c1" : "other");
      assert_string_equal (str_at (o, "namespace"), "ns1");
      cJSON_Delete (o);
    }
}

static void
test_size_cap (void **state)
{
  struct fixture *f = *state;
  shim_error_t err = NULL;
  struct trace *t = trace_open (f->dir, "ns1", "c1", NULL, &err);
  assert_non_null (t);
  trace_set_max_size (t, 2000);
  struct trace_entry e = sample_entry ("state");
  e.id = "c1";
  e.namespace = "ns1";
  cleanup_free char *one = trace_format (&e);
  size_t fit = 2000 / (strlen (one) + 1);
  for (size_t i = 0; i < fit + 10; i++)
    trace_write (t, &e);
  size_t len;
  cleanup_free char *text = slurp (trace_path (t), &len);
  assert_int_equal (count_lines (text), fit + 1);
  assert_true (len < 2000 + 400); /* the note may pass the cap; nothing after it */
  const char *last = text;
  for (const char *p; (p = strchr (last, '\n')) && p[1];)
    last = p + 1;
  cJSON *note = parse_line (strndupa (last, strlen (last) - 1));
  assert_non_null (strstr (str_at (note, "note"), "size limit of 2000 bytes"));
  assert_string_equal (str_at (note, "id"), "c1");
  cJSON_Delete (note);
  trace_close (t);

  /* The next container with this id starts afresh; the full file is kept aside. */
  t = trace_open (f->dir, "ns1", "c1", NULL, &err);
  trace_set_max_size (t, 2000);
  trace_write (t, &e);
  cleanup_free char *fresh = slurp (trace_path (t), NULL);
  assert_int_equal (count_lines (fresh), 1);
  cleanup_free char *old_path = xasprintf ("%s.old", trace_path (t));
  cleanup_free char *old = slurp (old_path, NULL);
  assert_string_equal (old, text);
  trace_close (t);
}

static void
test_write_unwritable (void **state)
{
  struct fixture *f = *state;
  shim_error_t err = NULL;
  struct trace *t = trace_open (f->dir, "ns1", "c1", NULL, &err);
  assert_non_null (t);
  /* A directory where the file should be: the open fails, is reported, and writes stop. */
  assert_int_equal (mkdir (trace_path (t), 0700), 0);
  struct trace_entry e = sample_entry ("state");
  trace_write (t, &e);
  trace_write (t, &e);
  trace_close (t);
  trace_write (NULL, &e); /* tracing off */
}

/* ---- one call ---- */

static void
test_call_outlives_owner (void **state)
{
  struct fixture *f = *state;
  setenv ("CSHIM_TRACE_TEST_GONE", "1", 1);
  char **envp = NULL;
  for (size_t i = 0; environ[i]; i++)
    if (strncmp (environ[i], "CSHIM_TRACE_TEST_GONE=", 22) != 0)
      strv_push (&envp, environ[i]);
  strv_push (&envp, "CSHIM_TRACE_TEST_NEW=2");
  shim_error_t err = NULL;
  struct trace *t = trace_open (f->dir, "ns1", "c1", NULL, &err);
  char *argv[] = { "runc", "kill", "c1", "9", NULL };
  struct trace_call *c = trace_call_begin (t, "kill", argv, "/b", envp);
  strv_free (envp);
  cleanup_free char *path = xstrdup (trace_path (t));
  trace_close (t); /* the container is gone while the call is in flight */
  struct spawn_result sr = { .pid = 77,
                             .status = SIGKILL,
                             .exit_code = 137,
                             .timed_out = true,
                             .err = "late\n",
                             .err_len = 5,
                             .duration_ms = 3000 };
  trace_call_end (c, &sr, "kill failed: runtime runc did not finish within 3000 ms (killed)");
  unsetenv ("CSHIM_TRACE_TEST_GONE");

  cleanup_free char *text = slurp (path, NULL);
  assert_int_equal (count_lines (text), 1);
  cJSON *o = parse_line (strndupa (text, strlen (text) - 1));
  assert_string_equal (str_at (o, "verb"), "kill");
  assert_int_equal (num_at (o, "pid"), 77);
  assert_int_equal (num_at (o, "signal"), SIGKILL);
  assert_int_equal (num_at (o, "duration_ms"), 3000);
  assert_true (cJSON_IsTrue (cJSON_GetObjectItem (o, "timed_out")));
  const cJSON *env = cJSON_GetObjectItem (o, "env");
  assert_string_equal (str_at (cJSON_GetObjectItem (env, "added"), "CSHIM_TRACE_TEST_NEW"), "2");
  assert_int_equal (cJSON_GetArraySize (cJSON_GetObjectItem (env, "added")), 1);
  const cJSON *removed = cJSON_GetObjectItem (env, "removed");
  assert_int_equal (cJSON_GetArraySize (removed), 1);
  assert_string_equal (cJSON_GetArrayItem (removed, 0)->valuestring, "CSHIM_TRACE_TEST_GONE");
  cJSON_Delete (o);
}

static void
test_call_off_or_canceled (void **state)
{
  struct fixture *f = *state;
  char *argv[] = { "runc", "start", "c2", NULL };
  struct spawn_result sr = { .pid = 78 };
  /* Off: no call object, nothing to end. */
  assert_null (trace_call_begin (NULL, "start", argv, NULL, NULL));
  trace_call_end (NULL, &sr, NULL);
  /* A canceled call is dropped unwritten. */
  shim_error_t err = NULL;
  struct trace *t = trace_open (f->dir, "ns1", "c2", NULL, &err);
  struct trace_call *c = trace_call_begin (t, "start", argv, NULL, NULL);
  trace_call_free (c);
  struct stat st;
  assert_int_equal (stat (trace_path (t), &st), -1);
  trace_close (t);
}

/* ---- the shim log copy ---- */

/* Runs trace_write with fd 2 (where log.c writes before the FIFO is open) sent to a file. */
static char *
capture_log (struct trace *t, const struct trace_entry *e, const char *tmp)
{
  cleanup_free char *path = xasprintf ("%s/stderr", tmp);
  int fd = open (path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  assert_true (fd >= 0);
  int saved = dup (STDERR_FILENO);
  assert_int_equal (dup2 (fd, STDERR_FILENO), STDERR_FILENO);
  trace_write (t, e);
  dup2 (saved, STDERR_FILENO);
  close (saved);
  close (fd);
  return slurp (path, NULL);
}

static void
test_log_copy_fits (void **state)
{
  struct fixture *f = *state;
  shim_error_t err = NULL;
  struct trace *t = trace_open (f->dir, "ns1", "c1", NULL, &err);
  char *argv[40];
  for (size_t i = 0; i < 39; i++)
    argv[i] = "--a-rather-long-argument-repeated-to-make-the-line-too-long-for-the-log";
  argv[39] = NULL;
  char *added[] = { "SECRETISH=value", NULL };
  cleanup_free char *big_err = xmalloc (3000);
  memset (big_err, 'x', 2999);
  big_err[2999] = '\0';
  struct trace_entry e = sample_entry ("create");
  e.argv = argv;
  e.env_added = added;
  e.stderr_text = big_err;
  e.stderr_len = 2999;
  e.error = "create failed: something";
  cleanup_free char *text = capture_log (t, &e, f->tmp);
  trace_close (t);
  assert_int_equal (count_lines (text), 1);
  cJSON *log_line = parse_line (strndupa (text, strlen (text) - 1));
  const char *msg = str_at (log_line, "msg");
  assert_string_equal (str_at (log_line, "level"), "info");
  assert_true (strncmp (msg, "runtime call {", 14) == 0);
  cJSON *inner = parse_line (msg + strlen ("runtime call "));
  assert_null (cJSON_GetObjectItem (inner, "env"));
  assert_null (cJSON_GetObjectItem (inner, "argv")); /* shed: the file has it */
  assert_string_equal (str_at (inner, "verb"), "create");
  assert_string_equal (str_at (inner, "error"), "create failed: something");
  cJSON_Delete (inner);
  cJSON_Delete (log_line);
}

/* A trace whose file was pruned under it starts a new file instead of writing into the void. */
static void
test_write_after_unlink_reopens (void **state)
{
  struct fixture *f = *state;
  shim_error_t err = NULL;
  struct trace *t = trace_open (f->dir, "ns1", "c1", NULL, &err);
  struct trace_entry e = sample_entry ("create");
  trace_write (t, &e);
  assert_int_equal (unlink (trace_path (t)), 0);
  e = sample_entry ("kill");
  trace_write (t, &e);
  cleanup_free char *text = slurp (trace_path (t), NULL);
  assert_int_equal (count_lines (text), 1);
  assert_non_null (strstr (text, "\"verb\":\"kill\""));
  trace_close (t);
}

/* The directory keeps the newest TRACE_MAX_FILES traces; older ones go when a trace opens. */
static void
test_open_prunes_old_traces (void **state)
{
  struct fixture *f = *state;
  shim_error_t err = NULL;
  struct trace *first = trace_open (f->dir, "ns1", "first", NULL, &err);
  assert_non_null (first);
  trace_close (first);
  cleanup_free char *ns_dir = xasprintf ("%s/ns1", f->dir);
  for (int i = 0; i < TRACE_MAX_FILES + 5; i++)
    {
      cleanup_free char *path = xasprintf ("%s/old-%04d.jsonl", ns_dir, i);
      int fd = open (path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
      assert_true (fd >= 0);
      close (fd);
      /* strictly increasing mtimes: old-0000 is the oldest */
      struct timespec times[2] = { { 1000000 + i, 0 }, { 1000000 + i, 0 } };
      assert_int_equal (utimensat (AT_FDCWD, path, times, 0), 0);
    }
  struct trace *t = trace_open (f->dir, "ns1", "c1", NULL, &err);
  assert_non_null (t);
  trace_close (t);
  size_t n = 0;
  DIR *d = opendir (ns_dir);
  for (struct dirent *e; (e = readdir (d));)
    n += e->d_name[0] != '.';
  closedir (d);
  assert_int_equal (n, TRACE_MAX_FILES);
  cleanup_free char *oldest = xasprintf ("%s/old-0000.jsonl", ns_dir);
  cleanup_free char *newest = xasprintf ("%s/old-%04d.jsonl", ns_dir, TRACE_MAX_FILES + 4);
  assert_int_equal (access (oldest, F_OK), -1);
  assert_int_equal (access (newest, F_OK), 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_format_every_key),
    cmocka_unit_test (test_format_empty_entry),
    cmocka_unit_test (test_format_odd_bytes),
    cmocka_unit_test (test_format_stderr_bounded),
    cmocka_unit_test (test_format_error_bounded),
    cmocka_unit_test (test_format_signal_and_timeout),
    cmocka_unit_test (test_env_delta_same),
    cmocka_unit_test (test_env_delta_removed),
    cmocka_unit_test (test_env_delta_added_changed),
    cmocka_unit_test (test_env_delta_empty_base),
    cmocka_unit_test_setup_teardown (test_open_creates_dir_and_pointer, setup, teardown),
    cmocka_unit_test_setup_teardown (test_open_replaces_pointer, setup, teardown),
    cmocka_unit_test_setup_teardown (test_open_without_bundle, setup, teardown),
    cmocka_unit_test_setup_teardown (test_open_rejects_bad_names, setup, teardown),
    cmocka_unit_test_setup_teardown (test_open_dir_fails, setup, teardown),
    cmocka_unit_test_setup_teardown (test_write_appends, setup, teardown),
    cmocka_unit_test_setup_teardown (test_size_cap, setup, teardown),
    cmocka_unit_test_setup_teardown (test_write_unwritable, setup, teardown),
    cmocka_unit_test_setup_teardown (test_call_outlives_owner, setup, teardown),
    cmocka_unit_test_setup_teardown (test_call_off_or_canceled, setup, teardown),
    cmocka_unit_test_setup_teardown (test_log_copy_fits, setup, teardown),
    cmocka_unit_test_setup_teardown (test_open_prunes_old_traces, setup, teardown),
    cmocka_unit_test_setup_teardown (test_write_after_unlink_reopens, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
