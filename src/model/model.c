/* The model record, lookups, the one place that runs the runtime, teardown, and the verbs
 * that only read or poke a process (State, CloseIO, ResizePty, the cgroup for Stats). */

#include "model/model.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "model/model_internal.h"
#include "platform/cgroup.h"
#include "platform/mount.h"
#include "platform/reaper.h"
#include "platform/spawn.h"
#include "runtime/runtime.h"
#include "stdio/procio.h"

struct model *
model_new (const struct model_config *cfg)
{
  struct model *m = xcalloc (1, sizeof *m);
  m->cfg = *cfg;
  m->ev = cfg->events;
  TAILQ_INIT (&m->containers);
  TAILQ_INIT (&m->calls);
  return m;
}

void
model_free (struct model *m)
{
  if (m == NULL)
    return;
  model_cancel_calls (m);
  struct container *c;
  while ((c = TAILQ_FIRST (&m->containers)))
    {
      if (c->running_op)
        {
          shim_error_t err = NULL;
          shim_error_make (&err, 0, SHIM_UNAVAILABLE, "shim is shutting down");
          op_cancel (c->running_op, err);
          c->running_op = NULL;
        }
      model_destroy_container (c, SHIM_NOT_FOUND, "deleted");
    }
  free (m);
}

size_t
model_container_count (const struct model *m)
{
  return m->n_containers;
}

int
model_check_new (const struct model *m, const char *id, shim_error_t *err)
{
  if (model_find (m, id) == NULL)
    return 0;
  return shim_error_make (err, 0, SHIM_ALREADY_EXISTS, "container %s already exists", id);
}

int
model_check_exists (const struct model *m, const char *id, shim_error_t *err)
{
  if (model_find (m, id))
    return 0;
  return shim_error_make (err, 0, SHIM_NOT_FOUND, "container not created");
}

pid_t
model_init_pid (const struct model *m, const char *id)
{
  struct container *c = model_find (m, id);
  return c ? c->init.pid : 0;
}

/* ---- lookups ---- */

struct container *
model_find (const struct model *m, const char *id)
{
  struct container *c;
  TAILQ_FOREACH (c, &m->containers, link)
  if (strcmp (c->id, id) == 0)
    return c;
  return NULL;
}

struct container *
model_get (struct model *m, const char *id, shim_error_t *err)
{
  struct container *c = model_find (m, id);
  if (c == NULL)
    model_check_exists (m, id, err);
  return c;
}

struct process *
model_find_process (struct model *m, const char *id, const char *exec_id, shim_error_t *err)
{
  struct container *c = model_get (m, id, err);
  if (c == NULL)
    return NULL;
  struct process *p = container_process (c, exec_id);
  if (p == NULL)
    shim_error_make (err, 0, SHIM_NOT_FOUND, "process does not exist %s", exec_id);
  return p;
}

void
model_fail (model_done_fn done, void *arg, shim_error_t err)
{
  done (NULL, err, arg);
}

void *
model_op_new (struct model *m, const char *id, size_t size, void (*run) (struct op *),
              void (*free_op) (struct op *), model_done_fn done, void *arg)
{
  shim_error_t err = NULL;
  struct container *c = model_get (m, id, &err);
  if (c == NULL)
    {
      model_fail (done, arg, err);
      return NULL;
    }
  struct op *op = xcalloc (1, size);
  op_init (op, c, run, free_op, done, arg);
  return op;
}

/* ---- the runtime and stdio ---- */

struct spawn *
model_run (struct container *c, const struct runtime_call *rc, const struct runtime_io *io,
           void (*cb) (struct runtime_result *, void *), void *arg, shim_error_t *err)
{
  return runtime_run (&c->rt, rc, io, cb, arg, err);
}

/* Runtime failures read like the stock shim's: "OCI runtime create failed: <runtime text>". */
shim_error_t
model_runtime_error (shim_error_t *err, struct proc_io *io)
{
  shim_error_t e = NULL;
  cleanup_free char *said = proc_io_take_stderr (io);
  if (said && strstr ((*err)->msg, said) == NULL)
    shim_error_make (&e, 0, (*err)->code, "OCI runtime %s: %s", (*err)->msg, said);
  else
    shim_error_make (&e, 0, (*err)->code, "OCI runtime %s", (*err)->msg);
  shim_error_release (err);
  return e;
}

int
model_open_io (struct model *m, struct process *p, shim_error_t *err)
{
  struct container *c = p->container;
  struct proc_io_config cfg = { .stdin_path = p->stdin_path,
                                .stdout_path = p->stdout_path,
                                .stderr_path = p->stderr_path,
                                .terminal = p->terminal,
                                .uid = c->opts.io_uid,
                                .gid = c->opts.io_gid,
                                .drop_when_full = strcmp (c->opts.io_policy, "drop") == 0,
                                .reaper = m->cfg.reaper,
                                .namespace = m->cfg.namespace,
                                .id = c->id };
  p->io = proc_io_new (m->cfg.base, &cfg, err);
  return p->io ? 0 : -1;
}

/* ---- teardown ---- */

static void
fail_queued_ops (struct container *c, int code, const char *why)
{
  struct op *op;
  while ((op = TAILQ_FIRST (&c->ops)))
    {
      TAILQ_REMOVE (&c->ops, op, link);
      shim_error_t err = NULL;
      shim_error_make (&err, 0, code, "container %s %s", c->id, why);
      op_cancel (op, err);
    }
}

void
model_destroy_container (struct container *c, int code, const char *why)
{
  struct model *m = c->model;
  fail_queued_ops (c, code, why);
  if (c->killing_all)
    spawn_cancel (c->killing_all);
  c->killing_all = NULL;
  struct process *p;
  TAILQ_FOREACH (p, &c->execs, link)
  model_unwatch (p);
  model_unwatch (&c->init);
  if (c->rootfs)
    {
      cleanup_error shim_error_t err = NULL;
      if (mount_unmount_all (c->rootfs, &err) < 0)
        log_error_release (LOG_LEVEL_WARN, "unmount rootfs", &err);
    }
  TAILQ_REMOVE (&m->containers, c, link);
  m->n_containers--;
  if (c->running_op)
    c->running_op->free_op (c->running_op);
  c->running_op = NULL;
  container_free (c);
}

/* ---- State, CloseIO, ResizePty, Stats ---- */

int
model_state (struct model *m, const char *id, const char *exec_id, struct model_state *out,
             shim_error_t *err)
{
  struct process *p = model_find_process (m, id, exec_id, err);
  if (p == NULL)
    return -1;
  *out = (struct model_state){ .id = process_name (p),
                               .bundle = p->container->bundle,
                               .pid = p->pid,
                               .state = process_visible_state (p),
                               .stdin_path = p->stdin_path ? p->stdin_path : "",
                               .stdout_path = p->stdout_path ? p->stdout_path : "",
                               .stderr_path = p->stderr_path ? p->stderr_path : "",
                               .terminal = p->terminal,
                               .exit_status = p->exit_status,
                               .exited_at = p->exited_at };
  return 0;
}

int
model_close_stdin (struct model *m, const char *id, const char *exec_id, shim_error_t *err)
{
  struct process *p = model_find_process (m, id, exec_id, err);
  if (p == NULL)
    return -1;
  if (p->io)
    proc_io_close_stdin (p->io);
  return 0;
}

int
model_resize (struct model *m, const char *id, const char *exec_id, unsigned width, unsigned height,
              shim_error_t *err)
{
  struct process *p = model_find_process (m, id, exec_id, err);
  if (p == NULL || process_check_resize (p, err) < 0)
    return -1;
  return proc_io_resize (p->io, width, height, err);
}

struct cgroup *
model_cgroup (struct model *m, const char *id, shim_error_t *err)
{
  struct container *c = model_get (m, id, err);
  if (c && c->cgroup == NULL && c->init.pid > 0)
    c->cgroup = cgroup_of_pid (c->init.pid, err);
  if (c && c->cgroup == NULL && *err == NULL)
    shim_error_make (err, 0, SHIM_NOT_FOUND, "cgroup does not exist");
  return *err ? NULL : c->cgroup;
}
