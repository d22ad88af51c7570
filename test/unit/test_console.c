/* console.c with a real event_base; the test itself plays the runtime that connects to the
 * console socket and sends a PTY master. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <event2/event.h>

#include "stdio/console.h"
#include "testutil.h"
#include "base/util.h"

struct fixture
{
  struct event_base *base;
  char *runtime_dir;
  struct console *console;
};

struct outcome
{
  int calls;
  int master;
  shim_error_t err;
  bool free_in_cb;
  struct console *console;
};

struct pty
{
  int master;
  char *slave_path;
};

static int
setup (void **state)
{
  struct fixture *f = xcalloc (1, sizeof *f);
  f->base = event_base_new ();
  f->runtime_dir = xstrdup ("/tmp/cshim-console-test-XXXXXX");
  assert_non_null (mkdtemp (f->runtime_dir));
  setenv ("XDG_RUNTIME_DIR", f->runtime_dir, 1);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fixture *f = *state;
  console_free (f->console);
  /* Fails unless the console removed its directory. */
  assert_int_equal (rmdir (f->runtime_dir), 0);
  event_base_free (f->base);
  free (f->runtime_dir);
  free (f);
  return 0;
}

static bool
outcome_done (void *arg)
{
  const struct outcome *o = arg;
  return o != NULL && o->calls > 0;
}

/* Runs the loop until o's callback ran or timeout_ms; with o NULL, for all of timeout_ms. */
static void
run_for (struct event_base *base, struct outcome *o, unsigned timeout_ms)
{
  run_until (base, outcome_done, o, timeout_ms);
}

static void
master_cb (int master_fd, shim_error_t err, void *arg)
{
  struct outcome *o = arg;
  o->calls++;
  o->master = master_fd;
  o->err = err;
  if (o->free_in_cb)
    console_free (o->console);
}

static struct pty
pty_open (void)
{
  struct pty p;
  p.master = posix_openpt (O_RDWR | O_NOCTTY | O_CLOEXEC);
  assert_true (p.master >= 0);
  assert_int_equal (grantpt (p.master), 0);
  assert_int_equal (unlockpt (p.master), 0);
  p.slave_path = xstrdup (ptsname (p.master));
  return p;
}

/* The runtime's side: connect (a unix connect to a listener completes without the accept). */
static int
runtime_connect (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  strcpy (addr.sun_path, path);
  int s = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true (s >= 0);
  assert_int_equal (connect (s, (struct sockaddr *) &addr, sizeof addr), 0);
  return s;
}

static void
runtime_send (int sock, const int *fds, size_t n, const char *name)
{
  union
  {
    char buf[CMSG_SPACE (sizeof (int) * 4)];
    struct cmsghdr align;
  } ctl;
  memset (&ctl, 0, sizeof ctl);
  struct iovec iov = { .iov_base = (void *) name, .iov_len = strlen (name) };
  struct msghdr msg = { .msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = ctl.buf,
                        .msg_controllen = CMSG_SPACE (sizeof (int) * n) };
  struct cmsghdr *cm = CMSG_FIRSTHDR (&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN (sizeof (int) * n);
  memcpy (CMSG_DATA (cm), fds, sizeof (int) * n);
  assert_int_equal (sendmsg (sock, &msg, 0), (ssize_t) strlen (name));
}

static struct console *
new_console (struct fixture *f)
{
  shim_error_t err = NULL;
  f->console = console_new (f->base, &err);
  assert_null (err);
  assert_non_null (f->console);
  return f->console;
}

static bool
exists (const char *path)
{
  struct stat st;
  return lstat (path, &st) == 0;
}

static char *
dir_of (const char *path)
{
  char *copy = xstrdup (path);
  char *d = xstrdup (dirname (copy));
  free (copy);
  return d;
}

static void
assert_master_works (int master, const char *slave_path)
{
  char buf[64] = { 0 };
  struct pollfd pfd = { .fd = master, .events = POLLIN };
  int slave = open (slave_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
  assert_true (slave >= 0);
  assert_int_equal (write (slave, "hello", 5), 5);
  assert_int_equal (poll (&pfd, 1, 5000), 1);
  assert_int_equal (read (master, buf, sizeof buf - 1), 5);
  assert_string_equal (buf, "hello");
  close (slave);
}

static void
test_receive_master (void **state)
{
  struct fixture *f = *state;
  struct console *c = new_console (f);
  const char *path = console_socket_path (c);
  cleanup_free char *dir = dir_of (path);
  struct outcome o = { .master = -1 };
  struct pty p = pty_open ();

  assert_true (strncmp (path, f->runtime_dir, strlen (f->runtime_dir)) == 0);
  assert_string_equal (path + strlen (dir), "/pty.sock");
  assert_true (exists (path));
  struct stat st;
  assert_int_equal (stat (path, &st), 0);
  assert_true (S_ISSOCK (st.st_mode));
  assert_true (st.st_mode & S_ISVTX); /* exempt from $XDG_RUNTIME_DIR clean-up */
  console_on_master (c, master_cb, &o);
  int sock = runtime_connect (path);
  runtime_send (sock, &p.master, 1, p.slave_path);
  close (p.master);
  run_for (f->base, &o, 5000);
  close (sock);

  assert_int_equal (o.calls, 1);
  assert_null (o.err);
  assert_true (o.master >= 0);
  assert_true (fcntl (o.master, F_GETFL) & O_NONBLOCK);
  assert_true (fcntl (o.master, F_GETFD) & FD_CLOEXEC);
  assert_false (exists (path));
  assert_false (exists (dir));
  assert_master_works (o.master, p.slave_path);
  close (o.master);
  free (p.slave_path);

  /* Delivered once: registering again brings nothing. */
  console_on_master (c, master_cb, &o);
  run_for (f->base, NULL, 30);
  assert_int_equal (o.calls, 1);
}

static void
test_tmpdir_fallback (void **state)
{
  struct fixture *f = *state;
  unsetenv ("XDG_RUNTIME_DIR");
  setenv ("TMPDIR", f->runtime_dir, 1);
  struct console *c = new_console (f);
  const char *path = console_socket_path (c);
  struct stat st;
  assert_true (strncmp (path, f->runtime_dir, strlen (f->runtime_dir)) == 0);
  assert_int_equal (stat (path, &st), 0);
  assert_false (st.st_mode & S_ISVTX);
  unsetenv ("TMPDIR");
}

static void
test_resize (void **state)
{
  (void) state;
  struct pty p = pty_open ();
  shim_error_t err = NULL;
  struct winsize ws = { 0 };
  int slave = open (p.slave_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
  assert_true (slave >= 0);

  assert_int_equal (console_resize (p.master, 132, 43, &err), 0);
  assert_int_equal (ioctl (slave, TIOCGWINSZ, &ws), 0);
  assert_int_equal (ws.ws_col, 132);
  assert_int_equal (ws.ws_row, 43);

  assert_true (console_resize (p.master, 70000, 10, &err) < 0);
  assert_non_null (err);
  assert_int_equal (err->code, SHIM_INVALID_ARGUMENT);
  shim_error_release (&err);
  close (slave);

  int fds[2];
  assert_int_equal (pipe2 (fds, O_CLOEXEC), 0);
  assert_true (console_resize (fds[0], 80, 24, &err) < 0);
  assert_int_equal (err->errno_, ENOTTY);
  shim_error_release (&err);
  close (fds[0]);
  close (fds[1]);
  close (p.master);
  free (p.slave_path);
}

/* The message arrives after the connection was accepted, and before anyone asked for it. */
static void
test_late_message_and_late_callback (void **state)
{
  struct fixture *f = *state;
  struct console *c = new_console (f);
  struct outcome o = { .master = -1 };
  struct pty p = pty_open ();
  int sock = runtime_connect (console_socket_path (c));

  run_for (f->base, NULL, 50); /* accepts; nothing to receive yet */
  runtime_send (sock, &p.master, 1, p.slave_path);
  run_for (f->base, NULL, 50); /* received, kept for the callback */
  console_on_master (c, master_cb, &o);
  assert_int_equal (o.calls, 0); /* never from inside console_on_master */
  run_for (f->base, &o, 5000);

  assert_int_equal (o.calls, 1);
  assert_null (o.err);
  assert_master_works (o.master, p.slave_path);
  close (o.master);
  close (p.master);
  close (sock);
  free (p.slave_path);
}

static void
expect_error (struct fixture *f, struct outcome *o, const char *needle)
{
  run_for (f->base, o, 5000);
  assert_int_equal (o->calls, 1);
  assert_int_equal (o->master, -1);
  assert_non_null (o->err);
  if (strstr (o->err->msg, needle) == NULL)
    fail_msg ("error `%s` lacks `%s`", o->err->msg, needle);
  shim_error_release (&o->err);
  assert_false (exists (console_socket_path (f->console)));
}

static void
test_peer_closes_without_sending (void **state)
{
  struct fixture *f = *state;
  struct console *c = new_console (f);
  struct outcome o = { .master = -1 };
  console_on_master (c, master_cb, &o);
  close (runtime_connect (console_socket_path (c)));
  expect_error (f, &o, "without sending");
}

static void
test_two_fds_rejected (void **state)
{
  struct fixture *f = *state;
  struct console *c = new_console (f);
  struct outcome o = { .master = -1 };
  struct pty p = pty_open ();
  int fds[2] = { p.master, -1 };
  fds[1] = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  int before = count_fds ();

  console_on_master (c, master_cb, &o);
  int sock = runtime_connect (console_socket_path (c));
  runtime_send (sock, fds, 2, p.slave_path);
  expect_error (f, &o, "2 fds");
  close (sock);
  /* The two fds that arrived were closed, and the listener too. */
  assert_int_equal (count_fds (), before - 1);
  close (fds[0]);
  close (fds[1]);
  free (p.slave_path);
}

static void
test_not_a_terminal (void **state)
{
  struct fixture *f = *state;
  struct console *c = new_console (f);
  struct outcome o = { .master = -1 };
  int fds[2];
  assert_int_equal (pipe2 (fds, O_CLOEXEC), 0);

  console_on_master (c, master_cb, &o);
  int sock = runtime_connect (console_socket_path (c));
  runtime_send (sock, fds, 1, "pipe");
  expect_error (f, &o, "not a terminal");
  close (sock);
  close (fds[0]);
  close (fds[1]);
}

static void
test_free_before_connect (void **state)
{
  struct fixture *f = *state;
  struct console *c = new_console (f);
  struct outcome o = { .master = -1 };
  cleanup_free char *path = xstrdup (console_socket_path (c));
  cleanup_free char *dir = dir_of (path);
  int before = count_fds ();

  console_on_master (c, master_cb, &o);
  assert_true (exists (dir));
  console_free (c);
  f->console = NULL;
  run_for (f->base, NULL, 30);
  assert_int_equal (o.calls, 0);
  assert_false (exists (path));
  assert_false (exists (dir));
  assert_int_equal (count_fds (), before - 1); /* the listener */
}

/* A master received but never claimed is closed by console_free. */
static void
test_free_with_unclaimed_master (void **state)
{
  struct fixture *f = *state;
  struct console *c = new_console (f);
  struct pty p = pty_open ();
  int sock = runtime_connect (console_socket_path (c));
  runtime_send (sock, &p.master, 1, p.slave_path);
  close (sock);
  close (p.master);
  int before = count_fds ();
  run_for (f->base, NULL, 50);
  assert_int_equal (count_fds (), before); /* listener and conn gone, master held */
  console_free (c);
  f->console = NULL;
  assert_int_equal (count_fds (), before - 1);
  free (p.slave_path);
}

static void
test_free_inside_callback (void **state)
{
  struct fixture *f = *state;
  struct console *c = new_console (f);
  struct outcome o = { .master = -1, .free_in_cb = true, .console = c };
  console_on_master (c, master_cb, &o);
  close (runtime_connect (console_socket_path (c)));
  f->console = NULL; /* freed by the callback */
  run_for (f->base, &o, 5000);
  assert_int_equal (o.calls, 1);
  assert_non_null (o.err);
  shim_error_release (&o.err);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_receive_master, setup, teardown),
    cmocka_unit_test_setup_teardown (test_tmpdir_fallback, setup, teardown),
    cmocka_unit_test_setup_teardown (test_resize, setup, teardown),
    cmocka_unit_test_setup_teardown (test_late_message_and_late_callback, setup, teardown),
    cmocka_unit_test_setup_teardown (test_peer_closes_without_sending, setup, teardown),
    cmocka_unit_test_setup_teardown (test_two_fds_rejected, setup, teardown),
    cmocka_unit_test_setup_teardown (test_not_a_terminal, setup, teardown),
    cmocka_unit_test_setup_teardown (test_free_before_connect, setup, teardown),
    cmocka_unit_test_setup_teardown (test_free_with_unclaimed_master, setup, teardown),
    cmocka_unit_test_setup_teardown (test_free_inside_callback, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
