#include "stdio/procio.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "stdio/console.h"
#include "base/log.h"
#include "stdio/logbin.h"
#include "platform/spawn.h"
#include "base/ev.h"
#include "base/util.h"

#define PUMP_CHUNK (64 * 1024)
/* How often an ended output stream looks whether its reader has taken the last bytes, and
 * for how long at most (a reader that stopped reading must not keep the stream, or the
 * loop's timer, alive). */
#define PUMP_FLUSH_POLL_MS 2
#define PUMP_FLUSH_MAX_MS 2000
/* Bytes one stream may move per wakeup: a writer that never lets the pipe run dry must not
 * keep the loop from everything else. The read event is level-triggered: the rest follows on
 * the next turn. */
#define PUMP_BUDGET (1024 * 1024)

/* One direction of copying: src -> dst, both non-blocking. splice(2) moves pages between the
 * pipes without copying; when a side is not a pipe we fall back to read/write through buf. */
struct pump
{
  struct proc_io *io;
  int src, dst;
  struct event *ev_read, *ev_write;
  struct event *flush_timer; /* the source ended, the sink's reader has bytes left to take */
  uint64_t flush_until; /* monotonic ms */
  char *buf; /* fallback only */
  size_t buf_len;
  bool use_splice;
  bool drop_when_full; /* io_policy "drop": a full sink discards instead of stalling */
  unsigned long long dropped;
  bool done;
};

struct proc_io
{
  struct event_base *base;
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
  void (*drained_cb) (void *);
  void *drained_arg;
};

static void pump_close (struct pump *p);
static void pump_start (struct pump *p, struct event_base *base);

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

static void
pump_init (struct pump *p, struct proc_io *io)
{
  memset (p, 0, sizeof *p);
  p->io = io;
  p->src = p->dst = -1;
  p->done = true;
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

/* Where output goes: a FIFO (plain path or fifo://) or a file (file://). The FIFO is opened
 * O_RDWR: that never blocks and, like a held read end, turns a vanished reader into
 * back-pressure instead of EPIPE. */
static int
open_output (const char *uri, shim_error_t *err)
{
  if (strncmp (uri, "file://", 7) == 0)
    return open_log_file (uri + 7, err);
  if (strncmp (uri, "fifo://", 7) == 0)
    uri += 7;
  if (strstr (uri, "://"))
    return shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "unsupported stdio URI `%s`", uri);
  return open_fifo (uri, O_RDWR, err);
}

static bool
is_binary_uri (const char *uri)
{
  return has_path (uri)
         && (strncmp (uri, "binary://", 9) == 0 || strncmp (uri, "binary-v2://", 12) == 0);
}

/* Container output through a pipe: its write end goes to the container, the loop copies the
 * read end into the sink. */
static int
setup_output (struct pump *p, const char *path, int *child_fd, const struct proc_io_config *cfg,
              shim_error_t *err)
{
  if (!has_path (path))
    return 0;
  int sink = open_output (path, err);
  if (sink < 0)
    return -1;
  int fds[2];
  if (pipe2 (fds, O_CLOEXEC) < 0)
    {
      close (sink);
      return shim_error_make (err, errno, SHIM_UNKNOWN, "pipe");
    }
  if (cfg->uid || cfg->gid)
    (void) !fchown (fds[1], cfg->uid, cfg->gid);
  set_nonblock (fds[0], true);
  p->src = fds[0];
  p->dst = sink;
  p->drop_when_full = cfg->drop_when_full;
  *child_fd = fds[1];
  p->done = false;
  return 0;
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
  io->stdin_keepalive = open (cfg->stdin_path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  io->in.src = fifo;
  io->in.done = false;
  if (cfg->terminal)
    return 0; /* the destination is the master, once it arrives */
  int fds[2];
  if (pipe2 (fds, O_CLOEXEC) < 0)
    return shim_error_make (err, errno, SHIM_UNKNOWN, "pipe");
  if (cfg->uid || cfg->gid)
    (void) !fchown (fds[0], cfg->uid, cfg->gid);
  set_nonblock (fds[1], true);
  io->in.dst = fds[1];
  io->child_fds[0] = fds[0];
  return 0;
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

/* binary://: the logger reads the container's output pipes itself; with a terminal the loop
 * copies the master into its stdout pipe. */
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
      set_nonblock (out_w, true);
      io->out.dst = out_w;
      io->out.done = false;
      io->logbin_err = err_w;
      return 0;
    }
  io->child_fds[1] = out_w;
  io->child_fds[2] = err_w;
  return 0;
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
      if (has_path (cfg->stdout_path) && (io->out.dst = open_output (cfg->stdout_path, err)) < 0)
        return -1;
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
  pump_init (&io->in, io);
  pump_init (&io->out, io);
  pump_init (&io->err, io);
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
pump_close (struct pump *p)
{
  event_freep (&p->ev_read);
  event_freep (&p->ev_write);
  event_freep (&p->flush_timer);
  close_fd (&p->src);
  close_fd (&p->dst);
  free (p->buf);
  p->buf = NULL;
  p->buf_len = 0;
  bool was_done = p->done;
  p->done = true;
  if (!was_done && p != &p->io->in)
    check_drained (p->io);
}

/* Moves what is available. Returns 1 when the source is empty (wait for input), 0 when the
 * destination is full (wait for room), -1 when the stream is finished (EOF or error). */
static int
pump_splice (struct pump *p)
{
  for (size_t moved = 0;;)
    {
      if (moved >= PUMP_BUDGET)
        return 1;
      ssize_t n
          = splice (p->src, NULL, p->dst, NULL, PUMP_CHUNK, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
      if (n > 0)
        {
          moved += n;
          continue;
        }
      if (n == 0)
        return -1;
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN)
        {
          /* EAGAIN does not say which side blocked: a non-empty source means a full sink. */
          int avail = 0;
          return ioctl (p->src, FIONREAD, &avail) == 0 && avail > 0 ? 0 : 1;
        }
      if (errno == EINVAL)
        {
          p->use_splice = false;
          return 2;
        }
      return -1;
    }
}

static int
pump_flush_buf (struct pump *p)
{
  while (p->buf_len > 0)
    {
      ssize_t w = write (p->dst, p->buf, p->buf_len);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        return errno == EAGAIN ? 0 : -1;
      memmove (p->buf, p->buf + w, p->buf_len - w);
      p->buf_len -= w;
    }
  return 1;
}

static int
pump_copy (struct pump *p)
{
  if (p->buf == NULL)
    p->buf = xmalloc (PUMP_CHUNK);
  for (size_t moved = 0;; moved += p->buf_len)
    {
      int r = pump_flush_buf (p);
      if (r <= 0)
        return r;
      if (moved >= PUMP_BUDGET) /* only with an empty buffer: nothing is left behind */
        return 1;
      ssize_t n = read (p->src, p->buf, PUMP_CHUNK);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return errno == EAGAIN ? 1 : -1;
      if (n == 0)
        return -1;
      p->buf_len = n;
    }
}

static int
pump_transfer (struct pump *p)
{
  if (p->use_splice)
    {
      int r = pump_splice (p);
      if (r != 2)
        return r;
    }
  return pump_copy (p);
}

/* The sink is full and the policy says the writer must not stall: discard what is there. */
static int
pump_discard (struct pump *p)
{
  char scratch[4096];
  for (size_t moved = 0;;)
    {
      if (moved >= PUMP_BUDGET)
        return 1;
      ssize_t n = read (p->src, scratch, sizeof scratch);
      if (n > 0)
        {
          moved += n;
          if (p->dropped == 0)
            log_warn ("output reader is not keeping up: dropping output");
          p->dropped += n;
          continue;
        }
      if (n < 0 && errno == EINTR)
        continue;
      return n < 0 && errno == EAGAIN ? 1 : -1;
    }
}

/* Bytes still in an output's pipe sink (a FIFO or a logger's pipe) that its reader has not
 * taken; 0 for any other sink. */
static int
sink_unread (const struct pump *p)
{
  struct stat st;
  int unread = 0;
  if (p == &p->io->in || p->dst < 0 || fstat (p->dst, &st) < 0 || !S_ISFIFO (st.st_mode)
      || ioctl (p->dst, FIONREAD, &unread) < 0)
    return 0;
  return unread;
}

static void
flush_cb (evutil_socket_t fd, short what, void *arg)
{
  struct pump *p = arg;
  (void) fd;
  (void) what;
  if (sink_unread (p) > 0 && now_monotonic_ms () < p->flush_until)
    {
      struct timeval tv = timeval_from_ms (PUMP_FLUSH_POLL_MS);
      evtimer_add (p->flush_timer, &tv);
      return;
    }
  pump_close (p);
}

/* The source ended. The stream is done only once the reader has taken every byte from the
 * sink: a client such as ctr closes its end of the FIFO when it learns of the exit, and
 * whatever it had not read yet would be lost. The drain deadline still ends the wait for a
 * reader that never takes them. */
static void
pump_finish (struct pump *p)
{
  if (sink_unread (p) == 0)
    {
      pump_close (p);
      return;
    }
  event_del (p->ev_read);
  event_del (p->ev_write);
  if (p->flush_timer == NULL)
    p->flush_timer = xevtimer_new (p->io->base, flush_cb, p);
  p->flush_until = now_monotonic_ms () + PUMP_FLUSH_MAX_MS;
  flush_cb (-1, 0, p);
}

static void
pump_step (struct pump *p)
{
  int r = pump_transfer (p);
  if (r == 0 && p->drop_when_full)
    r = pump_discard (p);
  if (r < 0)
    {
      pump_finish (p);
      return;
    }
  if (r == 0)
    {
      event_del (p->ev_read);
      event_add (p->ev_write, NULL);
    }
  else
    event_add (p->ev_read, NULL);
}

static void
pump_cb (evutil_socket_t fd, short what, void *arg)
{
  (void) fd;
  (void) what;
  pump_step (arg);
}

static void
pump_start (struct pump *p, struct event_base *base)
{
  if (p->done || p->ev_read || p->src < 0 || p->dst < 0)
    return;
  p->use_splice = true;
  p->ev_read = xevent_new (base, p->src, EV_READ | EV_PERSIST, pump_cb, p);
  p->ev_write = xevent_new (base, p->dst, EV_WRITE, pump_cb, p);
  event_add (p->ev_read, NULL);
}

void
proc_io_start (struct proc_io *io)
{
  for (int i = 0; i < 3; i++)
    if (io->child_fds[i] >= 0)
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
  log_warn ("output still held open after the process exited: closing it");
  /* One last transfer, then cut: a background child keeping the pipe must not hang readers. */
  if (!io->out.done && io->out.ev_read)
    pump_transfer (&io->out);
  if (!io->err.done && io->err.ev_read)
    pump_transfer (&io->err);
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
  free (io);
}
