#ifndef CSHIM_OOM_H
#define CSHIM_OOM_H

/* OOM watching for one container's memory cgroup, on the event loop.
 *
 * cgroup v1: an eventfd registered for memory.oom_control through cgroup.event_control; each
 * read of a non-zero count is one report. The kernel also signals that eventfd once when the
 * cgroup is removed: a signal that arrives while memory.oom_control can no longer be read is
 * taken as that removal and not reported (see oom.c for the one ambiguous ordering).
 * cgroup v2: inotify IN_MODIFY on memory.events; a report whenever oom_kill has grown.
 *
 * Every OOM is reported exactly once: either through cb from the loop, or as the true result
 * of oom_watch_check (), which the shim calls right before it publishes the container's exit
 * so that TaskOOM is never published after TaskExit. */

#include <stdbool.h>

#include "base/error.h"

struct cgroup;
struct event_base;
struct oom_watch;

/* Arms the watch on cg's memory cgroup (arm at Create: the init already sits in it). NotFound
 * when there is no memory cgroup. cgroup kill counters start from zero, so kills counted
 * before the watch existed are still reported once. */
struct oom_watch *oom_watch_new (struct event_base *base, const struct cgroup *cg,
                                 void (*cb) (void *arg), void *arg, shim_error_t *err);

/* Synchronous: consumes what the loop has not delivered yet (a pending v1 eventfd count, a
 * grown oom_kill counter in v1 memory.oom_control or v2 memory.events). True when that holds
 * an OOM cb has not reported; it then counts as reported and cb is not called for it. */
bool oom_watch_check (struct oom_watch *w);

void oom_watch_free (struct oom_watch *w);

#endif
