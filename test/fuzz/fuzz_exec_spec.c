/* Exec's process spec (the JSON in ExecProcessRequest.spec), rewritten with `terminal` for the
 * runtime. The first byte is the request's terminal flag. */
#include <stdint.h>
#include <stdlib.h>

#include "google/protobuf/any.pb-c.h"
#include "service/task_internal.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size == 0)
    return 0;
  Google__Protobuf__Any spec = GOOGLE__PROTOBUF__ANY__INIT;
  spec.type_url = "types.containerd.io/opencontainers/runtime-spec/1/Process";
  spec.value.data = (uint8_t *) data + 1;
  spec.value.len = size - 1;
  shim_error_t err = NULL;
  char *out = task_exec_spec_json (&spec, data[0] & 1, &err);
  if (out == NULL)
    shim_error_release (&err);
  free (out);
  return 0;
}
