#ifndef CSHIM_REAPER_H
#define CSHIM_REAPER_H

/* The one place that reaps. The shim is a child subreaper: on SIGCHLD (delivered through
 * libevent) it loops waitpid(-1, WNOHANG) and hands each exit to the watcher of that pid.
 * Exits nobody watches yet are cached (bounded), which closes the early-exit race: a
 * process that exits before its pid file was read is found when it is watched. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "base/error.h"

struct event_base;
struct reaper;
struct reaper_watch;

/* status is the raw wait status; when is the CLOCK_REALTIME time it was reaped. */
typedef void (*reaper_cb) (pid_t pid, int status, const struct timespec *when, void *arg);

/* Sets PR_SET_CHILD_SUBREAPER and installs the SIGCHLD event. Call before the first fork. */
struct reaper *reaper_new (struct event_base *base, shim_error_t *err);
void reaper_free (struct reaper *r);

/* Calls cb exactly once when pid exits, from the loop, never from inside reaper_watch().
 * If the exit is already cached it is delivered on the next loop iteration. One watcher per
 * pid; the returned handle is valid until the callback runs or reaper_unwatch(). */
struct reaper_watch *reaper_watch (struct reaper *r, pid_t pid, reaper_cb cb, void *arg);
/* The same for a process that cannot have existed before since_ms (CLOCK_MONOTONIC ms, e.g.
 * when the runtime call that created it started): a cached exit reaped before that is an
 * earlier process's whose pid was reused, and is dropped instead of delivered. */
struct reaper_watch *reaper_watch_since (struct reaper *r, pid_t pid, uint64_t since_ms,
                                         reaper_cb cb, void *arg);
void reaper_unwatch (struct reaper *r, struct reaper_watch *w);

/* Reaps whatever has exited now (also done on SIGCHLD). */
void reaper_reap (struct reaper *r);

/* Removes and returns a cached exit for pid, if any. */
bool reaper_take_cached (struct reaper *r, pid_t pid, int *status, struct timespec *when);

#endif
