#ifndef CSHIM_PROFILE_H
#define CSHIM_PROFILE_H

/* Runtime profiles: how runc, crun and youki differ as CLIs, kept as data. A profile names
 * each verb's subcommand (or says the runtime has none), the optional flags each subcommand
 * accepts, the capabilities that depend on how the runtime was built, its log format and how
 * `<binary> --version` names it. runtime_argv() spells calls the profile's way;
 * profile_check_call() turns a call the runtime cannot make into a clear error instead of
 * the runtime's usage message. profile_probe() finds the profile of a binary by running
 * `<binary> --version`, once per binary per process. docs/runtimes.md has the table. */

#include <stdbool.h>

#include "base/error.h"
#include "runtime/verbs.h"

struct event_base;
struct reaper;

/* Capabilities beyond the CLI's shape; a probe may clear them (see profile_resolve()). */
enum profile_cap
{
  PROFILE_CAP_FEATURES = 1u << 0, /* `features` prints the OCI features document */
  PROFILE_CAP_CRIU = 1u << 1, /* checkpoint and restore can work at all */
};
#define PROFILE_CAP_COUNT 2

/* The JSON written with --log-format json; runtime_log_last_error() reads both. */
enum profile_log_format
{
  PROFILE_LOG_MSG, /* {"level":"error","msg":"...","time":"..."} (runc, crun) */
  PROFILE_LOG_MESSAGE, /* {"timestamp":"...","level":"ERROR","message":"...",...} (youki) */
};

/* How one runtime spells and supports one verb. */
struct profile_verb
{
  const char *name; /* subcommand; NULL: the runtime has no such verb */
  unsigned accepts; /* RUNTIME_FLAG_* the subcommand takes */
  unsigned drops; /* flags it lacks because it never needs them: left out of argv */
  unsigned caps; /* PROFILE_CAP_* the verb needs */
};

/* A capability that holds only from some version on, or only when the build says so. */
struct profile_rule
{
  unsigned cap; /* 0 ends a rule list */
  const char *min_version; /* the cap needs at least this version... */
  const char *token; /* ...or this token on the build-features line ("+CRIU") */
  const char *why; /* completes "<runtime> <version> ..." when the rule fails */
};

/* Read-only. The tables are static; a probed profile is a copy owned by the probe cache. */
struct runtime_profile
{
  const char *name; /* "runc", "crun", "youki": also the first word of its --version text;
                     * "generic": never recognised */
  enum profile_log_format log_format;
  unsigned global_flags; /* RUNTIME_FLAG_* accepted before the subcommand */
  unsigned caps; /* PROFILE_CAP_* */
  int max_signal; /* highest signal number `kill` takes; 0: any */
  const char *spec_version; /* ociVersionMax when --version does not say */
  const struct profile_verb *verbs; /* RUNTIME_VERB_COUNT entries */
  const struct profile_rule *rules; /* what a probe checks; ends with cap 0 */
  const char *missing[PROFILE_CAP_COUNT]; /* why a cap is missing, in a probed copy */
  char version[48]; /* "" in the tables; the probed version in a copy */
};

/* What `<binary> --version` said. Fixed-size and copyable; fields are "" when absent and
 * cut when too long. */
struct profile_info
{
  char name[32]; /* first word of the text: "runc", "crun", "youki", or anything */
  char version[48]; /* "1.1.5+ds1", "1.8.1", "0.5.7" */
  char commit[96];
  char spec[32]; /* OCI runtime-spec version the runtime implements */
  char features[256]; /* crun's build tokens as printed: "+SYSTEMD +SELINUX ... +YAJL" */
};

/* "runc", "crun", "youki", "generic" -> the table; NULL for anything else (also "auto"). */
const struct runtime_profile *profile_by_name (const char *name);
/* The value of the config key `profile`: NULL, "" or "auto" -> *out = NULL (probe); a known
 * name -> its table; anything else is an InvalidArgument error naming the choices. */
int profile_parse_name (const char *name, const struct runtime_profile **out, shim_error_t *err);
/* The profile a --version text names, never NULL: unknown text gives "generic". info (may be
 * NULL) gets what the text said. Pure. */
const struct runtime_profile *profile_from_version (const char *version_text,
                                                    struct profile_info *info);
/* A copy of base with the capabilities info rules out cleared and its version recorded. Pure. */
void profile_resolve (const struct runtime_profile *base, const struct profile_info *info,
                      struct runtime_profile *out);

/* The subcommand for verb (runc's name when the profile has none or p is NULL). */
const char *profile_verb_name (const struct runtime_profile *p, enum runtime_verb verb);
/* Whether argv leaves out flag for verb (a flag the runtime never needs there). */
bool profile_drops_flag (const struct runtime_profile *p, enum runtime_verb verb, unsigned flag);
bool profile_has_cap (const struct runtime_profile *p, unsigned cap);
const char *profile_log_format_name (enum profile_log_format format);

/* 0 when the runtime can make this call; otherwise an error naming the runtime and what it
 * lacks: Unimplemented for a missing verb, flag or signal ("youki does not support restore"),
 * FailedPrecondition for a capability its build lacks ("crun 1.8.1 was built without CRIU:
 * checkpoint is unavailable"). p NULL means generic; cfg may be NULL. */
int profile_check_call (const struct runtime_profile *p, const struct runtime_call *call,
                        const struct runtime_cfg *cfg, shim_error_t *err);

/* An OCI runtime-spec `features` document for runtimes without a `features` command (or p
 * NULL: generic), with annotations "io.github.cshim.profile", "io.github.cshim.synthesized"
 * and what info knows. info may be NULL. Compact JSON, caller frees. */
char *profile_features_json (const struct runtime_profile *p, const struct profile_info *info);

#define PROFILE_PROBE_TIMEOUT_MS 5000
/* Where probe outcomes are kept across shim processes (env CSHIM_PROBE_CACHE_DIR overrides). */
#define PROFILE_DISK_CACHE_DIR "/run/cshim/probe"

/* The outcome of a probe. On success p and info stay valid until profile_cache_clear(); on
 * failure both are NULL and err is the callback's to consume (reply, log or release). */
typedef void (*profile_probe_cb) (const struct runtime_profile *p, const struct profile_info *info,
                                  shim_error_t err, void *arg);

/* Finds the profile of binary (a path, or a name looked up in PATH; NULL: "runc") by running
 * `<binary> --version` (deadline PROFILE_PROBE_TIMEOUT_MS), or from the cache when the same
 * file (path, device, inode, size, mtime) was probed before. cb always runs later from the
 * loop, exactly once. A binary that cannot be run, crashes or hangs is an error; text that
 * names no known runtime gives the generic profile. Concurrent probes of one binary share a
 * single run. Returns -1 (cb never called) only when nothing could be started. */
int profile_probe (struct event_base *base, struct reaper *reaper, const char *binary,
                   profile_probe_cb cb, void *arg, shim_error_t *err);

/* Forgets every probe: pending callbacks are dropped, running probes killed, and probed
 * profiles freed. For tests and shutdown; never from inside a probe callback. */
void profile_cache_clear (void);

#endif
