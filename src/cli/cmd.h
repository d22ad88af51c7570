#ifndef CSHIM_CMD_H
#define CSHIM_CMD_H

/* Blocking command runs for the short-lived CLI modes (`delete`, `-info`) only: the server
 * never blocks and uses spawn.c instead. */

#include <stddef.h>

/* Runs argv (PATH lookup) in cwd (NULL: unchanged) with stdin on /dev/null and stderr
 * inherited. out (may be NULL) receives up to 1 MiB of stdout. Returns the exit code (128+sig
 * for a signal), or -1 if it could not run or was killed at the deadline. */
int cmd_run (char *const *argv, const char *cwd, unsigned timeout_ms, char **out, size_t *out_len);

#endif
