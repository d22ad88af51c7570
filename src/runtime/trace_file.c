/* The trace file: <dir>/<namespace>/<id>.jsonl and the bundle's pointer to it, the count
 * bound of a namespace directory, and appending lines under the size cap. */

#include "runtime/trace.h"
#include "runtime/trace_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/log.h"
#include "base/util.h"

/* ---- the file ---- */

static bool
valid_name (const char *s)
{
  return s && s[0] && strchr (s, '/') == NULL && strcmp (s, ".") != 0 && strcmp (s, "..") != 0;
}

/* <bundle>/cshim-trace -> path, replacing a link left by an earlier container. */
static int
make_pointer (const char *bundle, const char *path, shim_error_t *err)
{
  cleanup_free char *link = xasprintf ("%s/%s", bundle, TRACE_POINTER_NAME);
  if (symlink (path, link) == 0)
    return 0;
  if (errno != EEXIST)
    return shim_error_make (err, errno, SHIM_UNKNOWN, "symlink `%s`", link);
  if (unlink (link) < 0 || symlink (path, link) < 0)
    return shim_error_make (err, errno, SHIM_UNKNOWN, "replace `%s`", link);
  return 0;
}

static char *
make_dir (const char *dir, const char *namespace, shim_error_t *err)
{
  cleanup_free char *ns_dir
      = xasprintf ("%s/%s", dir && dir[0] ? dir : TRACE_DEFAULT_DIR, namespace);
  /* The lines carry argv and environment values: only the shim's user reads them. */
  if (mkdir_p (ns_dir, 0700) < 0)
    {
      shim_error_make (err, errno, SHIM_UNKNOWN, "create trace directory `%s`", ns_dir);
      return NULL;
    }
  char *abs = realpath (ns_dir, NULL);
  if (abs == NULL)
    shim_error_make (err, errno, SHIM_UNKNOWN, "resolve `%s`", ns_dir);
  return abs;
}

/* Traces outlive their tasks on purpose, so the directory is bounded by count instead: past
 * TRACE_MAX_FILES the oldest files go. */
static int
mtime_cmp (const void *a, const void *b)
{
  const struct timespec *x = &((const struct stat *) a)->st_mtim;
  const struct timespec *y = &((const struct stat *) b)->st_mtim;
  return x->tv_sec != y->tv_sec ? (x->tv_sec < y->tv_sec ? -1 : 1)
                                : (x->tv_nsec < y->tv_nsec ? -1 : x->tv_nsec > y->tv_nsec);
}

static void
prune_dir (const char *ns_dir)
{
  DIR *d = opendir (ns_dir);
  if (d == NULL)
    return;
  size_t n = 0, cap = 64;
  struct stat *files = xmalloc (cap * sizeof *files);
  char **names = xmalloc (cap * sizeof *names);
  for (struct dirent *e; (e = readdir (d));)
    {
      if (e->d_name[0] == '.' || fstatat (dirfd (d), e->d_name, &files[n], 0) < 0)
        continue;
      files[n].st_ino = n; /* the index survives the sort */
      names[n++] = xstrdup (e->d_name);
      if (n == cap)
        {
          files = xrealloc (files, (cap *= 2) * sizeof *files);
          names = xrealloc (names, cap * sizeof *names);
        }
    }
  if (n > TRACE_MAX_FILES)
    {
      qsort (files, n, sizeof *files, mtime_cmp);
      for (size_t i = 0; i < n - TRACE_MAX_FILES; i++)
        unlinkat (dirfd (d), names[files[i].st_ino], 0);
    }
  for (size_t i = 0; i < n; i++)
    free (names[i]);
  free (names);
  free (files);
  closedir (d);
}

struct trace *
trace_open (const char *dir, const char *namespace, const char *id, const char *bundle,
            shim_error_t *err)
{
  if (!valid_name (namespace) || !valid_name (id))
    {
      shim_error_make (err, 0, SHIM_INVALID_ARGUMENT,
                       "trace: namespace `%s` or id `%s` is "
                       "not a file name",
                       namespace ? namespace : "", id ? id : "");
      return NULL;
    }
  cleanup_free char *ns_dir = make_dir (dir, namespace, err);
  if (ns_dir == NULL)
    return NULL;
  prune_dir (ns_dir);
  struct trace *t = xcalloc (1, sizeof *t);
  t->refs = 1;
  t->fd = -1;
  t->max_size = TRACE_DEFAULT_MAX_SIZE;
  t->namespace = xstrdup (namespace);
  t->id = xstrdup (id);
  t->path = xasprintf ("%s/%s.jsonl", ns_dir, id);
  cleanup_error shim_error_t link_err = NULL;
  if (bundle && bundle[0] && make_pointer (bundle, t->path, &link_err) < 0)
    log_warn ("trace: %s (the trace is still written to %s)", link_err->msg, t->path);
  return t;
}

void
trace_set_max_size (struct trace *t, size_t max)
{
  t->max_size = max ? max : TRACE_DEFAULT_MAX_SIZE;
}

const char *
trace_path (const struct trace *t)
{
  return t->path;
}

struct trace *
trace_ref (struct trace *t)
{
  if (t)
    t->refs++;
  return t;
}

void
trace_close (struct trace *t)
{
  if (t == NULL || --t->refs > 0)
    return;
  if (t->fd >= 0)
    close (t->fd);
  free (t->namespace);
  free (t->id);
  free (t->path);
  free (t);
}

static void
trace_turn_off (struct trace *t, const char *why, int errno_)
{
  t->off = true;
  log_warn ("trace: %s `%s`%s%s; runtime calls are no longer recorded there", why, t->path,
            errno_ ? ": " : "", errno_ ? strerror (errno_) : "");
}

static int
trace_open_fd (const char *path)
{
  /* O_APPEND: lines from several writers (the server, `delete`) never overwrite each other;
   * a regular file on tmpfs never blocks, O_NONBLOCK only guards against a planted FIFO. */
  return open (path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK,
               0600);
}

/* A file that an earlier container with this id filled up (no room for our first line) is
 * set aside as <path>.old, not appended to: otherwise the new container would go untraced. */
static void
trace_rotate_full (struct trace *t, size_t first_line)
{
  struct stat st;
  if (fstat (t->fd, &st) < 0 || !S_ISREG (st.st_mode) || st.st_size == 0
      || (size_t) st.st_size + first_line <= t->max_size)
    return;
  cleanup_free char *old = xasprintf ("%s.old", t->path);
  if (rename (t->path, old) < 0)
    {
      log_warn ("trace: rename `%s`: %s", t->path, strerror (errno));
      return;
    }
  close (t->fd);
  t->fd = trace_open_fd (t->path);
}

static int
trace_file_open (struct trace *t, size_t first_line)
{
  if (t->fd >= 0)
    return 0;
  t->fd = trace_open_fd (t->path);
  if (t->fd >= 0)
    trace_rotate_full (t, first_line);
  if (t->fd < 0)
    {
      trace_turn_off (t, "cannot open", errno);
      return -1;
    }
  return 0;
}

/* One write(2) per line: a reader sees whole lines or, after a crash, a cut last one. */
static int
trace_append_raw (struct trace *t, const char *line)
{
  cleanup_free char *buf = xasprintf ("%s\n", line);
  size_t n = strlen (buf);
  ssize_t w;
  do
    w = write (t->fd, buf, n);
  while (w < 0 && errno == EINTR);
  if (w == (ssize_t) n)
    return 0;
  trace_turn_off (t, "cannot write", w < 0 ? errno : ENOSPC);
  return -1;
}

static void
trace_write_cap_note (struct trace *t)
{
  struct timespec now = now_realtime ();
  char time[64];
  format_rfc3339 (&now, time, sizeof time);
  cJSON *o = cJSON_CreateObject ();
  cJSON_AddStringToObject (o, "time", time);
  cJSON_AddStringToObject (o, "id", t->id);
  cJSON_AddStringToObject (o, "namespace", t->namespace);
  cleanup_free char *note = xasprintf ("trace reached its size limit of %zu bytes; later "
                                       "runtime calls are not recorded",
                                       t->max_size);
  cJSON_AddStringToObject (o, "note", note);
  cleanup_free char *line = cJSON_PrintUnformatted (o);
  cJSON_Delete (o);
  if (line && trace_append_raw (t, line) < 0)
    return;
  trace_turn_off (t, "size limit reached in", 0);
}

void
trace_append (struct trace *t, const char *line)
{
  struct stat st;
  size_t n = strlen (line) + 1;
  if (t->off || trace_file_open (t, n) < 0)
    return;
  if (fstat (t->fd, &st) < 0)
    {
      trace_turn_off (t, "cannot stat", errno);
      return;
    }
  /* Pruned by another container's trace_open while this one still runs: start the file anew
   * rather than write where nobody can read. */
  if (st.st_nlink == 0)
    {
      close (t->fd);
      t->fd = -1;
      if (trace_file_open (t, n) < 0 || fstat (t->fd, &st) < 0)
        return;
    }
  size_t size = st.st_size;
  if (size >= t->max_size) /* another writer got there first and wrote the note */
    trace_turn_off (t, "size limit reached in", 0);
  else if (size + n > t->max_size)
    trace_write_cap_note (t);
  else
    trace_append_raw (t, line);
}
