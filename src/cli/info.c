#include "cli/info.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "runtime/config.h"
#include "containerd/types/introspection.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "base/pb.h"
#include "runtime/profile.h"
#include "base/util.h"

#define FEATURES_TYPE "types.containerd.io/opencontainers/runtime-spec/1/features/Features"
#define INFO_CMD_TIMEOUT_MS 5000

bool
info_features_valid (const char *text)
{
  cJSON *doc = cJSON_Parse (text);
  bool ok = cJSON_IsObject (doc);
  cJSON_Delete (doc);
  return ok;
}

/* The runtime's own `features` output when it has the command and it prints JSON. */
static char *
runtime_features (const char *binary, const struct runtime_profile *p)
{
  if (!profile_has_cap (p, PROFILE_CAP_FEATURES))
    return NULL;
  char *argv[] = { (char *) binary, "features", NULL };
  char *out = NULL;
  if (cmd_run (argv, NULL, INFO_CMD_TIMEOUT_MS, &out, NULL) == 0 && info_features_valid (out))
    return out;
  free (out);
  return NULL;
}

struct runtime_facts
{
  struct runtime_profile resolved;
  struct profile_info info;
  char *features;
};

static void
probe_runtime (const struct task_options *opts, struct runtime_facts *f)
{
  char *argv[] = { opts->runtime.binary, "--version", NULL };
  cleanup_free char *text = NULL;
  memset (&f->info, 0, sizeof f->info);
  const struct runtime_profile *p = NULL;
  if (cmd_run (argv, NULL, INFO_CMD_TIMEOUT_MS, &text, NULL) == 0)
    p = profile_from_version (text, &f->info);
  if (strcmp (opts->profile, "auto") != 0)
    p = profile_by_name (opts->profile);
  profile_resolve (p ? p : profile_by_name ("generic"), &f->info, &f->resolved);
  f->features = runtime_features (opts->runtime.binary, &f->resolved);
  if (f->features == NULL)
    f->features = profile_features_json (&f->resolved, &f->info);
}

static Google__Protobuf__Any *
unpack_options (const uint8_t *data, size_t len)
{
  if (len == 0)
    return NULL;
  return (Google__Protobuf__Any *) protobuf_c_message_unpack (&google__protobuf__any__descriptor,
                                                              NULL, len, data);
}

uint8_t *
info_build (const uint8_t *options, size_t options_len, size_t *out_len)
{
  struct task_options opts;
  config_init (&opts);
  Google__Protobuf__Any *any = unpack_options (options, options_len);
  cleanup_error shim_error_t err = NULL;
  config_apply_any (&opts, any, &err);
  struct runtime_facts f;
  probe_runtime (&opts, &f);

  Containerd__Types__RuntimeVersion version = CONTAINERD__TYPES__RUNTIME_VERSION__INIT;
  version.version = CSHIM_VERSION;
  Google__Protobuf__Any features = GOOGLE__PROTOBUF__ANY__INIT;
  features.type_url = FEATURES_TYPE;
  features.value.data = (uint8_t *) f.features;
  features.value.len = strlen (f.features);
  Containerd__Types__RuntimeInfo__AnnotationsEntry ann[4];
  Containerd__Types__RuntimeInfo__AnnotationsEntry *ann_ptrs[4];
  const char *kv[][2] = { { "io.github.cshim.runtime.binary", opts.runtime.binary },
                          { "io.github.cshim.runtime.profile", f.resolved.name },
                          { "io.github.cshim.runtime.version", f.info.version },
                          { "io.github.cshim.options.error", err ? err->msg : "" } };
  size_t n_ann = 0;
  for (size_t i = 0; i < ARRAY_SIZE (kv); i++)
    if (kv[i][1] && kv[i][1][0])
      {
        containerd__types__runtime_info__annotations_entry__init (&ann[n_ann]);
        ann[n_ann].key = (char *) kv[i][0];
        ann[n_ann].value = (char *) kv[i][1];
        ann_ptrs[n_ann] = &ann[n_ann];
        n_ann++;
      }
  Containerd__Types__RuntimeInfo info = CONTAINERD__TYPES__RUNTIME_INFO__INIT;
  info.name = "io.containerd.cshim.v2";
  info.version = &version;
  info.options = any;
  info.features = &features;
  info.n_annotations = n_ann;
  info.annotations = ann_ptrs;
  uint8_t *buf = pb_pack (&info.base, out_len);
  if (any)
    protobuf_c_message_free_unpacked (&any->base, NULL);
  free (f.features);
  config_release (&opts);
  return buf;
}

int
info_run (shim_error_t *err)
{
  cleanup_free char *data = NULL;
  size_t len = 0;
  if (!isatty (STDIN_FILENO) && read_file ("/dev/stdin", 1u << 20, &data, &len, err) < 0)
    return -1;
  size_t out_len;
  cleanup_free uint8_t *out = info_build ((const uint8_t *) data, len, &out_len);
  if (fwrite (out, 1, out_len, stdout) != out_len || fflush (stdout) != 0)
    return shim_error_make (err, 0, SHIM_UNKNOWN, "write RuntimeInfo");
  return 0;
}
