/* The bundle's config.json as `start` reads it: the grouping-key annotations, then the socket
 * address derived from the key. */
#include <stdint.h>
#include <stdlib.h>

#include "cli/manager.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  cleanup_free char *text = xstrndup ((const char *) data, size);
  cleanup_free char *key = manager_group_key (text, "fuzz-id");
  if (key == NULL)
    abort (); /* the id is the fallback */
  free (manager_socket_address ("/run/containerd/containerd.sock.ttrpc", "default", key));
  return 0;
}
