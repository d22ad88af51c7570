#include "stdio/logbin.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/log.h"
#include "platform/spawn.h"
#include "base/ev.h"
#include "base/util.h"

/* containerd's binaryIOProcTermTimeout. */
#define LOGBIN_TERM_GRACE_MS 12000
/* containerd waits forever; a logger that never signals must not hold a Create forever. */
#define LOGBIN_READY_TIMEOUT_MS 10000
/* PF_EXITING in the kernel's include/linux/sched.h (unchanged since Linux 2.6). */
#define LOGBIN_PF_EXITING 0x4u

struct logbin
{
  struct event_base *base;
  struct spawn *spawn; /* NULL once reaped */
  pid_t pid;
  char *path;
  bool v2;
  int ready_fd;
  struct event *ready_ev;
  struct event *deadline_ev;
  struct event *kill_ev;
  logbin_ready_cb ready_cb;
  void *arg;
  bool notified; /* ready_cb ran, or is no longer wanted */
  bool reaped;
  bool stopping;
  unsigned term_grace_ms;
};

/* ---- URI parsing (Go's net/url rules, as containerd applies them) ---- */

static int
hex_val (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* %XX everywhere, '+' as a space only in query components. NULL on a malformed escape or on
 * a NUL byte, which argv cannot carry. */
static char *
uri_unescape (const char *s, size_t n, bool plus_is_space)
{
  cleanup_free char *out = xmalloc (n + 1);
  size_t o = 0;
  for (size_t i = 0; i < n; i++)
    {
      char ch = s[i];
      if (ch == '+' && plus_is_space)
        ch = ' ';
      else if (ch == '%')
        {
          int hi = i + 2 < n ? hex_val (s[i + 1]) : -1;
          int lo = i + 2 < n ? hex_val (s[i + 2]) : -1;
          if (hi < 0 || lo < 0 || (hi | lo) == 0)
            return NULL;
          ch = (char) (hi << 4 | lo);
          i += 2;
        }
      out[o++] = ch;
    }
  out[o] = '\0';
  return steal_ptr (&out);
}

static bool
is_alpha (char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* A letter, then letters, digits, '+', '-' or '.', up to ':'. 0 when there is no scheme. */
static size_t
uri_scheme_len (const char *uri)
{
  for (size_t i = 0; uri[i]; i++)
    {
      char c = uri[i];
      if (is_alpha (c))
        continue;
      if (i > 0 && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'))
        continue;
      return c == ':' ? i : 0;
    }
  return 0;
}

static bool
has_ctl (const char *s)
{
  for (; *s; s++)
    if ((unsigned char) *s < 0x20 || *s == 0x7f)
      return true;
  return false;
}

static bool
args_have_key (char *const *args, const char *key)
{
  for (size_t i = 0; args[i] && args[i + 1]; i += 2)
    if (strcmp (args[i], key) == 0)
      return true;
  return false;
}

/* url.Values keeps every value, containerd passes vs[0]: the first one wins. Go ranges over
 * the map in random order; we keep the order keys first appear in, so argv is stable. */
static int
query_add_pair (char ***args, const char *s, size_t n, shim_error_t *err)
{
  if (n == 0)
    return 0;
  if (memchr (s, ';', n))
    return shim_error_make (err, 0, SHIM_INVALID_ARGUMENT,
                            "logging binary URI: semicolon in query `%.*s`", (int) n, s);
  const char *eq = memchr (s, '=', n);
  size_t key_len = eq ? (size_t) (eq - s) : n;
  cleanup_free char *key = uri_unescape (s, key_len, true);
  cleanup_free char *value = eq ? uri_unescape (eq + 1, n - key_len - 1, true) : xstrdup ("");
  if (key == NULL || value == NULL)
    return shim_error_make (err, 0, SHIM_INVALID_ARGUMENT,
                            "logging binary URI: bad escape in query `%.*s`", (int) n, s);
  if (args_have_key (*args, key))
    return 0;
  strv_push (args, key);
  strv_push (args, value);
  return 0;
}

static int
query_parse (const char *q, size_t n, char ***args, shim_error_t *err)
{
  const char *end = q + n;
  while (q < end)
    {
      const char *amp = memchr (q, '&', end - q);
      const char *pair_end = amp ? amp : end;
      if (query_add_pair (args, q, pair_end - q, err) < 0)
        return -1;
      q = amp ? amp + 1 : end;
    }
  return 0;
}

static int
uri_scheme (const char *uri, size_t len, bool *v2, shim_error_t *err)
{
  if (len == 6 && strncasecmp (uri, "binary", 6) == 0)
    *v2 = false;
  else if (len == 9 && strncasecmp (uri, "binary-v2", 9) == 0)
    *v2 = true;
  else
    return shim_error_make (err, 0, SHIM_INVALID_ARGUMENT,
                            "`%s` is not a binary:// or binary-v2:// logging URI", uri);
  return 0;
}

/* The hierarchical part: [//authority]/path. A host is refused rather than ignored as Go
 * would: binary://usr/bin/logger would otherwise run /bin/logger. */
static char *
uri_path (const char *uri, const char *hier, size_t n, shim_error_t *err)
{
  if (n >= 2 && hier[0] == '/' && hier[1] == '/')
    {
      const char *slash = memchr (hier + 2, '/', n - 2);
      size_t host_len = (slash ? (size_t) (slash - hier) : n) - 2;
      if (host_len > 0)
        return shim_error_make (err, 0, SHIM_INVALID_ARGUMENT,
                                "logging binary URI `%s` names a host; use binary:///abs/path",
                                uri),
               NULL;
      n -= host_len + 2;
      hier += host_len + 2;
    }
  if (n == 0 || hier[0] != '/')
    return shim_error_make (err, 0, SHIM_INVALID_ARGUMENT,
                            "logging binary URI `%s`: the path must be absolute", uri),
           NULL;
  char *path = uri_unescape (hier, n, false);
  if (path == NULL)
    shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "logging binary URI `%s`: bad escape", uri);
  return path;
}

int
logbin_parse_uri (const char *uri, char **path, char ***args, bool *v2, shim_error_t *err)
{
  if (has_ctl (uri))
    return shim_error_make (err, 0, SHIM_INVALID_ARGUMENT,
                            "logging binary URI: control character in `%s`", uri);
  size_t scheme_len = uri_scheme_len (uri);
  bool is_v2 = false;
  if (uri_scheme (uri, scheme_len, &is_v2, err) < 0)
    return -1;

  const char *rest = uri + scheme_len + 1;
  size_t hier_len = strcspn (rest, "?#");
  cleanup_free char *p = uri_path (uri, rest, hier_len, err);
  if (p == NULL)
    return -1;
  cleanup_strv char **a = xcalloc (1, sizeof (char *));
  if (rest[hier_len] == '?')
    {
      const char *q = rest + hier_len + 1;
      if (query_parse (q, strcspn (q, "#"), &a, err) < 0)
        return -1;
    }
  *path = steal_ptr (&p);
  *args = steal_ptr (&a);
  *v2 = is_v2;
  return 0;
}

/* ---- the logger process ---- */

/* Readiness is settled one way or the other: nothing more to watch for it. */
static void
logbin_release_ready (struct logbin *l)
{
  event_freep (&l->ready_ev);
  event_freep (&l->deadline_ev);
  close_fd (&l->ready_fd);
}

static void
logbin_free (struct logbin *l)
{
  logbin_release_ready (l);
  event_freep (&l->kill_ev);
  free (l->path);
  free (l);
}

static void
logbin_notify (struct logbin *l, shim_error_t error)
{
  l->notified = true;
  logbin_release_ready (l);
  l->ready_cb (error, l->arg); /* last: the callback may stop (and so free) l */
}

static void
logbin_fail (struct logbin *l, int errno_, int code, const char *what)
{
  shim_error_t error = NULL;
  shim_error_make (&error, errno_, code, "logging binary `%s` %s", l->path, what);
  logbin_notify (l, error);
}

/* Peeks at the child without reaping it (WNOWAIT), so the reaper stays the only reaper. */
static bool
logbin_is_zombie (const struct logbin *l)
{
  siginfo_t si;
  memset (&si, 0, sizeof si);
  return waitid (P_PID, l->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == l->pid;
}

/* Whether the (not yet reaped) logger is dying. The kernel marks a task PF_EXITING before it
 * closes the task's files, so when fd 5 reached EOF because the logger exited, this already
 * says so: no race with the exit. */
static bool
logbin_is_exiting (const struct logbin *l)
{
  char path[64];
  cleanup_free char *stat = NULL;
  char state;
  unsigned long flags;
  snprintf (path, sizeof path, "/proc/%d/stat", (int) l->pid);
  if (read_file (path, 4096, &stat, NULL, NULL) < 0)
    return logbin_is_zombie (l);
  const char *p = strrchr (stat, ')'); /* the command name may hold anything */
  if (p == NULL || sscanf (p + 1, " %c %*d %*d %*d %*d %*d %lu", &state, &flags) != 2)
    return logbin_is_zombie (l);
  return state == 'Z' || state == 'X' || (flags & LOGBIN_PF_EXITING) != 0;
}

/* fd 5 is at EOF. binary:// takes that for ready, unless the EOF is the logger's death (a
 * failed exec, a crash at startup): then exited_cb, which follows, reports it. */
static void
logbin_ready_eof (struct logbin *l)
{
  if (l->v2)
    {
      logbin_fail (l, 0, SHIM_UNKNOWN,
                   "closed fd 5 without signalling readiness (binary-v2 needs one byte; "
                   "it may have crashed or exited prematurely)");
      return;
    }
  if (!logbin_is_exiting (l))
    {
      logbin_notify (l, NULL);
      return;
    }
  event_freep (&l->ready_ev);
  close_fd (&l->ready_fd);
}

static void
ready_read_cb (evutil_socket_t fd, short what, void *arg)
{
  struct logbin *l = arg;
  char byte;
  (void) what;
  ssize_t r = read (fd, &byte, 1);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return;
  if (r < 0)
    logbin_fail (l, errno, SHIM_UNKNOWN, "readiness pipe");
  else if (r == 1)
    logbin_notify (l, NULL);
  else
    logbin_ready_eof (l);
}

static void
deadline_cb (evutil_socket_t fd, short what, void *arg)
{
  struct logbin *l = arg;
  (void) fd;
  (void) what;
  logbin_fail (l, 0, SHIM_DEADLINE_EXCEEDED, "did not signal readiness in time");
}

static void
exited_cb (const struct spawn_result *res, void *arg)
{
  struct logbin *l = arg;
  l->spawn = NULL;
  l->reaped = true;
  if (l->stopping)
    {
      log_debug ("logging binary `%s` (pid %d) exited with %d", l->path, (int) res->pid,
                 res->exit_code);
      logbin_free (l);
      return;
    }
  if (l->notified)
    {
      /* Exiting once the container's output reached EOF is normal; anything else is news. */
      log_msg (res->exit_code ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG,
               "logging binary `%s` (pid %d) exited with %d", l->path, (int) res->pid,
               res->exit_code);
      return;
    }
  if (res->exec_errno)
    {
      logbin_fail (l, res->exec_errno, SHIM_UNKNOWN, "could not be executed");
      return;
    }
  cleanup_free char *what = xasprintf ("exited with %d before it was ready", res->exit_code);
  logbin_fail (l, 0, SHIM_UNKNOWN, what);
}

/* spawn_cancel() took the process over; it frees us once the process is reaped. */
static void
canceled_cleanup (void *arg)
{
  logbin_free (arg);
}

static void
kill_cb (evutil_socket_t fd, short what, void *arg)
{
  struct logbin *l = arg;
  (void) fd;
  (void) what;
  log_warn ("logging binary `%s` (pid %d) ignored SIGTERM for %u ms, killing it", l->path,
            (int) l->pid, l->term_grace_ms);
  spawn_cancel (steal_ptr (&l->spawn)); /* may free l right away */
}

/* A regular executable file: caught here, the error is synchronous like containerd's. */
static int
check_executable (const char *path, shim_error_t *err)
{
  struct stat st;
  if (stat (path, &st) < 0)
    return shim_error_make (err, errno, SHIM_UNKNOWN, "logging binary `%s`", path);
  if (!S_ISREG (st.st_mode))
    return shim_error_make (err, 0, SHIM_UNKNOWN, "logging binary `%s` is not a file", path);
  if (access (path, X_OK) < 0)
    return shim_error_make (err, errno, SHIM_UNKNOWN, "logging binary `%s`", path);
  return 0;
}

/* fds[0..1]: stdout pipe, fds[2..3]: stderr pipe, fds[4..5]: ready pipe (ours reads). */
static int
logbin_pipes (int fds[6], shim_error_t *err)
{
  for (int i = 0; i < 6; i += 2)
    if (pipe2 (fds + i, O_CLOEXEC) < 0)
      return shim_error_make (err, errno, SHIM_INTERNAL, "logging binary: pipe");
  if (set_nonblock (fds[4], true) < 0)
    return shim_error_make (err, errno, SHIM_INTERNAL, "logging binary: pipe");
  return 0;
}

static int
logbin_spawn (struct logbin *l, struct reaper *reaper, char **argv, const char *namespace,
              const char *id, const int fds[6], shim_error_t *err)
{
  cleanup_strv char **envp = NULL;
  strv_pushf (&envp, "CONTAINER_ID=%s", id);
  strv_pushf (&envp, "CONTAINER_NAMESPACE=%s", namespace);
  const int extra[3] = { fds[0], fds[2], fds[5] };
  struct spawn_req req = {
    .argv = argv,
    .envp = envp,
    .stdin_fd = SPAWN_FD_NULL,
    .stdout_fd = SPAWN_FD_NULL,
    .stderr_fd = SPAWN_FD_NULL,
    .extra_fds = extra,
    .n_extra_fds = ARRAY_SIZE (extra),
  };
  l->spawn = spawn_start (l->base, reaper, &req, exited_cb, l, err);
  if (l->spawn == NULL)
    return shim_error_wrap (err, "start logging binary `%s`", l->path);
  spawn_set_cancel_cleanup (l->spawn, canceled_cleanup);
  l->pid = spawn_pid (l->spawn);
  return 0;
}

static void
logbin_arm (struct logbin *l, int ready_fd)
{
  l->ready_fd = ready_fd;
  l->ready_ev = xevent_new (l->base, ready_fd, EV_READ | EV_PERSIST, ready_read_cb, l);
  event_add (l->ready_ev, NULL);
  l->deadline_ev = xevtimer_new (l->base, deadline_cb, l);
  logbin_set_ready_timeout_ms (l, LOGBIN_READY_TIMEOUT_MS);
}

static struct logbin *
logbin_alloc (struct event_base *base, char *path, bool v2, logbin_ready_cb cb, void *arg)
{
  struct logbin *l = xcalloc (1, sizeof *l);
  l->base = base;
  l->path = path;
  l->v2 = v2;
  l->ready_fd = -1;
  l->ready_cb = cb;
  l->arg = arg;
  l->term_grace_ms = LOGBIN_TERM_GRACE_MS;
  return l;
}

struct logbin *
logbin_start (struct event_base *base, struct reaper *reaper, const char *uri,
              const char *namespace, const char *id, int *stdout_w, int *stderr_w,
              logbin_ready_cb ready_cb, void *arg, shim_error_t *err)
{
  char *path = NULL;
  cleanup_strv char **args = NULL;
  bool v2;
  int fds[6] = { -1, -1, -1, -1, -1, -1 };

  if (logbin_parse_uri (uri, &path, &args, &v2, err) < 0)
    return NULL;
  struct logbin *l = logbin_alloc (base, path, v2, ready_cb, arg);
  cleanup_strv char **argv = NULL;
  strv_push (&argv, path);
  for (size_t i = 0; args[i]; i++)
    strv_push (&argv, args[i]);

  if (check_executable (path, err) < 0 || logbin_pipes (fds, err) < 0
      || logbin_spawn (l, reaper, argv, namespace, id, fds, err) < 0)
    {
      close_fds (fds, ARRAY_SIZE (fds));
      logbin_free (l);
      return NULL;
    }
  /* The logger holds the read ends and the ready write end now; ours would hide its EOFs. */
  close_fds ((int[]){ fds[0], fds[2], fds[5] }, 3);
  logbin_arm (l, fds[4]);
  *stdout_w = fds[1];
  *stderr_w = fds[3];
  return l;
}

void
logbin_stop (struct logbin *l)
{
  if (l == NULL || l->stopping)
    return;
  l->stopping = true;
  l->notified = true;
  logbin_release_ready (l);
  if (l->reaped)
    {
      logbin_free (l);
      return;
    }
  /* Like containerd: the logger gets SIGTERM (to flush) and a grace period. */
  kill (l->pid, SIGTERM);
  struct timeval tv = timeval_from_ms (l->term_grace_ms);
  l->kill_ev = xevtimer_new (l->base, kill_cb, l);
  evtimer_add (l->kill_ev, &tv);
}

void
logbin_set_term_grace_ms (struct logbin *l, unsigned ms)
{
  l->term_grace_ms = ms;
}

void
logbin_set_ready_timeout_ms (struct logbin *l, unsigned ms)
{
  if (l->deadline_ev == NULL)
    return;
  struct timeval tv = timeval_from_ms (ms);
  evtimer_add (l->deadline_ev, &tv);
}

pid_t
logbin_pid (const struct logbin *l)
{
  return l->pid;
}
