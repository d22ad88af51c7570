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
  unsigned long dropped;
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
  close (fd);
  set_nonblock (STDERR_FILENO, true);
  logger.fd = STDERR_FILENO;
  return 0;
}

bool
log_enabled (enum log_level level)
{
  return level != LOG_LEVEL_DEBUG || logger.debug;
}

unsigned long
log_dropped (void)
{
  return logger.dropped;
}

static void
log_write_line (const char *line)
{
  char buf[PIPE_BUF];
  size_t n = strlen (line);
  /* One write per line, at most PIPE_BUF, so lines never interleave and never block. */
  if (n > sizeof buf - 1)
    n = sizeof buf - 1;
  memcpy (buf, line, n);
  buf[n++] = '\n';
  ssize_t w;
  do
    w = write (logger.fd, buf, n);
  while (w < 0 && errno == EINTR);
  if (w < 0)
    logger.dropped++;
}

void
log_msg (enum log_level level, const char *fmt, ...)
{
  if (!log_enabled (level))
    return;
  char msg[1024];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);

  char ts[48];
  struct timespec now = now_realtime ();
  format_rfc3339 (&now, ts, sizeof ts);

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
  if (line)
    log_write_line (line);
  free (line);
}

void
log_error_release (enum log_level level, const char *context, shim_error_t *err)
{
  if (err == NULL || *err == NULL)
    return;
  log_msg (level, "%s: %s", context, (*err)->msg);
  shim_error_release (err);
}
