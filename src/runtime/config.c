#include "runtime/config.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "containerd/linux/runc/runc.pb-c.h"
#include "containerd/runc/v1/options.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "base/pb.h"
#include "runtimeoptions/v1/options.pb-c.h"
#include "base/util.h"

#define CONFIG_MAX_SIZE (1u << 20)

void
config_init (struct task_options *o)
{
  memset (o, 0, sizeof *o);
  o->runtime.binary = xstrdup (CONFIG_DEFAULT_BINARY);
  o->runtime.root = xstrdup (CONFIG_DEFAULT_ROOT);
  o->runtime.timeout_ms = CONFIG_DEFAULT_TIMEOUT_MS;
  o->profile = xstrdup ("auto");
  /* The environment (containerd's, inherited) may move the default, e.g. for a test run. */
  const char *trace_dir = getenv ("CSHIM_TRACE_DIR");
  o->trace_dir = xstrdup (trace_dir && trace_dir[0] ? trace_dir : CONFIG_DEFAULT_TRACE_DIR);
  o->exec_io_drain_ms = CONFIG_DEFAULT_EXEC_IO_DRAIN_MS;
  o->io_policy = xstrdup ("block");
}

void
config_release (struct task_options *o)
{
  free (o->runtime.binary);
  free (o->runtime.root);
  strv_free (o->runtime.extra_args);
  free (o->shim_cgroup);
  free (o->profile);
  free (o->trace_dir);
  free (o->io_policy);
  free (o->criu_image_path);
  free (o->criu_work_path);
  memset (o, 0, sizeof *o);
}

static void
set_str (char **dst, const char *src)
{
  if (src == NULL || src[0] == '\0')
    return;
  free (*dst);
  *dst = xstrdup (src);
}

static void
apply_runc_options (struct task_options *o, const Containerd__Runc__V1__Options *r)
{
  set_str (&o->runtime.binary, r->binary_name);
  set_str (&o->runtime.root, r->root);
  set_str (&o->shim_cgroup, r->shim_cgroup);
  o->runtime.systemd_cgroup |= r->systemd_cgroup;
  o->runtime.no_pivot_root |= r->no_pivot_root;
  o->runtime.no_new_keyring |= r->no_new_keyring;
  o->io_uid = r->io_uid ? r->io_uid : o->io_uid;
  o->io_gid = r->io_gid ? r->io_gid : o->io_gid;
  set_str (&o->criu_image_path, r->criu_image_path);
  set_str (&o->criu_work_path, r->criu_work_path);
  if (r->criu_path && r->criu_path[0])
    {
      strv_push (&o->runtime.extra_args, "--criu");
      strv_push (&o->runtime.extra_args, r->criu_path);
    }
}

static void
apply_create_options (struct task_options *o, const Containerd__Linux__Runc__CreateOptions *c)
{
  set_str (&o->shim_cgroup, c->shim_cgroup);
  o->runtime.no_pivot_root |= c->no_pivot_root;
  o->runtime.no_new_keyring |= c->no_new_keyring;
  o->io_uid = c->io_uid ? c->io_uid : o->io_uid;
  o->io_gid = c->io_gid ? c->io_gid : o->io_gid;
  set_str (&o->criu_image_path, c->criu_image_path);
  set_str (&o->criu_work_path, c->criu_work_path);
}

static int apply_doc (struct task_options *o, const struct cJSON *doc, const char *origin,
                      shim_error_t *err);

static int
apply_runtime_options (struct task_options *o, const Runtimeoptions__V1__Options *r,
                       shim_error_t *err)
{
  /* CRI (1.7+) also sends the whole `options` table as TOML in config_body, ConfigPath
   * included: with a path, the file is the configuration. */
  if (r->config_path && r->config_path[0])
    return config_apply_file (o, r->config_path, err);
  if (r->config_body.len == 0)
    return 0;
  cleanup_free char *body = xstrndup ((const char *) r->config_body.data, r->config_body.len);
  const char *p = body + strspn (body, " \t\r\n");
  if (*p == '{')
    return config_apply_json (o, body, "config_body", err);
  cJSON *doc = config_toml_to_json (body, "config_body", err);
  if (doc == NULL)
    return -1;
  int ret = apply_doc (o, doc, "config_body", err);
  cJSON_Delete (doc);
  return ret;
}

int
config_apply_any (struct task_options *o, const Google__Protobuf__Any *any, shim_error_t *err)
{
  if (any == NULL || any->type_url == NULL || any->type_url[0] == '\0')
    return 0;
  const ProtobufCMessageDescriptor *desc = NULL;
  if (pb_any_is (any, &containerd__runc__v1__options__descriptor))
    desc = &containerd__runc__v1__options__descriptor;
  else if (pb_any_is (any, &containerd__linux__runc__create_options__descriptor))
    desc = &containerd__linux__runc__create_options__descriptor;
  else if (pb_any_is (any, &runtimeoptions__v1__options__descriptor))
    desc = &runtimeoptions__v1__options__descriptor;
  else
    return shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "unsupported options type `%s`",
                            any->type_url);

  cleanup_pbmsg ProtobufCMessage *m = pb_any_unpack (any, desc, err);
  if (m == NULL)
    return -1;
  if (desc == &containerd__runc__v1__options__descriptor)
    apply_runc_options (o, (const Containerd__Runc__V1__Options *) m);
  else if (desc == &containerd__linux__runc__create_options__descriptor)
    apply_create_options (o, (const Containerd__Linux__Runc__CreateOptions *) m);
  else
    return apply_runtime_options (o, (const Runtimeoptions__V1__Options *) m, err);
  return 0;
}

/* Our JSON config: one table of keys, each with its type and where it goes. */
enum key_type
{
  KEY_STRING,
  KEY_BOOL,
  KEY_UINT,
  KEY_STRV,
  KEY_CHOICE, /* a string from `choices` */
};

struct key_spec
{
  const char *name;
  enum key_type type;
  size_t offset;
  const char *const *choices;
};

static const char *const profiles[] = { "auto", "runc", "crun", "youki", "generic", NULL };
static const char *const io_policies[] = { "block", "drop", NULL };

#define OPT(field) offsetof (struct task_options, field)
#define NO_CHOICES NULL
static const struct key_spec keys[] = {
  { "binary", KEY_STRING, OPT (runtime.binary), NO_CHOICES },
  { "root", KEY_STRING, OPT (runtime.root), NO_CHOICES },
  { "systemd_cgroup", KEY_BOOL, OPT (runtime.systemd_cgroup), NO_CHOICES },
  { "no_pivot_root", KEY_BOOL, OPT (runtime.no_pivot_root), NO_CHOICES },
  { "no_new_keyring", KEY_BOOL, OPT (runtime.no_new_keyring), NO_CHOICES },
  { "runtime_args", KEY_STRV, OPT (runtime.extra_args), NO_CHOICES },
  { "timeout_ms", KEY_UINT, OPT (runtime.timeout_ms), NO_CHOICES },
  { "shim_cgroup", KEY_STRING, OPT (shim_cgroup), NO_CHOICES },
  { "io_uid", KEY_UINT, OPT (io_uid), NO_CHOICES },
  { "io_gid", KEY_UINT, OPT (io_gid), NO_CHOICES },
  { "profile", KEY_CHOICE, OPT (profile), profiles },
  { "trace", KEY_BOOL, OPT (trace), NO_CHOICES },
  { "trace_dir", KEY_STRING, OPT (trace_dir), NO_CHOICES },
  { "exec_io_drain_ms", KEY_UINT, OPT (exec_io_drain_ms), NO_CHOICES },
  { "io_policy", KEY_CHOICE, OPT (io_policy), io_policies },
  { "criu_image_path", KEY_STRING, OPT (criu_image_path), NO_CHOICES },
  { "criu_work_path", KEY_STRING, OPT (criu_work_path), NO_CHOICES },
};
#undef OPT

static const struct key_spec *
find_key (const char *name)
{
  for (size_t i = 0; i < ARRAY_SIZE (keys); i++)
    if (strcmp (keys[i].name, name) == 0)
      return &keys[i];
  return NULL;
}

static bool
is_choice (const char *const *choices, const char *v)
{
  for (; *choices; choices++)
    if (strcmp (*choices, v) == 0)
      return true;
  return false;
}

static char *
join_choices (const char *const *choices)
{
  char *out = xstrdup ("");
  for (; *choices; choices++)
    {
      char *next = xasprintf ("%s%s`%s`", out, out[0] ? ", " : "", *choices);
      free (out);
      out = next;
    }
  return out;
}

/* A JSON array of strings as a new vector (NULL when empty); false for anything else. */
static bool
strv_from_json (const cJSON *v, char ***out)
{
  if (!cJSON_IsArray (v))
    return false;
  char **strv = NULL;
  const cJSON *e;
  cJSON_ArrayForEach (e, v)
  {
    if (!cJSON_IsString (e))
      {
        strv_free (strv);
        return false;
      }
    strv_push (&strv, e->valuestring);
  }
  *out = strv;
  return true;
}

static bool
is_uint32 (const cJSON *v)
{
  return cJSON_IsNumber (v) && v->valuedouble >= 0 && v->valuedouble <= 4294967295.0
         && v->valuedouble == (double) (uint32_t) v->valuedouble;
}

static int
key_type_error (const struct key_spec *k, const char *origin, shim_error_t *err)
{
  static const char *const type_names[]
      = { "a non-empty string", "a boolean", "a non-negative integer", "an array of strings" };
  if (k->type == KEY_CHOICE)
    {
      cleanup_free char *list = join_choices (k->choices);
      return shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "config %s: `%s` must be one of %s",
                              origin, k->name, list);
    }
  return shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "config %s: `%s` must be %s", origin,
                          k->name, type_names[k->type]);
}

static int
apply_key (struct task_options *o, const struct key_spec *k, const cJSON *v, const char *origin,
           shim_error_t *err)
{
  void *dst = (char *) o + k->offset;
  char **strv = NULL;
  switch (k->type)
    {
    case KEY_CHOICE:
    case KEY_STRING:
      if (!cJSON_IsString (v) || v->valuestring[0] == '\0'
          || (k->type == KEY_CHOICE && !is_choice (k->choices, v->valuestring)))
        break;
      free (*(char **) dst);
      *(char **) dst = xstrdup (v->valuestring);
      return 0;
    case KEY_BOOL:
      if (!cJSON_IsBool (v))
        break;
      *(bool *) dst = cJSON_IsTrue (v);
      return 0;
    case KEY_UINT:
      if (!is_uint32 (v))
        break;
      *(uint32_t *) dst = (uint32_t) v->valuedouble;
      return 0;
    case KEY_STRV:
      if (!strv_from_json (v, &strv))
        break;
      strv_free (*(char ***) dst);
      *(char ***) dst = strv;
      return 0;
    }
  return key_type_error (k, origin, err);
}

static int
apply_doc (struct task_options *o, const cJSON *doc, const char *origin, shim_error_t *err)
{
  int ret = 0;
  const cJSON *item;
  cJSON_ArrayForEach (item, doc)
  {
    const struct key_spec *k = find_key (item->string);
    if (k == NULL)
      ret = shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "config %s: unknown key `%s`", origin,
                             item->string);
    else
      ret = apply_key (o, k, item, origin, err);
    if (ret < 0)
      break;
  }
  if (ret == 0 && o->runtime.timeout_ms == 0)
    return shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "config %s: `timeout_ms` must be > 0",
                            origin);
  return ret;
}

int
config_apply_json (struct task_options *o, const char *text, const char *origin, shim_error_t *err)
{
  cJSON *doc = cJSON_Parse (text);
  if (doc == NULL || !cJSON_IsObject (doc))
    {
      cJSON_Delete (doc);
      return shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "config %s: not a JSON object",
                              origin);
    }
  int ret = apply_doc (o, doc, origin, err);
  cJSON_Delete (doc);
  return ret;
}

/* ---- the TOML CRI sends in config_body: flat `key = value` lines only ---- */

/* CRI's own fields of runtimeoptions.v1.Options, echoed in the table. */
static const char *const cri_keys[] = { "TypeUrl", "ConfigPath", "ConfigBody", NULL };

static char *
toml_string (const char **p)
{
  char quote = *(*p)++;
  char *out = xmalloc (strlen (*p) + 1), *w = out;
  for (; **p && **p != quote; (*p)++)
    {
      if (quote == '"' && **p == '\\' && (*p)[1])
        {
          char c = *++(*p);
          *w++ = c == 'n' ? '\n' : c == 't' ? '\t' : c;
          continue;
        }
      *w++ = **p;
    }
  *w = '\0';
  if (**p != quote)
    {
      free (out);
      return NULL;
    }
  (*p)++;
  return out;
}

static cJSON *toml_value (const char **p);

static cJSON *
toml_array (const char **p)
{
  cJSON *arr = cJSON_CreateArray ();
  for ((*p)++;;)
    {
      *p += strspn (*p, " \t,");
      if (**p == ']')
        {
          (*p)++;
          return arr;
        }
      cJSON *v = toml_value (p);
      if (v == NULL)
        {
          cJSON_Delete (arr);
          return NULL;
        }
      cJSON_AddItemToArray (arr, v);
    }
}

static cJSON *
toml_value (const char **p)
{
  if (**p == '"' || **p == '\'')
    {
      cleanup_free char *s = toml_string (p);
      return s ? cJSON_CreateString (s) : NULL;
    }
  if (**p == '[')
    return toml_array (p);
  if (strncmp (*p, "true", 4) == 0 || strncmp (*p, "false", 5) == 0)
    {
      bool v = **p == 't';
      *p += v ? 4 : 5;
      return cJSON_CreateBool (v);
    }
  char *end;
  long long n = strtoll (*p, &end, 10);
  if (end == *p)
    return NULL;
  *p = end;
  return cJSON_CreateNumber ((double) n);
}

/* One `key = value` line into doc; 0 on success (or a line to skip). */
static int
toml_line (cJSON *doc, const char *line)
{
  const char *p = line + strspn (line, " \t");
  if (*p == '\0' || *p == '#')
    return 0;
  size_t klen = strcspn (p, " \t=");
  cleanup_free char *key = xstrndup (p, klen);
  p += klen;
  p += strspn (p, " \t");
  if (klen == 0 || *p++ != '=')
    return -1;
  p += strspn (p, " \t");
  cJSON *v = toml_value (&p);
  p += strspn (p, " \t");
  if (v == NULL || (*p && *p != '#'))
    {
      cJSON_Delete (v);
      return -1;
    }
  if (is_choice (cri_keys, key))
    cJSON_Delete (v);
  else
    cJSON_AddItemToObject (doc, key, v);
  return 0;
}

cJSON *
config_toml_to_json (const char *text, const char *origin, shim_error_t *err)
{
  cJSON *doc = cJSON_CreateObject ();
  cleanup_free char *copy = xstrdup (text);
  int lineno = 0;
  for (char *save = NULL, *line = strtok_r (copy, "\n", &save); line;
       line = strtok_r (NULL, "\n", &save))
    {
      lineno++;
      if (toml_line (doc, line) < 0)
        {
          cJSON_Delete (doc);
          shim_error_make (err, 0, SHIM_INVALID_ARGUMENT,
                           "config %s: line %d is not a flat TOML `key = value`", origin, lineno);
          return NULL;
        }
    }
  return doc;
}

int
config_apply_file (struct task_options *o, const char *path, shim_error_t *err)
{
  cleanup_free char *text = NULL;
  if (read_file (path, CONFIG_MAX_SIZE, &text, NULL, err) < 0)
    return shim_error_wrap (err, "runtime config");
  return config_apply_json (o, text, path, err);
}

int
config_apply_start_options (struct task_options *o, const char *bundle, shim_error_t *err)
{
  cleanup_free char *path = xasprintf ("%s/%s", bundle, CONFIG_START_OPTIONS_FILE);
  cleanup_free char *data = NULL;
  size_t len = 0;
  if (access (path, F_OK) < 0 || read_file (path, CONFIG_MAX_SIZE, &data, &len, NULL) < 0)
    return 0;
  cleanup_pbmsg ProtobufCMessage *any
      = protobuf_c_message_unpack (&google__protobuf__any__descriptor, NULL, len, (uint8_t *) data);
  if (any == NULL)
    return 0; /* not an Any: e.g. containerd 2.3's BootstrapParams, which we do not read */
  return config_apply_any (o, (const Google__Protobuf__Any *) any, err);
}

/* An OCI spec is small, but mounts and hooks can add up. */
#define CONFIG_SPEC_MAX (16u << 20)

char *
config_read_spec (const char *bundle)
{
  cleanup_free char *path = xasprintf ("%s/config.json", bundle);
  char *spec = NULL;
  read_file (path, CONFIG_SPEC_MAX, &spec, NULL, NULL);
  return spec;
}

char *
config_to_json (const struct task_options *o)
{
  cJSON *doc = cJSON_CreateObject ();
  for (size_t i = 0; i < ARRAY_SIZE (keys); i++)
    {
      const void *src = (const char *) o + keys[i].offset;
      switch (keys[i].type)
        {
        case KEY_STRING:
        case KEY_CHOICE:
          if (*(char *const *) src)
            cJSON_AddStringToObject (doc, keys[i].name, *(char *const *) src);
          break;
        case KEY_BOOL:
          cJSON_AddBoolToObject (doc, keys[i].name, *(const bool *) src);
          break;
        case KEY_UINT:
          cJSON_AddNumberToObject (doc, keys[i].name, *(const uint32_t *) src);
          break;
        case KEY_STRV:
          {
            cJSON *arr = cJSON_AddArrayToObject (doc, keys[i].name);
            for (char *const *s = *(char **const *) src; s && *s; s++)
              cJSON_AddItemToArray (arr, cJSON_CreateString (*s));
            break;
          }
        }
    }
  char *text = cJSON_Print (doc);
  cJSON_Delete (doc);
  if (text == NULL)
    abort ();
  return text;
}

/* Called in the loop on every Create: temp file + rename, no fsync (write_file_atomic). The
 * file need not be durable: the bundle is on tmpfs (/run), Create rewrites it, and `delete`
 * uses the defaults when it is missing (config_load). */
int
config_save (const struct task_options *o, const char *bundle, shim_error_t *err)
{
  cleanup_free char *text = config_to_json (o);
  cleanup_free char *path = xasprintf ("%s/%s", bundle, CONFIG_BUNDLE_FILE);
  return write_file_atomic (path, text, strlen (text), 0600, err);
}

bool
config_trace_enabled (const struct task_options *o)
{
  const char *env = getenv ("CSHIM_TRACE");
  return o->trace || (env && strcmp (env, "1") == 0);
}

int
config_load (struct task_options *o, const char *bundle, shim_error_t *err)
{
  cleanup_free char *path = xasprintf ("%s/%s", bundle, CONFIG_BUNDLE_FILE);
  return config_apply_file (o, path, err);
}
