/* The trace's lines: one JSON object per runtime call (trace_format), its shortened copy in
 * the shim log, the environment delta, and the call in flight. The file is trace_file.c's. */

#include "runtime/trace.h"
#include "runtime/trace_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/log.h"
#include "platform/spawn.h"
#include "base/util.h"

/* The shim log copy is the msg of one log line, which log.c cuts at 1 KiB: it has to fit
 * with room to spare, so it goes without env, with short excerpts, and sheds more if needed. */
#define TRACE_LOG_MAX 900
#define TRACE_LOG_STDERR_MAX 256
#define TRACE_LOG_ERROR_MAX 256

struct trace_call
{
  struct trace *trace;
  char *verb;
  char **argv;
  char *cwd;
  char **env_added;
  char **env_removed;
  struct timespec started;
};

/* ---- text ---- */

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlongs, no surrogates), or 0.
 * NUL counts as malformed: a C string cannot carry it. */
static size_t
utf8_len (const unsigned char *p, size_t n)
{
  unsigned char lo = 0x80, hi = 0xbf;
  size_t len;
  if (p[0] >= 0x01 && p[0] <= 0x7f)
    return 1;
  if (p[0] >= 0xc2 && p[0] <= 0xdf)
    len = 2;
  else if (p[0] >= 0xe0 && p[0] <= 0xef)
    {
      len = 3;
      lo = p[0] == 0xe0 ? 0xa0 : 0x80;
      hi = p[0] == 0xed ? 0x9f : 0xbf;
    }
  else if (p[0] >= 0xf0 && p[0] <= 0xf4)
    {
      len = 4;
      lo = p[0] == 0xf0 ? 0x90 : 0x80;
      hi = p[0] == 0xf4 ? 0x8f : 0xbf;
    }
  else
    return 0;
  if (n < len || p[1] < lo || p[1] > hi)
    return 0;
  for (size_t i = 2; i < len; i++)
    if (p[i] < 0x80 || p[i] > 0xbf)
      return 0;
  return len;
}

/* s[0, len) as valid UTF-8: every other byte becomes the text \xNN (cJSON escapes the rest). */
static char *
text_clean (const char *s, size_t len)
{
  const unsigned char *p = (const unsigned char *) s;
  char *out = xmalloc (len * 4 + 1), *o = out;
  for (size_t i = 0; i < len;)
    {
      size_t n = utf8_len (p + i, len - i);
      if (n == 0)
        {
          o += sprintf (o, "\\x%02x", p[i++]);
          continue;
        }
      memcpy (o, p + i, n);
      o += n;
      i += n;
    }
  *o = '\0';
  return out;
}

static bool
utf8_continuation (unsigned char c)
{
  return (c & 0xc0) == 0x80;
}

/* The last max bytes of s (not starting inside a character). */
static char *
text_tail (const char *s, size_t len, size_t max)
{
  size_t start = len > max ? len - max : 0;
  for (int i = 0; i < 3 && start > 0 && start < len && utf8_continuation (s[start]); i++)
    start++;
  return text_clean (s + start, len - start);
}

/* The first max bytes of s (not ending inside a character), "..." when cut. */
static char *
text_head (const char *s, size_t max)
{
  size_t len = strlen (s);
  if (len <= max)
    return text_clean (s, len);
  size_t end = max;
  for (int i = 0; i < 3 && end > 0 && utf8_continuation (s[end]); i++)
    end--;
  cleanup_free char *head = text_clean (s, end);
  return xasprintf ("%s...", head);
}

/* ---- the line ---- */

static void
add_text (cJSON *o, const char *key, const char *s, size_t max)
{
  if (s == NULL)
    {
      cJSON_AddNullToObject (o, key);
      return;
    }
  cleanup_free char *clean = text_head (s, max);
  cJSON_AddStringToObject (o, key, clean);
}

static void
add_time (cJSON *o, const char *key, const struct timespec *ts)
{
  char buf[64];
  format_rfc3339 (ts, buf, sizeof buf);
  cJSON_AddStringToObject (o, key, buf);
}

static void
add_strv (cJSON *o, const char *key, char *const *v)
{
  if (v == NULL)
    {
      cJSON_AddNullToObject (o, key);
      return;
    }
  cJSON *a = cJSON_AddArrayToObject (o, key);
  for (size_t i = 0; v[i]; i++)
    {
      cleanup_free char *clean = text_clean (v[i], strlen (v[i]));
      cJSON_AddItemToArray (a, cJSON_CreateString (clean));
    }
}

static void
add_env (cJSON *o, char *const *added, char *const *removed)
{
  cJSON *env = cJSON_AddObjectToObject (o, "env");
  cJSON *a = cJSON_AddObjectToObject (env, "added");
  for (size_t i = 0; added && added[i]; i++)
    {
      const char *eq = strchr (added[i], '=');
      size_t name_len = eq ? (size_t) (eq - added[i]) : strlen (added[i]);
      cleanup_free char *name = text_clean (added[i], name_len);
      cleanup_free char *value = eq ? text_clean (eq + 1, strlen (eq + 1)) : NULL;
      cJSON_AddItemToObject (a, name, value ? cJSON_CreateString (value) : cJSON_CreateNull ());
    }
  if (removed)
    add_strv (env, "removed", removed);
  else
    cJSON_AddArrayToObject (env, "removed");
}

static struct timespec
timespec_add_ms (struct timespec ts, uint64_t ms)
{
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long) (ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000)
    {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
  return ts;
}

static void
add_stderr (cJSON *o, const struct trace_entry *e, size_t max)
{
  if (e->stderr_text == NULL)
    cJSON_AddNullToObject (o, "stderr");
  else
    {
      cleanup_free char *tail = text_tail (e->stderr_text, e->stderr_len, max);
      cJSON_AddStringToObject (o, "stderr", tail);
    }
  cJSON_AddNumberToObject (o, "stderr_bytes", (double) e->stderr_len);
}

static cJSON *
entry_json (const struct trace_entry *e, size_t stderr_max, size_t error_max, bool with_env)
{
  cJSON *o = cJSON_CreateObject ();
  struct timespec end = timespec_add_ms (e->started, e->duration_ms);
  add_time (o, "time", &end);
  add_text (o, "id", e->id, PATH_MAX);
  add_text (o, "namespace", e->namespace, PATH_MAX);
  add_text (o, "verb", e->verb, PATH_MAX);
  add_strv (o, "argv", e->argv);
  add_text (o, "cwd", e->cwd, PATH_MAX);
  if (with_env)
    add_env (o, e->env_added, e->env_removed);
  add_time (o, "start", &e->started);
  cJSON_AddNumberToObject (o, "duration_ms", (double) e->duration_ms);
  cJSON_AddNumberToObject (o, "pid", e->pid);
  cJSON_AddNumberToObject (o, "exit_code", e->exit_code);
  cJSON_AddNumberToObject (o, "signal", e->signal);
  cJSON_AddBoolToObject (o, "timed_out", e->timed_out);
  cJSON_AddNumberToObject (o, "exec_errno", e->exec_errno);
  add_stderr (o, e, stderr_max);
  add_text (o, "error", e->error, error_max);
  return o;
}

char *
trace_format (const struct trace_entry *e)
{
  cJSON *o = entry_json (e, TRACE_STDERR_MAX, TRACE_ERROR_MAX, true);
  char *line = cJSON_PrintUnformatted (o);
  cJSON_Delete (o);
  return line;
}

/* The shim log copy: the same keys but env, shedding bulky ones until it fits. */
static char *
format_for_log (const struct trace_entry *e)
{
  static const char *const shed[] = { "stderr", "argv", "cwd", "error" };
  cJSON *o = entry_json (e, TRACE_LOG_STDERR_MAX, TRACE_LOG_ERROR_MAX, false);
  char *line = cJSON_PrintUnformatted (o);
  for (size_t i = 0; i < ARRAY_SIZE (shed) && line && strlen (line) > TRACE_LOG_MAX; i++)
    {
      free (line);
      cJSON_DeleteItemFromObject (o, shed[i]);
      line = cJSON_PrintUnformatted (o);
    }
  cJSON_Delete (o);
  return line;
}

/* ---- environment ---- */

/* The entry of v named like entry (the part before '='), or NULL. */
static const char *
env_find (char *const *v, const char *entry)
{
  size_t n = strcspn (entry, "=");
  for (size_t i = 0; v && v[i]; i++)
    if (strncmp (v[i], entry, n) == 0 && (v[i][n] == '=' || v[i][n] == '\0'))
      return v[i];
  return NULL;
}

void
trace_env_delta (char *const *base, char *const *env, char ***added, char ***removed)
{
  *added = NULL;
  *removed = NULL;
  for (size_t i = 0; env && env[i]; i++)
    {
      const char *old = env_find (base, env[i]);
      if (old == NULL || strcmp (old, env[i]) != 0)
        strv_push (added, env[i]);
    }
  for (size_t i = 0; base && base[i]; i++)
    if (env_find (env, base[i]) == NULL)
      {
        cleanup_free char *name = xstrndup (base[i], strcspn (base[i], "="));
        strv_push (removed, name);
      }
}

void
trace_write (struct trace *t, const struct trace_entry *e)
{
  if (t == NULL)
    return;
  struct trace_entry full = *e;
  if (full.id == NULL)
    full.id = t->id;
  if (full.namespace == NULL)
    full.namespace = t->namespace;
  cleanup_free char *line = trace_format (&full);
  cleanup_free char *short_line = format_for_log (&full);
  if (short_line)
    log_info ("runtime call %s", short_line);
  if (line)
    trace_append (t, line);
}

/* ---- one call ---- */

struct trace_call *
trace_call_begin (struct trace *t, const char *verb, char *const *argv, const char *cwd,
                  char *const *envp)
{
  if (t == NULL)
    return NULL;
  struct trace_call *c = xcalloc (1, sizeof *c);
  c->trace = trace_ref (t);
  c->started = now_realtime ();
  c->verb = verb ? xstrdup (verb) : NULL;
  for (size_t i = 0; argv && argv[i]; i++)
    strv_push (&c->argv, argv[i]);
  c->cwd = cwd ? xstrdup (cwd) : NULL;
  if (envp)
    trace_env_delta (environ, envp, &c->env_added, &c->env_removed);
  return c;
}

void
trace_call_free (struct trace_call *c)
{
  if (c == NULL)
    return;
  trace_close (c->trace);
  free (c->verb);
  strv_free (c->argv);
  free (c->cwd);
  strv_free (c->env_added);
  strv_free (c->env_removed);
  free (c);
}

void
trace_call_end (struct trace_call *c, const struct spawn_result *sr, const char *error)
{
  if (c == NULL)
    return;
  struct trace_entry e = {
    .verb = c->verb,
    .argv = c->argv,
    .cwd = c->cwd,
    .env_added = c->env_added,
    .env_removed = c->env_removed,
    .started = c->started,
    .duration_ms = sr->duration_ms,
    .pid = sr->pid,
    .exit_code = sr->exit_code,
    .timed_out = sr->timed_out,
    .exec_errno = sr->exec_errno,
    .signal = !sr->exec_errno && WIFSIGNALED (sr->status) ? WTERMSIG (sr->status) : 0,
    .stderr_text = sr->err,
    .stderr_len = sr->err ? sr->err_len : 0,
    .error = error,
  };
  trace_write (c->trace, &e);
  trace_call_free (c);
}
