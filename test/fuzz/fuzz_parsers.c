/* The text the shim reads from runtimes and users: the runtime's JSON log, pid files, our
 * JSON config and CRI's TOML config_body. Errors are fine; crashes and leaks are not. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/config.h"
#include "runtime/runtime.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *text = xstrndup ((const char *) data, size);
  free (runtime_log_last_error (text, strlen (text)));
  shim_error_t err = NULL;
  pid_t pid;
  if (runtime_parse_pid (text, &pid, &err) < 0)
    shim_error_release (&err);
  (void) runtime_error_code (text);
  struct task_options o;
  config_init (&o);
  if (config_apply_json (&o, text, "fuzz", &err) < 0)
    shim_error_release (&err);
  cJSON *doc = config_toml_to_json (text, "fuzz", &err);
  if (doc == NULL)
    shim_error_release (&err);
  cJSON_Delete (doc);
  config_release (&o);
  free (text);
  return 0;
}
