#ifndef CSHIM_TRACE_H
#define CSHIM_TRACE_H

/* Runtime-call trace: every runtime invocation of a container as one JSON line, appended to a
 * file outside the bundle (containerd removes the bundle with the task, the trace is for the
 * post-mortem) and copied, shortened, into the shim log. Off unless a `struct trace` exists:
 * callers hold a NULL pointer and pay nothing.
 *
 * The file is <dir>/<namespace>/<id>.jsonl, opened lazily with O_APPEND and written one
 * write(2) per line, so lines from the server and from `delete` never interleave. Past the
 * size cap nothing more is written and one note line says so. The bundle gets a symlink
 * `cshim-trace` to the file. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base/error.h"

struct spawn_result;
struct trace;

#define TRACE_DEFAULT_DIR "/run/cshim/trace"
#define TRACE_POINTER_NAME "cshim-trace"
#define TRACE_DEFAULT_MAX_SIZE (16u * 1024 * 1024)
/* Trace files kept per namespace directory; older ones are removed when a trace opens. */
#define TRACE_MAX_FILES 512
/* Bytes of the runtime's stderr kept in a line (its tail: the last lines explain). */
#define TRACE_STDERR_MAX 1024
/* Bytes of the error text kept in a line. */
#define TRACE_ERROR_MAX 4096

/* One finished runtime invocation. Strings may be NULL (written as null) and may hold any
 * bytes: what is not UTF-8 is written as the text \xNN. */
struct trace_entry
{
  const char *id; /* NULL: the trace's container id */
  const char *namespace; /* NULL: the trace's namespace */
  const char *verb; /* "create", "kill", ... */
  char *const *argv;
  const char *cwd;
  char *const *env_added; /* "NAME=VALUE": set for the runtime, absent or different in ours */
  char *const *env_removed; /* "NAME": in our environment, not in the runtime's */
  struct timespec started; /* CLOCK_REALTIME */
  uint64_t duration_ms;
  int pid; /* 0: never started */
  int exit_code; /* as containerd reports it: 128+signal when signalled */
  int signal; /* 0 unless killed by a signal */
  bool timed_out; /* killed by the shim at the runtime deadline */
  int exec_errno; /* exec of the runtime itself failed */
  const char *stderr_text; /* captured stderr, not NUL-terminated */
  size_t stderr_len;
  const char *error; /* the error the call produced (log.json text, stderr, ...) */
};

/* The line for e, without a newline; keys always present, in this order: time (end of the
 * call), id, namespace, verb, argv, cwd, env {added: {NAME: VALUE}, removed: [NAME]}, start,
 * duration_ms, pid, exit_code, signal, timed_out, exec_errno, stderr (tail, at most
 * TRACE_STDERR_MAX bytes), stderr_bytes (full length), error (at most TRACE_ERROR_MAX bytes,
 * then "..."). Pure; NULL only when out of memory. */
char *trace_format (const struct trace_entry *e);

/* What env (the runtime's environment) differs from base (ours): *added gets the "NAME=VALUE"
 * entries of env that base lacks or has with another value, *removed the names base has and
 * env does not. Each is a new NULL-terminated vector, or NULL when empty (strv_free). */
void trace_env_delta (char *const *base, char *const *env, char ***added, char ***removed);

/* Makes <dir>/<namespace> (dir NULL or "": TRACE_DEFAULT_DIR) and, when bundle is set, the
 * bundle's `cshim-trace` symlink (a failure there is logged, not returned). The file is
 * opened at the first write; if one left by an earlier container with this id has no room
 * for that line, it is moved to <id>.jsonl.old first. The namespace and id must be usable as
 * file names (else InvalidArgument). */
struct trace *trace_open (const char *dir, const char *namespace, const char *id,
                          const char *bundle, shim_error_t *err);
/* Changes the size cap (bytes; 0 means TRACE_DEFAULT_MAX_SIZE). */
void trace_set_max_size (struct trace *t, size_t max);
const char *trace_path (const struct trace *t);
/* Appends e's line to the file and logs it at info level as "runtime call {...}", cut to fit
 * one log line: without env, shorter stderr and error, then without stderr, argv, cwd, error
 * as needed. id and namespace default to the trace's. A failing file is reported once and
 * turned off (the log copy goes on); nothing is returned. t NULL: nothing happens. */
void trace_write (struct trace *t, const struct trace_entry *e);
/* A trace is shared by its owner and the calls in flight, which may finish after the owner
 * is gone: trace_ref takes a reference, trace_close drops one (NULL is fine). */
struct trace *trace_ref (struct trace *t);
void trace_close (struct trace *t);

/* One traced runtime call between spawn and completion (what runtime_run keeps). begin copies
 * argv and cwd, takes the time and a reference on t, and diffs envp against the shim's
 * environment (envp NULL: inherited, no delta). end writes the entry and frees the call;
 * free drops it unwritten (a canceled call). */
struct trace_call;
struct trace_call *trace_call_begin (struct trace *t, const char *verb, char *const *argv,
                                     const char *cwd, char *const *envp);
void trace_call_end (struct trace_call *c, const struct spawn_result *sr, const char *error);
void trace_call_free (struct trace_call *c);

#endif
