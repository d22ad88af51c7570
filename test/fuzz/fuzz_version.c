/* `<runtime> --version` output: the profile it names, the capabilities it rules out, the
 * features document synthesized from it, and the calls the resolved profile allows. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/profile.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  cleanup_free char *text = xstrndup ((const char *) data, size);
  struct profile_info info;
  memset (&info, 0xa5, sizeof info); /* every field must be set, whatever the text */
  const struct runtime_profile *base = profile_from_version (text, &info);
  if (base == NULL || strnlen (info.name, sizeof info.name) == sizeof info.name
      || strnlen (info.version, sizeof info.version) == sizeof info.version
      || strnlen (info.features, sizeof info.features) == sizeof info.features)
    abort ();
  struct runtime_profile p;
  profile_resolve (base, &info, &p);
  free (profile_features_json (&p, &info));
  for (int v = 0; v < RUNTIME_VERB_COUNT; v++)
    {
      struct runtime_call call = { .verb = v, .id = "fuzz" };
      shim_error_t err = NULL;
      if (profile_check_call (&p, &call, NULL, &err) < 0)
        shim_error_release (&err);
    }
  return 0;
}
