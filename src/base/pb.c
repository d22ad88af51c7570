#include "base/pb.h"

#include <stdlib.h>
#include <string.h>

#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "base/util.h"

bool
pb_any_is (const Google__Protobuf__Any *any, const ProtobufCMessageDescriptor *desc)
{
  if (any == NULL || any->type_url == NULL)
    return false;
  const char *slash = strrchr (any->type_url, '/');
  const char *name = slash ? slash + 1 : any->type_url;
  return strcmp (name, desc->name) == 0;
}

ProtobufCMessage *
pb_any_unpack (const Google__Protobuf__Any *any, const ProtobufCMessageDescriptor *desc,
               shim_error_t *err)
{
  if (!pb_any_is (any, desc))
    {
      shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "unexpected type `%s`, want `%s`",
                       any && any->type_url ? any->type_url : "", desc->name);
      return NULL;
    }
  ProtobufCMessage *m = protobuf_c_message_unpack (desc, NULL, any->value.len, any->value.data);
  if (m == NULL)
    shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "cannot decode `%s`", desc->name);
  return m;
}

uint8_t *
pb_pack (const ProtobufCMessage *msg, size_t *len)
{
  size_t n = protobuf_c_message_get_packed_size (msg);
  uint8_t *buf = xmalloc (n);
  protobuf_c_message_pack (msg, buf);
  *len = n;
  return buf;
}

Google__Protobuf__Any *
pb_any_pack (const ProtobufCMessage *msg)
{
  Google__Protobuf__Any *any = xmalloc (sizeof *any);
  google__protobuf__any__init (any);
  any->type_url = xstrdup (msg->descriptor->name);
  any->value.data = pb_pack (msg, &any->value.len);
  return any;
}

void
pb_any_free (Google__Protobuf__Any *any)
{
  if (any == NULL)
    return;
  free (any->type_url);
  free (any->value.data);
  free (any);
}

void
pb_timestamp_set (Google__Protobuf__Timestamp *ts, const struct timespec *t)
{
  if (t->tv_sec == 0 && t->tv_nsec == 0)
    {
      ts->seconds = PB_ZERO_TIME_SECONDS;
      ts->nanos = 0;
      return;
    }
  ts->seconds = t->tv_sec;
  ts->nanos = (int32_t) t->tv_nsec;
}

void
cleanup_pbmsgp (ProtobufCMessage **m)
{
  if (*m)
    protobuf_c_message_free_unpacked (*m, NULL);
}
