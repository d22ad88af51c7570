#ifndef CSHIM_RUNTIME_H
#define CSHIM_RUNTIME_H

/* Driving an OCI runtime CLI: the runtime handle, argv building (pure, one builder for every verb),
 * parsing what the runtime leaves behind (pid files, JSON log), mapping its wording to gRPC codes,
 * and runtime_run(), which spawns one invocation asynchronously and turns a failure into an error
 * carrying the runtime's own message. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"
#include "runtime/verbs.h"

struct event_base;
struct reaper;
struct spawn;
struct trace;

/* The runtime handle: everything a call needs beyond the call itself. One per container,
 * filled once when the container is made (model_create) and embedded in it: the shim's
 * loop and reaper and the namespace, the container's configuration (with the profile the
 * runtime resolved to, cfg->profile), bundle, log and trace. The handle owns nothing: whoever
 * embeds it (struct container) keeps the fields alive and closes the trace. A short-lived one
 * (the `delete` action) is a compound literal with only what runtime_argv() reads. */
struct runtime
{
  struct event_base *base; /* runtime_run() only */
  struct reaper *reaper; /* runtime_run() only */
  const struct runtime_cfg *cfg; /* NULL: defaults (runc, generic profile) */
  const char *namespace; /* --root <root>/<namespace> */
  const char *cwd; /* working directory of each call; NULL: the call's bundle when absolute */
  const char *log_path; /* --log <path> --log-format json; NULL: no --log */
  struct trace *trace; /* runtime-call trace (trace.h); NULL: off, at no cost */
};

/* Full argv: binary, global flags (--root <root>/<ns>, --log, --log-format json,
 * --systemd-cgroup, extra args), subcommand and its flags, then the id (and signal).
 * Spelled as cfg->profile says: its subcommand names, and without the flags the profile
 * marks as harmless to drop; flags it lacks outright stay (profile_check_call() refuses
 * such calls, and runtime_run() checks before it spawns). */
char **runtime_argv (const struct runtime *rt, const struct runtime_call *call);

/* Pid file contents ("1234" with optional whitespace). */
int runtime_parse_pid (const char *text, pid_t *pid, shim_error_t *err);
/* Message of the last error-level entry of a JSON-lines runtime log: key "msg" or "message",
 * "level" compared case-insensitively. Lines that are not JSON are skipped. NULL if none. */
char *runtime_log_last_error (const char *text, size_t len);
/* What a failed runtime_run() reads back from the runtime's JSON log, at most: the tail of what
 * the call appended, read by a child (runtime_log.c), not by the loop. Lines that started before
 * the tail are skipped, so an error line longer than this is not found there; the error falls back
 * to the runtime's stderr (runc prints its error there as well). runc and crun write one error line
 * of a few hundred bytes. */
#define RUNTIME_LOG_TAIL_MAX (64 * 1024)
/* gRPC code for a runtime error message (one table: "does not exist" -> NOT_FOUND, ...). */
int runtime_error_code (const char *msg);
/* The same table with the rows that only make sense for one kind of verb: a bare "exists" at
 * create (AlreadyExists), and crun's "No such file or directory" for verbs that address an
 * existing container (NotFound; not create/exec, where ENOENT means a missing file). */
int runtime_verb_error_code (enum runtime_verb verb, const char *msg);

/* The outcome of runtime_run(). On failure err is set (owned by the callee: it is released
 * after the callback returns unless the callback steals it with steal_ptr(&res->err)). */
struct runtime_result
{
  int exit_code;
  shim_error_t err; /* NULL on success: "<verb> failed: <runtime's message>" */
  const char *out; /* captured stdout when requested */
  size_t out_len;
  /* CLOCK_MONOTONIC ms (now_monotonic_ms()) taken just before the runtime was spawned: no
   * process the call made (the pid in its pid file) existed earlier, which is what
   * reaper_watch_since() needs to tell its exit from a reused pid's. */
  uint64_t started_ms;
};

typedef void (*runtime_cb) (struct runtime_result *res, void *arg);

struct runtime_io
{
  int stdin_fd, stdout_fd, stderr_fd; /* SPAWN_FD_NULL/SPAWN_FD_CAPTURE or fds */
  const void *stdin_data;
  size_t stdin_len;
};

/* Spawns one runtime invocation through rt (in rt->cwd). io NULL means: stdin null, stdout and
 * stderr captured. A call the profile cannot make (profile_check_call()) is refused here:
 * NULL, nothing spawned, err "<verb> failed: <why>". On failure the error text is, in order of
 * preference: the runtime's last log error written during this call (within the last
 * RUNTIME_LOG_TAIL_MAX bytes it appended, read by a child on the same handle before cb runs:
 * a cancel still reaches it), its stderr, "exec <binary>: <errno>", or the deadline. */
struct spawn *runtime_run (const struct runtime *rt, const struct runtime_call *call,
                           const struct runtime_io *io, runtime_cb cb, void *arg,
                           shim_error_t *err);

#endif
