/* binary:// and binary-v2:// log URIs (the stdout path of Create or Exec). */
#include <stdint.h>
#include <stdlib.h>

#include "stdio/logbin.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  cleanup_free char *uri = xstrndup ((const char *) data, size);
  char *path = NULL, **args = NULL;
  bool v2;
  shim_error_t err = NULL;
  if (logbin_parse_uri (uri, &path, &args, &v2, &err) < 0)
    {
      shim_error_release (&err);
      return 0;
    }
  if (path == NULL || path[0] != '/')
    abort ();
  size_t n = 0;
  while (args && args[n])
    n++;
  if (n % 2 != 0)
    abort (); /* key value pairs */
  free (path);
  strv_free (args);
  return 0;
}
