#ifndef CSHIM_TTRPC_CALL_H
#define CSHIM_TTRPC_CALL_H

/* Calls of the ttrpc server, inside src/wire only (handlers use ttrpc_server.h): one per
 * request, alive until answered, holding a reference on its connection and a charge against
 * the server's memory budget. ttrpc_server.c owns the connections and provides the
 * ttrpc_conn_* functions declared here. */

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "base/error.h"
#include "ttrpc.pb-c.h"

struct evbuffer;
struct ttrpc_conn;

struct ttrpc_call
{
  struct ttrpc_conn *conn;
  uint32_t stream_id;
  Ttrpc__Request *request; /* NULL when refused before the request was decoded */
  ProtobufCMessage *msg;
  size_t charge; /* counted against the budget while the call lives */
};

struct ttrpc_call *ttrpc_call_new (struct ttrpc_conn *conn, uint32_t stream_id, size_t charge);
void ttrpc_call_free (struct ttrpc_call *call);
struct ttrpc_method;
/* A method table and the arg its handlers get. */
struct ttrpc_service
{
  const struct ttrpc_method *methods;
  size_t n;
  void *arg;
};

/* Decodes a unary request (the data of a Request frame) and hands it to its handler in
 * services, which owns the call from then on: it may answer at once, park the call, or even
 * free the server. Undecodable requests and unknown methods are answered here. */
void ttrpc_call_dispatch (struct ttrpc_conn *conn, uint32_t stream_id, const uint8_t *data,
                          size_t len, const struct ttrpc_service *services, size_t n_services);
/* Fails call with the message as it is: the server's own protocol errors stay plain, as the
 * Go ttrpc server's are. */
void ttrpc_call_fail_plain (struct ttrpc_call *call, shim_error_t *err);
/* Answers a stream with an error before (or instead of) dispatching it. */
void ttrpc_call_refuse (struct ttrpc_conn *conn, uint32_t stream_id, int code, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

/* From ttrpc_server.c: a reference on conn and charge bytes against the budget, taken by a
 * call and given back when it is freed. */
void ttrpc_conn_hold (struct ttrpc_conn *conn, size_t charge);
void ttrpc_conn_release (struct ttrpc_conn *conn, size_t charge);
/* The buffer for frames to the peer, NULL once the connection is closed. */
struct evbuffer *ttrpc_conn_output (const struct ttrpc_conn *conn);
/* After frames were queued: sends what the socket takes now and watches for room. A write
 * error is left for the write callback: closing here could pull the connection out from
 * under a read callback that is dispatching this very call. */
void ttrpc_conn_flush (struct ttrpc_conn *conn);

#endif
