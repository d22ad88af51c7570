#ifndef CSHIM_TASK_INTERNAL_H
#define CSHIM_TASK_INTERNAL_H

/* Shared by the task_*.c files, the Task API adapter over the model (model/model.h): each
 * handler decodes, validates, calls the model and turns its answer into the reply; the
 * model's events become TaskX events (task_events.c). */

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "base/error.h"
#include "model/model.h"

struct Google__Protobuf__Any;
struct shim;
struct ttrpc_call;

struct task_service
{
  struct shim *shim;
  struct model *model;
};

void task_reply_empty (struct ttrpc_call *call);
/* A model_done_fn for verbs that answer Empty; arg is the call. */
void task_done_empty (const struct model_result *res, shim_error_t err, void *arg);
void task_publish (struct task_service *svc, const char *topic, const ProtobufCMessage *event);

/* task_events.c: the model's events as TaskX events; arg is the service. */
extern const struct model_events task_events;

/* task_lifecycle.c */
void task_handle_create (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);
void task_handle_start (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);
void task_handle_delete (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);
void task_handle_wait (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);
void task_handle_state (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);

/* task_exec.c */
/* The exec process spec (a JSON Any) as the runtime reads it, with `terminal` as the request
 * says. Pure; the caller frees. */
char *task_exec_spec_json (const struct Google__Protobuf__Any *spec, bool terminal,
                           shim_error_t *err);
void task_handle_exec (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);

/* task_checkpoint.c */
void task_handle_checkpoint (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);

/* task_control.c */
void task_handle_kill (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);
void task_handle_pids (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);
void task_handle_pause (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);
void task_handle_resume (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);
void task_handle_update (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);
void task_handle_stats (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);
void task_handle_resize_pty (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);
void task_handle_close_io (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);

#endif
