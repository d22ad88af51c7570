/* The options Any that `start` reads on stdin (and -info, and Create): containerd.runc.v1
 * Options, runtimeoptions.v1.Options (ConfigPath, ConfigBody TOML), the legacy
 * containerd.linux.runc.CreateOptions. What is applied must serialize and read back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/config.h"
#include "google/protobuf/any.pb-c.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  Google__Protobuf__Any *any = google__protobuf__any__unpack (NULL, size, data);
  if (any == NULL)
    return 0;
  struct task_options o;
  config_init (&o);
  shim_error_t err = NULL;
  if (config_apply_any (&o, any, &err) < 0)
    shim_error_release (&err);
  else
    {
      /* What Create saves in the bundle is what `delete` loads. */
      cleanup_free char *json = config_to_json (&o);
      struct task_options back;
      config_init (&back);
      if (config_apply_json (&back, json, "fuzz", &err) < 0)
        abort ();
      cleanup_free char *again = config_to_json (&back);
      if (strcmp (json, again) != 0)
        abort ();
      config_release (&back);
    }
  config_release (&o);
  google__protobuf__any__free_unpacked (any, NULL);
  return 0;
}
