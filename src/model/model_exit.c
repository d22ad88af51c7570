/* One exit, from the reaper to TaskExit: the pid watch, what an init's exit sets off (execs
 * killed, kill --all for a container without its own pid namespace), the output drain, the
 * OOM check, and the ordering rule (container_next_exit); then parked Waits are answered.
 * Wait and Delete live here too: both are about an exit. */

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "model/model_internal.h"
#include "platform/cgroup.h"
#include "platform/oom.h"
#include "platform/reaper.h"
#include "runtime/runtime.h"
#include "stdio/procio.h"

/* ---- OOM ---- */

static void
oom_cb (void *arg)
{
  struct container *c = arg;
  log_info ("container %s: OOM", c->id);
  MODEL_EMIT (c->model, oom, c->id);
}

/* OOM is watched from right after create, so a process that is already paused in its cgroup
 * is covered; a failure to watch is logged, not fatal. */
void
model_watch_oom (struct container *c)
{
  cleanup_error shim_error_t err = NULL;
  if (c->cgroup == NULL)
    c->cgroup = cgroup_of_pid (c->init.pid, &err);
  if (c->cgroup && c->oom == NULL)
    c->oom = oom_watch_new (c->model->cfg.base, c->cgroup, oom_cb, c, &err);
  if (err)
    log_warn ("container %s: no OOM events: %s", c->id, err->msg);
}

/* ---- publication ---- */

void
model_publish_exit (struct process *p)
{
  struct container *c = p->container;
  p->exit_published = true;
  /* An OOM kill the watch has not reported yet goes out now: TaskOOM always precedes the
   * container's TaskExit. */
  if (process_is_init (p) && c->oom && oom_watch_check (c->oom))
    MODEL_EMIT (c->model, oom, c->id);
  /* Every process that existed gets its TaskExit, a created init killed before Start too;
   * one the runtime never made (a failed exec) gets none. */
  if (p->pid > 0)
    MODEL_EMIT (c->model, exited, c->id, p->exec_id, p->pid, p->exit_status, &p->exited_at);
  log_debug ("%s exited with status %d", process_name (p), p->exit_status);
  process_answer_waiters (p);
}

void
model_flush_exits (struct container *c)
{
  struct process *p;
  while ((p = container_next_exit (c)))
    model_publish_exit (p);
}

/* ---- what an init's exit sets off ---- */

/* Execs left running are killed so the init's exit can be published. */
static void
kill_execs (struct container *c)
{
  struct process *p;
  TAILQ_FOREACH (p, &c->execs, link)
  if (p->pid > 0 && !p->exited && kill (p->pid, SIGKILL) < 0 && errno != ESRCH)
    log_warn ("kill exec %s (pid %d): %s", p->exec_id, (int) p->pid, strerror (errno));
}

static void
kill_all_done_cb (struct runtime_result *res, void *arg)
{
  struct container *c = arg;
  c->killing_all = NULL;
  if (res->err)
    log_warn ("container %s: kill --all after its init exited: %s", c->id, res->err->msg);
  /* The init's exit was held back until now. */
  model_flush_exits (c);
}

/* No pid namespace of its own: what is left of c is killed (runtime kill --all), holding the
 * init's exit until that is done. */
static void
kill_all_on_exit (struct container *c)
{
  cleanup_error shim_error_t err = NULL;
  struct runtime_call rc = { .verb = RUNTIME_KILL, .id = c->id, .signal = SIGKILL, .all = true };
  c->killing_all = model_run (c, &rc, NULL, kill_all_done_cb, c, &err);
  if (c->killing_all == NULL)
    log_warn ("container %s: kill --all after its init exited: %s", c->id, err->msg);
}

static void
io_drained_cb (void *arg)
{
  struct process *p = arg;
  model_flush_exits (p->container);
}

static void
process_exit_cb (pid_t pid, int status, const struct timespec *when, void *arg)
{
  struct process *p = arg;
  struct container *c = p->container;
  (void) pid;
  process_record_exit (p, status, when);
  if (process_is_init (p))
    kill_execs (c);
  if (process_is_init (p) && c->kill_all_on_exit)
    kill_all_on_exit (c);
  if (p->io)
    {
      /* Output held open by a background child after the process exited is cut after the
       * drain deadline, so the exit is published and readers see EOF. */
      proc_io_process_exited (p->io, c->opts.exec_io_drain_ms);
      proc_io_on_drained (p->io, io_drained_cb, p);
    }
  model_flush_exits (c);
}

int
model_watch_pid_file (struct process *p, const char *pid_file, shim_error_t *err)
{
  cleanup_free char *text = NULL;
  if (read_file (pid_file, 64, &text, NULL, err) < 0 || runtime_parse_pid (text, &p->pid, err) < 0)
    return shim_error_wrap (err, "read pid of %s", process_name (p));
  p->watch = reaper_watch_since (p->container->model->cfg.reaper, p->pid, p->spawned_ms,
                                 process_exit_cb, p);
  if (p->watch == NULL)
    return shim_error_make (err, 0, SHIM_INTERNAL, "watch pid %d of %s", (int) p->pid,
                            process_name (p));
  return 0;
}

void
model_unwatch (struct process *p)
{
  if (p->watch)
    reaper_unwatch (p->container->model->cfg.reaper, p->watch);
  p->watch = NULL;
}

/* ---- Wait ---- */

int
model_wait (struct model *m, const char *id, const char *exec_id, const struct waiter *w,
            shim_error_t *err)
{
  struct process *p = model_find_process (m, id, exec_id, err);
  if (p == NULL)
    return -1;
  if (p->exit_published)
    {
      w->done (p->exit_status, &p->exited_at, w->arg);
      return 0;
    }
  process_drop_gone_waiters (p);
  process_add_waiter (p, w);
  return 0;
}

/* ---- Delete ---- */

struct delete_op
{
  struct op op;
  char *exec_id;
  bool exit_unreported; /* its process had not exited when the Delete began */
};

static void
delete_op_free (struct op *op)
{
  struct delete_op *d = (struct delete_op *) op;
  free (d->exec_id);
  free (d);
}

static void
delete_done_cb (struct runtime_result *res, void *arg)
{
  struct delete_op *d = arg;
  struct container *c = d->op.container;
  struct model *m = c->model;
  d->op.spawn = NULL;
  /* Already gone from the runtime is what delete wanted. */
  if (res->err && res->err->code != SHIM_NOT_FOUND)
    {
      container_op_finish (c, NULL, model_runtime_error (&res->err, NULL));
      return;
    }
  struct process *p = &c->init;
  process_move (p, PROCESS_DELETE);
  /* The exit the runtime's delete caused (it kills a created init) goes out before TaskDelete,
   * as the stock shim publishes it, its output drained or not; but it is not what Delete
   * reports: as in the stock shim, that is the exit from before it. */
  if (p->exited && !p->exit_published)
    model_publish_exit (p);
  if (d->exit_unreported)
    {
      p->exit_status = 0;
      p->exited_at = (struct timespec){ 0, 0 };
    }
  MODEL_EMIT (m, deleted, c->id, p->pid, p->exit_status, &p->exited_at);
  struct model_result r
      = { .pid = p->pid, .exit_status = p->exit_status, .exited_at = p->exited_at };
  d->op.done (&r, NULL, d->op.done_arg);
  /* The op is answered; the container (and the op with it) goes next. */
  MODEL_EMIT (m, removed, c->bundle, m->n_containers - 1);
  model_destroy_container (c, SHIM_NOT_FOUND, "deleted");
}

static void
delete_run (struct op *op)
{
  struct delete_op *d = (struct delete_op *) op;
  struct container *c = op->container;
  shim_error_t err = NULL;
  struct process *p = container_process (c, d->exec_id);
  if (p == NULL)
    shim_error_make (&err, 0, SHIM_NOT_FOUND, "process does not exist %s", d->exec_id);
  if (p == NULL || process_check (p->state, PROCESS_DELETE, &err) < 0)
    {
      container_op_finish (c, NULL, err);
      return;
    }
  /* An exit still waiting for its output to drain goes out now: TaskExit precedes
   * TaskDelete, and after Delete nobody reads that output. */
  if (p->exited && !p->exit_published)
    model_publish_exit (p);
  if (!process_is_init (p))
    {
      model_delete_exec (op, p);
      return;
    }
  d->exit_unreported = !p->exited;
  struct runtime_call rc = { .verb = RUNTIME_DELETE, .id = c->id };
  op->spawn = model_run (c, &rc, NULL, delete_done_cb, d, &err);
  if (op->spawn == NULL)
    container_op_finish (c, NULL, err);
}

void
model_delete (struct model *m, const char *id, const char *exec_id, model_done_fn done, void *arg)
{
  struct delete_op *d = model_op_new (m, id, sizeof *d, delete_run, delete_op_free, done, arg);
  if (d == NULL)
    return;
  d->exec_id = exec_id ? xstrdup (exec_id) : NULL;
  container_submit (d->op.container, &d->op);
}
