#ifndef CSHIM_TTRPC_CLIENT_H
#define CSHIM_TTRPC_CLIENT_H

/* Non-blocking ttrpc client (unary calls) on a libevent loop, used to publish events to
 * containerd. Connects lazily and again after a failure; never blocks the loop. */

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

struct event_base;
struct ttrpc_client;

struct ttrpc_kv
{
  const char *key;
  const char *value;
};

/* code is a gRPC code (SHIM_OK on success); payload/message valid only during the callback.
 * Transport failures give SHIM_UNAVAILABLE, deadlines SHIM_DEADLINE_EXCEEDED. */
typedef void (*ttrpc_client_cb) (int code, const char *message, const uint8_t *payload, size_t len,
                                 void *arg);

/* address: a unix socket path, with or without a "unix://" prefix. */
struct ttrpc_client *ttrpc_client_new (struct event_base *base, const char *address);
/* Pending callbacks are not called after free. */
void ttrpc_client_free (struct ttrpc_client *c);

/* Queues a call; the callback runs exactly once from the loop (never from inside this
 * function). timeout_ms 0 means no deadline (and timeout_nano is not sent). Returns < 0
 * (callback never called) only for a request over TTRPC_MAX_DATA; connection failures go
 * to the callback. Callbacks may issue new calls and may free the client. */
int ttrpc_client_call (struct ttrpc_client *c, const char *service, const char *method,
                       const ProtobufCMessage *req, const struct ttrpc_kv *metadata,
                       size_t n_metadata, unsigned timeout_ms, ttrpc_client_cb cb, void *arg,
                       shim_error_t *err);

#endif
