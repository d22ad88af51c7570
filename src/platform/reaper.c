#include "platform/reaper.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <bsd/sys/queue.h>
#include <bsd/sys/tree.h>
#include <event2/event.h>

#include "base/log.h"
#include "base/ev.h"
#include "base/util.h"

/* Exits nobody claimed yet. Bounded: a subreaper also collects re-parented grandchildren
 * nobody will ever ask about, so the oldest entries are dropped first. */
#define REAPER_CACHE_MAX 1024

struct cached_exit
{
  RB_ENTRY (cached_exit) node;
  TAILQ_ENTRY (cached_exit) age;
  pid_t pid;
  int status;
  struct timespec when;
  uint64_t reaped_ms; /* monotonic: how old the exit is, for reaper_watch_since() */
};

struct reaper_watch
{
  RB_ENTRY (reaper_watch) node;
  struct reaper *reaper;
  pid_t pid;
  reaper_cb cb;
  void *arg;
  /* Set when the exit was already cached at watch time: delivered through `deliver`, so the
   * callback never runs inside reaper_watch(). */
  struct event *deliver;
  int status;
  struct timespec when;
};

RB_HEAD (watch_tree, reaper_watch);
RB_HEAD (exit_tree, cached_exit);
TAILQ_HEAD (exit_ages, cached_exit);

struct reaper
{
  struct event_base *base;
  struct event *sigchld;
  struct watch_tree watches;
  struct exit_tree cache;
  struct exit_ages cache_ages;
  size_t n_cached;
};

static int
watch_cmp (const struct reaper_watch *a, const struct reaper_watch *b)
{
  return (a->pid > b->pid) - (a->pid < b->pid);
}

static int
exit_cmp (const struct cached_exit *a, const struct cached_exit *b)
{
  return (a->pid > b->pid) - (a->pid < b->pid);
}

/* RB_GENERATE_STATIC relies on __unused, which libbsd leaves undefined (it clashes with Linux
 * headers), so spell the attribute out: we do not call every generated helper. */
#define RB_ATTR __attribute__ ((unused)) static
RB_GENERATE_INTERNAL (watch_tree, reaper_watch, node, watch_cmp, RB_ATTR)
RB_GENERATE_INTERNAL (exit_tree, cached_exit, node, exit_cmp, RB_ATTR)

static void
cache_remove (struct reaper *r, struct cached_exit *e)
{
  RB_REMOVE (exit_tree, &r->cache, e);
  TAILQ_REMOVE (&r->cache_ages, e, age);
  r->n_cached--;
  free (e);
}

static void
cache_add (struct reaper *r, pid_t pid, int status, const struct timespec *when)
{
  struct cached_exit key = { .pid = pid };
  struct cached_exit *old = RB_FIND (exit_tree, &r->cache, &key);
  /* Same pid twice means it was reused: the newer exit is the one a watcher can mean. */
  if (old)
    cache_remove (r, old);
  if (r->n_cached >= REAPER_CACHE_MAX)
    cache_remove (r, TAILQ_FIRST (&r->cache_ages));

  struct cached_exit *e = xcalloc (1, sizeof *e);
  e->pid = pid;
  e->status = status;
  e->when = *when;
  e->reaped_ms = now_monotonic_ms ();
  RB_INSERT (exit_tree, &r->cache, e);
  TAILQ_INSERT_TAIL (&r->cache_ages, e, age);
  r->n_cached++;
}

/* Detaches the watch and frees it before calling back, so the callback may watch the same pid
 * again or free whatever owns the handle. */
static void
watch_fire (struct reaper_watch *w, int status, const struct timespec *when)
{
  reaper_cb cb = w->cb;
  void *arg = w->arg;
  pid_t pid = w->pid;
  struct timespec at = *when; /* may point into w */
  reaper_unwatch (w->reaper, w);
  cb (pid, status, &at, arg);
}

static void
dispatch_exit (struct reaper *r, pid_t pid, int status)
{
  struct timespec when = now_realtime ();
  struct reaper_watch key = { .pid = pid };
  struct reaper_watch *w = RB_FIND (watch_tree, &r->watches, &key);
  /* A watch with a pending delivery already got its exit; this one is a reused pid. */
  if (w && w->deliver == NULL)
    watch_fire (w, status, &when);
  else
    cache_add (r, pid, status, &when);
}

void
reaper_reap (struct reaper *r)
{
  for (;;)
    {
      int status;
      /* No WUNTRACED/WCONTINUED: only real exits come back. __WALL also collects children
       * whose exit signal is not SIGCHLD. */
      pid_t pid = waitpid (-1, &status, WNOHANG | __WALL);
      if (pid < 0 && errno == EINTR)
        continue;
      if (pid <= 0)
        break;
      dispatch_exit (r, pid, status);
    }
}

static void
sigchld_cb (evutil_socket_t sig, short what, void *arg)
{
  (void) sig;
  (void) what;
  reaper_reap (arg);
}

static void
deliver_cb (evutil_socket_t fd, short what, void *arg)
{
  struct reaper_watch *w = arg;
  (void) fd;
  (void) what;
  watch_fire (w, w->status, &w->when);
}

struct reaper *
reaper_new (struct event_base *base, shim_error_t *err)
{
  if (prctl (PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
    return shim_error_make (err, errno, SHIM_INTERNAL, "prctl PR_SET_CHILD_SUBREAPER"), NULL;

  struct reaper *r = xcalloc (1, sizeof *r);
  r->base = base;
  RB_INIT (&r->watches);
  RB_INIT (&r->cache);
  TAILQ_INIT (&r->cache_ages);
  r->sigchld = xevsignal_new (base, SIGCHLD, sigchld_cb, r);
  if (evsignal_add (r->sigchld, NULL) < 0)
    {
      event_free (r->sigchld);
      free (r);
      return shim_error_make (err, 0, SHIM_INTERNAL, "cannot install the SIGCHLD event"), NULL;
    }
  /* Children that exited before the handler existed sent their SIGCHLD to nobody. */
  reaper_reap (r);
  return r;
}

void
reaper_free (struct reaper *r)
{
  if (r == NULL)
    return;
  struct reaper_watch *w, *wtmp;
  RB_FOREACH_SAFE (w, watch_tree, &r->watches, wtmp)
  reaper_unwatch (r, w);
  struct cached_exit *e, *etmp;
  TAILQ_FOREACH_SAFE (e, &r->cache_ages, age, etmp)
  cache_remove (r, e);
  event_freep (&r->sigchld);
  free (r);
}

struct reaper_watch *
reaper_watch (struct reaper *r, pid_t pid, reaper_cb cb, void *arg)
{
  return reaper_watch_since (r, pid, 0, cb, arg);
}

/* A cached exit reaped before since_ms belongs to an earlier process that had the same pid. */
static void
cache_drop_stale (struct reaper *r, pid_t pid, uint64_t since_ms)
{
  struct cached_exit key = { .pid = pid };
  struct cached_exit *e = RB_FIND (exit_tree, &r->cache, &key);
  if (e == NULL || e->reaped_ms >= since_ms)
    return;
  log_debug ("reaper: pid %d was reused: dropping its exit from %" PRIu64 " ms earlier", (int) pid,
             since_ms - e->reaped_ms);
  cache_remove (r, e);
}

struct reaper_watch *
reaper_watch_since (struct reaper *r, pid_t pid, uint64_t since_ms, reaper_cb cb, void *arg)
{
  struct reaper_watch key = { .pid = pid };
  if (pid <= 0 || RB_FIND (watch_tree, &r->watches, &key))
    {
      log_warn ("reaper: refusing a second watch on pid %d", (int) pid);
      return NULL;
    }

  struct reaper_watch *w = xcalloc (1, sizeof *w);
  w->reaper = r;
  w->pid = pid;
  w->cb = cb;
  w->arg = arg;
  RB_INSERT (watch_tree, &r->watches, w);

  cache_drop_stale (r, pid, since_ms);
  if (reaper_take_cached (r, pid, &w->status, &w->when))
    {
      w->deliver = xevent_new (r->base, -1, 0, deliver_cb, w);
      event_active (w->deliver, 0, 0);
    }
  return w;
}

void
reaper_unwatch (struct reaper *r, struct reaper_watch *w)
{
  if (w == NULL)
    return;
  RB_REMOVE (watch_tree, &r->watches, w);
  event_freep (&w->deliver);
  free (w);
}

bool
reaper_take_cached (struct reaper *r, pid_t pid, int *status, struct timespec *when)
{
  struct cached_exit key = { .pid = pid };
  struct cached_exit *e = RB_FIND (exit_tree, &r->cache, &key);
  if (e == NULL)
    return false;
  if (status)
    *status = e->status;
  if (when)
    *when = e->when;
  cache_remove (r, e);
  return true;
}
