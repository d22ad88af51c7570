/* Probing a runtime binary (`<binary> --version`) for its profile, asynchronously, with a
 * cache per binary file in the process and on tmpfs across shim processes. */

#include "runtime/profile.h"
#include "runtime/profile_internal.h"

#include <errno.h>
#include <sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bsd/sys/queue.h>
#include <event2/event.h>

#include "base/log.h"
#include "platform/spawn.h"
#include "base/ev.h"
#include "base/util.h"

/* What a probe keeps of `--version`'s output (per stream), and so the bound of a disk cache
 * file: that text after one line of file id (five numbers, at most 105 bytes). */
#define PROBE_OUTPUT_MAX 16384
#define PROBE_CACHE_FILE_MAX (PROBE_OUTPUT_MAX + 128)

/* ---- probing, with a per-process cache ---- */

/* The cache is per process rather than per object: what `<binary> --version` says is a fact
 * about a file, the same for every container the process serves, and the process runs one
 * loop. Create and -info share it without a handle threaded through struct shim.
 * profile_cache_clear() empties it (tests, shutdown). Profiles handed out point into entries,
 * so an entry outlives a change of its file: it is only marked stale, and a new one made. */

struct probe_entry
{
  LIST_ENTRY (probe_entry) link;
  char *binary; /* as asked; the key */
  char *path; /* what runs: binary resolved through PATH */
  struct file_id id;
  bool known_id; /* the file could be stat'ed */
  bool done, stale;
  struct spawn *spawn; /* while `--version` runs */
  struct runtime_profile profile;
  struct profile_info info;
};

struct probe_waiter
{
  LIST_ENTRY (probe_waiter) link;
  struct probe_entry *entry; /* the run it waits for; NULL once the outcome is set */
  struct event *ev; /* delivers the outcome from the loop */
  profile_probe_cb cb;
  void *arg;
  const struct runtime_profile *profile;
  const struct profile_info *info;
  shim_error_t err;
};

static LIST_HEAD (probe_entry_list,
                  probe_entry) probe_entries = LIST_HEAD_INITIALIZER (probe_entries);
static LIST_HEAD (probe_waiter_list,
                  probe_waiter) probe_waiters = LIST_HEAD_INITIALIZER (probe_waiters);

/* name -> the first executable regular file of that name in PATH; a path stays as it is. */
static char *
find_in_path (const char *name)
{
  if (strchr (name, '/'))
    return xstrdup (name);
  const char *path = getenv ("PATH");
  if (path == NULL || path[0] == '\0')
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (const char *p = path; *p;)
    {
      size_t n = strcspn (p, ":");
      cleanup_free char *cand = xasprintf ("%.*s/%s", (int) n, n ? p : ".", name);
      struct stat st;
      if (stat (cand, &st) == 0 && S_ISREG (st.st_mode) && access (cand, X_OK) == 0)
        return steal_ptr (&cand);
      p += n + (p[n] == ':');
    }
  return xstrdup (name);
}

static bool
file_id_of (const char *path, struct file_id *id)
{
  struct stat st;
  if (stat (path, &st) < 0)
    return false;
  *id = (struct file_id){
    .dev = st.st_dev, .ino = st.st_ino, .size = st.st_size, .mtime = st.st_mtim
  };
  return true;
}

static bool
file_id_equal (const struct file_id *a, const struct file_id *b)
{
  return a->dev == b->dev && a->ino == b->ino && a->size == b->size
         && a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* A run in flight is shared whatever the file looks like now; a finished one only while the
 * file is the one it probed. */
static struct probe_entry *
entry_find (const char *binary, bool known_id, const struct file_id *id)
{
  struct probe_entry *e;
  LIST_FOREACH (e, &probe_entries, link)
  {
    if (e->stale || strcmp (e->binary, binary) != 0)
      continue;
    if (!e->done || (known_id && e->known_id && file_id_equal (&e->id, id)))
      return e;
    e->stale = true;
  }
  return NULL;
}

static void
entry_free (struct probe_entry *e)
{
  if (e->spawn)
    spawn_cancel (e->spawn);
  free (e->binary);
  free (e->path);
  free (e);
}

static void
waiter_fire_cb (evutil_socket_t fd, short what, void *arg)
{
  (void) fd;
  (void) what;
  struct probe_waiter *w = arg;
  profile_probe_cb cb = w->cb;
  void *cb_arg = w->arg;
  const struct runtime_profile *p = w->profile;
  const struct profile_info *info = w->info;
  shim_error_t err = steal_ptr (&w->err);
  LIST_REMOVE (w, link);
  event_freep (&w->ev);
  free (w);
  cb (p, info, err, cb_arg);
}

static struct probe_waiter *
waiter_new (struct event_base *base, struct probe_entry *e, profile_probe_cb cb, void *arg)
{
  struct probe_waiter *w = xcalloc (1, sizeof *w);
  w->ev = xevent_new (base, -1, 0, waiter_fire_cb, w);
  w->entry = e;
  w->cb = cb;
  w->arg = arg;
  LIST_INSERT_HEAD (&probe_waiters, w, link);
  return w;
}

/* Sets the outcome (err is stolen) and schedules the callback for the next loop turn. */
static void
waiter_ready (struct probe_waiter *w, const struct probe_entry *e, shim_error_t *err)
{
  w->entry = NULL;
  w->profile = err && *err ? NULL : &e->profile;
  w->info = err && *err ? NULL : &e->info;
  w->err = err ? steal_ptr (err) : NULL;
  event_active (w->ev, EV_TIMEOUT, 0);
}

static shim_error_t
error_copy (const struct shim_error_s *e)
{
  shim_error_t c = NULL;
  shim_error_make (&c, 0, e->code, "%s", e->msg);
  c->errno_ = e->errno_;
  return c;
}

static int
probe_error (const struct probe_entry *e, const struct spawn_result *sr, shim_error_t *err)
{
  if (sr->timed_out)
    return shim_error_make (err, 0, SHIM_DEADLINE_EXCEEDED,
                            "runtime %s did not answer --version within %u ms (killed)", e->binary,
                            PROFILE_PROBE_TIMEOUT_MS);
  if (sr->exec_errno)
    return shim_error_make (err, sr->exec_errno, SHIM_FAILED_PRECONDITION,
                            "runtime %s cannot be run", e->binary);
  return shim_error_make (err, 0, SHIM_FAILED_PRECONDITION,
                          "runtime %s crashed on --version (signal %d)", e->binary,
                          WTERMSIG (sr->status));
}

/* The probe outcome also lives on disk (tmpfs), so the next shim process, one per container,
 * does not run `--version` again: keyed by the binary's path, valid while its file id is. */
static char *
disk_cache_path (const char *path)
{
  const char *dir = getenv ("CSHIM_PROBE_CACHE_DIR");
  char hex[SHA256_DIGEST_STRING_LENGTH];
  SHA256Data ((const uint8_t *) path, strlen (path), hex);
  return xasprintf ("%s/%s", dir && dir[0] ? dir : PROFILE_DISK_CACHE_DIR, hex);
}

/* Runs in the loop once per probed binary: a small write to tmpfs, temp file + rename and no
 * fsync (write_file_atomic; a lost entry only costs the next shim a probe). Not silent: the
 * process's first failure is a warning (a full or read-only /run would otherwise make every
 * shim probe again, unexplained), later ones are debug lines. */
static void
disk_cache_store (const struct probe_entry *e, const char *text)
{
  static bool warned;
  if (!e->known_id)
    return;
  cleanup_free char *file = disk_cache_path (e->path);
  cleanup_free char *dir = xstrdup (file);
  *strrchr (dir, '/') = '\0';
  cleanup_free char *data
      = xasprintf ("%llu %llu %lld %lld %ld\n%.*s", (unsigned long long) e->id.dev,
                   (unsigned long long) e->id.ino, (long long) e->id.size,
                   (long long) e->id.mtime.tv_sec, e->id.mtime.tv_nsec, PROBE_OUTPUT_MAX, text);
  shim_error_t err = NULL;
  if (mkdir_p (dir, 0700) < 0)
    shim_error_make (&err, errno, SHIM_UNKNOWN, "create `%s`", dir);
  else
    write_file_atomic (file, data, strlen (data), 0600, &err);
  if (err == NULL)
    return;
  cleanup_free char *context
      = xasprintf ("runtime %s: probe cache not written, the next shim probes again", e->binary);
  log_error_release (warned ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN, context, &err);
  warned = true;
}

/* The `--version` text cached for path when it still describes the same file, else NULL. */
static char *
disk_cache_load (const char *path, const struct file_id *id)
{
  cleanup_free char *file = disk_cache_path (path);
  cleanup_free char *data = NULL;
  if (read_file (file, PROBE_CACHE_FILE_MAX, &data, NULL, NULL) < 0)
    return NULL;
  return profile_cache_parse (data, id);
}

char *
profile_cache_parse (const char *data, const struct file_id *id)
{
  unsigned long long dev, ino;
  long long size, sec;
  long nsec;
  int used = 0;
  if (sscanf (data, "%llu %llu %lld %lld %ld\n%n", &dev, &ino, &size, &sec, &nsec, &used) != 5
      || used == 0)
    return NULL;
  struct file_id cached = { (dev_t) dev, (ino_t) ino, (off_t) size, { (time_t) sec, nsec } };
  return file_id_equal (&cached, id) ? xstrdup (data + used) : NULL;
}

/* An entry from the disk cache: done at once, no process started. */
static struct probe_entry *
entry_from_disk (const char *binary, char **path, const struct file_id *id)
{
  cleanup_free char *text = disk_cache_load (*path, id);
  if (text == NULL)
    return NULL;
  struct probe_entry *e = xcalloc (1, sizeof *e);
  e->binary = xstrdup (binary);
  e->path = steal_ptr (path);
  e->id = *id;
  e->known_id = true;
  e->done = true;
  profile_resolve (profile_from_version (text, &e->info), &e->info, &e->profile);
  LIST_INSERT_HEAD (&probe_entries, e, link);
  return e;
}

/* Whatever the text, a runtime that answered gets a profile; one that could not is an error. */
static int
probe_outcome (struct probe_entry *e, const struct spawn_result *sr, shim_error_t *err)
{
  if (sr->timed_out || sr->exec_errno || WIFSIGNALED (sr->status))
    return probe_error (e, sr, err);
  const char *text = sr->out_len ? sr->out : sr->err;
  const struct runtime_profile *base = profile_from_version (text, &e->info);
  profile_resolve (base, &e->info, &e->profile);
  disk_cache_store (e, text);
  log_debug ("runtime %s (%s): profile %s, version %s, exit %d", e->binary, e->path, base->name,
             e->info.version[0] ? e->info.version : "unknown", sr->exit_code);
  return 0;
}

static void
probe_done_cb (const struct spawn_result *sr, void *arg)
{
  struct probe_entry *e = arg;
  shim_error_t err = NULL;
  e->spawn = NULL;
  int ret = probe_outcome (e, sr, &err);
  e->done = true;
  struct probe_waiter *w;
  LIST_FOREACH (w, &probe_waiters, link)
  {
    if (w->entry != e)
      continue;
    shim_error_t mine = err ? error_copy (err) : NULL;
    waiter_ready (w, e, &mine);
  }
  if (ret < 0)
    {
      /* Not cached: the binary may be installed or fixed by the next Create. */
      LIST_REMOVE (e, link);
      entry_free (e);
      shim_error_release (&err);
    }
}

/* Starts `<path> --version`; the entry takes path. */
static struct probe_entry *
entry_start (struct event_base *base, struct reaper *reaper, const char *binary, char **path,
             shim_error_t *err)
{
  struct probe_entry *e = xcalloc (1, sizeof *e);
  e->binary = xstrdup (binary);
  e->path = steal_ptr (path);
  e->known_id = file_id_of (e->path, &e->id);
  char *argv[] = { e->path, "--version", NULL };
  struct spawn_req req = {
    .argv = argv,
    .stdin_fd = SPAWN_FD_NULL,
    .stdout_fd = SPAWN_FD_CAPTURE,
    .stderr_fd = SPAWN_FD_CAPTURE,
    .timeout_ms = PROFILE_PROBE_TIMEOUT_MS,
    .capture_max = PROBE_OUTPUT_MAX,
  };
  e->spawn = spawn_start (base, reaper, &req, probe_done_cb, e, err);
  if (e->spawn == NULL)
    {
      entry_free (e);
      shim_error_wrap (err, "probe runtime %s", binary);
      return NULL;
    }
  LIST_INSERT_HEAD (&probe_entries, e, link);
  return e;
}

int
profile_probe (struct event_base *base, struct reaper *reaper, const char *binary,
               profile_probe_cb cb, void *arg, shim_error_t *err)
{
  if (binary == NULL || binary[0] == '\0')
    binary = "runc";
  cleanup_free char *path = find_in_path (binary);
  struct file_id id = { 0 };
  bool known_id = file_id_of (path, &id);
  struct probe_entry *e = entry_find (binary, known_id, &id);
  if (e == NULL && path && known_id)
    e = entry_from_disk (binary, &path, &id);
  if (e == NULL && (e = entry_start (base, reaper, binary, &path, err)) == NULL)
    return -1;
  struct probe_waiter *w = waiter_new (base, e, cb, arg);
  if (e->done)
    waiter_ready (w, e, NULL);
  return 0;
}

void
profile_cache_clear (void)
{
  while (!LIST_EMPTY (&probe_waiters))
    {
      struct probe_waiter *w = LIST_FIRST (&probe_waiters);
      LIST_REMOVE (w, link);
      event_freep (&w->ev);
      shim_error_release (&w->err);
      free (w);
    }
  while (!LIST_EMPTY (&probe_entries))
    {
      struct probe_entry *e = LIST_FIRST (&probe_entries);
      LIST_REMOVE (e, link);
      entry_free (e);
    }
}
