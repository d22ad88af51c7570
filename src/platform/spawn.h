#ifndef CSHIM_SPAWN_H
#define CSHIM_SPAWN_H

/* Asynchronous child processes watched by the loop (tmux's job model): the callback fires once
 * the child has been reaped *and* its captured pipes reached EOF, or when its deadline kills
 * it. Nothing here waits. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"

struct event_base;
struct reaper;
struct spawn;

#define SPAWN_FD_NULL (-1) /* /dev/null */
#define SPAWN_FD_CAPTURE (-2) /* a pipe read into the result (stdout/stderr only) */

struct spawn_req
{
  char *const *argv; /* argv[0] is looked up in PATH when it has no '/' */
  char *const *envp; /* NULL: inherit the shim's environment */
  const char *cwd; /* NULL: inherit */
  int stdin_fd; /* an fd to dup onto 0, or SPAWN_FD_NULL */
  const void *stdin_data; /* if not NULL, fed to the child's stdin through a pipe */
  size_t stdin_len;
  int stdout_fd; /* an fd, SPAWN_FD_NULL or SPAWN_FD_CAPTURE */
  int stderr_fd;
  const int *extra_fds; /* dup'd onto 3, 4, ... in the child */
  size_t n_extra_fds;
  unsigned timeout_ms; /* 0: no deadline; on expiry the child's process group gets SIGKILL */
  size_t capture_max; /* bytes kept per captured stream; 0 means 64 KiB */
  bool setsid; /* new session (else a new process group) */
};

struct spawn_result
{
  pid_t pid;
  int status; /* raw wait status */
  int exit_code; /* exit code, or 128+signal */
  bool timed_out;
  int exec_errno; /* non-zero when execve itself failed (e.g. ENOENT) */
  const char *out; /* captured stdout (NUL-terminated), valid during the callback */
  size_t out_len;
  const char *err; /* captured stderr */
  size_t err_len;
  uint64_t duration_ms;
};

typedef void (*spawn_cb) (const struct spawn_result *res, void *arg);

/* Forks and execs. On failure to fork nothing is started and cb is never called. */
struct spawn *spawn_start (struct event_base *base, struct reaper *reaper,
                           const struct spawn_req *req, spawn_cb cb, void *arg, shim_error_t *err);
/* From inside s's callback only: runs another child on the same handle, so whoever holds s
 * (and may spawn_cancel it) reaches the new child; cb is called when that one completes, and
 * s is not freed in between. The first child's result is gone once this returns. On failure
 * nothing is started and s is freed after the callback returns, as usual. A cancel cleanup
 * (spawn_set_cancel_cleanup) is then called with the new arg. */
int spawn_chain (struct spawn *s, const struct spawn_req *req, spawn_cb cb, void *arg,
                 shim_error_t *err);
/* Kills the child (SIGKILL to its group); cb is never called; resources go once it is reaped. */
void spawn_cancel (struct spawn *s);
pid_t spawn_pid (const struct spawn *s);
/* Runs cleanup(arg) when a canceled spawn is finally freed (once it is reaped), since
 * cb, which would otherwise own arg, is never called then. For wrappers such as runtime_run(). */
void spawn_set_cancel_cleanup (struct spawn *s, void (*cleanup) (void *arg));

#endif
