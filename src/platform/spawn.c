#include "platform/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/log.h"
#include "platform/reaper.h"
#include "platform/spawn_child.h"
#include "base/ev.h"
#include "base/util.h"

#define SPAWN_CAPTURE_DEFAULT (64 * 1024)
/* How long a reaped child's pipes may stay open (held by a grandchild) before we stop waiting. */
#define SPAWN_GRACE_MS 200
#define SPAWN_READ_CHUNK 4096
/* Reads per callback, so one chatty child cannot starve the loop. */
#define SPAWN_READS_PER_CB 16

/* One pipe read by the parent: stdout, stderr, or the exec-status pipe. */
struct capture
{
  struct spawn *owner;
  int fd;
  struct event *ev;
  char *buf;
  size_t len, max;
  bool eof;
};

struct spawn
{
  struct event_base *base;
  struct reaper *reaper;
  spawn_cb cb;
  void *arg;
  void (*cancel_cleanup) (void *arg);
  pid_t pid;
  struct reaper_watch *watch;
  struct capture out, err, exec_status;
  int stdin_fd;
  struct event *stdin_ev;
  char *stdin_data;
  size_t stdin_len, stdin_off;
  struct event *deadline, *grace;
  int status;
  bool reaped, timed_out, canceled, in_cb;
  bool chained; /* the callback started another child on this handle (spawn_chain) */
  uint64_t start_ms;
};

/* Child-side ends the parent closes right after fork. */
struct child_ends
{
  int fds[5];
  size_t n;
};

static void
child_ends_close (struct child_ends *c)
{
  close_fds (c->fds, c->n);
  c->n = 0;
}

static void
capture_close (struct capture *c)
{
  event_freep (&c->ev);
  close_fd (&c->fd);
  c->eof = true;
}

static void
capture_append (struct capture *c, const char *data, size_t n)
{
  size_t room = c->max - c->len;
  if (n > room)
    n = room; /* past the cap the bytes are read and dropped, so the child never blocks */
  if (n == 0)
    return;
  c->buf = xrealloc (c->buf, c->len + n + 1);
  memcpy (c->buf + c->len, data, n);
  c->len += n;
  c->buf[c->len] = '\0';
}

static void
capture_drain (struct capture *c)
{
  char chunk[SPAWN_READ_CHUNK];
  for (int i = 0; i < SPAWN_READS_PER_CB && c->fd >= 0; i++)
    {
      ssize_t r = read (c->fd, chunk, sizeof chunk);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
      if (r <= 0)
        {
          capture_close (c);
          return;
        }
      capture_append (c, chunk, r);
    }
}

static bool
spawn_pipes_done (const struct spawn *s)
{
  return s->out.eof && s->err.eof && s->exec_status.eof;
}

static void
stdin_close (struct spawn *s)
{
  event_freep (&s->stdin_ev);
  close_fd (&s->stdin_fd);
}

/* Everything but the reaper watch: what a canceled spawn no longer needs while it dies. */
static void
spawn_release_io (struct spawn *s)
{
  capture_close (&s->out);
  capture_close (&s->err);
  capture_close (&s->exec_status);
  stdin_close (s);
  event_freep (&s->deadline);
  event_freep (&s->grace);
}

/* What one child left: its pipes, timers, captured output and stdin data. */
static void
spawn_drop_child (struct spawn *s)
{
  spawn_release_io (s);
  free (s->out.buf);
  free (s->err.buf);
  free (s->exec_status.buf);
  free (s->stdin_data);
}

static void
spawn_free (struct spawn *s)
{
  if (s->watch)
    reaper_unwatch (s->reaper, s->watch);
  if (s->canceled && s->cancel_cleanup)
    s->cancel_cleanup (s->arg);
  spawn_drop_child (s);
  free (s);
}

static void
spawn_complete (struct spawn *s)
{
  struct spawn_result res = {
    .pid = s->pid,
    .status = s->status,
    .exit_code = wait_status_to_exit_code (s->status),
    .timed_out = s->timed_out,
    .out = s->out.buf ? s->out.buf : "",
    .out_len = s->out.len,
    .err = s->err.buf ? s->err.buf : "",
    .err_len = s->err.len,
    .duration_ms = now_monotonic_ms () - s->start_ms,
  };
  if (s->exec_status.len == sizeof (int))
    memcpy (&res.exec_errno, s->exec_status.buf, sizeof (int));
  s->in_cb = true;
  s->cb (&res, s->arg);
  s->in_cb = false;
  if (s->chained)
    {
      s->chained = false;
      return;
    }
  spawn_free (s);
}

/* The last word once the child is gone: whatever still holds its pipes is not waited for. */
static void
grace_cb (evutil_socket_t fd, short what, void *arg)
{
  struct spawn *s = arg;
  (void) fd;
  (void) what;
  capture_drain (&s->out);
  capture_drain (&s->err);
  capture_drain (&s->exec_status);
  spawn_complete (s);
}

static void
spawn_check_done (struct spawn *s)
{
  if (!s->reaped)
    return;
  if (spawn_pipes_done (s))
    {
      spawn_complete (s);
      return;
    }
  if (s->grace == NULL)
    {
      struct timeval tv = { 0, SPAWN_GRACE_MS * 1000 };
      s->grace = xevtimer_new (s->base, grace_cb, s);
      evtimer_add (s->grace, &tv);
    }
}

static void
capture_read_cb (evutil_socket_t fd, short what, void *arg)
{
  struct capture *c = arg;
  (void) fd;
  (void) what;
  capture_drain (c);
  if (c->eof)
    spawn_check_done (c->owner);
}

static void
stdin_write_cb (evutil_socket_t fd, short what, void *arg)
{
  struct spawn *s = arg;
  (void) what;
  while (s->stdin_off < s->stdin_len)
    {
      ssize_t w = write (fd, s->stdin_data + s->stdin_off, s->stdin_len - s->stdin_off);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
      if (w < 0)
        break; /* EPIPE: the child closed its stdin; nothing more to feed */
      s->stdin_off += w;
    }
  stdin_close (s);
}

static void
spawn_kill (struct spawn *s)
{
  if (s->reaped)
    return; /* the pid may already belong to someone else */
  kill (-s->pid, SIGKILL);
  kill (s->pid, SIGKILL);
}

static void
deadline_cb (evutil_socket_t fd, short what, void *arg)
{
  struct spawn *s = arg;
  (void) fd;
  (void) what;
  log_debug ("spawn: pid %d missed its deadline, killing its process group", (int) s->pid);
  s->timed_out = true;
  spawn_kill (s);
}

static void
reaped_cb (pid_t pid, int status, const struct timespec *when, void *arg)
{
  struct spawn *s = arg;
  (void) pid;
  (void) when;
  s->watch = NULL;
  s->reaped = true;
  s->status = status;
  if (s->canceled)
    {
      spawn_free (s);
      return;
    }
  event_freep (&s->deadline);
  /* The exec-status pipe is at EOF by now (closed by exec or by _exit); the captures may be. */
  capture_drain (&s->exec_status);
  capture_drain (&s->out);
  capture_drain (&s->err);
  spawn_check_done (s);
}

/* ---- parent side ---- */

/* A pipe whose parent end is non-blocking; the child's end stays blocking, as programs expect. */
static int
make_pipe (int *parent_end, int *child_end, bool parent_reads, struct child_ends *ends)
{
  int p[2];
  if (pipe2 (p, O_CLOEXEC) < 0)
    return -1;
  *parent_end = parent_reads ? p[0] : p[1];
  *child_end = parent_reads ? p[1] : p[0];
  ends->fds[ends->n++] = *child_end;
  return set_nonblock (*parent_end, true);
}

static int
open_devnull (int *devnull, struct child_ends *ends)
{
  if (*devnull >= 0)
    return *devnull;
  *devnull = open ("/dev/null", O_RDWR | O_CLOEXEC);
  if (*devnull >= 0)
    ends->fds[ends->n++] = *devnull;
  return *devnull;
}

/* Resolves what the child gets on fd 0/1/2 and opens the parent's pipe ends. */
static int
setup_stdio (struct spawn *s, const struct spawn_req *req, int src[3], struct child_ends *ends,
             shim_error_t *err)
{
  int devnull = -1;
  const int want[3]
      = { req->stdin_data ? SPAWN_FD_CAPTURE : req->stdin_fd, req->stdout_fd, req->stderr_fd };
  if (req->stdin_data == NULL && req->stdin_fd == SPAWN_FD_CAPTURE)
    return shim_error_make (err, EINVAL, SHIM_INVALID_ARGUMENT, "spawn: stdin cannot be captured");
  struct capture *caps[3] = { NULL, &s->out, &s->err };

  for (int i = 0; i < 3; i++)
    {
      if (want[i] >= 0)
        src[i] = want[i];
      else if (want[i] == SPAWN_FD_NULL)
        src[i] = open_devnull (&devnull, ends);
      else if (want[i] != SPAWN_FD_CAPTURE)
        return shim_error_make (err, EINVAL, SHIM_INVALID_ARGUMENT, "spawn: bad fd for %d", i);
      else if (i == 0)
        {
          if (make_pipe (&s->stdin_fd, &src[0], false, ends) < 0)
            return shim_error_make (err, errno, SHIM_INTERNAL, "spawn: stdin pipe");
        }
      else if (make_pipe (&caps[i]->fd, &src[i], true, ends) < 0)
        return shim_error_make (err, errno, SHIM_INTERNAL, "spawn: capture pipe");
      if (src[i] < 0)
        return shim_error_make (err, errno, SHIM_INTERNAL, "spawn: open /dev/null");
    }
  return 0;
}

/* What one child needs of s, fresh: its callback, captures and stdin data. */
static void
spawn_reset (struct spawn *s, const struct spawn_req *req, spawn_cb cb, void *arg)
{
  size_t max = req->capture_max ? req->capture_max : SPAWN_CAPTURE_DEFAULT;
  s->cb = cb;
  s->arg = arg;
  s->stdin_fd = -1;
  s->stdin_data = NULL;
  s->stdin_len = s->stdin_off = 0;
  s->reaped = s->timed_out = false;
  s->status = 0;
  s->out = (struct capture){ .owner = s, .fd = -1, .max = max, .eof = true };
  s->err = (struct capture){ .owner = s, .fd = -1, .max = max, .eof = true };
  s->exec_status = (struct capture){ .owner = s, .fd = -1, .max = sizeof (int), .eof = true };
  if (req->stdin_data)
    {
      s->stdin_data = xmalloc (req->stdin_len);
      memcpy (s->stdin_data, req->stdin_data, req->stdin_len);
      s->stdin_len = req->stdin_len;
    }
}

static struct spawn *
spawn_alloc (struct event_base *base, struct reaper *reaper, const struct spawn_req *req,
             spawn_cb cb, void *arg)
{
  struct spawn *s = xcalloc (1, sizeof *s);
  s->base = base;
  s->reaper = reaper;
  spawn_reset (s, req, cb, arg);
  return s;
}

static void
capture_arm (struct spawn *s, struct capture *c)
{
  if (c->fd < 0)
    return;
  c->eof = false;
  c->ev = xevent_new (s->base, c->fd, EV_READ | EV_PERSIST, capture_read_cb, c);
  event_add (c->ev, NULL);
}

static void
spawn_arm (struct spawn *s, unsigned timeout_ms)
{
  capture_arm (s, &s->out);
  capture_arm (s, &s->err);
  capture_arm (s, &s->exec_status);
  if (s->stdin_fd >= 0)
    {
      s->stdin_ev = xevent_new (s->base, s->stdin_fd, EV_WRITE | EV_PERSIST, stdin_write_cb, s);
      event_add (s->stdin_ev, NULL);
    }
  if (timeout_ms)
    {
      struct timeval tv = timeval_from_ms (timeout_ms);
      s->deadline = xevtimer_new (s->base, deadline_cb, s);
      evtimer_add (s->deadline, &tv);
    }
}

static int
spawn_fork (struct spawn *s, const struct spawn_req *req, struct child_ends *ends,
            shim_error_t *err)
{
  int n_targets = 3 + (int) req->n_extra_fds;
  cleanup_free int *src = xcalloc (n_targets, sizeof (int));
  cleanup_free int *high = xcalloc (n_targets, sizeof (int));
  int status_w = -1;

  if (setup_stdio (s, req, src, ends, err) < 0)
    return -1;
  for (size_t i = 0; i < req->n_extra_fds; i++)
    src[3 + i] = req->extra_fds[i];
  if (make_pipe (&s->exec_status.fd, &status_w, true, ends) < 0)
    return shim_error_make (err, errno, SHIM_INTERNAL, "spawn: status pipe");

  struct child_plan plan = {
    .argv = req->argv,
    .envp = req->envp,
    .cwd = req->cwd,
    .src = src,
    .high = high,
    .n_targets = n_targets,
    .status_fd = status_w,
    .setsid = req->setsid,
    .parent = getpid (),
  };
  s->start_ms = now_monotonic_ms ();
  pid_t pid = spawn_fork_child (&plan);
  if (pid < 0)
    return shim_error_make (err, errno, SHIM_INTERNAL, "spawn: fork `%s`", req->argv[0]);
  s->pid = pid;
  /* Also from the parent, so a group kill right after fork already reaches the child. */
  if (!req->setsid)
    setpgid (pid, pid);
  return 0;
}

/* Forks s's child, watches it and arms its events. */
static int
spawn_launch (struct spawn *s, const struct spawn_req *req, shim_error_t *err)
{
  struct child_ends ends = { .n = 0 };
  int ret = spawn_fork (s, req, &ends, err);
  child_ends_close (&ends);
  if (ret < 0)
    return -1;
  /* An exit cached from before the fork is an earlier process's whose pid was reused. */
  s->watch = reaper_watch_since (s->reaper, s->pid, s->start_ms, reaped_cb, s);
  if (s->watch == NULL)
    {
      /* Someone watches a stale entry for this pid; the child would never be reported. */
      kill (s->pid, SIGKILL);
      return shim_error_make (err, 0, SHIM_INTERNAL, "spawn: pid already watched");
    }
  spawn_arm (s, req->timeout_ms);
  return 0;
}

struct spawn *
spawn_start (struct event_base *base, struct reaper *reaper, const struct spawn_req *req,
             spawn_cb cb, void *arg, shim_error_t *err)
{
  if (req->argv == NULL || req->argv[0] == NULL)
    return shim_error_make (err, EINVAL, SHIM_INVALID_ARGUMENT, "spawn: empty argv"), NULL;

  struct spawn *s = spawn_alloc (base, reaper, req, cb, arg);
  if (spawn_launch (s, req, err) < 0)
    {
      spawn_free (s);
      return NULL;
    }
  return s;
}

int
spawn_chain (struct spawn *s, const struct spawn_req *req, spawn_cb cb, void *arg,
             shim_error_t *err)
{
  if (!s->in_cb || s->chained || req->argv == NULL || req->argv[0] == NULL)
    return shim_error_make (err, EINVAL, SHIM_INVALID_ARGUMENT, "spawn: cannot chain here");
  spawn_drop_child (s);
  spawn_reset (s, req, cb, arg);
  if (spawn_launch (s, req, err) < 0)
    return -1;
  s->chained = true;
  return 0;
}

void
spawn_cancel (struct spawn *s)
{
  if (s == NULL || s->in_cb || s->canceled)
    return;
  s->canceled = true;
  if (s->reaped)
    {
      spawn_free (s);
      return;
    }
  spawn_kill (s);
  spawn_release_io (s);
}

void
spawn_set_cancel_cleanup (struct spawn *s, void (*cleanup) (void *arg))
{
  s->cancel_cleanup = cleanup;
}

pid_t
spawn_pid (const struct spawn *s)
{
  return s->pid;
}
