/* Create: options, rootfs, stdio, the runtime's profile, then the runtime's `create` (or, for
 * a task created from a checkpoint, nothing until Start restores it). */

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "containerd/events/task.pb-c.h"
#include "containerd/task/v2/task.pb-c.h"
#include "base/log.h"
#include "platform/mount.h"
#include "stdio/procio.h"
#include "runtime/profile.h"
#include "runtime/runtime.h"
#include "service/shim.h"
#include "service/task_internal.h"
#include "runtime/trace.h"
#include "wire/ttrpc_server.h"
#include "base/util.h"

/* ---- Create ---- */

static int
mount_rootfs (struct container *c, const Containerd__Task__V2__CreateTaskRequest *req,
              shim_error_t *err)
{
  if (req->n_rootfs == 0)
    return 0;
  struct mount_spec *specs = xcalloc (req->n_rootfs, sizeof *specs);
  for (size_t i = 0; i < req->n_rootfs; i++)
    {
      specs[i].type = req->rootfs[i]->type;
      specs[i].source = req->rootfs[i]->source;
      specs[i].options = req->rootfs[i]->options;
      specs[i].n_options = req->rootfs[i]->n_options;
    }
  cleanup_free char *target = xasprintf ("%s/rootfs", c->bundle);
  mkdir (target, 0711);
  int ret = mount_all (target, specs, req->n_rootfs, err);
  free (specs);
  if (ret == 0)
    c->rootfs = steal_ptr (&target);
  return ret;
}

static void
publish_create (struct task_service *svc, struct container *c,
                const Containerd__Task__V2__CreateTaskRequest *req)
{
  Containerd__Events__TaskIO io = CONTAINERD__EVENTS__TASK_IO__INIT;
  io.stdin = req->stdin;
  io.stdout = req->stdout;
  io.stderr = req->stderr;
  io.terminal = req->terminal;
  Containerd__Events__TaskCreate ev = CONTAINERD__EVENTS__TASK_CREATE__INIT;
  ev.container_id = c->id;
  ev.bundle = c->bundle;
  ev.n_rootfs = req->n_rootfs;
  ev.rootfs = req->rootfs;
  ev.io = &io;
  ev.checkpoint = req->checkpoint;
  ev.pid = c->init.pid;
  task_publish (svc, "/tasks/create", &ev.base);
}

static void
create_failed (struct task_service *svc, struct container *c, struct ttrpc_call *call,
               shim_error_t *err)
{
  log_warn ("create %s: %s", c->id, (*err)->msg);
  ttrpc_call_fail (call, err);
  task_destroy_container (svc, c);
}

struct failed_create
{
  struct op *op;
  shim_error_t err; /* what Create answers once the cleanup is done */
};

static void
cleanup_done_cb (struct runtime_result *res, void *arg)
{
  struct failed_create *f = arg;
  struct container *c = f->op->container;
  if (res->err)
    log_warn ("cleanup after a failed create: %s", res->err->msg);
  create_failed (c->service, c, f->op->call, &f->err);
  free (f);
}

/* The runtime said it created the container but left no usable pid: remove what it made, then
 * fail the Create (the shim may exit right after, and would take the cleanup with it). */
static void
fail_after_force_delete (struct task_service *svc, struct op *op, shim_error_t *err)
{
  struct container *c = op->container;
  struct failed_create *f = xcalloc (1, sizeof *f);
  f->op = op;
  f->err = steal_ptr (err);
  struct runtime_call rc = { .verb = RUNTIME_DELETE, .id = c->id, .force = true };
  cleanup_error shim_error_t run_err = NULL;
  op->spawn = runtime_run (&c->rt, &rc, NULL, cleanup_done_cb, f, &run_err);
  if (op->spawn)
    return;
  log_warn ("cleanup after a failed create: %s", run_err->msg);
  create_failed (svc, c, op->call, &f->err);
  free (f);
}

static void
create_done_cb (struct runtime_result *res, void *arg)
{
  struct op *op = arg;
  struct container *c = op->container;
  struct task_service *svc = c->service;
  const Containerd__Task__V2__CreateTaskRequest *req = op->req;
  op->spawn = NULL;
  shim_error_t err = NULL;
  if (res->err)
    {
      task_fail_runtime_io (op->call, &res->err, c->init.io);
      task_destroy_container (svc, c);
      return;
    }
  proc_io_start (c->init.io);
  cleanup_free char *pid_file = xasprintf ("%s/init.pid", c->bundle);
  if (task_watch_pid_file (svc, &c->init, pid_file, &err) < 0)
    {
      fail_after_force_delete (svc, op, &err);
      return;
    }
  task_watch_oom (svc, c);
  publish_create (svc, c, req);
  Containerd__Task__V2__CreateTaskResponse resp = CONTAINERD__TASK__V2__CREATE_TASK_RESPONSE__INIT;
  resp.pid = c->init.pid;
  ttrpc_call_reply (op->call, &resp.base);
  container_op_done (c);
}

static int
create_prepare (struct container *c, const Containerd__Task__V2__CreateTaskRequest *req,
                shim_error_t *err)
{
  if (req->checkpoint && req->checkpoint[0])
    c->checkpoint = xstrdup (req->checkpoint);
  cleanup_free char *spec = config_read_spec (c->bundle);
  c->kill_all_on_exit = container_spec_kills_all_on_exit (spec);
  if (config_apply_start_options (&c->opts, c->bundle, err) < 0
      || config_apply_any (&c->opts, req->options, err) < 0
      || config_save (&c->opts, c->bundle, err) < 0 || mount_rootfs (c, req, err) < 0)
    return -1;
  if (config_trace_enabled (&c->opts))
    {
      cleanup_error shim_error_t terr = NULL;
      c->rt.trace
          = trace_open (c->opts.trace_dir, c->service->shim->namespace, c->id, c->bundle, &terr);
      if (c->rt.trace == NULL)
        log_error_release (LOG_LEVEL_WARN, "runtime-call trace off", &terr);
    }
  c->init.terminal = req->terminal;
  c->init.stdin_path = xstrdup (req->stdin);
  c->init.stdout_path = xstrdup (req->stdout);
  c->init.stderr_path = xstrdup (req->stderr);
  return task_open_io (c->service, &c->init, err);
}

static void create_io_ready_cb (shim_error_t err, void *arg);

/* The runtime's profile is known: refuse a restore it cannot do now rather than at Start, then
 * wait for the IO. */
static void
create_profile_ready (struct op *op)
{
  struct container *c = op->container;
  shim_error_t err = NULL;
  struct runtime_call rc = { .verb = RUNTIME_RESTORE, .id = c->id, .bundle = c->bundle };
  if (c->checkpoint
      && profile_check_call (c->opts.runtime.profile, &rc, &c->opts.runtime, &err) < 0)
    {
      create_failed (c->service, c, op->call, &err);
      return;
    }
  proc_io_when_ready (c->init.io, create_io_ready_cb, op);
}

static void
create_probe_cb (const struct runtime_profile *p, const struct profile_info *info, shim_error_t err,
                 void *arg)
{
  struct op *op = arg;
  struct container *c = op->container;
  if (err)
    {
      shim_error_wrap (&err, "runtime `%s`", c->opts.runtime.binary);
      create_failed (c->service, c, op->call, &err);
      return;
    }
  c->opts.runtime.profile = p;
  log_info ("create %s: runtime %s is %s %s", c->id, c->opts.runtime.binary, p->name,
            info->version);
  create_profile_ready (op);
}

static void
create_run (struct op *op)
{
  struct container *c = op->container;
  struct task_service *svc = c->service;
  shim_error_t err = NULL;
  const struct runtime_profile *forced = NULL;
  if (create_prepare (c, op->req, &err) < 0
      || profile_parse_name (c->opts.profile, &forced, &err) < 0)
    {
      create_failed (svc, c, op->call, &err);
      return;
    }
  if (forced)
    {
      c->opts.runtime.profile = forced;
      create_profile_ready (op);
      return;
    }
  if (profile_probe (svc->shim->base, svc->shim->reaper, c->opts.runtime.binary, create_probe_cb,
                     op, &err)
      < 0)
    create_failed (svc, c, op->call, &err);
}

/* The process's IO is ready (a logging binary signalled it): run the runtime. */
static void
create_io_ready_cb (shim_error_t err, void *arg)
{
  struct op *op = arg;
  struct container *c = op->container;
  struct task_service *svc = c->service;
  const Containerd__Task__V2__CreateTaskRequest *req = op->req;
  if (err)
    {
      create_failed (svc, c, op->call, &err);
      return;
    }
  if (c->checkpoint)
    {
      /* Restoring: the runtime's `restore` creates and starts in one step, at Start. */
      publish_create (svc, c, req);
      Containerd__Task__V2__CreateTaskResponse resp
          = CONTAINERD__TASK__V2__CREATE_TASK_RESPONSE__INIT;
      ttrpc_call_reply (op->call, &resp.base);
      container_op_done (c);
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
  op->spawn = runtime_run (&c->rt, &rc, &io, create_done_cb, op, &err);
  if (op->spawn == NULL)
    create_failed (svc, c, op->call, &err);
}

void
task_handle_create (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  struct task_service *svc = arg;
  const Containerd__Task__V2__CreateTaskRequest *req = (const void *) msg;
  shim_error_t err = NULL;
  if (req->id[0] == '\0' || req->bundle[0] != '/')
    {
      shim_error_make (&err, 0, SHIM_INVALID_ARGUMENT, "create needs an id and an absolute bundle");
      ttrpc_call_fail (call, &err);
      return;
    }
  if (task_find_container (svc, req->id))
    {
      shim_error_make (&err, 0, SHIM_ALREADY_EXISTS, "container %s already exists", req->id);
      ttrpc_call_fail (call, &err);
      return;
    }
  struct container *c = container_new (req->id, req->bundle);
  c->service = svc;
  task_runtime_init (svc, c);
  TAILQ_INSERT_TAIL (&svc->containers, c, link);
  svc->n_containers++;
  container_submit (c, op_new (c, call, req, create_run));
}
