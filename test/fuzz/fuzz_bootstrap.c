/* containerd 2.3's BootstrapParams on `start`'s stdin (or the plain options Any it replaces),
 * and the options it carries, applied as `start` does. The seeds are for instance id
 * "fuzz-id" in namespace "default". */
#include <stdint.h>
#include <stdlib.h>

#include "runtime/config.h"
#include "google/protobuf/any.pb-c.h"
#include "cli/manager.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct shim_args args = { .namespace = "default", .id = "fuzz-id" };
  size_t len = 0;
  cleanup_free uint8_t *opts = manager_bootstrap_options (&args, data, size, &len);
  if (opts == NULL || len == 0)
    return 0;
  Google__Protobuf__Any *any = google__protobuf__any__unpack (NULL, len, opts);
  if (any == NULL)
    abort (); /* we packed it ourselves */
  struct task_options o;
  config_init (&o);
  shim_error_t err = NULL;
  if (config_apply_any (&o, any, &err) < 0)
    shim_error_release (&err);
  config_release (&o);
  google__protobuf__any__free_unpacked (any, NULL);
  return 0;
}
