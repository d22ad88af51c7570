/* Kill, Pids, Pause, Resume, Update, CloseIO. */

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "containerd/events/task.pb-c.h"
#include "containerd/runc/v1/options.pb-c.h"
#include "containerd/task/v2/task.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "platform/cgroup.h"
#include "base/log.h"
#include "base/pb.h"
#include "stdio/procio.h"
#include "runtime/runtime.h"
#include "service/shim.h"
#include "platform/stats.h"
#include "platform/spawn.h"
#include "service/task_internal.h"
#include "wire/ttrpc_server.h"
#include "base/util.h"

#define RESOURCES_TYPE "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"

/* ---- Kill: not queued, so a stuck lifecycle op never blocks a kill ---- */

static void
kill_done_cb (struct runtime_result *res, void *arg)
{
  struct ttrpc_call *call = arg;
  if (res->err)
    {
      task_fail_runtime (call, &res->err);
      return;
    }
  task_reply_empty (call);
}

void
task_handle_kill (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  struct task_service *svc = arg;
  const Containerd__Task__V2__KillRequest *req = (const void *) msg;
  shim_error_t err = NULL;
  struct process *p = task_find_process (svc, req->id, req->exec_id, &err);
  if (p == NULL || process_check (p->state, PROCESS_KILL, &err) < 0)
    goto fail;
  if (!process_is_init (p))
    {
      /* An exec that never started has no pid; kill (0, ...) would signal the shim. */
      if (p->pid <= 0)
        {
          shim_error_make (&err, 0, SHIM_FAILED_PRECONDITION, "process not created");
          goto fail;
        }
      if (kill (p->pid, (int) req->signal) < 0)
        {
          shim_error_make (&err, errno, errno == ESRCH ? SHIM_NOT_FOUND : SHIM_UNKNOWN, "kill %s",
                           process_name (p));
          goto fail;
        }
      task_reply_empty (call);
      return;
    }
  struct runtime_call rc
      = { .verb = RUNTIME_KILL, .id = req->id, .signal = (int) req->signal, .all = req->all };
  if (runtime_run (&p->container->rt, &rc, NULL, kill_done_cb, call, &err))
    return;
fail:
  ttrpc_call_fail (call, &err);
}

/* ---- kill --all once the init exited, for a container without its own pid namespace ---- */

static void
kill_all_done_cb (struct runtime_result *res, void *arg)
{
  struct container *c = arg;
  c->killing_all = NULL;
  if (res->err)
    log_warn ("container %s: kill --all after its init exited: %s", c->id, res->err->msg);
  /* The init's exit was held back until now. */
  task_flush_exits (c->service, c);
}

void
task_kill_all_on_exit (struct container *c)
{
  cleanup_error shim_error_t err = NULL;
  struct runtime_call rc = { .verb = RUNTIME_KILL, .id = c->id, .signal = SIGKILL, .all = true };
  c->killing_all = runtime_run (&c->rt, &rc, NULL, kill_all_done_cb, c, &err);
  if (c->killing_all == NULL)
    log_warn ("container %s: kill --all after its init exited: %s", c->id, err->msg);
}

struct pids_ctx
{
  struct task_service *svc;
  struct ttrpc_call *call;
  char *id;
};

/* Exec pids carry their exec id, as containerd.runc.v1.ProcessDetails. */
static Google__Protobuf__Any *
exec_details (struct container *c, pid_t pid)
{
  struct process *p;
  if (c == NULL)
    return NULL;
  TAILQ_FOREACH (p, &c->execs, link)
  if (p->pid == pid)
    {
      Containerd__Runc__V1__ProcessDetails d = CONTAINERD__RUNC__V1__PROCESS_DETAILS__INIT;
      d.exec_id = p->exec_id;
      return pb_any_pack (&d.base);
    }
  return NULL;
}

int
task_parse_pids (const char *out, pid_t **pids, size_t *n_pids, shim_error_t *err)
{
  cJSON *arr = cJSON_Parse (out);
  /* A container with no process left lists as `null`: no pids, not an error. */
  if (cJSON_IsNull (arr))
    {
      cJSON_Delete (arr);
      arr = cJSON_CreateArray ();
    }
  if (!cJSON_IsArray (arr))
    {
      cJSON_Delete (arr);
      return shim_error_make (err, 0, SHIM_UNKNOWN, "runtime ps: output is not a JSON array");
    }
  *pids = xcalloc (cJSON_GetArraySize (arr) + 1, sizeof **pids);
  *n_pids = 0;
  const cJSON *e;
  cJSON_ArrayForEach (e, arr)
  {
    /* Converting a double that no pid can be is undefined: skip it. */
    if (cJSON_IsNumber (e) && e->valuedouble >= 0 && e->valuedouble <= INT_MAX)
      (*pids)[(*n_pids)++] = (pid_t) e->valuedouble;
  }
  cJSON_Delete (arr);
  return 0;
}

static int
reply_pids (struct pids_ctx *ctx, const char *out, shim_error_t *err)
{
  cleanup_free pid_t *pids = NULL;
  size_t n;
  if (task_parse_pids (out, &pids, &n, err) < 0)
    return -1;
  struct container *c = task_find_container (ctx->svc, ctx->id);
  Containerd__V1__Types__ProcessInfo *infos = xcalloc (n, sizeof *infos);
  Containerd__V1__Types__ProcessInfo **ptrs = xcalloc (n, sizeof *ptrs);
  for (size_t i = 0; i < n; i++)
    {
      containerd__v1__types__process_info__init (&infos[i]);
      infos[i].pid = (uint32_t) pids[i];
      infos[i].info = exec_details (c, pids[i]);
      ptrs[i] = &infos[i];
    }
  Containerd__Task__V2__PidsResponse resp = CONTAINERD__TASK__V2__PIDS_RESPONSE__INIT;
  resp.n_processes = n;
  resp.processes = ptrs;
  ttrpc_call_reply (ctx->call, &resp.base);
  for (size_t j = 0; j < n; j++)
    pb_any_free (infos[j].info);
  free (infos);
  free (ptrs);
  return 0;
}

static void
pids_done_cb (struct runtime_result *res, void *arg)
{
  struct pids_ctx *ctx = arg;
  shim_error_t err = NULL;
  if (res->err)
    task_fail_runtime (ctx->call, &res->err);
  else if (reply_pids (ctx, res->out ? res->out : "", &err) < 0)
    ttrpc_call_fail (ctx->call, &err);
  free (ctx->id);
  free (ctx);
}

void
task_handle_pids (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  struct task_service *svc = arg;
  const Containerd__Task__V2__PidsRequest *req = (const void *) msg;
  shim_error_t err = NULL;
  struct container *c = task_get_container (svc, req->id, &err);
  if (c == NULL)
    {
      ttrpc_call_fail (call, &err);
      return;
    }
  struct pids_ctx *ctx = xcalloc (1, sizeof *ctx);
  ctx->svc = svc;
  ctx->call = call;
  ctx->id = xstrdup (req->id);
  struct runtime_call rc = { .verb = RUNTIME_PS, .id = c->id };
  if (runtime_run (&c->rt, &rc, NULL, pids_done_cb, ctx, &err))
    return;
  free (ctx->id);
  free (ctx);
  ttrpc_call_fail (call, &err);
}

/* ---- Pause / Resume / Update: runtime calls on the container's op queue ---- */

struct control_verb
{
  enum process_verb verb;
  enum runtime_verb runtime;
};

static const struct control_verb pause_verb = { PROCESS_PAUSE, RUNTIME_PAUSE };
static const struct control_verb resume_verb = { PROCESS_RESUME, RUNTIME_RESUME };
static const struct control_verb update_verb = { PROCESS_UPDATE, RUNTIME_UPDATE };

/* TaskPaused / TaskResumed; Update publishes nothing. */
static void
publish_control (struct task_service *svc, struct container *c, enum process_verb verb)
{
  if (verb == PROCESS_PAUSE)
    {
      Containerd__Events__TaskPaused ev = CONTAINERD__EVENTS__TASK_PAUSED__INIT;
      ev.container_id = c->id;
      task_publish (svc, "/tasks/paused", &ev.base);
    }
  else if (verb == PROCESS_RESUME)
    {
      Containerd__Events__TaskResumed ev = CONTAINERD__EVENTS__TASK_RESUMED__INIT;
      ev.container_id = c->id;
      task_publish (svc, "/tasks/resumed", &ev.base);
    }
}

static void
control_done_cb (struct runtime_result *res, void *arg)
{
  struct op *op = arg;
  struct container *c = op->container;
  const struct control_verb *verb = op->ctx;
  op->spawn = NULL;
  if (res->err)
    task_fail_runtime (op->call, &res->err);
  else
    {
      c->init.state = process_next (c->init.state, verb->verb);
      publish_control (c->service, c, verb->verb);
      task_reply_empty (op->call);
    }
  container_op_done (c);
}

/* Update's resources go to the runtime as JSON on its stdin (`update --resources -`). */
static int
update_resources (const struct op *op, const void **data, size_t *len, shim_error_t *err)
{
  const Containerd__Task__V2__UpdateTaskRequest *req = op->req;
  const Google__Protobuf__Any *r = req->resources;
  if (r == NULL || r->type_url == NULL || strcmp (r->type_url, RESOURCES_TYPE) != 0)
    return shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "update resources must be a `%s`",
                            RESOURCES_TYPE);
  *data = r->value.data;
  *len = r->value.len;
  return 0;
}

static void
control_run (struct op *op)
{
  struct container *c = op->container;
  const struct control_verb *verb = op->ctx;
  shim_error_t err = NULL;
  struct runtime_io io = { SPAWN_FD_NULL, SPAWN_FD_CAPTURE, SPAWN_FD_CAPTURE, NULL, 0 };
  if (process_check (c->init.state, verb->verb, &err) == 0
      && (verb->verb != PROCESS_UPDATE
          || update_resources (op, &io.stdin_data, &io.stdin_len, &err) == 0))
    {
      struct runtime_call rc = { .verb = verb->runtime, .id = c->id };
      op->spawn = runtime_run (&c->rt, &rc, &io, control_done_cb, op, &err);
      if (op->spawn)
        return;
    }
  ttrpc_call_fail (op->call, &err);
  container_op_done (c);
}

void
task_handle_pause (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  const Containerd__Task__V2__PauseRequest *req = (const void *) msg;
  task_submit_op (arg, call, req->id, req, control_run, &pause_verb);
}

void
task_handle_resume (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  const Containerd__Task__V2__ResumeRequest *req = (const void *) msg;
  task_submit_op (arg, call, req->id, req, control_run, &resume_verb);
}

void
task_handle_update (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  const Containerd__Task__V2__UpdateTaskRequest *req = (const void *) msg;
  task_submit_op (arg, call, req->id, req, control_run, &update_verb);
}

/* ---- CloseIO: drop the held stdin writer so the process sees EOF ---- */

void
task_handle_close_io (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  const Containerd__Task__V2__CloseIORequest *req = (const void *) msg;
  shim_error_t err = NULL;
  struct process *p = task_find_process (arg, req->id, req->exec_id, &err);
  if (p == NULL)
    {
      ttrpc_call_fail (call, &err);
      return;
    }
  /* Like the stock shim, any CloseIO closes stdin (the flag is not consulted). */
  if (p->io)
    proc_io_close_stdin (p->io);
  task_reply_empty (call);
}

/* ---- Stats: read from the cgroup files, never by forking the runtime ---- */

void
task_handle_stats (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  const Containerd__Task__V2__StatsRequest *req = (const void *) msg;
  shim_error_t err = NULL;
  struct container *c = task_get_container (arg, req->id, &err);
  if (c && c->cgroup == NULL && c->init.pid > 0)
    c->cgroup = cgroup_of_pid (c->init.pid, &err);
  if (c && c->cgroup == NULL && err == NULL)
    shim_error_make (&err, 0, SHIM_NOT_FOUND, "cgroup does not exist");
  Google__Protobuf__Any *stats = err ? NULL : stats_collect (c->cgroup, &err);
  if (stats == NULL)
    {
      ttrpc_call_fail (call, &err);
      return;
    }
  Containerd__Task__V2__StatsResponse resp = CONTAINERD__TASK__V2__STATS_RESPONSE__INIT;
  resp.stats = stats;
  ttrpc_call_reply (call, &resp.base);
  pb_any_free (stats);
}

/* ---- ResizePty ---- */

void
task_handle_resize_pty (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  const Containerd__Task__V2__ResizePtyRequest *req = (const void *) msg;
  shim_error_t err = NULL;
  struct process *p = task_find_process (arg, req->id, req->exec_id, &err);
  if (p == NULL || process_check_resize (p, &err) < 0
      || proc_io_resize (p->io, req->width, req->height, &err) < 0)
    {
      ttrpc_call_fail (call, &err);
      return;
    }
  task_reply_empty (call);
}
