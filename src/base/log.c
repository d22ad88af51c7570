#include "base/log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"

/* The logger is process-wide by nature (it owns fd 2), so its state is file-local. */
static struct
{
  int fd;
  bool debug;
  char namespace[128];
  char id[256];
} logger = { .fd = STDERR_FILENO };

static const char *const level_names[] = { "error", "warning", "info", "debug" };

void
log_init (const char *namespace, const char *id, bool debug)
{
  snprintf (logger.namespace, sizeof logger.namespace, "%s", namespace ? namespace : "");
  snprintf (logger.id, sizeof logger.id, "%s", id ? id : "");
  logger.debug = debug;
}

int
log_open_fifo (const char *path, shim_error_t *err)
{
  int fd = open (path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return shim_error_make (err, errno, SHIM_UNKNOWN, "open log `%s`", path);
  /* fd 2 also points at the FIFO so that libc/sanitizer messages reach containerd. */
  if (dup2 (fd, STDERR_FILENO) < 0)
    {
      int saved = errno;
      close (fd);
      return shim_error_make (err, saved, SHIM_UNKNOWN, "dup2 log");
    }
  /* Non-blocking already: O_NONBLOCK belongs to the open file, which dup2 shares. Started
   * with fd 2 closed, open returned 2 itself, which must stay. */
  if (fd != STDERR_FILENO)
    close (fd);
  logger.fd = STDERR_FILENO;
  return 0;
}

bool
log_enabled (enum log_level level)
{
  return level != LOG_LEVEL_DEBUG || logger.debug;
}

/* A line and its newline go out in one write of at most PIPE_BUF bytes: atomic, so lines of
 * several writers never interleave, and never cut. */
#define LOG_LINE_MAX (PIPE_BUF - 1)
/* Ends a message that had to be shortened to fit. */
#define LOG_TRUNCATED " [truncated]"

static void
log_write_line (const char *line)
{
  char buf[PIPE_BUF];
  size_t n = strlen (line);
  if (n > LOG_LINE_MAX) /* log_render_fitting made it fit */
    return;
  memcpy (buf, line, n);
  buf[n++] = '\n';
  ssize_t w;
  do /* a log nobody can take loses the line: there is nowhere to report it */
    w = write (logger.fd, buf, n);
  while (w < 0 && errno == EINTR);
}

static char *
log_render (enum log_level level, const char *ts, const char *msg)
{
  cJSON *o = cJSON_CreateObject ();
  cJSON_AddStringToObject (o, "time", ts);
  cJSON_AddStringToObject (o, "level", level_names[level]);
  cJSON_AddStringToObject (o, "msg", msg);
  cJSON_AddStringToObject (o, "runtime", "cshim");
  if (logger.namespace[0])
    cJSON_AddStringToObject (o, "namespace", logger.namespace);
  if (logger.id[0])
    cJSON_AddStringToObject (o, "id", logger.id);
  cJSON_AddNumberToObject (o, "pid", getpid ());
  char *line = cJSON_PrintUnformatted (o);
  cJSON_Delete (o);
  return line;
}

/* The line for msg cut to its first len bytes (backed off to a UTF-8 boundary) and marked;
 * NULL when that line would not fit. buf has room for msg and the marker. */
static char *
log_render_cut (enum log_level level, const char *ts, const char *msg, size_t len, char *buf)
{
  while (len > 0 && ((unsigned char) msg[len] & 0xC0) == 0x80)
    len--;
  memcpy (buf, msg, len);
  strcpy (buf + len, LOG_TRUNCATED);
  char *line = log_render (level, ts, buf);
  if (line && strlen (line) > LOG_LINE_MAX)
    {
      free (line);
      line = NULL;
    }
  return line;
}

/* The line for msg, which must fit LOG_LINE_MAX: a message too long for it is cut, never the
 * line, so every line stays valid JSON. Escaping makes the line's length uneven in the
 * message's (a control byte takes six), so the longest cut that fits is searched for. */
static char *
log_render_fitting (enum log_level level, const char *ts, const char *msg)
{
  char *line = log_render (level, ts, msg);
  if (line == NULL || strlen (line) <= LOG_LINE_MAX)
    return line;
  free (line);
  size_t len = strlen (msg);
  cleanup_free char *buf = xmalloc (len + sizeof LOG_TRUNCATED);
  size_t lo = 0, hi = len - 1; /* the longest fitting cut is in [lo, hi] */
  while (lo < hi)
    {
      size_t mid = lo + (hi - lo + 1) / 2;
      char *probe = log_render_cut (level, ts, msg, mid, buf);
      if (probe)
        lo = mid;
      else
        hi = mid - 1;
      free (probe);
    }
  return log_render_cut (level, ts, msg, lo, buf);
}

void
log_msg (enum log_level level, const char *fmt, ...)
{
  if (!log_enabled (level))
    return;
  char *msg = NULL;
  va_list ap;
  va_start (ap, fmt);
  int n = vasprintf (&msg, fmt, ap);
  va_end (ap);
  if (n < 0)
    return;

  char ts[48];
  struct timespec now = now_realtime ();
  format_rfc3339 (&now, ts, sizeof ts);

  char *line = log_render_fitting (level, ts, msg);
  if (line)
    log_write_line (line);
  free (line);
  free (msg);
}

void
log_error_release (enum log_level level, const char *context, shim_error_t *err)
{
  if (err == NULL || *err == NULL)
    return;
  log_msg (level, "%s: %s", context, (*err)->msg);
  shim_error_release (err);
}
