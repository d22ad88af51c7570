#include "stdio/procio.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/ev.h"
#include "base/log.h"
#include "base/util.h"
#include "platform/spawn.h"
#include "stdio/console.h"
#include "stdio/logbin.h"
#include "stdio/pump.h"

struct proc_io
{
  struct event_base *base;
  char *owner; /* the container's id, for log lines */
  int child_fds[3];
  int stdin_keepalive;
  struct pump in, out, err;
  bool started;
  bool drop_when_full;
  struct console *console; /* terminal: until the runtime hands over the master */
  int master; /* terminal: kept for resizing */
  struct logbin *logbin; /* binary:// logger */
  int logbin_err; /* its stderr pipe, unused with a terminal but kept open */
  bool ready; /* the logger signalled readiness (or there is none) */
  shim_error_t ready_err;
  proc_io_ready_cb ready_cb;
  void *ready_arg;
  struct event *drain_timer;
  unsigned drain_ms;
  void (*drained_cb) (void *);
  void *drained_arg;
};

static void output_done_cb (struct pump *p, void *arg);

static int
open_fifo (const char *path, int flags, shim_error_t *err)
{
  int fd = open (path, flags | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return shim_error_make (err, errno, SHIM_INVALID_ARGUMENT, "open `%s`", path);
  return fd;
}

static bool
has_path (const char *p)
{
  return p && p[0];
}

/* A `file://` log URI: appended to, directories created as needed. */
static int
open_log_file (const char *path, shim_error_t *err)
{
  cleanup_free char *dir = xstrdup (path);
  char *slash = strrchr (dir, '/');
  if (slash && slash != dir)
    {
      *slash = '\0';
      if (mkdir_p (dir, 0755) < 0)
        return shim_error_make (err, errno, SHIM_INVALID_ARGUMENT, "mkdir `%s`", dir);
    }
  /* O_NONBLOCK: a FIFO planted at the path must not block the shim (it fails with ENXIO). */
  int fd = open (path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0644);
  if (fd < 0)
    return shim_error_make (err, errno, SHIM_INVALID_ARGUMENT, "open `%s`", path);
  return fd;
}

/* An output FIFO is opened write-only, so that a reader that goes away is an EPIPE the pump
 * sees (it discards, and reopens the FIFO for a reader that comes back) instead of
 * back-pressure that would stall the container for good. A FIFO nobody reads yet (its client
 * opens it a moment after Create, or later) is opened once a reader is there (pump.h). */
static int
open_output_fifo (struct pump *p, const char *path, shim_error_t *err)
{
  int fd = open (path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd >= 0)
    {
      pump_set_fifo_sink (p, fd);
      p->dst = fd;
      return 0;
    }
  if (errno != ENXIO)
    return shim_error_make (err, errno, SHIM_INVALID_ARGUMENT, "open `%s`", path);
  if (!pump_await_fifo_reader (p))
    return shim_error_make (err, errno, SHIM_INVALID_ARGUMENT, "open `%s`", path);
  return 0;
}

/* Where output goes: a FIFO (plain path or fifo://) or a file (file://). Sets p->dst, or
 * leaves it -1 while a FIFO waits for its reader. */
static int
open_output (struct pump *p, const char *uri, shim_error_t *err)
{
  if (strncmp (uri, "file://", 7) == 0)
    {
      p->sink = xstrdup (uri + 7);
      p->dst = open_log_file (uri + 7, err);
      return p->dst < 0 ? -1 : 0;
    }
  if (strncmp (uri, "fifo://", 7) == 0)
    uri += 7;
  if (strstr (uri, "://"))
    return shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "unsupported stdio URI `%s`", uri);
  p->sink = xstrdup (uri);
  return open_output_fifo (p, uri, err);
}

static bool
is_binary_uri (const char *uri)
{
  return has_path (uri)
         && (strncmp (uri, "binary://", 9) == 0 || strncmp (uri, "binary-v2://", 12) == 0);
}

/* A pipe for one of the container's streams: *keep is the end the shim copies from or to,
 * *give the end the container gets, owned by io_uid/io_gid. */
static int
container_pipe (const struct proc_io_config *cfg, bool input, int *keep, int *give,
                shim_error_t *err)
{
  int fds[2];
  if (pipe2 (fds, O_CLOEXEC) < 0)
    return shim_error_make (err, errno, SHIM_UNKNOWN, "pipe");
  *keep = input ? fds[1] : fds[0];
  *give = input ? fds[0] : fds[1];
  if ((cfg->uid || cfg->gid) && fchown (*give, cfg->uid, cfg->gid) < 0)
    shim_error_make (err, errno, SHIM_UNKNOWN, "chown the %s pipe to %u:%u",
                     input ? "stdin" : "output", cfg->uid, cfg->gid);
  else if (set_nonblock (*keep, true) < 0)
    shim_error_make (err, errno, SHIM_UNKNOWN, "pipe: O_NONBLOCK");
  else
    return 0;
  close_fd (keep);
  close_fd (give);
  return -1;
}

/* Container output through a pipe: its write end goes to the container, the loop copies the
 * read end into the sink (which the pump owns from here on, also on failure). */
static int
pipe_output (struct pump *p, int *child_fd, const struct proc_io_config *cfg, shim_error_t *err)
{
  p->output = true;
  p->drop_when_full = cfg->drop_when_full;
  p->done = false;
  return container_pipe (cfg, false, &p->src, child_fd, err);
}

static int
setup_output (struct pump *p, const char *path, int *child_fd, const struct proc_io_config *cfg,
              shim_error_t *err)
{
  if (!has_path (path))
    return 0;
  if (open_output (p, path, err) < 0)
    return -1;
  return pipe_output (p, child_fd, cfg, err);
}

/* Container input: the FIFO is read and copied into a pipe whose read end goes to the
 * container (or into the PTY master). A held write end keeps the FIFO from reporting EOF
 * while clients reconnect. */
static int
setup_input (struct proc_io *io, const struct proc_io_config *cfg, shim_error_t *err)
{
  if (!has_path (cfg->stdin_path))
    return 0;
  int fifo = open_fifo (cfg->stdin_path, O_RDONLY, err);
  if (fifo < 0)
    return -1;
  io->in.src = fifo;
  io->in.done = false;
  /* Never ENXIO: the shim itself holds a read end now. */
  io->stdin_keepalive = open (cfg->stdin_path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (io->stdin_keepalive < 0)
    return shim_error_make (err, errno, SHIM_INVALID_ARGUMENT, "open `%s` for writing",
                            cfg->stdin_path);
  if (cfg->terminal)
    return 0; /* the destination is the master, once it arrives */
  return container_pipe (cfg, true, &io->in.dst, &io->child_fds[0], err);
}

static void
logger_ready_cb (shim_error_t err, void *arg)
{
  struct proc_io *io = arg;
  io->ready = true;
  io->ready_err = err;
  if (io->ready_cb)
    {
      proc_io_ready_cb cb = io->ready_cb;
      io->ready_cb = NULL;
      cb (steal_ptr (&io->ready_err), io->ready_arg);
    }
}

/* The logger's pipe as an output's sink. The container does not get it: a logger that dies
 * would kill the container's next write with SIGPIPE. The pump sees EPIPE instead and
 * discards. */
static int
logger_output (struct pump *p, int sink, const char *uri, int *child_fd,
               const struct proc_io_config *cfg, shim_error_t *err)
{
  p->sink = xstrdup (uri);
  if (set_nonblock (sink, true) < 0)
    {
      close (sink);
      return shim_error_make (err, errno, SHIM_UNKNOWN, "logging binary: O_NONBLOCK");
    }
  p->dst = sink;
  if (child_fd == NULL) /* a terminal: the master is the source */
    {
      p->output = true;
      p->done = false;
      return 0;
    }
  return pipe_output (p, child_fd, cfg, err);
}

/* binary://: the logger reads pipes the loop copies the container's output into (with a
 * terminal, the master into its stdout pipe). */
static int
setup_logbin (struct proc_io *io, const struct proc_io_config *cfg, shim_error_t *err)
{
  int out_w = -1, err_w = -1;
  io->logbin = logbin_start (io->base, cfg->reaper, cfg->stdout_path, cfg->namespace, cfg->id,
                             &out_w, &err_w, logger_ready_cb, io, err);
  if (io->logbin == NULL)
    return -1;
  io->ready = false;
  if (cfg->terminal)
    {
      io->logbin_err = err_w;
      return logger_output (&io->out, out_w, cfg->stdout_path, NULL, cfg, err);
    }
  if (logger_output (&io->out, out_w, cfg->stdout_path, &io->child_fds[1], cfg, err) < 0)
    {
      close (err_w);
      return -1;
    }
  return logger_output (&io->err, err_w, cfg->stdout_path, &io->child_fds[2], cfg, err);
}

static void
master_cb (int master, shim_error_t err, void *arg)
{
  struct proc_io *io = arg;
  console_free (io->console);
  io->console = NULL;
  if (master < 0)
    {
      log_error_release (LOG_LEVEL_WARN, "console", &err);
      pump_close (&io->out);
      return;
    }
  io->master = master;
  io->out.src = fcntl (master, F_DUPFD_CLOEXEC, 3);
  io->out.drop_when_full = io->drop_when_full;
  if (io->in.src >= 0)
    io->in.dst = fcntl (master, F_DUPFD_CLOEXEC, 3);
  if (io->out.src < 0 || (io->in.src >= 0 && io->in.dst < 0))
    {
      log_warn ("console: cannot duplicate the terminal: %s", strerror (errno));
      pump_close (&io->in);
      pump_close (&io->out);
      return;
    }
  if (io->started)
    {
      pump_start (&io->out, io->base);
      pump_start (&io->in, io->base);
    }
}

/* Terminal: output comes from the PTY master the runtime sends over the console socket. */
static int
setup_terminal (struct proc_io *io, const struct proc_io_config *cfg, shim_error_t *err)
{
  if (!is_binary_uri (cfg->stdout_path))
    {
      if (has_path (cfg->stdout_path) && open_output (&io->out, cfg->stdout_path, err) < 0)
        return -1;
      io->out.output = true;
      io->out.done = false;
    }
  io->console = console_new (io->base, err);
  if (io->console == NULL)
    return -1;
  console_on_master (io->console, master_cb, io);
  return 0;
}

struct proc_io *
proc_io_new (struct event_base *base, const struct proc_io_config *cfg, shim_error_t *err)
{
  struct proc_io *io = xcalloc (1, sizeof *io);
  io->base = base;
  io->stdin_keepalive = io->master = io->logbin_err = -1;
  io->ready = true;
  io->drop_when_full = cfg->drop_when_full;
  for (int i = 0; i < 3; i++)
    io->child_fds[i] = SPAWN_FD_NULL;
  io->owner = xstrdup (cfg->id ? cfg->id : "");
  pump_init (&io->in, "stdin", NULL, NULL);
  pump_init (&io->out, "stdout", output_done_cb, io);
  pump_init (&io->err, "stderr", output_done_cb, io);
  io->out.owner = io->err.owner = io->owner;
  io->out.base = io->err.base = base; /* a FIFO awaiting its reader is looked at from now on */
  int ret = setup_input (io, cfg, err);
  if (ret == 0 && is_binary_uri (cfg->stdout_path))
    ret = setup_logbin (io, cfg, err);
  if (ret == 0 && cfg->terminal)
    ret = setup_terminal (io, cfg, err);
  else if (ret == 0 && io->logbin == NULL)
    ret = (setup_output (&io->out, cfg->stdout_path, &io->child_fds[1], cfg, err) < 0
           || setup_output (&io->err, cfg->stderr_path, &io->child_fds[2], cfg, err) < 0)
              ? -1
              : 0;
  if (ret < 0)
    {
      proc_io_free (io);
      return NULL;
    }
  return io;
}

char *
proc_io_take_stderr (struct proc_io *io)
{
  if (io == NULL || io->err.src < 0 || io->started)
    return NULL;
  char buf[4096];
  ssize_t n = read (io->err.src, buf, sizeof buf - 1);
  if (n <= 0)
    return NULL;
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
    n--;
  return n > 0 ? xstrndup (buf, n) : NULL;
}

const char *
proc_io_console_socket (const struct proc_io *io)
{
  return io->console ? console_socket_path (io->console) : NULL;
}

void
proc_io_when_ready (struct proc_io *io, proc_io_ready_cb cb, void *arg)
{
  if (!io->ready)
    {
      io->ready_cb = cb;
      io->ready_arg = arg;
      return;
    }
  cb (steal_ptr (&io->ready_err), arg);
}

int
proc_io_resize (struct proc_io *io, unsigned width, unsigned height, shim_error_t *err)
{
  /* Like the stock shim, resizing a process without a terminal is a silent no-op. */
  if (io == NULL || io->master < 0)
    return 0;
  return console_resize (io->master, width, height, err);
}

void
proc_io_runtime_fds (const struct proc_io *io, int fds[3])
{
  memcpy (fds, io->child_fds, sizeof io->child_fds);
}

bool
proc_io_drained (const struct proc_io *io)
{
  return io->out.done && io->err.done;
}

static void
check_drained (struct proc_io *io)
{
  if (!proc_io_drained (io) || io->drained_cb == NULL)
    return;
  void (*cb) (void *) = io->drained_cb;
  io->drained_cb = NULL;
  if (io->drain_timer)
    event_del (io->drain_timer);
  cb (io->drained_arg);
}

static void
output_done_cb (struct pump *p, void *arg)
{
  (void) p;
  check_drained (arg);
}

void
proc_io_start (struct proc_io *io)
{
  for (int i = 0; i < 3; i++)
    close_fd (&io->child_fds[i]);
  io->started = true;
  /* With a terminal, copying starts when the master arrives. */
  if (io->console == NULL)
    {
      pump_start (&io->in, io->base);
      pump_start (&io->out, io->base);
    }
  pump_start (&io->err, io->base);
}

void
proc_io_on_drained (struct proc_io *io, void (*cb) (void *arg), void *arg)
{
  io->drained_cb = cb;
  io->drained_arg = arg;
  check_drained (io);
}

static void
drain_deadline_cb (evutil_socket_t fd, short what, void *arg)
{
  struct proc_io *io = arg;
  (void) fd;
  (void) what;
  /* The process is gone and its last bytes are still moving (a slow reader): cutting them
   * would lose output nobody else holds. Only a stream still written to (a background child
   * kept it) or one whose reader took nothing for a whole period is cut. */
  bool out_moving = pump_draining_by_itself (&io->out);
  if (pump_draining_by_itself (&io->err) || out_moving)
    {
      struct timeval tv = timeval_from_ms (io->drain_ms);
      evtimer_add (io->drain_timer, &tv);
      return;
    }
  log_warn ("output of %s still held open after the process exited: closing it", io->owner);
  /* One last transfer, then cut: a background child keeping the pipe must not hang readers. */
  pump_last_transfer (&io->out);
  pump_last_transfer (&io->err);
  /* The drained callback runs once, last, after both streams are closed. */
  void (*cb) (void *) = io->drained_cb;
  io->drained_cb = NULL;
  pump_close (&io->out);
  pump_close (&io->err);
  io->drained_cb = cb;
  check_drained (io);
}

void
proc_io_process_exited (struct proc_io *io, unsigned drain_ms)
{
  if (proc_io_drained (io))
    return;
  if (io->drain_timer == NULL)
    io->drain_timer = xevtimer_new (io->base, drain_deadline_cb, io);
  io->drain_ms = drain_ms;
  pump_draining_by_itself (&io->out); /* progress counts from the exit on */
  pump_draining_by_itself (&io->err);
  struct timeval tv = timeval_from_ms (drain_ms);
  evtimer_add (io->drain_timer, &tv);
}

void
proc_io_close_stdin (struct proc_io *io)
{
  close_fd (&io->stdin_keepalive);
}

void
proc_io_free (struct proc_io *io)
{
  if (io == NULL)
    return;
  io->drained_cb = NULL;
  pump_close (&io->in);
  pump_close (&io->out);
  pump_close (&io->err);
  for (int i = 0; i < 3; i++)
    close_fd (&io->child_fds[i]);
  close_fd (&io->stdin_keepalive);
  console_free (io->console);
  close_fd (&io->master);
  close_fd (&io->logbin_err);
  if (io->logbin)
    logbin_stop (io->logbin);
  shim_error_release (&io->ready_err);
  event_freep (&io->drain_timer);
  free (io->owner);
  free (io);
}
