#include "platform/spawn_child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

/* Between fork and exec: async-signal-safe calls only. */

static void
child_reset_signals (void)
{
  struct sigaction dfl;
  memset (&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  /* Ignored signals survive exec; caught ones would run the shim's handlers until exec. */
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP)
      sigaction (sig, &dfl, NULL);
}

static void
child_close_from (int lo, int open_max)
{
  if (close_range (lo, ~0U, 0) == 0)
    return;
  for (int fd = lo; fd < open_max; fd++)
    close (fd);
}

/* Moves every source above the target range first, so a source whose number is also a
 * target is never clobbered before it is used; the status pipe ends up right after the
 * targets. Returns the status fd to report through (valid even on failure). */
static int
child_move_fds (const struct child_plan *p, int *status_fd)
{
  int top = p->n_targets;
  int st = fcntl (*status_fd, F_DUPFD_CLOEXEC, top + 1);
  if (st < 0)
    return -1;
  *status_fd = st;
  for (int i = 0; i < top; i++)
    if ((p->high[i] = fcntl (p->src[i], F_DUPFD, top + 1)) < 0)
      return -1;
  for (int i = 0; i < top; i++)
    if (dup2 (p->high[i], i) < 0)
      return -1;
  if (dup2 (st, top) < 0 || fcntl (top, F_SETFD, FD_CLOEXEC) < 0)
    return -1;
  *status_fd = top;
  child_close_from (top + 1, p->open_max);
  return 0;
}

static void __attribute__ ((noreturn)) child_fail (int status_fd)
{
  int e = errno;
  (void) !write (status_fd, &e, sizeof e);
  _exit (127);
}

static void __attribute__ ((noreturn)) child_exec (struct child_plan *p)
{
  int status_fd = p->status_fd;
  sigset_t none;

  child_reset_signals ();
  if (p->setsid)
    setsid ();
  else
    setpgid (0, 0);
  prctl (PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (getppid () != p->parent)
    _exit (127); /* the shim died before PDEATHSIG was armed */
  if (child_move_fds (p, &status_fd) < 0)
    child_fail (status_fd);
  if (p->cwd && chdir (p->cwd) < 0)
    child_fail (status_fd);
  sigemptyset (&none);
  sigprocmask (SIG_SETMASK, &none, NULL);
  execvpe (p->argv[0], p->argv, p->envp ? p->envp : environ);
  child_fail (status_fd);
}

static int
open_max (void)
{
  struct rlimit rl;
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 65536)
    return (int) rl.rlim_cur;
  return 65536;
}

/* Forks with every signal blocked, so no shim handler runs in the child before it resets them. */
pid_t
spawn_fork_child (struct child_plan *plan)
{
  plan->open_max = open_max ();
  sigset_t all, old;
  sigfillset (&all);
  sigprocmask (SIG_SETMASK, &all, &old);
  pid_t pid = fork ();
  if (pid == 0)
    child_exec (plan);
  int saved = errno;
  sigprocmask (SIG_SETMASK, &old, NULL);
  errno = saved;
  return pid;
}
