#ifndef CSHIM_CONFIG_H
#define CSHIM_CONFIG_H

/* Per-task options: built from defaults, then whatever containerd sent (runc Options,
 * runtimeoptions ConfigPath -> our JSON config, legacy CreateOptions), persisted in the bundle
 * so that `delete` can find the runtime without the server. */

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "runtime/verbs.h"

struct Google__Protobuf__Any;

#define CONFIG_BUNDLE_FILE "cshim.json"
/* The options Any that `start` received on stdin, kept for the server. */
#define CONFIG_START_OPTIONS_FILE "cshim-start-options.pb"
#define CONFIG_DEFAULT_BINARY "runc"
#define CONFIG_DEFAULT_ROOT "/run/containerd/runc"
#define CONFIG_DEFAULT_TIMEOUT_MS 120000

#define CONFIG_DEFAULT_EXEC_IO_DRAIN_MS 2000
#define CONFIG_DEFAULT_TRACE_DIR "/run/cshim/trace"

struct task_options
{
  struct runtime_cfg runtime;
  char *profile; /* runc, crun, youki, generic, or auto (probe the binary) */
  char *shim_cgroup;
  uint32_t io_uid;
  uint32_t io_gid;
  bool trace; /* record every runtime call (see config_trace_enabled()) */
  char *trace_dir; /* trace files: <trace_dir>/<namespace>/<id>.jsonl */
  uint32_t exec_io_drain_ms; /* output of an exited process is closed after this */
  char *io_policy; /* block: a full reader stalls the writer; drop: excess output is dropped */
  char *criu_image_path; /* checkpoint defaults from runc options */
  char *criu_work_path;
};

void config_init (struct task_options *o);
void config_release (struct task_options *o);

/* Applies an options Any of any type we know; unknown types are an InvalidArgument error.
 * A NULL or empty Any changes nothing. */
int config_apply_any (struct task_options *o, const struct Google__Protobuf__Any *any,
                      shim_error_t *err);
/* Applies our JSON config document; origin names it in error messages. Unknown keys and
 * wrong types are errors. */
int config_apply_json (struct task_options *o, const char *text, const char *origin,
                       shim_error_t *err);
int config_apply_file (struct task_options *o, const char *path, shim_error_t *err);
/* The flat `key = value` TOML that CRI sends as config_body, as a JSON object of our keys
 * (CRI's own TypeUrl/ConfigPath/ConfigBody left out). NULL with err on anything else. */
struct cJSON *config_toml_to_json (const char *text, const char *origin, shim_error_t *err);
/* Applies the options `start` saved in the bundle, if any. */
int config_apply_start_options (struct task_options *o, const char *bundle, shim_error_t *err);

/* Serializes to our JSON config format (what config_apply_json reads back). */
/* The bundle's OCI spec (config.json) as text, or NULL when it cannot be read. */
char *config_read_spec (const char *bundle);
char *config_to_json (const struct task_options *o);
int config_save (const struct task_options *o, const char *bundle, shim_error_t *err);
/* Applies the bundle's cshim.json. A missing or unreadable file is an error that leaves o as
 * it was: `delete` then goes on with the defaults. */
int config_load (struct task_options *o, const char *bundle, shim_error_t *err);

/* Whether a container's runtime calls are traced (trace.h): when its config says so
 * ("trace": true), or when the environment does (CSHIM_TRACE=1, inherited from containerd: to
 * debug a running setup without editing its configs). containerd's debug level (-debug) does
 * not turn tracing on: every shim would write a file that outlives its task. */
bool config_trace_enabled (const struct task_options *o);

#endif
