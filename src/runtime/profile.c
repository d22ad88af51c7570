#include "runtime/profile.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/log.h"
#include "base/util.h"

/* ---- the tables ---- */

#define F(bit) RUNTIME_FLAG_##bit
#define CRIU PROFILE_CAP_CRIU

/* runc 1.1: every flag the shim uses. Also the generic profile: runc's CLI is the de facto
 * standard other runtimes copy, and the shim's argv has always been runc's. */
static const struct profile_verb runc_verbs[RUNTIME_VERB_COUNT] = {
  [RUNTIME_CREATE] = { "create", F (CONSOLE_SOCKET) | F (NO_PIVOT) | F (NO_NEW_KEYRING), 0, 0 },
  [RUNTIME_START] = { "start", 0, 0, 0 },
  [RUNTIME_KILL] = { "kill", F (ALL), 0, 0 },
  [RUNTIME_DELETE] = { "delete", F (FORCE), 0, 0 },
  [RUNTIME_STATE] = { "state", 0, 0, 0 },
  [RUNTIME_PS] = { "ps", F (FORMAT_JSON), 0, 0 },
  [RUNTIME_PAUSE] = { "pause", 0, 0, 0 },
  [RUNTIME_RESUME] = { "resume", 0, 0, 0 },
  [RUNTIME_EXEC] = { "exec", F (CONSOLE_SOCKET), 0, 0 },
  [RUNTIME_UPDATE] = { "update", 0, 0, 0 },
  [RUNTIME_CHECKPOINT]
  = { "checkpoint", F (PARENT_PATH) | F (EMPTY_NS) | F (MANAGE_CGROUPS_MODE), 0, CRIU },
  [RUNTIME_RESTORE]
  = { "restore",
      F (EMPTY_NS) | F (MANAGE_CGROUPS_MODE) | F (CONSOLE_SOCKET) | F (NO_PIVOT) | F (NO_SUBREAPER),
      0, CRIU },
};

/* crun 1.8 (src/create.c, exec.c, checkpoint.c, restore.c). Its restore has neither
 * --no-pivot nor --no-subreaper, and needs neither: CRIU sets up the root itself and crun
 * starts no subreaper there, so dropping them changes nothing. --empty-ns exists nowhere. */
static const struct profile_verb crun_verbs[RUNTIME_VERB_COUNT] = {
  [RUNTIME_CREATE] = { "create", F (CONSOLE_SOCKET) | F (NO_PIVOT) | F (NO_NEW_KEYRING), 0, 0 },
  [RUNTIME_START] = { "start", 0, 0, 0 },
  [RUNTIME_KILL] = { "kill", F (ALL), 0, 0 },
  [RUNTIME_DELETE] = { "delete", F (FORCE), 0, 0 },
  [RUNTIME_STATE] = { "state", 0, 0, 0 },
  [RUNTIME_PS] = { "ps", F (FORMAT_JSON), 0, 0 },
  [RUNTIME_PAUSE] = { "pause", 0, 0, 0 },
  [RUNTIME_RESUME] = { "resume", 0, 0, 0 },
  [RUNTIME_EXEC] = { "exec", F (CONSOLE_SOCKET), 0, 0 },
  [RUNTIME_UPDATE] = { "update", 0, 0, 0 },
  [RUNTIME_CHECKPOINT] = { "checkpoint", F (PARENT_PATH) | F (MANAGE_CGROUPS_MODE), 0, CRIU },
  [RUNTIME_RESTORE] = { "restore", F (MANAGE_CGROUPS_MODE) | F (CONSOLE_SOCKET),
                        F (NO_PIVOT) | F (NO_SUBREAPER), CRIU },
};

/* youki (crates/liboci-cli): the checkpoint subcommand comes from the enum variant
 * `Checkpointt`, so clap spells it "checkpointt"; it has no --parent-path and no --empty-ns.
 * There is no restore. */
static const struct profile_verb youki_verbs[RUNTIME_VERB_COUNT] = {
  [RUNTIME_CREATE] = { "create", F (CONSOLE_SOCKET) | F (NO_PIVOT) | F (NO_NEW_KEYRING), 0, 0 },
  [RUNTIME_START] = { "start", 0, 0, 0 },
  [RUNTIME_KILL] = { "kill", F (ALL), 0, 0 },
  [RUNTIME_DELETE] = { "delete", F (FORCE), 0, 0 },
  [RUNTIME_STATE] = { "state", 0, 0, 0 },
  [RUNTIME_PS] = { "ps", F (FORMAT_JSON), 0, 0 },
  [RUNTIME_PAUSE] = { "pause", 0, 0, 0 },
  [RUNTIME_RESUME] = { "resume", 0, 0, 0 },
  [RUNTIME_EXEC] = { "exec", F (CONSOLE_SOCKET), 0, 0 },
  [RUNTIME_UPDATE] = { "update", 0, 0, 0 },
  [RUNTIME_CHECKPOINT] = { "checkpointt", F (MANAGE_CGROUPS_MODE), 0, CRIU },
  [RUNTIME_RESTORE] = { NULL, 0, 0, 0 },
};

static const struct profile_rule runc_rules[] = {
  { PROFILE_CAP_FEATURES, "1.1.0", NULL, "has no `features` command (runc 1.1.0 added it)" },
  { 0, NULL, NULL, NULL },
};

/* Debian's crun is built without CRIU: then checkpoint and restore are not even commands
 * ("unknown command checkpoint"). The build-features line says so with or without +CRIU. */
static const struct profile_rule crun_rules[] = {
  { PROFILE_CAP_FEATURES, "1.8.6", NULL, "has no `features` command (crun 1.8.6 added it)" },
  { PROFILE_CAP_CRIU, NULL, "+CRIU", "was built without CRIU" },
  { 0, NULL, NULL, NULL },
};

/* youki has had `features` since 0.2.0, but it printed nothing before 0.5.2. */
static const struct profile_rule youki_rules[] = {
  { PROFILE_CAP_FEATURES, "0.5.2", NULL, "prints no features document (youki 0.5.2 does)" },
  { 0, NULL, NULL, NULL },
};

static const struct runtime_profile runc_profile = {
  .name = "runc",
  .log_format = PROFILE_LOG_MSG,
  .global_flags = F (SYSTEMD_CGROUP),
  .caps = PROFILE_CAP_FEATURES | CRIU,
  .spec_version = "1.0.2-dev",
  .verbs = runc_verbs,
  .rules = runc_rules,
};

static const struct runtime_profile crun_profile = {
  .name = "crun",
  .log_format = PROFILE_LOG_MSG,
  .global_flags = F (SYSTEMD_CGROUP),
  .caps = PROFILE_CAP_FEATURES | CRIU,
  .spec_version = "1.0.0",
  .verbs = crun_verbs,
  .rules = crun_rules,
};

/* youki's `kill` parses signals from a fixed list: 1-31 only (libcontainer/src/signal.rs). */
static const struct runtime_profile youki_profile = {
  .name = "youki",
  .log_format = PROFILE_LOG_MESSAGE,
  .global_flags = F (SYSTEMD_CGROUP),
  .caps = PROFILE_CAP_FEATURES | CRIU,
  .max_signal = 31,
  .spec_version = "1.0.0",
  .verbs = youki_verbs,
  .rules = youki_rules,
};

/* Unknown runtimes get runc's CLI but no promise of a `features` command: -info synthesizes. */
static const struct runtime_profile generic_profile = {
  .name = "generic",
  .log_format = PROFILE_LOG_MSG,
  .global_flags = F (SYSTEMD_CGROUP),
  .caps = CRIU,
  .spec_version = "1.0.0",
  .verbs = runc_verbs,
};

#undef F
#undef CRIU

static const struct runtime_profile *const profiles[] = {
  &runc_profile,
  &crun_profile,
  &youki_profile,
  &generic_profile,
};

/* ---- names ---- */

const struct runtime_profile *
profile_by_name (const char *name)
{
  for (size_t i = 0; name && i < ARRAY_SIZE (profiles); i++)
    if (strcmp (profiles[i]->name, name) == 0)
      return profiles[i];
  return NULL;
}

int
profile_parse_name (const char *name, const struct runtime_profile **out, shim_error_t *err)
{
  if (name == NULL || name[0] == '\0' || strcmp (name, "auto") == 0)
    {
      *out = NULL;
      return 0;
    }
  const struct runtime_profile *p = profile_by_name (name);
  if (p == NULL)
    return shim_error_make (
        err, 0, SHIM_INVALID_ARGUMENT,
        "unknown runtime profile `%s` (known: auto, runc, crun, youki, generic)", name);
  *out = p;
  return 0;
}

const char *
profile_log_format_name (enum profile_log_format format)
{
  return format == PROFILE_LOG_MESSAGE ? "json (message, LEVEL)" : "json (msg, level)";
}

/* ---- --version text ---- */

/* Copies n bytes of src without surrounding blanks, cut to fit. */
static void
set_field (char *dst, size_t size, const char *src, size_t n)
{
  while (n > 0 && isspace ((unsigned char) *src))
    src++, n--;
  while (n > 0 && isspace ((unsigned char) src[n - 1]))
    n--;
  snprintf (dst, size, "%.*s", (int) (n < size ? n : size - 1), src);
}

static size_t
word_len (const char *s, const char *end)
{
  size_t n = 0;
  while (s + n < end && !isspace ((unsigned char) s[n]))
    n++;
  return n;
}

static const char *
skip_blanks (const char *s, const char *end)
{
  while (s < end && isspace ((unsigned char) *s))
    s++;
  return s;
}

/* "<name> version <v>" (runc, crun, youki < 0.5.6) or "<name> version: <v>" (later youki). */
static void
parse_title (const char *line, const char *end, struct profile_info *info)
{
  const char *name = skip_blanks (line, end);
  size_t name_n = word_len (name, end);
  const char *kw = skip_blanks (name + name_n, end);
  size_t kw_n = word_len (kw, end);
  if (name_n == 0
      || !((kw_n == 7 && strncmp (kw, "version", 7) == 0)
           || (kw_n == 8 && strncmp (kw, "version:", 8) == 0)))
    return;
  const char *v = skip_blanks (kw + kw_n, end);
  set_field (info->name, sizeof info->name, name, name_n);
  set_field (info->version, sizeof info->version, v, word_len (v, end));
}

struct info_key
{
  const char *key; /* "key:" at the start of a line */
  size_t offset, size;
};

#define INFO_KEY(k, field)                                                                         \
  {                                                                                                \
    k, offsetof (struct profile_info, field), sizeof (((struct profile_info *) 0)->field)          \
  }
static const struct info_key info_keys[] = {
  INFO_KEY ("commit:", commit),
  INFO_KEY ("spec:", spec),
};
#undef INFO_KEY

static void
parse_line (const char *line, const char *end, struct profile_info *info)
{
  const char *p = skip_blanks (line, end);
  if (p < end && *p == '+')
    {
      /* crun's build features: "+SYSTEMD +SELINUX ... +YAJL" */
      set_field (info->features, sizeof info->features, p, end - p);
      return;
    }
  for (size_t i = 0; i < ARRAY_SIZE (info_keys); i++)
    {
      size_t n = strlen (info_keys[i].key);
      if ((size_t) (end - p) >= n && strncmp (p, info_keys[i].key, n) == 0)
        set_field ((char *) info + info_keys[i].offset, info_keys[i].size, p + n, end - p - n);
    }
}

const struct runtime_profile *
profile_from_version (const char *version_text, struct profile_info *info)
{
  struct profile_info scratch;
  if (info == NULL)
    info = &scratch;
  memset (info, 0, sizeof *info);
  const char *p = version_text ? version_text : "", *end = p + strlen (p);
  for (bool first = true; p < end;)
    {
      const char *nl = memchr (p, '\n', end - p);
      const char *line_end = nl ? nl : end;
      if (first && skip_blanks (p, line_end) < line_end)
        {
          parse_title (p, line_end, info); /* the first line that is not blank */
          first = false;
        }
      else if (!first)
        parse_line (p, line_end, info);
      p = nl ? nl + 1 : end;
    }
  for (size_t i = 0; info->name[0] && i < ARRAY_SIZE (profiles); i++)
    if (profiles[i] != &generic_profile && strcmp (profiles[i]->name, info->name) == 0)
      return profiles[i];
  return &generic_profile;
}

/* ---- what a probe changes ---- */

/* Compares dotted numeric prefixes: "1.8.1" < "1.8.6"; "1.1.5+ds1" counts as 1.1.5 and
 * "1.0.0-rc93" as 1.0.0; missing components are 0. */
static int
version_cmp (const char *a, const char *b)
{
  for (int i = 0; i < 4; i++)
    {
      char *ea, *eb;
      unsigned long x = isdigit ((unsigned char) *a) ? strtoul (a, &ea, 10) : 0;
      unsigned long y = isdigit ((unsigned char) *b) ? strtoul (b, &eb, 10) : 0;
      if (x != y)
        return x < y ? -1 : 1;
      a = isdigit ((unsigned char) *a) && *ea == '.' ? ea + 1 : "";
      b = isdigit ((unsigned char) *b) && *eb == '.' ? eb + 1 : "";
    }
  return 0;
}

static bool
has_token (const char *list, const char *token)
{
  size_t n = strlen (token);
  for (const char *p = list; (p = strstr (p, token)) != NULL; p += n)
    if ((p == list || isspace ((unsigned char) p[-1]))
        && (p[n] == '\0' || isspace ((unsigned char) p[n])))
      return true;
  return false;
}

/* What info cannot tell (no version, no features line) leaves the capability alone. */
static bool
rule_holds (const struct profile_rule *r, const struct profile_info *info)
{
  if (r->min_version && isdigit ((unsigned char) info->version[0])
      && version_cmp (info->version, r->min_version) < 0)
    return false;
  if (r->token && info->features[0] && !has_token (info->features, r->token))
    return false;
  return true;
}

static int
cap_index (unsigned cap)
{
  return cap ? __builtin_ctz (cap) : 0;
}

void
profile_resolve (const struct runtime_profile *base, const struct profile_info *info,
                 struct runtime_profile *out)
{
  *out = base ? *base : generic_profile;
  memset (out->missing, 0, sizeof out->missing);
  out->version[0] = '\0';
  if (info == NULL)
    return;
  snprintf (out->version, sizeof out->version, "%s", info->version);
  for (const struct profile_rule *r = out->rules; r && r->cap; r++)
    if (!rule_holds (r, info))
      {
        out->caps &= ~r->cap;
        if (cap_index (r->cap) < PROFILE_CAP_COUNT)
          out->missing[cap_index (r->cap)] = r->why;
      }
}

/* ---- questions about a profile ---- */

static const struct profile_verb *
profile_verb (const struct runtime_profile *p, enum runtime_verb verb)
{
  if ((size_t) verb >= RUNTIME_VERB_COUNT)
    return NULL;
  return &(p ? p : &generic_profile)->verbs[verb];
}

const char *
profile_verb_name (const struct runtime_profile *p, enum runtime_verb verb)
{
  const struct profile_verb *v = profile_verb (p, verb);
  return v && v->name ? v->name : runtime_verb_name (verb);
}

bool
profile_drops_flag (const struct runtime_profile *p, enum runtime_verb verb, unsigned flag)
{
  const struct profile_verb *v = profile_verb (p, verb);
  return v && (v->drops & flag) && !(v->accepts & flag);
}

bool
profile_has_cap (const struct runtime_profile *p, unsigned cap)
{
  return ((p ? p : &generic_profile)->caps & cap) == cap;
}

/* "crun 1.8.1 was built without CRIU: checkpoint is unavailable" */
static int
cap_error (const struct runtime_profile *p, unsigned missing, const char *verb, shim_error_t *err)
{
  static const char *const cap_lacks[PROFILE_CAP_COUNT]
      = { "has no `features` command", "cannot use CRIU" };
  int i = cap_index (missing);
  if (i >= PROFILE_CAP_COUNT)
    i = PROFILE_CAP_COUNT - 1;
  const char *why = p->missing[i] ? p->missing[i] : cap_lacks[i];
  return shim_error_make (err, 0, SHIM_FAILED_PRECONDITION, "%s%s%s %s: %s is unavailable", p->name,
                          p->version[0] ? " " : "", p->version, why, verb);
}

static int
flag_error (const struct runtime_profile *p, unsigned lacking, const char *verb, shim_error_t *err)
{
  unsigned bit = lacking & -lacking;
  if (bit == RUNTIME_FLAG_SYSTEMD_CGROUP)
    return shim_error_make (err, 0, SHIM_UNIMPLEMENTED, "%s does not support %s", p->name,
                            runtime_flag_name (bit));
  return shim_error_make (err, 0, SHIM_UNIMPLEMENTED, "%s does not support %s for %s", p->name,
                          runtime_flag_name (bit), verb);
}

int
profile_check_call (const struct runtime_profile *p, const struct runtime_call *call,
                    const struct runtime_cfg *cfg, shim_error_t *err)
{
  if (p == NULL)
    p = &generic_profile;
  const char *verb = runtime_verb_name (call->verb);
  const struct profile_verb *v = profile_verb (p, call->verb);
  if (v == NULL || v->name == NULL)
    return shim_error_make (err, 0, SHIM_UNIMPLEMENTED, "%s does not support %s", p->name, verb);
  if (v->caps & ~p->caps)
    return cap_error (p, v->caps & ~p->caps, verb, err);

  unsigned used = runtime_call_flags (call, cfg);
  unsigned lacking = used & RUNTIME_FLAG_SYSTEMD_CGROUP & ~p->global_flags;
  lacking |= used & ~RUNTIME_FLAG_SYSTEMD_CGROUP & ~(v->accepts | v->drops);
  if (lacking)
    return flag_error (p, lacking, verb, err);

  if (call->verb == RUNTIME_KILL && p->max_signal
      && (call->signal < 1 || call->signal > p->max_signal))
    return shim_error_make (err, 0, SHIM_UNIMPLEMENTED,
                            "%s does not support signal %d (its kill takes 1-%d)", p->name,
                            call->signal, p->max_signal);
  return 0;
}

/* ---- a synthesized features document ---- */

/* What runc 1.1, crun 1.8 and youki all implement (their own `features` output agrees). */
static const char *const spec_hooks[] = {
  "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop",
};
static const char *const spec_namespaces[] = {
  "cgroup", "ipc", "mount", "network", "pid", "user", "uts",
};

/* Security features crun's build line reports, as the features document names them. */
static const struct
{
  const char *token, *key;
} security_tokens[] = {
  { "+SECCOMP", "seccomp" },
  { "+APPARMOR", "apparmor" },
  { "+SELINUX", "selinux" },
};

static void
add_strings (cJSON *obj, const char *key, const char *const *v, size_t n)
{
  cJSON *arr = cJSON_AddArrayToObject (obj, key);
  for (size_t i = 0; i < n; i++)
    cJSON_AddItemToArray (arr, cJSON_CreateString (v[i]));
}

static void
add_linux (cJSON *doc, const struct runtime_profile *p, const struct profile_info *info)
{
  cJSON *lx = cJSON_AddObjectToObject (doc, "linux");
  add_strings (lx, "namespaces", spec_namespaces, ARRAY_SIZE (spec_namespaces));
  cJSON *cg = cJSON_AddObjectToObject (lx, "cgroup");
  cJSON_AddBoolToObject (cg, "v1", true);
  cJSON_AddBoolToObject (cg, "v2", true);
  cJSON_AddBoolToObject (cg, "systemd", (p->global_flags & RUNTIME_FLAG_SYSTEMD_CGROUP) != 0);
  if (info == NULL || info->features[0] == '\0')
    return; /* unknown: absent, as the spec says for what a runtime cannot tell */
  for (size_t i = 0; i < ARRAY_SIZE (security_tokens); i++)
    cJSON_AddBoolToObject (cJSON_AddObjectToObject (lx, security_tokens[i].key), "enabled",
                           has_token (info->features, security_tokens[i].token));
}

static void
add_annotations (cJSON *doc, const struct runtime_profile *p, const struct profile_info *info)
{
  cJSON *a = cJSON_AddObjectToObject (doc, "annotations");
  cJSON_AddStringToObject (a, "io.github.cshim.profile", p->name);
  cJSON_AddStringToObject (a, "io.github.cshim.synthesized", "true");
  cJSON_AddStringToObject (a, "io.github.cshim.log.format",
                           profile_log_format_name (p->log_format));
  cJSON_AddStringToObject (a, "io.github.cshim.checkpoint.enabled",
                           profile_has_cap (p, PROFILE_CAP_CRIU) ? "true" : "false");
  const struct
  {
    const char *key, *value;
  } known[] = {
    { "io.github.cshim.runtime.name", info ? info->name : "" },
    { "io.github.cshim.runtime.version", info ? info->version : "" },
    { "io.github.cshim.runtime.commit", info ? info->commit : "" },
    { "io.github.cshim.runtime.build", info ? info->features : "" },
  };
  for (size_t i = 0; i < ARRAY_SIZE (known); i++)
    if (known[i].value[0])
      cJSON_AddStringToObject (a, known[i].key, known[i].value);
}

char *
profile_features_json (const struct runtime_profile *p, const struct profile_info *info)
{
  if (p == NULL)
    p = &generic_profile;
  cJSON *doc = cJSON_CreateObject ();
  cJSON_AddStringToObject (doc, "ociVersionMin", "1.0.0");
  cJSON_AddStringToObject (doc, "ociVersionMax",
                           info && info->spec[0] ? info->spec : p->spec_version);
  add_strings (doc, "hooks", spec_hooks, ARRAY_SIZE (spec_hooks));
  add_linux (doc, p, info);
  add_annotations (doc, p, info);
  char *json = cJSON_PrintUnformatted (doc);
  cJSON_Delete (doc);
  if (json == NULL)
    abort (); /* cJSON fails only on OOM, which aborts everywhere else too */
  return json;
}
