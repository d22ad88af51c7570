#ifndef CSHIM_RUNTIME_LOG_H
#define CSHIM_RUNTIME_LOG_H

/* The tail of a runtime's log that a failed call appended, read by a child (not by the loop:
 * the log may sit on a slow disk): its argv, and the last error in what it printed. */

#include <stddef.h>
#include <sys/types.h>

/* `sh -c` printing "cut" or "whole" on a line, then at most RUNTIME_LOG_TAIL_MAX bytes of what
 * the log got from offset on (all of it when the log is now shorter: it was truncated). Prints
 * nothing when the log is missing or not a regular file. */
char **runtime_log_tail_argv (const char *log_path, off_t offset);
/* The last error in that output, NULL if none. When the tail was cut, its first line (which
 * began before the tail) is skipped rather than parsed. */
char *runtime_log_tail_error (const char *out, size_t len);

#endif
