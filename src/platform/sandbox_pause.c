#include "platform/sandbox_pause.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"

extern char **environ;

/* Child side of the clone: async-signal-safe calls only, then exec. */
static void __attribute__ ((noreturn)) pause_child (int netns)
{
  sigset_t none;
  sigemptyset (&none);
  sigprocmask (SIG_SETMASK, &none, NULL);
  /* The pod dies with its shim: nobody else could stop it. */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  if (netns >= 0 && setns (netns, CLONE_NEWNET) < 0)
    _exit (126);
  int null = open ("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0)
    _exit (126);
  for (int fd = 0; fd < 3; fd++)
    dup2 (null, fd);
  char *argv[] = { (char *) "containerd-shim-cshim-v2", (char *) "pause", NULL };
  execve ("/proc/self/exe", argv, environ);
  _exit (127);
}

pid_t
sandbox_pause_spawn (const char *netns_path, shim_error_t *err)
{
  cleanup_close int netns = -1;
  if (netns_path && netns_path[0])
    {
      netns = open (netns_path, O_RDONLY | O_CLOEXEC);
      if (netns < 0)
        return shim_error_make (err, errno, SHIM_INVALID_ARGUMENT, "open netns %s", netns_path);
    }
  /* A raw clone with no stack behaves like fork; it is the only way to get the child's pid
   * in the new pid namespace without an intermediate process. */
  long flags = CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID | SIGCHLD;
  pid_t pid = (pid_t) syscall (SYS_clone, flags, NULL, NULL, NULL, NULL);
  if (pid < 0)
    return shim_error_make (err, errno, SHIM_INTERNAL, "clone the pause process");
  if (pid == 0)
    pause_child (netns);
  return pid;
}

static volatile sig_atomic_t stop_requested;

static void
on_stop (int sig)
{
  (void) sig;
  stop_requested = 1;
}

static void
on_child (int sig)
{
  (void) sig;
}

int
sandbox_pause_run (shim_error_t *err)
{
  if (getpid () != 1)
    return shim_error_make (err, 0, SHIM_INVALID_ARGUMENT,
                            "pause runs as pid 1 of a pod's pid namespace (started by the shim)");
  /* Handlers, not SIG_DFL: pid 1 of a namespace never gets signals it does not handle. */
  sigset_t block, none;
  sigemptyset (&none);
  sigemptyset (&block);
  sigaddset (&block, SIGTERM);
  sigaddset (&block, SIGINT);
  sigaddset (&block, SIGCHLD);
  sigprocmask (SIG_BLOCK, &block, NULL);
  struct sigaction sa = { .sa_handler = on_stop };
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGINT, &sa, NULL);
  sa.sa_handler = on_child;
  sigaction (SIGCHLD, &sa, NULL);
  while (!stop_requested)
    {
      while (waitpid (-1, NULL, WNOHANG) > 0)
        ;
      if (!stop_requested)
        sigsuspend (&none);
    }
  return 0;
}
