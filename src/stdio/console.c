#include "stdio/console.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/log.h"
#include "base/ev.h"
#include "base/util.h"

#define CONSOLE_SOCKET_NAME "pty.sock"
/* The runtime sends the terminal's name as ordinary data; like go-runc we read up to this much
 * and treat a full buffer as a malformed message. */
#define CONSOLE_NAME_MAX 4096
/* Room for more fds than we accept, so a runtime sending several is reported (and the extra
 * fds closed) instead of being silently truncated by the kernel. */
#define CONSOLE_MAX_FDS 8

struct console
{
  struct event_base *base;
  char *dir;
  char *path;
  bool removed;
  int listen_fd;
  int conn_fd;
  struct event *listen_ev;
  struct event *conn_ev;
  /* Delivery always goes through this event, so cb never runs inside our own API calls and
   * may free the console. */
  struct event *deliver_ev;
  bool finished;
  bool delivered;
  int master_fd;
  shim_error_t error;
  console_master_cb cb;
  void *arg;
};

static void accept_cb (evutil_socket_t fd, short what, void *arg);
static void recv_cb (evutil_socket_t fd, short what, void *arg);

/* Where go-runc puts it: $XDG_RUNTIME_DIR, else the Go temp dir ($TMPDIR, else /tmp). */
static const char *
console_tmp_base (bool *runtime_dir)
{
  static const char *const vars[] = { "XDG_RUNTIME_DIR", "TMPDIR" };
  for (size_t i = 0; i < ARRAY_SIZE (vars); i++)
    {
      const char *v = getenv (vars[i]);
      *runtime_dir = i == 0;
      if (v && v[0])
        return v;
    }
  *runtime_dir = false;
  return "/tmp";
}

static void
console_close_sockets (struct console *c)
{
  event_freep (&c->listen_ev);
  event_freep (&c->conn_ev);
  close_fd (&c->listen_fd);
  close_fd (&c->conn_fd);
}

static void
console_remove_files (struct console *c)
{
  if (c->removed)
    return;
  c->removed = true;
  if (unlink (c->path) < 0 && errno != ENOENT)
    log_warn ("console: remove `%s`: %s", c->path, strerror (errno));
  if (rmdir (c->dir) < 0 && errno != ENOENT)
    log_warn ("console: remove `%s`: %s", c->dir, strerror (errno));
}

static void
console_schedule (struct console *c)
{
  if (c->finished && !c->delivered && c->cb && !event_pending (c->deliver_ev, EV_TIMEOUT, NULL))
    event_active (c->deliver_ev, EV_TIMEOUT, 0);
}

/* The one exchange is over: keep the outcome until cb takes it. */
static void
console_finish (struct console *c, int master_fd, shim_error_t error)
{
  console_close_sockets (c);
  console_remove_files (c);
  c->finished = true;
  c->master_fd = master_fd;
  c->error = error;
  console_schedule (c);
}

static void
deliver_cb (evutil_socket_t fd, short what, void *arg)
{
  struct console *c = arg;
  (void) fd;
  (void) what;
  console_master_cb cb = c->cb;
  void *cb_arg = c->arg;
  int master = steal_fd (&c->master_fd);
  shim_error_t error = steal_ptr (&c->error);
  c->cb = NULL;
  c->delivered = true;
  cb (master, error, cb_arg); /* last: cb may free c */
}

static int
console_listen (struct console *c, shim_error_t *err)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if (strlen (c->path) >= sizeof addr.sun_path)
    return shim_error_make (err, ENAMETOOLONG, SHIM_INTERNAL, "console socket `%s`", c->path);
  strcpy (addr.sun_path, c->path);

  c->listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (c->listen_fd < 0)
    return shim_error_make (err, errno, SHIM_INTERNAL, "console socket");
  if (bind (c->listen_fd, (struct sockaddr *) &addr, sizeof addr) < 0)
    return shim_error_make (err, errno, SHIM_INTERNAL, "bind `%s`", c->path);
  if (listen (c->listen_fd, 1) < 0)
    return shim_error_make (err, errno, SHIM_INTERNAL, "listen `%s`", c->path);
  c->listen_ev = xevent_new (c->base, c->listen_fd, EV_READ | EV_PERSIST, accept_cb, c);
  event_add (c->listen_ev, NULL);
  return 0;
}

/* $XDG_RUNTIME_DIR may be cleaned periodically; the XDG spec exempts files with the sticky
 * bit (go-runc sets it too). */
static int
console_keep (struct console *c, shim_error_t *err)
{
  if (chmod (c->path, 0755 | S_ISVTX) < 0)
    return shim_error_make (err, errno, SHIM_INTERNAL, "chmod `%s`", c->path);
  return 0;
}

struct console *
console_new (struct event_base *base, shim_error_t *err)
{
  struct console *c = xcalloc (1, sizeof *c);
  c->base = base;
  c->listen_fd = c->conn_fd = c->master_fd = -1;
  bool runtime_dir;
  c->dir = xasprintf ("%s/ptyXXXXXX", console_tmp_base (&runtime_dir));
  if (mkdtemp (c->dir) == NULL)
    {
      shim_error_make (err, errno, SHIM_INTERNAL, "console: create directory `%s`", c->dir);
      c->removed = true; /* nothing to remove */
      console_free (c);
      return NULL;
    }
  c->path = xasprintf ("%s/%s", c->dir, CONSOLE_SOCKET_NAME);
  c->deliver_ev = xevent_new (base, -1, 0, deliver_cb, c);
  if (console_listen (c, err) < 0 || (runtime_dir && console_keep (c, err) < 0))
    {
      console_free (c);
      return NULL;
    }
  return c;
}

const char *
console_socket_path (const struct console *c)
{
  return c->path;
}

void
console_on_master (struct console *c, console_master_cb cb, void *arg)
{
  c->cb = cb;
  c->arg = arg;
  console_schedule (c);
}

void
console_free (struct console *c)
{
  if (c == NULL)
    return;
  console_close_sockets (c);
  if (c->path)
    console_remove_files (c);
  event_freep (&c->deliver_ev);
  close_fd (&c->master_fd);
  shim_error_release (&c->error);
  free (c->path);
  free (c->dir);
  free (c);
}

/* Only the first connection is served (the runtime connects once), so the listener goes. */
static void
accept_cb (evutil_socket_t fd, short what, void *arg)
{
  struct console *c = arg;
  (void) what;
  int conn = accept4 (fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (conn < 0)
    {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
        return;
      shim_error_t error = NULL;
      shim_error_make (&error, errno, SHIM_INTERNAL, "console: accept on `%s`", c->path);
      console_finish (c, -1, error);
      return;
    }
  event_freep (&c->listen_ev);
  close_fd (&c->listen_fd);
  c->conn_fd = conn;
  /* The message may follow the connect later: wait for it rather than read now. */
  c->conn_ev = xevent_new (c->base, conn, EV_READ | EV_PERSIST, recv_cb, c);
  event_add (c->conn_ev, NULL);
}

/* Takes every fd out of the control messages, so none leaks whatever we decide. */
static void
collect_fds (struct msghdr *msg, int *fds, size_t *n_fds, size_t *n_scm)
{
  *n_fds = *n_scm = 0;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR (msg); cm; cm = CMSG_NXTHDR (msg, cm))
    {
      (*n_scm)++;
      if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
        continue;
      size_t n = (cm->cmsg_len - CMSG_LEN (0)) / sizeof (int);
      for (size_t i = 0; i < n && *n_fds < CONSOLE_MAX_FDS; i++)
        memcpy (&fds[(*n_fds)++], CMSG_DATA (cm) + i * sizeof (int), sizeof (int));
    }
}

/* go-runc's rules: one control message carrying exactly one fd, and a name that fits. */
static int
check_message (ssize_t n, const struct msghdr *msg, size_t n_scm, size_t n_fds, shim_error_t *err)
{
  if (n == 0 && n_fds == 0)
    return shim_error_make (err, 0, SHIM_UNKNOWN,
                            "console: the runtime closed the socket without sending a terminal");
  if (msg->msg_flags & (MSG_CTRUNC | MSG_TRUNC) || n >= CONSOLE_NAME_MAX)
    return shim_error_make (err, 0, SHIM_UNKNOWN, "console: truncated message (%zd bytes)", n);
  if (n_scm != 1)
    return shim_error_make (err, 0, SHIM_UNKNOWN, "console: %zu control messages, not 1", n_scm);
  if (n_fds != 1)
    return shim_error_make (err, 0, SHIM_UNKNOWN, "console: %zu fds received, not 1", n_fds);
  return 0;
}

/* Returns 1 with *master set, 0 when the message is not there yet, < 0 on error. */
static int
recv_master (int sock, int *master, shim_error_t *err)
{
  char name[CONSOLE_NAME_MAX];
  union
  {
    char buf[CMSG_SPACE (sizeof (int) * CONSOLE_MAX_FDS)];
    struct cmsghdr align;
  } ctl;
  struct iovec iov = { .iov_base = name, .iov_len = sizeof name };
  struct msghdr msg = {
    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf
  };
  int fds[CONSOLE_MAX_FDS];
  size_t n_fds, n_scm;

  ssize_t n = recvmsg (sock, &msg, MSG_CMSG_CLOEXEC);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return 0;
  if (n < 0)
    return shim_error_make (err, errno, SHIM_UNKNOWN, "console: receive the terminal");
  collect_fds (&msg, fds, &n_fds, &n_scm);
  if (check_message (n, &msg, n_scm, n_fds, err) < 0)
    {
      close_fds (fds, n_fds);
      return -1;
    }
  if (!isatty (fds[0]))
    {
      close (fds[0]);
      return shim_error_make (err, 0, SHIM_UNKNOWN, "console: the received fd is not a terminal");
    }
  if (set_nonblock (fds[0], true) < 0)
    {
      int saved = errno;
      close (fds[0]);
      return shim_error_make (err, saved, SHIM_UNKNOWN, "console: set the terminal non-blocking");
    }
  *master = fds[0];
  return 1;
}

static void
recv_cb (evutil_socket_t fd, short what, void *arg)
{
  struct console *c = arg;
  shim_error_t error = NULL;
  int master = -1;
  (void) what;
  int ret = recv_master (fd, &master, &error);
  if (ret == 0)
    return;
  console_finish (c, master, error);
}

int
console_resize (int master_fd, unsigned width, unsigned height, shim_error_t *err)
{
  if (width > USHRT_MAX || height > USHRT_MAX)
    return shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "console: size %ux%u out of range",
                            width, height);
  struct winsize ws = { .ws_row = (unsigned short) height, .ws_col = (unsigned short) width };
  if (ioctl (master_fd, TIOCSWINSZ, &ws) < 0)
    return shim_error_make (err, errno, SHIM_UNKNOWN, "console: resize to %ux%u", width, height);
  return 0;
}
