#ifndef CSHIM_CONTAINER_H
#define CSHIM_CONTAINER_H

/* Containers: the record, the per-container queue that keeps lifecycle operations from
 * interleaving, the rules that look at more than one process, and the rule that orders
 * exits. Internal to the model (model.h is its interface). */

#include <bsd/sys/queue.h>
#include <stdbool.h>
#include <sys/types.h>

#include "model/model.h"
#include "model/process.h"
#include "runtime/config.h"
#include "runtime/runtime.h"

struct container;
struct cgroup;
struct oom_watch;
struct spawn;

/* A lifecycle operation waiting for its turn on a container. Each kind embeds it first in its
 * own struct (create_op, start_op, ...). free_op frees that struct and what it holds; it runs
 * exactly once: when the operation completes, is cancelled, or its container is torn down or
 * the shim shuts down. */
struct op
{
  TAILQ_ENTRY (op) link;
  struct container *container;
  void (*run) (struct op *op);
  void (*free_op) (struct op *op);
  struct spawn *spawn; /* the runtime call in flight, if any */
  struct process *process;
  model_done_fn done; /* answers the operation's caller */
  void *done_arg;
};
TAILQ_HEAD (op_queue, op);

struct container
{
  TAILQ_ENTRY (container) link;
  struct model *model; /* owner, for callbacks from the loop */
  uint64_t serial; /* unique in the model: tells a container from a later one with its id */
  char *id;
  char *bundle;
  char *log_path; /* <bundle>/log.json: the runtime's --log */
  char *rootfs; /* <bundle>/rootfs when we mounted it, else NULL */
  struct cgroup *cgroup; /* the init's cgroups, resolved once it exists */
  struct oom_watch *oom; /* armed right after create */
  /* How this container's runtime calls are made (runtime.h): filled once when the container is
   * made; points at opts.runtime, bundle and log_path. Its trace (NULL: off) is the
   * container's, closed with it. */
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
/* Frees c; parked Waits are answered with what their process recorded. */
void container_free (struct container *c);

/* Finds init (exec_id NULL or "") or an exec. */
struct process *container_process (struct container *c, const char *exec_id);
struct process *container_add_exec (struct container *c, const char *exec_id);
void container_remove_exec (struct container *c, struct process *p);
/* 0 if p may be resized now, else < 0 with err: as in the stock shim, an exec refuses once it
 * exited (its state decides), the init resizes whatever its state. */
int process_check_resize (const struct process *p, shim_error_t *err);
/* 0 if an exec of c may start now: only while the init still runs. Once the init exited the
 * refusal is FailedPrecondition, as containerd 1.7+'s shim answers. */
int container_check_exec_start (const struct container *c, shim_error_t *err);
/* The state State reports: while the container is paused, so is every exec in it. */
enum process_state process_visible_state (const struct process *p);

/* Lifecycle ops run one at a time per container, in arrival order. */
void op_init (struct op *op, struct container *c, void (*run) (struct op *),
              void (*free_op) (struct op *), model_done_fn done, void *arg);
void container_submit (struct container *c, struct op *op);
/* The running op is finished: answers its caller (res NULL with err on failure; err is handed
 * on), frees the op and starts the next. */
void container_op_finish (struct container *c, const struct model_result *res, shim_error_t err);
/* The same in two steps, for an op that has more to do between answering and the next op. */
void container_op_answer (struct container *c, const struct model_result *res, shim_error_t err);
void container_run_next (struct container *c);
/* Ends op without running it further: its runtime call is cancelled, its caller gets err. */
void op_cancel (struct op *op, shim_error_t err);

/* Whether a container with this OCI spec (config.json text, NULL if unreadable) needs its
 * remaining processes killed when its init exits: true unless the spec gives it a pid
 * namespace of its own (a "pid" namespace without a path). Unreadable means true. */
bool container_spec_kills_all_on_exit (const char *spec);

/* The next process whose exit may be published now, or NULL. Exec exits go first; the init
 * exit only once no started (or starting) exec is still running and no kill --all of the
 * container is in flight; nothing while its Start or a runtime kill of it is in flight (the
 * start event and the Kill's answer go first) or before its output is drained (so readers
 * have every byte before they learn of the exit). A created init that is killed before any Start
 * exits like any other. */
struct process *container_next_exit (struct container *c);

#endif
