#include "platform/oom.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <event2/event.h>

#include "platform/cgroup.h"
#include "platform/stats.h"
#include "base/ev.h"
#include "base/util.h"

/* memory.events and memory.oom_control are a handful of short lines. */
#define COUNTER_FILE_MAX 4096

struct oom_watch
{
  bool v2;
  int fd; /* watched: v1 eventfd, v2 inotify */
  int control_fd; /* v1: memory.oom_control, read for the oom_kill counter */
  int dir_fd; /* v2: the cgroup directory (O_PATH), to re-read memory.events */
  struct event *ev;
  /* oom_kill value already accounted for. It starts at 0, like containerd's v2 watcher, so a
   * kill that happened before the watch was armed is still reported once. */
  uint64_t kills_seen;
  /* v1: OOMs reported from the eventfd whose kill the counter may not show yet (the kernel
   * notifies before it picks a victim); a later counter increase up to this many is the
   * same OOM, not a new one. An OOM that ends without a kill (oom_kill_disable, memory
   * freed in time) leaves credit behind, which can hide one later kill that the eventfd
   * never announced (a global OOM): the cheaper error next to reporting every OOM twice. */
  uint64_t credit;
  bool removal_seen; /* v1: the kernel's one removal signal has been accounted for */
  void (*cb) (void *arg);
  void *arg;
};

/* ---- cgroup v1 ---- */

/* -1 once the cgroup is gone (kernfs answers ENODEV after rmdir). */
static int
v1_read_kills (struct oom_watch *w, uint64_t *kills, bool *counted)
{
  char buf[COUNTER_FILE_MAX];
  ssize_t n = pread (w->control_fd, buf, sizeof buf - 1, 0);
  if (n < 0)
    return -1;
  buf[n] = '\0';
  /* The oom_kill line exists since Linux 4.13; older kernels only have the eventfd. */
  *counted = stats_parse_key (buf, "oom_kill", kills);
  return 0;
}

/* Consumes the pending eventfd count and returns how many of its signals were OOMs. */
static uint64_t
v1_drain (struct oom_watch *w)
{
  uint64_t count, kills;
  bool counted;
  if (read (w->fd, &count, sizeof count) != (ssize_t) sizeof count)
    return 0; /* EAGAIN: nothing pending */
  /* Removal signals once, asynchronously after rmdir. If an OOM signal was still pending
   * when the cgroup went away, this takes it for the removal and the removal signal that
   * follows is then reported instead: the count stays right, only later. */
  if (v1_read_kills (w, &kills, &counted) < 0 && !w->removal_seen)
    {
      w->removal_seen = true;
      count--;
    }
  return count;
}

/* True when the kill counter grew by more than the OOMs already reported cover: a kill the
 * eventfd never announced (a global OOM picking a task of this cgroup, or one before the
 * watch existed). */
static bool
v1_counter_news (struct oom_watch *w)
{
  uint64_t kills;
  bool counted;
  if (v1_read_kills (w, &kills, &counted) < 0 || !counted || kills <= w->kills_seen)
    return false;
  uint64_t delta = kills - w->kills_seen;
  uint64_t covered = delta < w->credit ? delta : w->credit;
  w->kills_seen = kills;
  w->credit -= covered;
  return delta > covered;
}

static void
oom_v1_cb (evutil_socket_t fd, short what, void *arg)
{
  (void) fd;
  (void) what;
  struct oom_watch *w = arg;
  uint64_t n = v1_drain (w);
  if (n == 0)
    return;
  w->credit += n;
  w->cb (w->arg);
}

static int
v1_arm (struct oom_watch *w, const char *dir, shim_error_t *err)
{
  cleanup_close int dirfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0)
    return shim_error_make (err, errno, errno == ENOENT ? SHIM_NOT_FOUND : SHIM_UNKNOWN,
                            "open `%s`", dir);
  w->control_fd = openat (dirfd, "memory.oom_control", O_RDONLY | O_CLOEXEC);
  if (w->control_fd < 0)
    return shim_error_make (err, errno, SHIM_UNKNOWN, "open `%s/memory.oom_control`", dir);
  w->fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (w->fd < 0)
    return shim_error_make (err, errno, SHIM_UNKNOWN, "eventfd");
  cleanup_close int ctl = openat (dirfd, "cgroup.event_control", O_WRONLY | O_CLOEXEC);
  if (ctl < 0)
    return shim_error_make (err, errno, SHIM_UNKNOWN, "open `%s/cgroup.event_control`", dir);
  char line[32];
  int len = snprintf (line, sizeof line, "%d %d", w->fd, w->control_fd);
  if (write_all (ctl, line, (size_t) len) < 0)
    return shim_error_make (err, errno, SHIM_UNKNOWN, "register OOM eventfd for `%s`", dir);
  return 0;
}

/* ---- cgroup v2 ---- */

/* True when memory.events shows more kills than seen. A half-written or vanished file
 * changes nothing. */
static bool
v2_kill_news (struct oom_watch *w)
{
  cleanup_free char *text = NULL;
  cleanup_error shim_error_t err = NULL;
  uint64_t kills;
  if (read_file_at (w->dir_fd, "memory.events", COUNTER_FILE_MAX, &text, NULL, &err) < 0
      || !stats_parse_key (text, "oom_kill", &kills) || kills <= w->kills_seen)
    return false;
  w->kills_seen = kills;
  return true;
}

static void
oom_v2_cb (evutil_socket_t fd, short what, void *arg)
{
  (void) what;
  struct oom_watch *w = arg;
  /* The events only say "modified" (or IN_IGNORED once the cgroup is gone, after which
   * nothing more arrives); the file is what counts. */
  char buf[4096] __attribute__ ((aligned (__alignof__(struct inotify_event))));
  while (read (fd, buf, sizeof buf) > 0)
    ;
  if (v2_kill_news (w))
    w->cb (w->arg);
}

static int
v2_arm (struct oom_watch *w, const char *dir, shim_error_t *err)
{
  w->dir_fd = open (dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (w->dir_fd < 0)
    return shim_error_make (err, errno, errno == ENOENT ? SHIM_NOT_FOUND : SHIM_UNKNOWN,
                            "open `%s`", dir);
  w->fd = inotify_init1 (IN_CLOEXEC | IN_NONBLOCK);
  if (w->fd < 0)
    return shim_error_make (err, errno, SHIM_UNKNOWN, "inotify_init1");
  cleanup_free char *path = xasprintf ("%s/memory.events", dir);
  if (inotify_add_watch (w->fd, path, IN_MODIFY) < 0)
    return shim_error_make (err, errno, errno == ENOENT ? SHIM_NOT_FOUND : SHIM_UNKNOWN,
                            "watch `%s`", path);
  return 0;
}

/* ---- both ---- */

static void
cleanup_oom_watchp (struct oom_watch **w)
{
  oom_watch_free (*w);
}

struct oom_watch *
oom_watch_new (struct event_base *base, const struct cgroup *cg, void (*cb) (void *arg), void *arg,
               shim_error_t *err)
{
  const char *dir = cg ? cgroup_dir (cg, "memory") : NULL;
  if (dir == NULL)
    {
      shim_error_make (err, 0, SHIM_NOT_FOUND, "no memory cgroup to watch for OOM");
      return NULL;
    }
  __attribute__ ((cleanup (cleanup_oom_watchp))) struct oom_watch *w = xcalloc (1, sizeof *w);
  w->fd = w->control_fd = w->dir_fd = -1;
  w->v2 = cgroup_is_v2 (cg);
  w->cb = cb;
  w->arg = arg;
  if ((w->v2 ? v2_arm (w, dir, err) : v1_arm (w, dir, err)) < 0)
    return NULL;
  w->ev = xevent_new (base, w->fd, EV_READ | EV_PERSIST, w->v2 ? oom_v2_cb : oom_v1_cb, w);
  if (event_add (w->ev, NULL) < 0)
    {
      shim_error_make (err, 0, SHIM_INTERNAL, "cannot add OOM event for `%s`", dir);
      return NULL;
    }
  return steal_ptr (&w);
}

bool
oom_watch_check (struct oom_watch *w)
{
  if (w->v2)
    return v2_kill_news (w);
  bool hit = false;
  uint64_t n = v1_drain (w);
  if (n > 0)
    {
      w->credit += n;
      hit = true;
    }
  /* Always synced, also after an eventfd hit, so the credit is settled. */
  if (v1_counter_news (w))
    hit = true;
  return hit;
}

void
oom_watch_free (struct oom_watch *w)
{
  if (w == NULL)
    return;
  event_freep (&w->ev);
  /* Closing the eventfd also unregisters it in the kernel (v1). */
  cleanup_closep (&w->fd);
  cleanup_closep (&w->control_fd);
  cleanup_closep (&w->dir_fd);
  free (w);
}
