/* What a runtime sends on --console-socket, through the real socket and loop: the first byte
 * says which fds ride along (none, a PTY master, a pipe, two fds in one message, two
 * messages, or nothing at all before the hang-up), the rest is the name data. The callback
 * must run exactly once and no fd may leak. */
#include <event2/event.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "stdio/console.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static struct event_base *base;

struct outcome
{
  int calls;
};

static void
master_cb (int master_fd, shim_error_t err, void *arg)
{
  struct outcome *o = arg;
  o->calls++;
  if ((master_fd >= 0) == (err != NULL))
    abort ();
  if (master_fd >= 0)
    close (master_fd);
  shim_error_release (&err);
}

static int
runtime_connect (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  strncpy (addr.sun_path, path, sizeof addr.sun_path - 1);
  int s = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0 || connect (s, (struct sockaddr *) &addr, sizeof addr) < 0)
    abort ();
  return s;
}

/* Fills fds for mode; returns how many. */
static size_t
make_fds (unsigned mode, int fds[3])
{
  size_t n = 0;
  if (mode == 1 || mode == 3 || mode == 4)
    {
      fds[n] = posix_openpt (O_RDWR | O_NOCTTY | O_CLOEXEC);
      if (fds[n] < 0)
        abort ();
      n++;
    }
  if (mode == 2 || mode == 3 || mode == 4)
    {
      int p[2];
      if (pipe2 (p, O_CLOEXEC) < 0)
        abort ();
      close (p[1]);
      fds[n++] = p[0];
    }
  return n;
}

static void
send_message (int sock, unsigned mode, const uint8_t *name, size_t len)
{
  int fds[3];
  size_t n = make_fds (mode, fds);
  union
  {
    char buf[2 * CMSG_SPACE (2 * sizeof (int))];
    struct cmsghdr align;
  } ctl;
  memset (&ctl, 0, sizeof ctl);
  struct iovec iov = { .iov_base = (void *) name, .iov_len = len };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
  if (n > 0)
    {
      size_t per = mode == 4 ? 1 : n; /* mode 4: one fd in each of two messages */
      msg.msg_control = ctl.buf;
      msg.msg_controllen = (n / per) * CMSG_SPACE (per * sizeof (int));
      struct cmsghdr *cm = CMSG_FIRSTHDR (&msg);
      for (size_t i = 0; i < n; i += per, cm = CMSG_NXTHDR (&msg, cm))
        {
          cm->cmsg_level = SOL_SOCKET;
          cm->cmsg_type = SCM_RIGHTS;
          cm->cmsg_len = CMSG_LEN (per * sizeof (int));
          memcpy (CMSG_DATA (cm), &fds[i], per * sizeof (int));
        }
    }
  if (len > 0 || n > 0)
    (void) sendmsg (sock, &msg, MSG_NOSIGNAL);
  close_fds (fds, n);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size == 0)
    return 0;
  if (base == NULL)
    base = event_base_new ();
  shim_error_t err = NULL;
  struct console *c = console_new (base, &err);
  if (c == NULL)
    abort ();
  struct outcome o = { 0 };
  console_on_master (c, master_cb, &o);
  int sock = runtime_connect (console_socket_path (c));
  unsigned mode = data[0] % 6;
  if (mode != 5)
    send_message (sock, mode, data + 1, size - 1);
  close (sock);
  while (o.calls == 0)
    event_base_loop (base, EVLOOP_ONCE);
  console_free (c);
  event_base_loop (base, EVLOOP_NONBLOCK);
  if (o.calls != 1)
    abort ();
  return 0;
}
