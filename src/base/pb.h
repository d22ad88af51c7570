#ifndef CSHIM_PB_H
#define CSHIM_PB_H

/* protobuf-c glue: google.protobuf.Any by type URL, Timestamp conversion, scoped unpacks. */

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <time.h>

#include "base/error.h"

struct Google__Protobuf__Any;
struct Google__Protobuf__Timestamp;

/* Seconds of Go's zero time: what containerd expects for "not exited yet". */
#define PB_ZERO_TIME_SECONDS (-62135596800LL)

/* True when any's type URL names desc (bare full name or "<prefix>/<full name>"). */
bool pb_any_is (const struct Google__Protobuf__Any *any, const ProtobufCMessageDescriptor *desc);
/* Unpacks any as desc; NULL with err set on a type mismatch or bad bytes. */
ProtobufCMessage *pb_any_unpack (const struct Google__Protobuf__Any *any,
                                 const ProtobufCMessageDescriptor *desc, shim_error_t *err);
/* Packs msg into a heap Any (type URL = bare full name); free with pb_any_free. */
struct Google__Protobuf__Any *pb_any_pack (const ProtobufCMessage *msg);
void pb_any_free (struct Google__Protobuf__Any *any);

/* Packs msg into a heap buffer. */
uint8_t *pb_pack (const ProtobufCMessage *msg, size_t *len);

/* Timestamp helpers: a zero timespec becomes Go's zero time. */
void pb_timestamp_set (struct Google__Protobuf__Timestamp *ts, const struct timespec *t);

void cleanup_pbmsgp (ProtobufCMessage **m);
#define cleanup_pbmsg __attribute__ ((cleanup (cleanup_pbmsgp)))

#endif
