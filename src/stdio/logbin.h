#ifndef CSHIM_LOGBIN_H
#define CSHIM_LOGBIN_H

/* containerd's logging-binary protocol (`binary://` and `binary-v2://` stdout URIs). The
 * logger runs as <path> [key value]... with only CONTAINER_ID and CONTAINER_NAMESPACE in its
 * environment, reads the container's stdout on fd 3 and stderr on fd 4, and signals readiness
 * on fd 5: binary:// by closing it (or writing a byte), binary-v2:// by writing a byte.
 * Nothing here blocks: readiness and teardown are driven by the loop. */

#include <stdbool.h>
#include <sys/types.h>

#include "base/error.h"

struct event_base;
struct reaper;
struct logbin;

/* Pure. path = the URI path (percent-decoded, must be absolute); args = the query as argv
 * pairs "key" "value" (form-decoded: %XX and '+'), each key once with its first value, in
 * order of first appearance; v2 = scheme binary-v2. The caller frees *path and *args. */
int logbin_parse_uri (const char *uri, char **path, char ***args, bool *v2, shim_error_t *err);

/* Called exactly once from the loop (never from inside logbin_start), unless logbin_stop()
 * comes first. err is NULL when the logger is ready; the callback owns err. Either way the
 * logbin stays the caller's until logbin_stop(). */
typedef void (*logbin_ready_cb) (shim_error_t err, void *arg);

/* Starts the logger. On success *stdout_w and *stderr_w are the write ends of the pipes it
 * reads (blocking, O_CLOEXEC), owned by the caller: they become the container's stdout and
 * stderr. Fails synchronously (NULL, nothing started) on a bad URI or a path that is not an
 * executable file. */
struct logbin *logbin_start (struct event_base *base, struct reaper *reaper, const char *uri,
                             const char *namespace, const char *id, int *stdout_w, int *stderr_w,
                             logbin_ready_cb ready_cb, void *arg, shim_error_t *err);

/* Releases the logger: SIGTERM, then SIGKILL after the grace period (12 s by default) if it
 * is still there; the memory goes once it has been reaped. Never blocks. Call exactly once
 * for every logbin_start() that succeeded, at any time (also from inside ready_cb); after it
 * ready_cb is never called. The caller closes its pipe ends itself (the logger sees EOF only
 * when every copy of them is closed). */
void logbin_stop (struct logbin *l);

/* Tunables, mainly for tests. The readiness deadline (10 s by default) is re-armed from now. */
void logbin_set_term_grace_ms (struct logbin *l, unsigned ms);
void logbin_set_ready_timeout_ms (struct logbin *l, unsigned ms);

pid_t logbin_pid (const struct logbin *l);

#endif
