#ifndef CSHIM_RUNTIME_H
#define CSHIM_RUNTIME_H

/* Driving an OCI runtime CLI: argv building (pure, one builder for every verb), parsing what
 * the runtime leaves behind (pid files, JSON log), mapping its wording to gRPC codes, and
 * runtime_run(), which spawns one invocation asynchronously and turns a failure into an
 * error carrying the runtime's own message. */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "base/error.h"

struct event_base;
struct reaper;
struct runtime_profile;
struct spawn;
struct trace;

/* Which runtime and how to call it; filled by config.c, persisted in the bundle. */
struct runtime_cfg
{
  char *binary; /* path or name looked up in PATH; default "runc" */
  char *root; /* state root; the namespace is appended: <root>/<ns> */
  bool systemd_cgroup;
  bool no_pivot_root;
  bool no_new_keyring;
  char **extra_args; /* global flags placed before the subcommand (NULL-terminated) */
  unsigned timeout_ms; /* deadline of one runtime call */
  /* How this runtime's CLI differs (profile.h); not owned. NULL: generic, i.e. runc's CLI. */
  const struct runtime_profile *profile;
};

enum runtime_verb
{
  RUNTIME_CREATE,
  RUNTIME_START,
  RUNTIME_KILL,
  RUNTIME_DELETE,
  RUNTIME_STATE,
  RUNTIME_PS,
  RUNTIME_PAUSE,
  RUNTIME_RESUME,
  RUNTIME_EXEC,
  RUNTIME_UPDATE,
  RUNTIME_CHECKPOINT,
  RUNTIME_RESTORE,
};
#define RUNTIME_VERB_COUNT (RUNTIME_RESTORE + 1)

/* Optional flags whose support differs between runtimes, one bit each: runtime_call_flags()
 * says which ones a call uses, a profile says which ones a runtime accepts. */
enum runtime_flag
{
  RUNTIME_FLAG_SYSTEMD_CGROUP = 1u << 0, /* global, before the subcommand */
  RUNTIME_FLAG_CONSOLE_SOCKET = 1u << 1,
  RUNTIME_FLAG_NO_PIVOT = 1u << 2,
  RUNTIME_FLAG_NO_NEW_KEYRING = 1u << 3,
  RUNTIME_FLAG_NO_SUBREAPER = 1u << 4,
  RUNTIME_FLAG_EMPTY_NS = 1u << 5,
  RUNTIME_FLAG_MANAGE_CGROUPS_MODE = 1u << 6,
  RUNTIME_FLAG_PARENT_PATH = 1u << 7,
  RUNTIME_FLAG_ALL = 1u << 8, /* kill --all */
  RUNTIME_FLAG_FORCE = 1u << 9, /* delete --force */
  RUNTIME_FLAG_FORMAT_JSON = 1u << 10, /* ps --format json */
};

/* CRIU options shared by checkpoint and restore (from containerd's CheckpointOptions). */
struct runtime_criu
{
  const char *image_path;
  const char *work_path;
  const char *parent_path; /* checkpoint only */
  const char *cgroups_mode; /* --manage-cgroups-mode */
  char *const *empty_ns; /* --empty-ns, repeated; NULL-terminated or NULL */
  bool tcp_established;
  bool ext_unix_sk;
  bool shell_job;
  bool file_locks;
  bool leave_running; /* checkpoint only: keep the container running */
};

/* One invocation. Fields not used by a verb are ignored. */
struct runtime_call
{
  enum runtime_verb verb;
  const char *id;
  const char *bundle; /* create */
  const char *pid_file; /* create, exec */
  const char *console_socket; /* create, exec */
  const char *process_file; /* exec: process spec JSON */
  int signal; /* kill */
  bool all; /* kill --all */
  bool force; /* delete --force */
  const struct runtime_criu *criu; /* checkpoint, restore */
};

/* Everything the runtime needs beyond the call: where it logs, which namespace. */
struct runtime_ctx
{
  const struct runtime_cfg *cfg;
  const char *namespace;
  const char *log_path; /* --log <path> --log-format json; NULL: no --log */
  struct trace *trace; /* runtime-call trace (trace.h); NULL: off, at no cost */
};

/* Full argv: binary, global flags (--root <root>/<ns>, --log, --log-format json,
 * --systemd-cgroup, extra args), subcommand and its flags, then the id (and signal).
 * Spelled as cfg->profile says: its subcommand names, and without the flags the profile
 * marks as harmless to drop; flags it lacks outright stay (profile_check_call() refuses
 * such calls, and runtime_run() checks before it spawns). */
char **runtime_argv (const struct runtime_ctx *ctx, const struct runtime_call *call);
/* runc's name of a verb ("checkpoint"), which is also how errors name it. */
const char *runtime_verb_name (enum runtime_verb verb);
/* The RUNTIME_FLAG_* bits this call would put on the command line (cfg may be NULL). */
unsigned runtime_call_flags (const struct runtime_call *call, const struct runtime_cfg *cfg);
/* "--empty-ns" for RUNTIME_FLAG_EMPTY_NS; "?" for anything but a single known bit. */
const char *runtime_flag_name (unsigned flag);

/* Pid file contents ("1234" with optional whitespace). */
int runtime_parse_pid (const char *text, pid_t *pid, shim_error_t *err);
/* Message of the last error-level entry of a JSON-lines runtime log: key "msg" or "message",
 * "level" compared case-insensitively. Lines that are not JSON are skipped. NULL if none. */
char *runtime_log_last_error (const char *text, size_t len);
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
};

typedef void (*runtime_cb) (struct runtime_result *res, void *arg);

struct runtime_io
{
  int stdin_fd, stdout_fd, stderr_fd; /* SPAWN_FD_NULL/SPAWN_FD_CAPTURE or fds */
  const void *stdin_data;
  size_t stdin_len;
};

/* Spawns one runtime invocation (cwd = bundle when set). io NULL means: stdin null, stdout and
 * stderr captured. A call the profile cannot make (profile_check_call()) is refused here:
 * NULL, nothing spawned, err "<verb> failed: <why>". On failure the error text is, in order of
 * preference: the runtime's last log error written during this call, its stderr, "exec <binary>:
 * <errno>", or the deadline. */
struct spawn *runtime_run (struct event_base *base, struct reaper *reaper,
                           const struct runtime_ctx *ctx, const struct runtime_call *call,
                           const char *cwd, const struct runtime_io *io, runtime_cb cb, void *arg,
                           shim_error_t *err);

#endif
