#ifndef CSHIM_CONTAINER_H
#define CSHIM_CONTAINER_H

/* Containers and their processes: the records, the per-container queue that keeps lifecycle
 * operations from interleaving, parked Wait calls, and the rule that orders exits. No
 * protobuf types here: task_service.c turns these records into replies and events. */

#include <bsd/sys/queue.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "runtime/config.h"
#include "runtime/runtime.h"
#include "model/process.h"

struct container;
struct cgroup;
struct oom_watch;
struct proc_io;
struct reaper_watch;
struct ttrpc_call;
struct spawn;
struct task_service;
struct trace;

struct waiter
{
  TAILQ_ENTRY (waiter) link;
  struct ttrpc_call *call;
};
TAILQ_HEAD (waiter_list, waiter);

struct process
{
  TAILQ_ENTRY (process) link; /* in the container's exec list */
  struct container *container;
  char *exec_id; /* NULL for the init process */
  enum process_state state;
  pid_t pid;
  bool terminal;
  char *stdin_path, *stdout_path, *stderr_path;
  char *spec_path; /* exec: process spec file handed to the runtime */
  struct proc_io *io;
  struct reaper_watch *watch;
  bool starting; /* Start's runtime call in flight: an exit waits for its start event */
  bool started; /* TaskStart / TaskExecStarted published */
  bool start_failed; /* start never happened: no exit event, waiters still answered */
  bool exited; /* reaped */
  bool exit_published; /* TaskExit queued, waiters answered */
  int exit_status;
  struct timespec exited_at;
  struct waiter_list waiters;
};
TAILQ_HEAD (process_list, process);

/* A lifecycle operation waiting for its turn on a container. */
struct op
{
  TAILQ_ENTRY (op) link;
  struct container *container;
  struct ttrpc_call *call;
  const void *req;
  void (*run) (struct op *op);
  struct spawn *spawn; /* the runtime call in flight, if any */
  struct process *process;
  const void *ctx; /* what the op's run() needs beyond the request */
  bool exit_unreported; /* Delete: its process had not exited when the Delete began */
};
TAILQ_HEAD (op_queue, op);

struct container
{
  TAILQ_ENTRY (container) link;
  struct task_service *service; /* owner, for callbacks from the loop */
  char *id;
  char *bundle;
  char *log_path; /* <bundle>/log.json: the runtime's --log */
  char *rootfs; /* <bundle>/rootfs when we mounted it, else NULL */
  struct cgroup *cgroup; /* the init's cgroups, resolved once it exists */
  struct oom_watch *oom; /* armed right after create */
  /* How this container's runtime calls are made (runtime.h): filled once by the service when it
   * makes the container; points at opts.runtime, bundle and log_path. Its trace (NULL: off) is
   * the container's, closed with it. */
  struct runtime rt;
  char *checkpoint; /* Create asked to restore from this image: the runtime restores at Start */
  struct task_options opts;
  struct process init;
  struct process_list execs;
  struct op_queue ops;
  struct op *running_op;
  /* No pid namespace of its own: when the init exits, what is left of the container is killed
   * (runtime kill --all) before the exit is published, as nothing else would end it. */
  bool kill_all_on_exit;
  struct spawn *killing_all; /* that kill, while in flight */
};
TAILQ_HEAD (container_list, container);

struct container *container_new (const char *id, const char *bundle);
void container_free (struct container *c);

/* Finds init (exec_id NULL or "") or an exec. */
struct process *container_process (struct container *c, const char *exec_id);
struct process *container_add_exec (struct container *c, const char *exec_id);
void container_remove_exec (struct container *c, struct process *p);
/* Name used for a process in messages: the exec id or the container id. */
const char *process_name (const struct process *p);
bool process_is_init (const struct process *p);
/* 0 if p may be resized now, else < 0 with err: as in the stock shim, an exec refuses once it
 * exited (its state decides), the init resizes whatever its state. */
int process_check_resize (const struct process *p, shim_error_t *err);
/* 0 if an exec of c may start now: only while the init still runs. Once the init exited the
 * refusal is FailedPrecondition, as containerd 1.7+'s shim answers. */
int container_check_exec_start (const struct container *c, shim_error_t *err);
/* The state State reports: while the container is paused, so is every exec in it. */
enum process_state process_visible_state (const struct process *p);

/* Lifecycle ops run one at a time per container, in arrival order. */
struct op *op_new (struct container *c, struct ttrpc_call *call, const void *req,
                   void (*run) (struct op *op));
void container_submit (struct container *c, struct op *op);
/* The running op is finished (its call answered): frees it and starts the next. */
void container_op_done (struct container *c);

/* Whether a container with this OCI spec (config.json text, NULL if unreadable) needs its
 * remaining processes killed when its init exits: true unless the spec gives it a pid
 * namespace of its own (a "pid" namespace without a path). Unreadable means true. */
bool container_spec_kills_all_on_exit (const char *spec);

/* Records a reaped exit and moves the process to STOPPED. */
void process_record_exit (struct process *p, int status, const struct timespec *when);
/* The runtime could not start p. If no process exists, Waits get status 255 (no TaskExit: there
 * was no TaskStart). */
void process_record_failed_start (struct process *p);
/* The next process whose exit may be published now, or NULL. Exec exits go first; the init
 * exit only once no started (or starting) exec is still running and no kill --all of the
 * container is in flight; nothing while its Start is
 * in flight (the start event goes first) or before its output is drained (so readers have
 * every byte before they learn of the exit). A created init that is killed before any Start
 * exits like any other. */
struct process *container_next_exit (struct container *c);

void process_add_waiter (struct process *p, struct ttrpc_call *call);
/* Removes and returns the first parked Wait call, or NULL. */
struct ttrpc_call *process_pop_waiter (struct process *p);

#endif
