#include "runtime/verbs.h"

#include <stddef.h>

#include "base/util.h"

/* One table says, per verb, which arguments its subcommand takes and where their values come
 * from; argv building (runtime_argv) and the flag questions (runtime_call_flags, used by
 * profile_check_call) both read it, so they cannot disagree. */

/* Where a subcommand argument comes from. ARG_END (0) terminates a row. */
enum arg_src
{
  ARG_END = 0,
  ARG_LITERAL, /* flag, then literal (if any), always */
  ARG_BUNDLE, /* string sources: flag + value when the value is set */
  ARG_PID_FILE,
  ARG_CONSOLE,
  ARG_PROCESS,
  ARG_ALL, /* boolean sources: the flag when true */
  ARG_FORCE,
  ARG_NO_PIVOT,
  ARG_NO_KEYRING,
  ARG_ID, /* positional */
  ARG_SIGNAL,
  ARG_IMAGE, /* CRIU: strings */
  ARG_WORK,
  ARG_PARENT,
  ARG_CGROUPS_MODE,
  ARG_TCP, /* CRIU: booleans */
  ARG_EXT_UNIX,
  ARG_SHELL_JOB,
  ARG_FILE_LOCKS,
  ARG_LEAVE_RUNNING,
  ARG_EMPTY_NS, /* CRIU: repeated */
};

struct verb_arg
{
  enum arg_src src;
  const char *flag;
  const char *literal;
  unsigned bit; /* RUNTIME_FLAG_* when runtimes differ on this flag, else 0 */
};

struct verb_spec
{
  const char *name;
  struct verb_arg args[18];
};

/* Rows: plain flags (A), flags some runtimes lack (F), literals (L, LF), positionals (P). */
#define A(src, flag)                                                                               \
  {                                                                                                \
    src, flag, NULL, 0                                                                             \
  }
#define F(src, flag, bit)                                                                          \
  {                                                                                                \
    src, flag, NULL, RUNTIME_FLAG_##bit                                                            \
  }
#define L(flag, literal)                                                                           \
  {                                                                                                \
    ARG_LITERAL, flag, literal, 0                                                                  \
  }
#define LF(flag, literal, bit)                                                                     \
  {                                                                                                \
    ARG_LITERAL, flag, literal, RUNTIME_FLAG_##bit                                                 \
  }
#define P(src)                                                                                     \
  {                                                                                                \
    src, NULL, NULL, 0                                                                             \
  }

static const struct verb_spec verb_specs[] = {
  [RUNTIME_CREATE] = { "create",
                       { A (ARG_BUNDLE, "--bundle"), A (ARG_PID_FILE, "--pid-file"),
                         F (ARG_CONSOLE, "--console-socket", CONSOLE_SOCKET),
                         F (ARG_NO_PIVOT, "--no-pivot", NO_PIVOT),
                         F (ARG_NO_KEYRING, "--no-new-keyring", NO_NEW_KEYRING), P (ARG_ID) } },
  [RUNTIME_START] = { "start", { P (ARG_ID) } },
  [RUNTIME_KILL] = { "kill", { F (ARG_ALL, "--all", ALL), P (ARG_ID), P (ARG_SIGNAL) } },
  [RUNTIME_DELETE] = { "delete", { F (ARG_FORCE, "--force", FORCE), P (ARG_ID) } },
  [RUNTIME_STATE] = { "state", { P (ARG_ID) } },
  [RUNTIME_PS] = { "ps", { LF ("--format", "json", FORMAT_JSON), P (ARG_ID) } },
  [RUNTIME_PAUSE] = { "pause", { P (ARG_ID) } },
  [RUNTIME_RESUME] = { "resume", { P (ARG_ID) } },
  [RUNTIME_EXEC]
  = { "exec",
      { A (ARG_PROCESS, "--process"), F (ARG_CONSOLE, "--console-socket", CONSOLE_SOCKET),
        L ("--detach", NULL), A (ARG_PID_FILE, "--pid-file"), P (ARG_ID) } },
  [RUNTIME_UPDATE] = { "update", { L ("--resources", "-"), P (ARG_ID) } },
  [RUNTIME_CHECKPOINT]
  = { "checkpoint",
      { A (ARG_IMAGE, "--image-path"), A (ARG_WORK, "--work-path"),
        F (ARG_PARENT, "--parent-path", PARENT_PATH), A (ARG_TCP, "--tcp-established"),
        A (ARG_EXT_UNIX, "--ext-unix-sk"), A (ARG_SHELL_JOB, "--shell-job"),
        A (ARG_FILE_LOCKS, "--file-locks"), F (ARG_EMPTY_NS, "--empty-ns", EMPTY_NS),
        F (ARG_CGROUPS_MODE, "--manage-cgroups-mode", MANAGE_CGROUPS_MODE),
        A (ARG_LEAVE_RUNNING, "--leave-running"), P (ARG_ID) } },
  [RUNTIME_RESTORE]
  = { "restore",
      { A (ARG_IMAGE, "--image-path"), A (ARG_WORK, "--work-path"),
        A (ARG_TCP, "--tcp-established"), A (ARG_EXT_UNIX, "--ext-unix-sk"),
        A (ARG_SHELL_JOB, "--shell-job"), A (ARG_FILE_LOCKS, "--file-locks"),
        F (ARG_EMPTY_NS, "--empty-ns", EMPTY_NS),
        F (ARG_CGROUPS_MODE, "--manage-cgroups-mode", MANAGE_CGROUPS_MODE), L ("--detach", NULL),
        A (ARG_PID_FILE, "--pid-file"), F (ARG_CONSOLE, "--console-socket", CONSOLE_SOCKET),
        F (ARG_NO_PIVOT, "--no-pivot", NO_PIVOT), LF ("--no-subreaper", NULL, NO_SUBREAPER),
        A (ARG_BUNDLE, "--bundle"), P (ARG_ID) } },
};
#undef A
#undef F
#undef L
#undef LF
#undef P

/* Names of the RUNTIME_FLAG_* bits, in bit order. */
static const char *const flag_names[] = {
  "--systemd-cgroup",
  "--console-socket",
  "--no-pivot",
  "--no-new-keyring",
  "--no-subreaper",
  "--empty-ns",
  "--manage-cgroups-mode",
  "--parent-path",
  "--all",
  "--force",
  "--format json",
};

static const struct runtime_cfg default_cfg;

const char *
runtime_verb_name (enum runtime_verb verb)
{
  if ((size_t) verb >= ARRAY_SIZE (verb_specs) || verb_specs[verb].name == NULL)
    return "unknown";
  return verb_specs[verb].name;
}

static const char *
arg_string (enum arg_src src, const struct runtime_call *call)
{
  switch (src)
    {
    case ARG_BUNDLE:
      return call->bundle;
    case ARG_PID_FILE:
      return call->pid_file;
    case ARG_CONSOLE:
      return call->console_socket;
    case ARG_PROCESS:
      return call->process_file;
    case ARG_IMAGE:
      return call->criu ? call->criu->image_path : NULL;
    case ARG_WORK:
      return call->criu ? call->criu->work_path : NULL;
    case ARG_PARENT:
      return call->criu ? call->criu->parent_path : NULL;
    case ARG_CGROUPS_MODE:
      return call->criu ? call->criu->cgroups_mode : NULL;
    default:
      return NULL;
    }
}

static bool
criu_bool (enum arg_src src, const struct runtime_criu *criu)
{
  if (criu == NULL)
    return false;
  switch (src)
    {
    case ARG_TCP:
      return criu->tcp_established;
    case ARG_EXT_UNIX:
      return criu->ext_unix_sk;
    case ARG_SHELL_JOB:
      return criu->shell_job;
    case ARG_FILE_LOCKS:
      return criu->file_locks;
    case ARG_LEAVE_RUNNING:
      return criu->leave_running;
    default:
      return false;
    }
}

static bool
arg_bool (enum arg_src src, const struct runtime_cfg *cfg, const struct runtime_call *call)
{
  switch (src)
    {
    case ARG_ALL:
      return call->all;
    case ARG_FORCE:
      return call->force;
    case ARG_NO_PIVOT:
      return cfg->no_pivot_root;
    case ARG_NO_KEYRING:
      return cfg->no_new_keyring;
    default:
      return criu_bool (src, call->criu);
    }
}

/* Whether a row puts anything on the command line for this call. */
static bool
arg_used (const struct verb_arg *a, const struct runtime_cfg *cfg, const struct runtime_call *call)
{
  const char *value;
  switch (a->src)
    {
    case ARG_ID:
    case ARG_SIGNAL:
    case ARG_LITERAL:
      return true;
    case ARG_EMPTY_NS:
      return call->criu && call->criu->empty_ns && call->criu->empty_ns[0];
    default:
      value = arg_string (a->src, call);
      return (value && value[0]) || arg_bool (a->src, cfg, call);
    }
}

static void
push_verb_arg (char ***argv, const struct verb_arg *a, const struct runtime_call *call)
{
  const char *value = arg_string (a->src, call);
  if (a->src == ARG_ID)
    strv_push (argv, call->id);
  else if (a->src == ARG_SIGNAL)
    strv_pushf (argv, "%d", call->signal);
  else if (a->src == ARG_EMPTY_NS)
    for (char *const *ns = call->criu->empty_ns; *ns; ns++)
      {
        strv_push (argv, a->flag);
        strv_push (argv, *ns);
      }
  else if (a->src == ARG_LITERAL)
    {
      strv_push (argv, a->flag);
      if (a->literal)
        strv_push (argv, a->literal);
    }
  else
    {
      strv_push (argv, a->flag);
      if (value && value[0])
        strv_push (argv, value);
    }
}

unsigned
runtime_call_flags (const struct runtime_call *call, const struct runtime_cfg *cfg)
{
  if (cfg == NULL)
    cfg = &default_cfg;
  unsigned flags = cfg->systemd_cgroup ? RUNTIME_FLAG_SYSTEMD_CGROUP : 0;
  if ((size_t) call->verb < ARRAY_SIZE (verb_specs))
    for (const struct verb_arg *a = verb_specs[call->verb].args; a->src != ARG_END; a++)
      if (a->bit && arg_used (a, cfg, call))
        flags |= a->bit;
  return flags;
}

const char *
runtime_flag_name (unsigned flag)
{
  for (size_t i = 0; i < ARRAY_SIZE (flag_names); i++)
    if (flag == 1u << i)
      return flag_names[i];
  return "?";
}

void
runtime_verb_args (char ***argv, const struct runtime_call *call, const struct runtime_cfg *cfg,
                   unsigned drop)
{
  if (cfg == NULL)
    cfg = &default_cfg;
  if ((size_t) call->verb < ARRAY_SIZE (verb_specs))
    for (const struct verb_arg *a = verb_specs[call->verb].args; a->src != ARG_END; a++)
      if (arg_used (a, cfg, call) && !(a->bit & drop))
        push_verb_arg (argv, a, call);
}
