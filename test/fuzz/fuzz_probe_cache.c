/* A probe cache file (/run/cshim/probe/<sha256 of the path>), as a later shim reads it: the
 * file-id header for a binary with file id 1 2 3 4 5, then the cached `--version` text. */
#include <stdint.h>
#include <stdlib.h>

#include "runtime/profile.h"
#include "runtime/profile_internal.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  cleanup_free char *file = xstrndup ((const char *) data, size);
  const struct file_id id = { 1, 2, 3, { 4, 5 } };
  cleanup_free char *text = profile_cache_parse (file, &id);
  if (text == NULL)
    return 0;
  struct profile_info info;
  struct runtime_profile p;
  profile_resolve (profile_from_version (text, &info), &info, &p);
  return 0;
}
