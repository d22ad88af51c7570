#include "cli/cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"

#define CMD_OUT_MAX (1u << 20)

static void __attribute__ ((noreturn)) child (char *const *argv, const char *cwd, int out_fd)
{
  int devnull = open ("/dev/null", O_RDWR);
  dup2 (devnull, 0);
  dup2 (out_fd >= 0 ? out_fd : devnull, 1);
  if (cwd && chdir (cwd) < 0)
    _exit (127);
  execvp (argv[0], argv);
  fprintf (stderr, "exec %s: %s\n", argv[0], strerror (errno));
  _exit (127);
}

/* Reads the child's stdout until EOF or the deadline; returns false at the deadline. */
static bool
collect (int fd, uint64_t deadline, char **out, size_t *len)
{
  size_t cap = 4096;
  *out = xmalloc (cap);
  *len = 0;
  for (;;)
    {
      int left = (int) (deadline - now_monotonic_ms ());
      struct pollfd p = { fd, POLLIN, 0 };
      if (left <= 0 || poll (&p, 1, left) == 0)
        return false;
      if (*len + 1 >= cap && cap < CMD_OUT_MAX)
        *out = xrealloc (*out, cap *= 2);
      ssize_t n = read (fd, *out + *len, *len + 1 < cap ? cap - *len - 1 : 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      *len += n;
    }
  (*out)[*len] = '\0';
  return true;
}

static int
reap (pid_t pid, uint64_t deadline, bool killed)
{
  int status;
  for (;;)
    {
      pid_t r = waitpid (pid, &status, killed ? 0 : WNOHANG);
      if (r == pid)
        return killed ? -1 : wait_status_to_exit_code (status);
      if (r < 0 && errno != EINTR)
        return -1;
      if (!killed && now_monotonic_ms () > deadline)
        {
          kill (pid, SIGKILL);
          killed = true;
        }
      else if (!killed)
        usleep (2000);
    }
}

int
cmd_run (char *const *argv, const char *cwd, unsigned timeout_ms, char **out, size_t *out_len)
{
  int fds[2] = { -1, -1 };
  if (out && pipe2 (fds, O_CLOEXEC) < 0)
    return -1;
  pid_t pid = fork ();
  if (pid == 0)
    child (argv, cwd, fds[1]);
  if (fds[1] >= 0)
    close (fds[1]);
  if (pid < 0)
    {
      if (fds[0] >= 0)
        close (fds[0]);
      return -1;
    }
  uint64_t deadline = now_monotonic_ms () + timeout_ms;
  bool in_time = true;
  size_t len = 0;
  char *buf = NULL;
  if (out)
    {
      in_time = collect (fds[0], deadline, &buf, &len);
      close (fds[0]);
      *out = buf;
      if (out_len)
        *out_len = len;
    }
  if (!in_time)
    kill (pid, SIGKILL);
  return reap (pid, deadline, !in_time);
}
