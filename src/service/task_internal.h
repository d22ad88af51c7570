#ifndef CSHIM_TASK_INTERNAL_H
#define CSHIM_TASK_INTERNAL_H

/* Shared between the task_*.c files that implement the Task service: the service record,
 * lookups, reply and event helpers, and the handlers each file provides. */

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "model/container.h"
#include "base/error.h"

struct Google__Protobuf__Any;
struct proc_io;
struct shim;
struct ttrpc_call;

struct task_service
{
  struct shim *shim;
  struct container_list containers;
  size_t n_containers;
};

struct container *task_find_container (struct task_service *svc, const char *id);
/* Like task_find_container, but NotFound is an error. */
struct container *task_get_container (struct task_service *svc, const char *id, shim_error_t *err);
struct process *task_find_process (struct task_service *svc, const char *id, const char *exec_id,
                                   shim_error_t *err);
void task_reply_empty (struct ttrpc_call *call);
/* Sets up p->io from p's stdio paths and terminal flag. */
int task_open_io (struct task_service *svc, struct process *p, shim_error_t *err);
/* Fills c's runtime handle, once, right after the container is made: the shim's loop, reaper
 * and namespace, c's options, bundle (the working directory) and log. Create adds the trace. */
void task_runtime_init (struct task_service *svc, struct container *c);
/* Fails call with "OCI runtime <verb> failed: <runtime text>", keeping the runtime's code. */
void task_fail_runtime (struct ttrpc_call *call, shim_error_t *err);
/* The same for a call that handed io to the process: what the runtime wrote to the process's
 * stderr is added to the message. */
void task_fail_runtime_io (struct ttrpc_call *call, shim_error_t *err, struct proc_io *io);
void task_publish (struct task_service *svc, const char *topic, const ProtobufCMessage *event);
void task_flush_exits (struct task_service *svc, struct container *c);
int task_watch_pid_file (struct task_service *svc, struct process *p, const char *pid_file,
                         shim_error_t *err);
void task_submit_op (struct task_service *svc, struct ttrpc_call *call, const char *id,
                     const void *req, void (*run) (struct op *), const void *ctx);
/* Answers Wait calls, stops watching the pid. */
void task_release_process (struct task_service *svc, struct process *p);
void task_destroy_container (struct task_service *svc, struct container *c);
void task_reply_delete (struct ttrpc_call *call, const struct process *p);
/* Resolves the init's cgroups and arms OOM events (after create or restore). */
void task_watch_oom (struct task_service *svc, struct container *c);

/* task_create.c */
void task_handle_create (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);

/* task_exec.c */
/* The exec process spec (a JSON Any) as the runtime reads it, with `terminal` as the request
 * says. Pure; the caller frees. */
char *task_exec_spec_json (const struct Google__Protobuf__Any *spec, bool terminal,
                           shim_error_t *err);
void task_handle_start (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);
void task_handle_exec (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);
/* Delete of an exec process (the op runs on its container's queue). */
void task_delete_exec (struct op *op, struct process *p);
/* The init process exited: execs left running are killed so its exit can be published. */
void task_kill_execs (struct container *c);

/* task_checkpoint.c */
void task_handle_checkpoint (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);

/* task_control.c */
/* The pids in the runtime's `ps --format json` output (a JSON array of numbers; entries that
 * are no pid are skipped). Pure; the caller frees *pids. */
int task_parse_pids (const char *out, pid_t **pids, size_t *n_pids, shim_error_t *err);
void task_handle_kill (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);
/* The init of c exited and c has no pid namespace of its own: kills what is left of it
 * (runtime kill --all), holding the init's exit until that is done. */
void task_kill_all_on_exit (struct container *c);
void task_handle_pids (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);
void task_handle_pause (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);
void task_handle_resume (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);
void task_handle_update (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);
void task_handle_stats (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);
void task_handle_resize_pty (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);
void task_handle_close_io (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg);

#endif
