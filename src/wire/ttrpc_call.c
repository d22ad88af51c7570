#include "wire/ttrpc_call.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "base/log.h"
#include "base/util.h"
#include "google/rpc/status.pb-c.h"
#include "wire/ttrpc_server.h"
#include "wire/ttrpc_wire.h"

#define TTRPC_NAMESPACE_KEY "containerd-namespace-ttrpc"

struct ttrpc_call *
ttrpc_call_new (struct ttrpc_conn *conn, uint32_t stream_id, size_t charge)
{
  struct ttrpc_call *call = xcalloc (1, sizeof *call);
  call->conn = conn;
  call->stream_id = stream_id;
  call->charge = charge;
  ttrpc_conn_hold (conn, charge);
  return call;
}

void
ttrpc_call_free (struct ttrpc_call *call)
{
  if (call->msg)
    protobuf_c_message_free_unpacked (call->msg, NULL);
  if (call->request)
    ttrpc__request__free_unpacked (call->request, NULL);
  ttrpc_conn_release (call->conn, call->charge);
  free (call);
}

/* Queues the response frame and tries to send it at once. */
static void
call_send (struct ttrpc_call *call, const Ttrpc__Response *resp)
{
  struct evbuffer *out = ttrpc_conn_output (call->conn);
  if (out == NULL)
    return;
  size_t len = ttrpc__response__get_packed_size (resp);
  cleanup_free uint8_t *buf = xmalloc (len);
  ttrpc__response__pack (resp, buf);
  if (ttrpc_frame_append (out, call->stream_id, TTRPC_TYPE_RESPONSE, 0, buf, len) < 0)
    {
      log_error ("ttrpc: cannot queue response on stream %u (%zu bytes)", call->stream_id, len);
      return;
    }
  ttrpc_conn_flush (call->conn);
}

const char *
ttrpc_call_metadata (const struct ttrpc_call *call, const char *key)
{
  if (call->request == NULL)
    return NULL;
  for (size_t i = 0; i < call->request->n_metadata; i++)
    {
      const Ttrpc__KeyValue *kv = call->request->metadata[i];
      if (kv && kv->key && strcmp (kv->key, key) == 0)
        return kv->value ? kv->value : "";
    }
  return NULL;
}

const char *
ttrpc_call_namespace (const struct ttrpc_call *call)
{
  const char *ns = ttrpc_call_metadata (call, TTRPC_NAMESPACE_KEY);
  return ns ? ns : "";
}

const char *
ttrpc_call_method (const struct ttrpc_call *call)
{
  return call->request && call->request->method ? call->request->method : "";
}

ProtobufCBinaryData
ttrpc_call_payload (const struct ttrpc_call *call)
{
  ProtobufCBinaryData none = { 0, NULL };
  return call->request ? call->request->payload : none;
}

int64_t
ttrpc_call_timeout_ns (const struct ttrpc_call *call)
{
  return call->request ? call->request->timeout_nano : 0;
}

bool
ttrpc_call_connected (const struct ttrpc_call *call)
{
  return ttrpc_conn_output (call->conn) != NULL;
}

static void call_fail (struct ttrpc_call *call, shim_error_t *err, bool classed);

void
ttrpc_call_reply (struct ttrpc_call *call, const ProtobufCMessage *resp)
{
  /* Status is always present, code 0 on success, as the Go server sends it. */
  Google__Rpc__Status status = GOOGLE__RPC__STATUS__INIT;
  Ttrpc__Response r = TTRPC__RESPONSE__INIT;
  cleanup_free uint8_t *payload = NULL;

  if (!ttrpc_call_connected (call))
    {
      ttrpc_call_free (call);
      return;
    }
  if (resp)
    {
      r.payload.len = protobuf_c_message_get_packed_size (resp);
      payload = xmalloc (r.payload.len);
      protobuf_c_message_pack (resp, payload);
      r.payload.data = payload;
    }
  r.status = &status;
  size_t len = ttrpc__response__get_packed_size (&r);
  if (len > TTRPC_MAX_DATA)
    {
      shim_error_t err = NULL;
      shim_error_make (&err, 0, SHIM_RESOURCE_EXHAUSTED,
                       "message length %zu exceed maximum message size of %u", len, TTRPC_MAX_DATA);
      call_fail (call, &err, false);
      return;
    }
  call_send (call, &r);
  ttrpc_call_free (call);
}

/* A handler's message as the Go shim's errdefs errors read: ending with the code's class
 * ("container not created: not found"), added unless it is there already. */
static char *
wire_message (int code, const char *msg, bool classed)
{
  const char *cls = classed ? shim_code_class (code) : NULL;
  size_t n = strlen (msg), k = cls ? strlen (cls) : 0;
  if (cls == NULL || (n >= k + 2 && strcmp (msg + n - k, cls) == 0 && msg[n - k - 2] == ':'))
    return xstrdup (msg);
  return xasprintf ("%s: %s", msg, cls);
}

static void
call_fail (struct ttrpc_call *call, shim_error_t *err, bool classed)
{
  Google__Rpc__Status status = GOOGLE__RPC__STATUS__INIT;
  Ttrpc__Response r = TTRPC__RESPONSE__INIT;
  shim_error_t e = err ? *err : NULL;

  /* Code 0 would read as success to the peer: an error always carries a failure code. */
  status.code = e && e->code != SHIM_OK ? e->code : SHIM_UNKNOWN;
  cleanup_free char *text
      = wire_message (status.code, e && e->msg ? e->msg : "unknown error", classed);
  status.message = text;
  log_debug ("ttrpc: stream %u %s failed: %s", call->stream_id, ttrpc_call_method (call),
             status.message);
  r.status = &status;
  call_send (call, &r);
  shim_error_release (err);
  ttrpc_call_free (call);
}

void
ttrpc_call_fail (struct ttrpc_call *call, shim_error_t *err)
{
  call_fail (call, err, true);
}

void
ttrpc_call_fail_plain (struct ttrpc_call *call, shim_error_t *err)
{
  call_fail (call, err, false);
}

void
ttrpc_call_refuse (struct ttrpc_conn *conn, uint32_t stream_id, int code, const char *fmt, ...)
{
  shim_error_t err = NULL;
  va_list ap;
  va_start (ap, fmt);
  cleanup_free char *msg = xvasprintf (fmt, ap);
  va_end (ap);
  shim_error_make (&err, 0, code, "%s", msg);
  call_fail (ttrpc_call_new (conn, stream_id, 0), &err, false);
}

/* Dispatch. */

static const struct ttrpc_method *
table_lookup (const struct ttrpc_method *methods, size_t n, const Ttrpc__Request *req,
              bool *service_known)
{
  for (size_t i = 0; i < n; i++)
    {
      const struct ttrpc_method *m = &methods[i];
      if (strcmp (m->service, req->service) != 0)
        continue;
      *service_known = true;
      if (strcmp (m->method, req->method) == 0)
        return m;
    }
  return NULL;
}

/* The method for req and the arg its handler gets. */
static const struct ttrpc_method *
services_lookup (const struct ttrpc_service *services, size_t n, const Ttrpc__Request *req,
                 void **arg, shim_error_t *err)
{
  bool service_known = false;
  for (size_t i = 0; i < n; i++)
    {
      const struct ttrpc_method *m
          = table_lookup (services[i].methods, services[i].n, req, &service_known);
      *arg = services[i].arg;
      if (m)
        return m;
    }
  if (service_known)
    shim_error_make (err, 0, SHIM_UNIMPLEMENTED, "method %s", req->method);
  else
    shim_error_make (err, 0, SHIM_UNIMPLEMENTED, "service %s", req->service);
  return NULL;
}

void
ttrpc_call_dispatch (struct ttrpc_conn *conn, uint32_t stream_id, const uint8_t *data, size_t len,
                     const struct ttrpc_service *services, size_t n_services)
{
  struct ttrpc_call *call = ttrpc_call_new (conn, stream_id, 2 * len + TTRPC_CALL_OVERHEAD);
  shim_error_t err = NULL;

  call->request = ttrpc__request__unpack (NULL, len, data);
  if (call->request == NULL)
    {
      shim_error_make (&err, 0, SHIM_INVALID_ARGUMENT, "invalid ttrpc request");
      ttrpc_call_fail_plain (call, &err);
      return;
    }
  void *arg;
  const struct ttrpc_method *m = services_lookup (services, n_services, call->request, &arg, &err);
  if (m == NULL)
    {
      ttrpc_call_fail_plain (call, &err);
      return;
    }
  const ProtobufCBinaryData *p = &call->request->payload;
  call->msg = protobuf_c_message_unpack (m->input, NULL, p->len, p->data);
  if (call->msg == NULL)
    {
      shim_error_make (&err, 0, SHIM_INVALID_ARGUMENT, "invalid %s request payload", m->method);
      ttrpc_call_fail_plain (call, &err);
      return;
    }
  log_debug ("ttrpc: stream %u call %s/%s", stream_id, m->service, m->method);
  m->handler (call, call->msg, arg);
}
