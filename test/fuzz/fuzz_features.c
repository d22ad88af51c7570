/* A runtime's `features` output, which -info passes on when it is a JSON object. */
#include <stdint.h>
#include <stdlib.h>

#include "cli/info.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  cleanup_free char *text = xstrndup ((const char *) data, size);
  (void) info_features_valid (text);
  return 0;
}
