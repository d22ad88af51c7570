/* Create: options saved, rootfs, stdio, the runtime's profile, then the runtime's `create`
 * (or, for a task created from a checkpoint, nothing until Start restores it). */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "model/model_internal.h"
#include "platform/mount.h"
#include "runtime/profile.h"
#include "runtime/runtime.h"
#include "runtime/trace.h"
#include "stdio/procio.h"

struct create_op
{
  struct op op;
  shim_error_t err; /* what Create answers once a half-made container is removed */
};

static void
create_op_free (struct op *op)
{
  struct create_op *k = (struct create_op *) op;
  shim_error_release (&k->err);
  free (k);
}

/* The Create failed: answered, then the container goes (with its rootfs mounts). */
static void
create_failed (struct container *c, shim_error_t err)
{
  log_warn ("create %s: %s", c->id, err->msg);
  container_op_answer (c, NULL, err);
  model_destroy_container (c, SHIM_NOT_FOUND, "deleted");
}

static void
cleanup_done_cb (struct runtime_result *res, void *arg)
{
  struct create_op *k = arg;
  k->op.spawn = NULL;
  if (res->err)
    log_warn ("cleanup after a failed create: %s", res->err->msg);
  create_failed (k->op.container, steal_ptr (&k->err));
}

/* The runtime said it created the container but left no usable pid: remove what it made, then
 * fail the Create (the shim may exit right after, and would take the cleanup with it). */
static void
fail_after_force_delete (struct create_op *k, shim_error_t err)
{
  struct container *c = k->op.container;
  k->err = err;
  struct runtime_call rc = { .verb = RUNTIME_DELETE, .id = c->id, .force = true };
  cleanup_error shim_error_t run_err = NULL;
  k->op.spawn = model_run (c, &rc, NULL, cleanup_done_cb, k, &run_err);
  if (k->op.spawn)
    return;
  log_warn ("cleanup after a failed create: %s", run_err->msg);
  create_failed (c, steal_ptr (&k->err));
}

static void
create_done_cb (struct runtime_result *res, void *arg)
{
  struct create_op *k = arg;
  struct container *c = k->op.container;
  k->op.spawn = NULL;
  shim_error_t err = NULL;
  if (res->err)
    {
      container_op_answer (c, NULL, model_runtime_error (&res->err, c->init.io));
      model_destroy_container (c, SHIM_NOT_FOUND, "deleted");
      return;
    }
  proc_io_start (c->init.io);
  cleanup_free char *pid_file = xasprintf ("%s/init.pid", c->bundle);
  if (model_watch_pid_file (&c->init, pid_file, &err) < 0)
    {
      fail_after_force_delete (k, err);
      return;
    }
  model_watch_oom (c);
  struct model_result r = { .pid = c->init.pid };
  container_op_finish (c, &r, NULL);
}

/* The process's IO is ready (a logging binary signalled it): run the runtime. */
static void
create_io_ready_cb (shim_error_t err, void *arg)
{
  struct create_op *k = arg;
  struct container *c = k->op.container;
  if (err)
    {
      create_failed (c, err);
      return;
    }
  if (c->checkpoint)
    {
      /* Restoring: the runtime's `restore` creates and starts in one step, at Start. */
      struct model_result r = { 0 };
      container_op_finish (c, &r, NULL);
      return;
    }
  cleanup_free char *pid_file = xasprintf ("%s/init.pid", c->bundle);
  unlink (pid_file);
  struct runtime_call rc = { .verb = RUNTIME_CREATE,
                             .id = c->id,
                             .bundle = c->bundle,
                             .pid_file = pid_file,
                             .console_socket = proc_io_console_socket (c->init.io) };
  int fds[3];
  proc_io_runtime_fds (c->init.io, fds);
  struct runtime_io io = { .stdin_fd = fds[0], .stdout_fd = fds[1], .stderr_fd = fds[2] };
  c->init.spawned_ms = now_monotonic_ms ();
  k->op.spawn = model_run (c, &rc, &io, create_done_cb, k, &err);
  if (k->op.spawn == NULL)
    create_failed (c, err);
}

/* The runtime's profile is known: refuse a restore it cannot do now rather than at Start, then
 * wait for the IO. */
static void
create_profile_ready (struct create_op *k)
{
  struct container *c = k->op.container;
  shim_error_t err = NULL;
  struct runtime_call rc = { .verb = RUNTIME_RESTORE, .id = c->id, .bundle = c->bundle };
  if (c->checkpoint
      && profile_check_call (c->opts.runtime.profile, &rc, &c->opts.runtime, &err) < 0)
    {
      create_failed (c, err);
      return;
    }
  proc_io_when_ready (c->init.io, create_io_ready_cb, k);
}

static void
create_probe_cb (const struct runtime_profile *p, const struct profile_info *info, shim_error_t err,
                 void *arg)
{
  struct create_op *k = arg;
  struct container *c = k->op.container;
  if (err)
    {
      shim_error_wrap (&err, "runtime `%s`", c->opts.runtime.binary);
      create_failed (c, err);
      return;
    }
  c->opts.runtime.profile = p;
  log_info ("create %s: runtime %s is %s %s", c->id, c->opts.runtime.binary, p->name,
            info->version);
  create_profile_ready (k);
}

static void
create_run (struct op *op)
{
  struct create_op *k = (struct create_op *) op;
  struct container *c = op->container;
  struct model *m = c->model;
  shim_error_t err = NULL;
  const struct runtime_profile *forced = NULL;
  if (profile_parse_name (c->opts.profile, &forced, &err) < 0)
    create_failed (c, err);
  else if (forced)
    {
      c->opts.runtime.profile = forced;
      create_profile_ready (k);
    }
  else if (profile_probe (m->cfg.base, m->cfg.reaper, c->opts.runtime.binary, create_probe_cb, k,
                          &err)
           < 0)
    create_failed (c, err);
}

/* ---- what Create sets up before the runtime runs ---- */

static int
mount_rootfs (struct container *c, const struct model_create *req, shim_error_t *err)
{
  if (req->n_rootfs == 0)
    return 0;
  cleanup_free char *target = xasprintf ("%s/rootfs", c->bundle);
  /* containerd makes it with the bundle; a bundle made by another client may lack it. */
  if (mkdir (target, 0711) < 0 && errno != EEXIST)
    return shim_error_make (err, errno, SHIM_INTERNAL, "create rootfs mount point `%s`", target);
  int ret = mount_all (target, req->rootfs, req->n_rootfs, err);
  if (ret == 0)
    c->rootfs = steal_ptr (&target);
  return ret;
}

static void
open_trace (struct container *c)
{
  struct model *m = c->model;
  if (!config_trace_enabled (&c->opts))
    return;
  cleanup_error shim_error_t err = NULL;
  c->rt.trace = trace_open (c->opts.trace_dir, m->cfg.namespace, c->id, c->bundle, &err);
  if (c->rt.trace == NULL)
    log_error_release (LOG_LEVEL_WARN, "runtime-call trace off", &err);
}

static int
create_prepare (struct container *c, const struct model_create *req, shim_error_t *err)
{
  if (req->checkpoint && req->checkpoint[0])
    c->checkpoint = xstrdup (req->checkpoint);
  cleanup_free char *spec = config_read_spec (c->bundle);
  c->kill_all_on_exit = container_spec_kills_all_on_exit (spec);
  config_release (&c->opts);
  c->opts = *req->opts;
  config_init (req->opts);
  if (config_save (&c->opts, c->bundle, err) < 0 || mount_rootfs (c, req, err) < 0)
    return -1;
  open_trace (c);
  c->init.terminal = req->terminal;
  c->init.stdin_path = xstrdup (req->stdin_path);
  c->init.stdout_path = xstrdup (req->stdout_path);
  c->init.stderr_path = xstrdup (req->stderr_path);
  return model_open_io (c->model, &c->init, err);
}

void
model_create (struct model *m, const struct model_create *req, model_done_fn done, void *arg)
{
  shim_error_t err = NULL;
  if (model_check_new (m, req->id, &err) < 0)
    {
      model_fail (done, arg, err);
      return;
    }
  struct container *c = container_new (req->id, req->bundle);
  c->model = m;
  c->serial = ++m->serial;
  c->rt = (struct runtime){ .base = m->cfg.base,
                            .reaper = m->cfg.reaper,
                            .cfg = &c->opts.runtime,
                            .namespace = m->cfg.namespace,
                            .cwd = c->bundle,
                            .log_path = c->log_path };
  TAILQ_INSERT_TAIL (&m->containers, c, link);
  m->n_containers++;
  struct create_op *k = xcalloc (1, sizeof *k);
  op_init (&k->op, c, create_run, create_op_free, done, arg);
  if (create_prepare (c, req, &err) < 0)
    {
      log_warn ("create %s: %s", c->id, err->msg);
      done (NULL, err, arg);
      create_op_free (&k->op);
      model_destroy_container (c, SHIM_NOT_FOUND, "deleted");
      return;
    }
  container_submit (c, &k->op);
}
