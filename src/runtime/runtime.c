#include "runtime/runtime.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/log.h"
#include "base/util.h"
#include "platform/spawn.h"
#include "runtime/profile.h"
#include "runtime/runtime_log.h"
#include "runtime/trace.h"

#define RUNTIME_DEFAULT_BINARY "runc"
#define RUNTIME_DEFAULT_ROOT "/run/containerd/runc"
/* The tail of the runtime's stderr a failure report keeps: its last lines are the ones that
 * explain. (The log's bound is RUNTIME_LOG_TAIL_MAX, runtime.h.) */
#define RUNTIME_STDERR_TAIL 4096
/* The child that reads a failed call's log tail (runtime_log.c) gets this long. */
#define RUNTIME_LOG_READ_TIMEOUT_MS 5000

/* ---- argv ---- */

static const struct runtime_cfg default_cfg;

static const struct runtime_cfg *
rt_cfg (const struct runtime *rt)
{
  return rt->cfg ? rt->cfg : &default_cfg;
}

static const char *
cfg_binary (const struct runtime_cfg *cfg)
{
  return cfg->binary && cfg->binary[0] ? cfg->binary : RUNTIME_DEFAULT_BINARY;
}

/* The flags of call that the profile leaves out because its runtime never needs them. */
static unsigned
dropped_flags (const struct runtime_cfg *cfg, const struct runtime_call *call)
{
  unsigned used = runtime_call_flags (call, cfg), drop = 0;
  for (unsigned bit = 1; bit && bit <= used; bit <<= 1)
    if ((used & bit) && profile_drops_flag (cfg->profile, call->verb, bit))
      drop |= bit;
  return drop;
}

/* --root <root>/<ns>: one state directory per namespace, as containerd's own shim does. */
static void
push_root (char ***argv, const struct runtime_cfg *cfg, const char *namespace)
{
  const char *root = cfg->root && cfg->root[0] ? cfg->root : RUNTIME_DEFAULT_ROOT;
  size_t n = strlen (root);
  while (n > 1 && root[n - 1] == '/')
    n--;
  strv_push (argv, "--root");
  if (namespace && namespace[0])
    strv_pushf (argv, "%.*s/%s", (int) n, root, namespace);
  else
    strv_pushf (argv, "%.*s", (int) n, root);
}

char **
runtime_argv (const struct runtime *rt, const struct runtime_call *call)
{
  const struct runtime_cfg *cfg = rt_cfg (rt);
  char **argv = NULL;

  strv_push (&argv, cfg_binary (cfg));
  push_root (&argv, cfg, rt->namespace);
  if (rt->log_path && rt->log_path[0])
    {
      strv_push (&argv, "--log");
      strv_push (&argv, rt->log_path);
      strv_push (&argv, "--log-format");
      strv_push (&argv, "json");
    }
  if (cfg->systemd_cgroup)
    strv_push (&argv, "--systemd-cgroup");
  for (size_t i = 0; cfg->extra_args && cfg->extra_args[i]; i++)
    strv_push (&argv, cfg->extra_args[i]);

  strv_push (&argv, profile_verb_name (cfg->profile, call->verb));
  runtime_verb_args (&argv, call, cfg, dropped_flags (cfg, call));
  return argv;
}

/* ---- what the runtime leaves behind ---- */

static bool
parse_pid_digits (const char *text, long *out)
{
  const char *p = text;
  long v = 0;
  while (isspace ((unsigned char) *p))
    p++;
  const char *digits = p;
  for (; isdigit ((unsigned char) *p); p++)
    {
      v = v * 10 + (*p - '0');
      if (v > INT_MAX)
        return false;
    }
  if (p == digits)
    return false;
  while (isspace ((unsigned char) *p))
    p++;
  *out = v;
  return *p == '\0';
}

int
runtime_parse_pid (const char *text, pid_t *pid, shim_error_t *err)
{
  long v;
  if (text == NULL || !parse_pid_digits (text, &v) || v <= 0)
    return shim_error_make (err, 0, SHIM_UNKNOWN, "invalid pid file contents");
  *pid = (pid_t) v;
  return 0;
}

/* A trimmed copy, or NULL when nothing but whitespace is left. */
static char *
trim_dup (const char *s, size_t n)
{
  while (n > 0 && isspace ((unsigned char) *s))
    s++, n--;
  while (n > 0 && isspace ((unsigned char) s[n - 1]))
    n--;
  return n ? xstrndup (s, n) : NULL;
}

static bool
is_error_level (const char *level)
{
  static const char *const levels[] = { "error", "fatal", "panic" };
  for (size_t i = 0; i < ARRAY_SIZE (levels); i++)
    if (strcasecmp (level, levels[i]) == 0)
      return true;
  return false;
}

/* The message of one log line when it is an error-level JSON entry. */
static char *
log_line_error (const char *line, size_t n)
{
  cJSON *o = cJSON_ParseWithLength (line, n);
  char *msg = NULL;
  if (cJSON_IsObject (o))
    {
      const char *level = cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (o, "level"));
      const char *text = cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (o, "msg"));
      if (text == NULL)
        text = cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (o, "message"));
      if (level && text && is_error_level (level))
        msg = trim_dup (text, strlen (text));
    }
  cJSON_Delete (o);
  return msg;
}

char *
runtime_log_last_error (const char *text, size_t len)
{
  char *last = NULL;
  const char *p = text, *end = text ? text + len : NULL;
  while (p && p < end)
    {
      const char *nl = memchr (p, '\n', end - p);
      const char *line_end = nl ? nl : end;
      char *msg = log_line_error (p, line_end - p);
      if (msg)
        {
          free (last);
          last = msg;
        }
      p = nl ? nl + 1 : end;
    }
  return last;
}

/* ---- runtime wording -> gRPC codes: the one table ---- */

#define VERB_BIT(v) (1u << (v))
#define ANY_VERB 0u
/* Verbs that address a container which must already exist. */
#define EXISTING_VERBS                                                                             \
  (VERB_BIT (RUNTIME_START) | VERB_BIT (RUNTIME_KILL) | VERB_BIT (RUNTIME_DELETE)                  \
   | VERB_BIT (RUNTIME_STATE) | VERB_BIT (RUNTIME_PS) | VERB_BIT (RUNTIME_PAUSE)                   \
   | VERB_BIT (RUNTIME_RESUME) | VERB_BIT (RUNTIME_UPDATE))

struct code_rule
{
  const char *needle; /* matched case-insensitively anywhere in the message */
  int code;
  unsigned verbs; /* ANY_VERB or a VERB_BIT mask */
};

static const struct code_rule code_rules[] = {
  { "not exist", SHIM_NOT_FOUND, ANY_VERB },
  { "no such process", SHIM_NOT_FOUND, ANY_VERB }, /* strerror (ESRCH) */
  { "not running", SHIM_NOT_FOUND, ANY_VERB },
  { "process already finished", SHIM_NOT_FOUND, ANY_VERB },
  { "already exists", SHIM_ALREADY_EXISTS, ANY_VERB },
  /* runc: "container with id exists: <id>" */
  { "exists", SHIM_ALREADY_EXISTS, VERB_BIT (RUNTIME_CREATE) },
  /* crun: "error opening file `<root>/<id>/status`: No such file or directory" */
  { "no such file or directory", SHIM_NOT_FOUND, EXISTING_VERBS },
};

static int
error_code_masked (const char *msg, unsigned verb_bit)
{
  if (msg == NULL)
    return SHIM_UNKNOWN;
  for (size_t i = 0; i < ARRAY_SIZE (code_rules); i++)
    {
      const struct code_rule *r = &code_rules[i];
      if (r->verbs != ANY_VERB && !(r->verbs & verb_bit))
        continue;
      if (strcasestr (msg, r->needle))
        return r->code;
    }
  return SHIM_UNKNOWN;
}

int
runtime_error_code (const char *msg)
{
  return error_code_masked (msg, 0);
}

int
runtime_verb_error_code (enum runtime_verb verb, const char *msg)
{
  return error_code_masked (msg, (size_t) verb < 32 ? VERB_BIT (verb) : 0);
}

/* ---- runtime_run ---- */

/* One invocation in flight; owns copies of whatever the completion needs. */
struct run_op
{
  enum runtime_verb verb;
  char *binary;
  char *log_path;
  char *cwd;
  off_t log_offset;
  uint64_t started_ms;
  unsigned timeout_ms;
  char *cmdline;
  struct trace_call *trace; /* NULL unless the call is traced */
  runtime_cb cb;
  void *arg;
  struct spawn *spawn; /* the handle: the runtime, then the child that reads its log */
  /* A failed call, kept while that child reads the log. */
  struct spawn_result failed;
  char *failed_out, *failed_err;
};

static void
run_op_free (void *arg)
{
  struct run_op *op = arg;
  free (op->binary);
  free (op->log_path);
  free (op->cwd);
  free (op->cmdline);
  free (op->failed_out);
  free (op->failed_err);
  trace_call_free (op->trace);
  free (op);
}

static char *
stderr_tail (const char *err, size_t len)
{
  if (len > RUNTIME_STDERR_TAIL)
    {
      err += len - RUNTIME_STDERR_TAIL;
      len = RUNTIME_STDERR_TAIL;
    }
  return trim_dup (err, len);
}

/* spawn reports any failure between fork and exec as exec_errno; a missing working directory
 * would otherwise read as a missing runtime binary. */
static int
run_exec_error (const struct run_op *op, int exec_errno, shim_error_t *err)
{
  const char *verb = runtime_verb_name (op->verb);
  struct stat st;
  if (op->cwd && stat (op->cwd, &st) < 0)
    return shim_error_make (err, errno, SHIM_FAILED_PRECONDITION, "%s failed: chdir %s", verb,
                            op->cwd);
  return shim_error_make (err, exec_errno, SHIM_FAILED_PRECONDITION, "%s failed: exec %s", verb,
                          op->binary);
}

static int
run_make_error (const struct run_op *op, const struct spawn_result *sr, char *log_error,
                shim_error_t *err)
{
  const char *verb = runtime_verb_name (op->verb);
  cleanup_free char *msg = log_error;
  if (sr->timed_out)
    return shim_error_make (err, 0, SHIM_DEADLINE_EXCEEDED,
                            "%s failed: runtime %s did not finish within %u ms (killed)", verb,
                            op->binary, op->timeout_ms);
  if (msg == NULL)
    msg = stderr_tail (sr->err, sr->err_len);
  if (msg == NULL && sr->exec_errno)
    return run_exec_error (op, sr->exec_errno, err);
  if (msg == NULL && WIFSIGNALED (sr->status)) /* "exit status 139" would hide a crash */
    msg = xasprintf ("runtime %s killed by signal %d (%s)", op->binary, WTERMSIG (sr->status),
                     strsignal (WTERMSIG (sr->status)));
  if (msg == NULL)
    msg = xasprintf ("exit status %d", sr->exit_code);
  return shim_error_make (err, 0, runtime_verb_error_code (op->verb, msg), "%s failed: %s", verb,
                          msg);
}

static bool
run_failed (const struct spawn_result *sr)
{
  return sr->timed_out || sr->exec_errno || sr->exit_code != 0;
}

/* Answers the call: sr is the runtime's result, log_error (taken) the last error its log got
 * during the call, if any. */
static void
run_finish (struct run_op *op, const struct spawn_result *sr, char *log_error)
{
  struct runtime_result res = {
    .exit_code = sr->exit_code,
    .out = sr->out,
    .out_len = sr->out_len,
    .started_ms = op->started_ms,
  };
  if (run_failed (sr))
    run_make_error (op, sr, log_error, &res.err);
  else
    free (log_error);
  log_debug ("runtime: `%s` (pid %d) exited %d after %llu ms%s%s", op->cmdline, (int) sr->pid,
             sr->exit_code, (unsigned long long) sr->duration_ms, res.err ? ": " : "",
             res.err ? res.err->msg : "");
  /* Before the callback, which may take the error. */
  trace_call_end (steal_ptr (&op->trace), sr, res.err ? res.err->msg : NULL);
  op->cb (&res, op->arg);
  shim_error_release (&res.err);
}

/* The runtime's output, NUL-terminated, kept past its spawn's callback. */
static char *
keep_output (const char *data, size_t len)
{
  char *copy = xmalloc (len + 1);
  memcpy (copy, data, len);
  copy[len] = '\0';
  return copy;
}

/* Answers a failed call from what run_read_log kept of it, then frees op. */
static void
run_finish_kept (struct run_op *op, char *log_error)
{
  op->failed.out = op->failed_out;
  op->failed.err = op->failed_err;
  run_finish (op, &op->failed, log_error);
  run_op_free (op);
}

static void
log_read_cb (const struct spawn_result *lr, void *arg)
{
  run_finish_kept (arg, lr->exit_code == 0 ? runtime_log_tail_error (lr->out, lr->out_len) : NULL);
}

/* A failed call's explanation is in the log: a child reads what the call appended (disk work,
 * kept out of the loop) on the same spawn handle, so a cancel still reaches the call. False
 * when there is no log to read (nothing done); otherwise op is answered through the child, or
 * at once if it cannot start (from the result kept first: a chain frees sr's buffers). */
static bool
run_read_log (struct run_op *op, const struct spawn_result *sr)
{
  if (op->log_path == NULL || sr->timed_out || sr->exec_errno)
    return false;
  cleanup_strv char **argv = runtime_log_tail_argv (op->log_path, op->log_offset);
  struct spawn_req req = {
    .argv = argv,
    .stdin_fd = SPAWN_FD_NULL,
    .stdout_fd = SPAWN_FD_CAPTURE,
    .stderr_fd = SPAWN_FD_NULL,
    .timeout_ms = RUNTIME_LOG_READ_TIMEOUT_MS,
    .capture_max = RUNTIME_LOG_TAIL_MAX + 64,
  };
  op->failed = *sr;
  op->failed_out = keep_output (sr->out, sr->out_len);
  op->failed_err = keep_output (sr->err, sr->err_len);
  cleanup_error shim_error_t err = NULL;
  if (spawn_chain (op->spawn, &req, log_read_cb, op, &err) < 0)
    {
      log_warn ("runtime: cannot read %s: %s", op->log_path, err->msg);
      run_finish_kept (op, NULL);
    }
  return true;
}

static void
run_done_cb (const struct spawn_result *sr, void *arg)
{
  struct run_op *op = arg;
  if (run_failed (sr) && run_read_log (op, sr))
    return;
  run_finish (op, sr, NULL);
  run_op_free (op);
}

static char *
strv_join (char *const *v)
{
  size_t n = 1;
  for (size_t i = 0; v[i]; i++)
    n += strlen (v[i]) + 1;
  char *s = xmalloc (n), *p = s;
  for (size_t i = 0; v[i]; i++)
    p = stpcpy (stpcpy (p, i ? " " : ""), v[i]);
  *p = '\0';
  return s;
}

/* The shim's environment minus NOTIFY_SOCKET, which belongs to the shim's own supervisor and
 * would make the runtime report readiness for the container instead. */
static char **
runtime_env (void)
{
  char **env = NULL;
  for (size_t i = 0; environ && environ[i]; i++)
    if (strncmp (environ[i], "NOTIFY_SOCKET=", 14) != 0)
      strv_push (&env, environ[i]);
  if (env == NULL)
    env = xcalloc (1, sizeof (char *));
  return env;
}

static off_t
file_size (const char *path)
{
  struct stat st;
  if (path == NULL || stat (path, &st) < 0)
    return 0;
  return st.st_size;
}

static struct run_op *
run_op_new (const struct runtime *rt, const struct runtime_call *call, const char *cwd, char **argv,
            runtime_cb cb, void *arg)
{
  const struct runtime_cfg *cfg = rt_cfg (rt);
  struct run_op *op = xcalloc (1, sizeof *op);
  op->verb = call->verb;
  op->binary = xstrdup (cfg_binary (cfg));
  op->log_path = rt->log_path && rt->log_path[0] ? xstrdup (rt->log_path) : NULL;
  op->cwd = cwd ? xstrdup (cwd) : NULL;
  op->log_offset = file_size (op->log_path);
  op->started_ms = now_monotonic_ms (); /* before the fork: no later than the runtime started */
  op->timeout_ms = cfg->timeout_ms;
  op->cmdline = strv_join (argv);
  op->cb = cb;
  op->arg = arg;
  return op;
}

static const struct runtime_io default_io = {
  .stdin_fd = SPAWN_FD_NULL,
  .stdout_fd = SPAWN_FD_CAPTURE,
  .stderr_fd = SPAWN_FD_CAPTURE,
};

struct spawn *
runtime_run (const struct runtime *rt, const struct runtime_call *call, const struct runtime_io *io,
             runtime_cb cb, void *arg, shim_error_t *err)
{
  if (io == NULL)
    io = &default_io;
  /* A call the runtime cannot make fails here, clearly, rather than with its usage text. */
  if (profile_check_call (rt_cfg (rt)->profile, call, rt_cfg (rt), err) < 0)
    {
      shim_error_wrap (err, "%s failed", runtime_verb_name (call->verb));
      return NULL;
    }
  /* The bundle is the natural working directory; a relative one would be resolved twice. */
  const char *cwd = rt->cwd;
  if (cwd == NULL && call->bundle && call->bundle[0] == '/')
    cwd = call->bundle;
  cleanup_strv char **argv = runtime_argv (rt, call);
  cleanup_strv char **envp = runtime_env ();
  struct run_op *op = run_op_new (rt, call, cwd, argv, cb, arg);
  if (rt->trace)
    op->trace = trace_call_begin (rt->trace, runtime_verb_name (call->verb), argv, cwd, envp);
  struct spawn_req req = {
    .argv = argv,
    .envp = envp,
    .cwd = cwd,
    .stdin_fd = io->stdin_fd,
    .stdin_data = io->stdin_data,
    .stdin_len = io->stdin_len,
    .stdout_fd = io->stdout_fd,
    .stderr_fd = io->stderr_fd,
    .timeout_ms = op->timeout_ms,
  };

  struct spawn *s = spawn_start (rt->base, rt->reaper, &req, run_done_cb, op, err);
  if (s == NULL)
    {
      run_op_free (op);
      shim_error_wrap (err, "%s failed", runtime_verb_name (call->verb));
      return NULL;
    }
  op->spawn = s;
  spawn_set_cancel_cleanup (s, run_op_free);
  return s;
}
