#ifndef CSHIM_VERBS_H
#define CSHIM_VERBS_H

/* What a runtime call is, as data: the verbs, the optional flags whose support differs between
 * runtimes, one call and the runtime's configuration, plus the pure questions about a call
 * (its verb's name, the flags it uses). The bottom of src/runtime: runtime.h, profile.h and
 * config.h include this header and none of each other, so the spelling of a call (runtime.c),
 * what a runtime accepts (profile.c) and where the configuration comes from (config.c) depend
 * on these types only. The verb table behind the questions is in verbs.c. */

#include <stdbool.h>

struct runtime_profile;

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

/* runc's name of a verb ("checkpoint"), which is also how errors name it. */
const char *runtime_verb_name (enum runtime_verb verb);
/* The RUNTIME_FLAG_* bits this call would put on the command line (cfg may be NULL). */
unsigned runtime_call_flags (const struct runtime_call *call, const struct runtime_cfg *cfg);
/* "--empty-ns" for RUNTIME_FLAG_EMPTY_NS; "?" for anything but a single known bit. */
const char *runtime_flag_name (unsigned flag);
/* Appends the subcommand's own arguments for call (flags, then the id and signal), in the
 * verb table's order, leaving out the RUNTIME_FLAG_* bits in drop. cfg may be NULL. */
void runtime_verb_args (char ***argv, const struct runtime_call *call,
                        const struct runtime_cfg *cfg, unsigned drop);

#endif
