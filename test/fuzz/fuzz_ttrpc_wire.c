/* Arbitrary bytes from a peer, fed to the frame reader in arbitrary chunks: no crash, no
 * leak, and every frame it returns is within the limit. */
#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>

#include "ttrpc.pb-c.h"
#include "wire/ttrpc_wire.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct evbuffer *in = evbuffer_new ();
  struct ttrpc_reader r = { 0 };
  size_t chunk = size ? (data[0] % 16) + 1 : 1;
  for (size_t off = 0; off < size; off += chunk)
    {
      evbuffer_add (in, data + off, off + chunk <= size ? chunk : size - off);
      struct ttrpc_frame f;
      enum ttrpc_read_status st;
      while ((st = ttrpc_reader_next (&r, in, &f)) != TTRPC_READ_NEED_MORE)
        {
          if (st != TTRPC_READ_FRAME)
            continue;
          if (f.header.length > TTRPC_MAX_DATA)
            abort ();
          /* What the server does next with a Request frame. */
          Ttrpc__Request *req = ttrpc__request__unpack (NULL, f.header.length, f.data);
          if (req)
            ttrpc__request__free_unpacked (req, NULL);
          free (f.data);
        }
    }
  evbuffer_free (in);
  return 0;
}
