#ifndef CSHIM_SPAWN_CHILD_H
#define CSHIM_SPAWN_CHILD_H

/* The child side of spawn.c: fork, then only async-signal-safe calls until exec. Internal to
 * platform/spawn.c. */

#include <stdbool.h>
#include <sys/types.h>

/* What the child does between fork and exec, prepared by the parent so the child only makes
 * async-signal-safe calls. src[i] is dup'd onto fd i for i < n_targets. */
struct child_plan
{
  char *const *argv;
  char *const *envp;
  const char *cwd;
  int *src;
  int *high; /* scratch: src moved above the target range */
  int n_targets;
  int status_fd;
  bool setsid;
  pid_t parent;
  int open_max; /* filled in by spawn_fork_child */
};

/* Forks a child that resets its signals, joins a new process group (or session), dies with
 * the shim, moves its fds as planned and execs; an exec failure's errno is written to the
 * status pipe. Returns the pid, or -1 with errno. */
pid_t spawn_fork_child (struct child_plan *plan);

#endif
