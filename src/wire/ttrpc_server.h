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

/* What all clients together may make the server hold (docs/protocol.md, "Memory"). Charged
 * to the budget: each connection's unparsed input and pending output, and each request read
 * but not yet answered (its frame plus TTRPC_CALL_OVERHEAD). */
struct ttrpc_limits
{
  size_t budget; /* bytes charged by all connections together */
  /* Reads never take the total past the budget, except that a connection holding less
   * than this may read up to it: containerd's small calls are served while others fill the
   * budget. A connection that may not read is paused until the budget frees. */
  size_t conn_reserve;
  size_t max_conns; /* a connection beyond this many is closed at once */
  /* A connection holding at least conn_reserve that moved no byte for this long is closed
   * (one paused only for lack of budget, when no other is). */
  unsigned stall_ms;
};
#define TTRPC_BUDGET (32u << 20)
#define TTRPC_CONN_RESERVE (64u << 10)
#define TTRPC_MAX_CONNS 128
#define TTRPC_STALL_MS 10000
#define TTRPC_CALL_OVERHEAD 512

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
/* Replaces the limits (the defaults above apply until then). */
void ttrpc_server_set_limits (struct ttrpc_server *s, const struct ttrpc_limits *limits);
/* Bytes charged to the budget now. */
size_t ttrpc_server_memory (const struct ttrpc_server *s);
/* cb runs after each connection closes, with the number still open (not while the server is
 * freed); it must not free the server. NULL removes it. */
typedef void (*ttrpc_closed_fn) (size_t remaining, void *arg);
void ttrpc_server_on_close (struct ttrpc_server *s, ttrpc_closed_fn cb, void *arg);

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
