/* What a ttrpc server (containerd's events service) answers to the publisher's client, through
 * the real socket and loop. The first byte's low bit picks the form: 0 = the rest is the
 * payload of a Response frame for the call's stream, 1 = the rest is raw bytes on the wire.
 * The server then hangs up; the callback must run exactly once. */
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "google/protobuf/empty.pb-c.h"
#include "wire/ttrpc_client.h"
#include "wire/ttrpc_wire.h"
#include "base/util.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static struct event_base *base;
static char dir[64], path[96];
static int listen_fd = -1;

static void
cleanup (void)
{
  unlink (path);
  rmdir (dir);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  (void) argc;
  (void) argv;
  base = event_base_new ();
  snprintf (dir, sizeof dir, "/tmp/cshim-fuzz-ttrpc.XXXXXX");
  if (mkdtemp (dir) == NULL)
    abort ();
  snprintf (path, sizeof path, "%s/s", dir);
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  strcpy (sa.sun_path, path);
  listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd < 0 || bind (listen_fd, (struct sockaddr *) &sa, sizeof sa) < 0
      || listen (listen_fd, 4) < 0)
    abort ();
  atexit (cleanup);
  return 0;
}

struct outcome
{
  int calls;
};

static void
reply_cb (int code, const char *message, const uint8_t *payload, size_t len, void *arg)
{
  struct outcome *o = arg;
  o->calls++;
  if (message == NULL)
    abort ();
  if (code == 0)
    {
      Google__Protobuf__Empty *e = google__protobuf__empty__unpack (NULL, len, payload);
      if (e)
        google__protobuf__empty__free_unpacked (e, NULL);
    }
}

static void
answer (int conn, const uint8_t *data, size_t size)
{
  if (size > 0 && (data[0] & 1) == 0)
    {
      struct ttrpc_header h = { .length = size - 1, .stream_id = 1, .type = TTRPC_TYPE_RESPONSE };
      uint8_t hdr[TTRPC_HEADER_LEN];
      ttrpc_header_encode (&h, hdr);
      (void) write_all (conn, hdr, sizeof hdr);
    }
  if (size > 1)
    (void) write_all (conn, data + 1, size - 1);
  close (conn);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct ttrpc_client *c = ttrpc_client_new (base, path);
  struct outcome o = { 0 };
  Google__Protobuf__Empty req = GOOGLE__PROTOBUF__EMPTY__INIT;
  shim_error_t err = NULL;
  if (ttrpc_client_call (c, "containerd.services.events.ttrpc.v1.Events", "Forward", &req.base,
                         NULL, 0, 0, reply_cb, &o, &err)
      < 0)
    abort ();
  int conn;
  while ((conn = accept4 (listen_fd, NULL, NULL, SOCK_CLOEXEC)) < 0 && o.calls == 0)
    event_base_loop (base, EVLOOP_NONBLOCK);
  if (conn >= 0)
    answer (conn, data, size);
  while (o.calls == 0)
    event_base_loop (base, EVLOOP_ONCE);
  ttrpc_client_free (c);
  if (o.calls != 1)
    abort ();
  return 0;
}
