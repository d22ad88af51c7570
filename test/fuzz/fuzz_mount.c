/* Rootfs mount options (CreateTaskRequest.rootfs[].options), NUL-separated. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "platform/mount.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  cleanup_free char *text = xmalloc (size + 1);
  memcpy (text, data, size);
  text[size] = '\0';
  size_t n = 0;
  char **opts = NULL;
  for (size_t off = 0; off <= size; off += strlen (text + off) + 1)
    {
      opts = xrealloc (opts, (n + 1) * sizeof *opts);
      opts[n++] = text + off;
    }
  unsigned long flags;
  char *out = NULL;
  mount_parse_options (opts, n, &flags, &out);
  free (out);
  free (opts);
  return 0;
}
