#include "base/util.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "base/error.h"

void
xalloc_failed (void)
{
  static const char msg[] = "cshim: out of memory\n";
  (void) !write (STDERR_FILENO, msg, sizeof msg - 1);
  abort ();
}

void *
xmalloc (size_t n)
{
  void *p = malloc (n ? n : 1);
  if (UNLIKELY (p == NULL))
    xalloc_failed ();
  return p;
}

void *
xcalloc (size_t nmemb, size_t n)
{
  void *p = calloc (nmemb ? nmemb : 1, n ? n : 1);
  if (UNLIKELY (p == NULL))
    xalloc_failed ();
  return p;
}

void *
xrealloc (void *p, size_t n)
{
  p = realloc (p, n ? n : 1);
  if (UNLIKELY (p == NULL))
    xalloc_failed ();
  return p;
}

char *
xstrdup (const char *s)
{
  char *r = strdup (s ? s : "");
  if (UNLIKELY (r == NULL))
    xalloc_failed ();
  return r;
}

char *
xstrndup (const char *s, size_t n)
{
  char *r = strndup (s, n);
  if (UNLIKELY (r == NULL))
    xalloc_failed ();
  return r;
}

char *
xvasprintf (const char *fmt, va_list ap)
{
  char *r;
  if (UNLIKELY (vasprintf (&r, fmt, ap) < 0))
    xalloc_failed ();
  return r;
}

char *
xasprintf (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *r = xvasprintf (fmt, ap);
  va_end (ap);
  return r;
}

void
cleanup_freep (void *p)
{
  free (*(void **) p);
}

void
cleanup_closep (int *fd)
{
  if (*fd >= 0)
    close (*fd);
}

void
cleanup_filep (FILE **f)
{
  if (*f)
    fclose (*f);
}

void
cleanup_strvp (char ***v)
{
  strv_free (*v);
}

size_t
strv_len (char *const *v)
{
  size_t n = 0;
  while (v && v[n])
    n++;
  return n;
}

void
strv_free (char **v)
{
  for (size_t i = 0; v && v[i]; i++)
    free (v[i]);
  free (v);
}

void
strv_push (char ***v, const char *s)
{
  size_t n = strv_len (*v);
  *v = xrealloc (*v, (n + 2) * sizeof (char *));
  (*v)[n] = xstrdup (s);
  (*v)[n + 1] = NULL;
}

void
strv_pushf (char ***v, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *s = xvasprintf (fmt, ap);
  va_end (ap);
  strv_push (v, s);
  free (s);
}

int
read_file_at (int dirfd, const char *path, size_t max, char **out, size_t *len, shim_error_t *err)
{
  cleanup_close int fd = openat (dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return shim_error_make (err, errno, SHIM_UNKNOWN, "open `%s`", path);

  size_t cap = 4096, used = 0;
  cleanup_free char *buf = xmalloc (cap);
  for (;;)
    {
      if (used + 1 >= cap)
        {
          if (cap > max)
            break;
          cap *= 2;
          buf = xrealloc (buf, cap);
        }
      size_t want = cap - used - 1;
      if (used + want > max)
        want = max - used;
      if (want == 0)
        break;
      ssize_t r = read (fd, buf + used, want);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        return shim_error_make (err, errno, SHIM_UNKNOWN, "read `%s`", path);
      if (r == 0)
        break;
      used += r;
    }
  buf[used] = '\0';
  if (len)
    *len = used;
  *out = steal_ptr (&buf);
  return 0;
}

int
read_file (const char *path, size_t max, char **out, size_t *len, shim_error_t *err)
{
  return read_file_at (AT_FDCWD, path, max, out, len, err);
}

int
write_all (int fd, const void *data, size_t len)
{
  const char *p = data;
  while (len > 0)
    {
      ssize_t w = write (fd, p, len);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        return -1;
      p += w;
      len -= w;
    }
  return 0;
}

int
write_file_atomic (const char *path, const void *data, size_t len, mode_t mode, shim_error_t *err)
{
  cleanup_free char *tmp = xasprintf ("%s.%d.tmp", path, (int) getpid ());
  cleanup_close int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0)
    return shim_error_make (err, errno, SHIM_UNKNOWN, "create `%s`", tmp);
  if (write_all (fd, data, len) < 0)
    {
      int saved = errno;
      unlink (tmp);
      return shim_error_make (err, saved, SHIM_UNKNOWN, "write `%s`", tmp);
    }
  if (rename (tmp, path) < 0)
    {
      int saved = errno;
      unlink (tmp);
      return shim_error_make (err, saved, SHIM_UNKNOWN, "rename `%s`", path);
    }
  return 0;
}

void
close_fd (int *fd)
{
  if (*fd >= 0)
    close (*fd);
  *fd = -1;
}

void
close_fds (const int *fds, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (fds[i] >= 0)
      close (fds[i]);
}

int
set_nonblock (int fd, bool on)
{
  int fl = fcntl (fd, F_GETFL);
  if (fl < 0)
    return -1;
  fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
  return fcntl (fd, F_SETFL, fl);
}

int
set_cloexec (int fd, bool on)
{
  int fl = fcntl (fd, F_GETFD);
  if (fl < 0)
    return -1;
  fl = on ? (fl | FD_CLOEXEC) : (fl & ~FD_CLOEXEC);
  return fcntl (fd, F_SETFD, fl);
}

int
mkdir_p (const char *path, mode_t mode)
{
  cleanup_free char *p = xstrdup (path);
  for (char *s = p + 1; *s; s++)
    {
      if (*s != '/')
        continue;
      *s = '\0';
      if (mkdir (p, mode) < 0 && errno != EEXIST)
        return -1;
      *s = '/';
    }
  if (mkdir (p, mode) < 0 && errno != EEXIST)
    return -1;
  return 0;
}

struct timespec
now_realtime (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  return ts;
}

uint64_t
now_monotonic_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
format_rfc3339 (const struct timespec *ts, char *buf, size_t size)
{
  struct tm tm;
  char date[32];
  gmtime_r (&ts->tv_sec, &tm);
  strftime (date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf (buf, size, "%s.%09ldZ", date, (long) ts->tv_nsec);
}

int
wait_status_to_exit_code (int status)
{
  if (WIFSIGNALED (status))
    return 128 + WTERMSIG (status);
  if (WIFEXITED (status))
    return WEXITSTATUS (status);
  return 255;
}
