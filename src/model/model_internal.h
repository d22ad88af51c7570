#ifndef CSHIM_MODEL_INTERNAL_H
#define CSHIM_MODEL_INTERNAL_H

/* Shared by the model_*.c files: the model record, lookups, the one place that runs the
 * runtime, and the exit machinery each verb leans on. */

#include <stddef.h>

#include "model/container.h"
#include "model/model.h"

struct proc_io;
struct runtime_call;
struct runtime_io;
struct runtime_result;
struct spawn;

TAILQ_HEAD (call_list, call_ctx);

struct model
{
  struct model_config cfg;
  const struct model_events *ev;
  struct container_list containers;
  size_t n_containers;
  uint64_t serial; /* the last container's */
  struct call_list calls; /* Kill and Pids in flight (model_control.c) */
};

/* Reports event name with the model's events arg, if the service listens for it. */
#define MODEL_EMIT(m, name, ...)                                                                   \
  do                                                                                               \
    {                                                                                              \
      if ((m)->ev->name)                                                                           \
        (m)->ev->name ((m)->cfg.events_arg, __VA_ARGS__);                                          \
    }                                                                                              \
  while (0)

struct container *model_find (const struct model *m, const char *id);
/* Like model_find, but NotFound is an error. */
struct container *model_get (struct model *m, const char *id, shim_error_t *err);
struct process *model_find_process (struct model *m, const char *id, const char *exec_id,
                                    shim_error_t *err);
/* Fails done at once (not queued): err is handed on. */
void model_fail (model_done_fn done, void *arg, shim_error_t err);
/* A typed op of size bytes (its struct op first) on the container named id, set up with
 * op_init; NULL when there is no such container, after failing done. The caller fills in
 * its fields and submits it. */
void *model_op_new (struct model *m, const char *id, size_t size, void (*run) (struct op *),
                    void (*free_op) (struct op *), model_done_fn done, void *arg);

/* Runs one runtime call for c (cwd: its bundle); io NULL: stdin null, outputs captured. */
struct spawn *model_run (struct container *c, const struct runtime_call *rc,
                         const struct runtime_io *io, void (*cb) (struct runtime_result *, void *),
                         void *arg, shim_error_t *err);
/* The error a verb answers for a failed runtime call: "OCI runtime <verb> failed: <text>",
 * the runtime's code kept, and what it wrote to the process's stderr (io, may be NULL) added.
 * Takes *err. */
shim_error_t model_runtime_error (shim_error_t *err, struct proc_io *io);
/* Sets up p->io from p's stdio paths and terminal flag. */
int model_open_io (struct model *m, struct process *p, shim_error_t *err);

/* model_exit.c */
/* Reads p's pid from pid_file and watches it. */
int model_watch_pid_file (struct process *p, const char *pid_file, shim_error_t *err);
/* Resolves the init's cgroups and arms OOM events (after create or restore). */
void model_watch_oom (struct container *c);
/* Publishes every exit of c the ordering rule lets out now. */
void model_flush_exits (struct container *c);
/* Publishes p's exit now (Delete: TaskExit precedes TaskDelete). */
void model_publish_exit (struct process *p);
/* Stops watching p's pid. */
void model_unwatch (struct process *p);
/* Removes c from the model and frees it: queued ops get err (a copy each), parked Waits are
 * answered. Its running op, if any, must be finished or cancelled. */
void model_destroy_container (struct container *c, int code, const char *why);

/* model_control.c */
/* Shutdown: Kill and Pids calls still running are answered Unavailable. */
void model_cancel_calls (struct model *m);

/* model_checkpoint.c */
/* CRIU's work dir for c when a call names none: the runtime options' criu_work_path, else
 * <bundle>/criu-work. *own: the default one, which only holds scratch files. */
char *model_criu_work_path (const struct container *c, bool *own);

/* model_start.c */
/* Delete of an exec process (running on its container's queue). */
void model_delete_exec (struct op *op, struct process *p);

#endif
