#ifndef CSHIM_PUBLISHER_H
#define CSHIM_PUBLISHER_H

/* The one ordered event queue. Events are packed into Envelopes when published (timestamp =
 * when it happened) and forwarded to containerd one at a time, in order, over ttrpc
 * (containerd.services.events.ttrpc.v1.Events/Forward) or through the publish binary.
 * Failures are retried with back-off for as long as the shim lives; the queue is bounded and
 * only an overflow drops (oldest first, logged). */

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

struct event_base;
struct publisher;
struct reaper;

struct publisher *publisher_new (struct event_base *base, const char *ttrpc_address);
void publisher_free (struct publisher *p);
/* With no ttrpc address, publish as runtime v2's legacy contract says: run
 * `<binary> --address <address> publish --topic <t> --namespace <ns>` with the event's Any on
 * stdin, one child at a time (in order), retried with the same back-off. binary is
 * containerd's -publish-binary, address its gRPC address. No-op when a ttrpc address is set. */
void publisher_use_binary (struct publisher *p, struct reaper *reaper, const char *binary,
                           const char *address);

/* topic e.g. "/tasks/exit"; event is any containerd.events message (type URL from its
 * descriptor). The caller keeps ownership of event. */
void publisher_publish (struct publisher *p, const char *namespace, const char *topic,
                        const ProtobufCMessage *event);
size_t publisher_pending (const struct publisher *p);

/* Calls cb once the queue is empty or after timeout_ms, whichever comes first. */
void publisher_drain (struct publisher *p, unsigned timeout_ms, void (*cb) (void *arg), void *arg);

#endif
