/* `<runtime> ps --format json` output: the pids Pids replies with. */
#include <stdint.h>
#include <stdlib.h>

#include "model/model.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  cleanup_free char *text = xstrndup ((const char *) data, size);
  pid_t *pids = NULL;
  size_t n = 0;
  shim_error_t err = NULL;
  if (model_parse_pids (text, &pids, &n, &err) < 0)
    shim_error_release (&err);
  for (size_t i = 0; i < n; i++)
    if (pids[i] < 0)
      abort ();
  free (pids);
  return 0;
}
