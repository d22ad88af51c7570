#ifndef CSHIM_LOG_H
#define CSHIM_LOG_H

#include <stdbool.h>

#include "base/error.h"

/* JSON-lines logger. Before log_open() it writes to stderr; afterwards to the bundle's `log`
 * FIFO, non-blocking: a full pipe drops the line (and counts it), never blocks the loop. */
enum log_level
{
  LOG_LEVEL_ERROR,
  LOG_LEVEL_WARN,
  LOG_LEVEL_INFO,
  LOG_LEVEL_DEBUG,
};

void log_init (const char *namespace, const char *id, bool debug);
/* Opens path O_WRONLY|O_NONBLOCK and makes it the log destination; also dup2s it on fd 2. */
int log_open_fifo (const char *path, shim_error_t *err);
bool log_enabled (enum log_level level);
void log_msg (enum log_level level, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
/* Logs and releases an error. */
void log_error_release (enum log_level level, const char *context, shim_error_t *err);

#define log_error(...) log_msg (LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg (LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg (LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
  do                                                                                               \
    {                                                                                              \
      if (log_enabled (LOG_LEVEL_DEBUG))                                                           \
        log_msg (LOG_LEVEL_DEBUG, __VA_ARGS__);                                                    \
    }                                                                                              \
  while (0)

#endif
