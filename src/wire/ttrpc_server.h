#ifndef CSHIM_TTRPC_SERVER_H
#define CSHIM_TTRPC_SERVER_H

/* ttrpc server on a libevent loop. Unary calls only; many pending calls per connection,
 * answered in any order. A call handed to a handler may be answered later (parked): the
 * connection is refcounted by its calls, and answering a call whose connection has gone
 * away is a silent no-op that just frees it. */

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

struct event_base;
struct ttrpc_server;
struct ttrpc_call;

/* req is the decoded request (input descriptor of the method), owned by the call and valid
 * until the call is answered. The handler must eventually answer every call exactly once:
 * at once from inside the handler, or later from any callback. A handler may also free
 * the server (requests already read behind it are then dropped). */
typedef void (*ttrpc_handler_fn) (struct ttrpc_call *call, const ProtobufCMessage *req, void *arg);

struct ttrpc_method
{
  const char *service; /* e.g. "containerd.task.v2.Task" */
  const char *method; /* e.g. "Create" */
  const ProtobufCMessageDescriptor *input;
  ttrpc_handler_fn handler;
};

/* Takes ownership of listen_fd (already bound and listening; closed on failure too).
 * methods must outlive the server. Peers whose effective uid/gid differ from ours are
 * rejected (SO_PEERCRED). */
struct ttrpc_server *ttrpc_server_new (struct event_base *base, int listen_fd,
                                       const struct ttrpc_method *methods, size_t n_methods,
                                       void *arg, shim_error_t *err);
/* Serves a second method table (another service) whose handlers get arg instead of the
 * server's. methods must outlive the server. */
void ttrpc_server_add_service (struct ttrpc_server *s, const struct ttrpc_method *methods, size_t n,
                               void *arg);
/* Closes the listener and every connection; parked calls stay valid (answers become no-ops). */
void ttrpc_server_free (struct ttrpc_server *s);
size_t ttrpc_server_connection_count (const struct ttrpc_server *s);

/* Metadata value for key, or NULL. */
const char *ttrpc_call_metadata (const struct ttrpc_call *call, const char *key);
/* "containerd-namespace-ttrpc" metadata, or "" when absent. */
const char *ttrpc_call_namespace (const struct ttrpc_call *call);
const char *ttrpc_call_method (const struct ttrpc_call *call);
/* The request's payload as it came off the wire (valid as long as the call). */
ProtobufCBinaryData ttrpc_call_payload (const struct ttrpc_call *call);
/* Request timeout from timeout_nano, 0 when none. */
int64_t ttrpc_call_timeout_ns (const struct ttrpc_call *call);
bool ttrpc_call_connected (const struct ttrpc_call *call);

/* Answer with resp (packed now; caller keeps ownership of resp; NULL sends an empty
 * payload) and free the call. A response over TTRPC_MAX_DATA becomes ResourceExhausted. */
void ttrpc_call_reply (struct ttrpc_call *call, const ProtobufCMessage *resp);
/* Answer with (*err)->code and message (ending with the code's errdefs class, as containerd
 * expects of a shim), consume *err and free the call. */
void ttrpc_call_fail (struct ttrpc_call *call, shim_error_t *err);

#endif
