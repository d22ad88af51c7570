/* Kill, Pids, Pause, Resume, Update, CloseIO, ResizePty, Stats. */

#include <stdlib.h>
#include <string.h>

#include "base/pb.h"
#include "base/util.h"
#include "containerd/runc/v1/options.pb-c.h"
#include "containerd/task/v2/task.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "platform/stats.h"
#include "service/task_internal.h"
#include "wire/ttrpc_server.h"

void
task_handle_kill (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  struct task_service *svc = arg;
  const Containerd__Task__V2__KillRequest *req = (const void *) msg;
  model_kill (svc->model, req->id, req->exec_id, (int) req->signal, req->all, task_done_empty,
              call);
}

/* ---- Pids ---- */

/* Exec pids carry their exec id, as containerd.runc.v1.ProcessDetails. */
static Google__Protobuf__Any *
exec_details (const char *exec_id)
{
  if (exec_id == NULL)
    return NULL;
  Containerd__Runc__V1__ProcessDetails d = CONTAINERD__RUNC__V1__PROCESS_DETAILS__INIT;
  d.exec_id = (char *) exec_id;
  return pb_any_pack (&d.base);
}

static void
pids_done (const struct model_result *res, shim_error_t err, void *arg)
{
  if (err)
    {
      ttrpc_call_fail (arg, &err);
      return;
    }
  size_t n = res->n_pids;
  Containerd__V1__Types__ProcessInfo *infos = xcalloc (n + 1, sizeof *infos);
  Containerd__V1__Types__ProcessInfo **ptrs = xcalloc (n + 1, sizeof *ptrs);
  for (size_t i = 0; i < n; i++)
    {
      containerd__v1__types__process_info__init (&infos[i]);
      infos[i].pid = (uint32_t) res->pids[i];
      infos[i].info = exec_details (res->exec_ids[i]);
      ptrs[i] = &infos[i];
    }
  Containerd__Task__V2__PidsResponse resp = CONTAINERD__TASK__V2__PIDS_RESPONSE__INIT;
  resp.n_processes = n;
  resp.processes = ptrs;
  ttrpc_call_reply (arg, &resp.base);
  for (size_t j = 0; j < n; j++)
    pb_any_free (infos[j].info);
  free (infos);
  free (ptrs);
}

void
task_handle_pids (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  struct task_service *svc = arg;
  const Containerd__Task__V2__PidsRequest *req = (const void *) msg;
  model_pids (svc->model, req->id, pids_done, call);
}

/* ---- Pause / Resume / Update: on the container's op queue ---- */

void
task_handle_pause (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  struct task_service *svc = arg;
  const Containerd__Task__V2__PauseRequest *req = (const void *) msg;
  model_control (svc->model, req->id, PROCESS_PAUSE, NULL, task_done_empty, call);
}

void
task_handle_resume (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  struct task_service *svc = arg;
  const Containerd__Task__V2__ResumeRequest *req = (const void *) msg;
  model_control (svc->model, req->id, PROCESS_RESUME, NULL, task_done_empty, call);
}

/* Update's resources go to the runtime as JSON on its stdin (`update --resources -`); their
 * type is checked when the update runs, after the state. */
void
task_handle_update (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  struct task_service *svc = arg;
  const Containerd__Task__V2__UpdateTaskRequest *req = (const void *) msg;
  const Google__Protobuf__Any *r = req->resources;
  struct model_resources res
      = { r ? r->type_url : NULL, r ? r->value.data : NULL, r ? r->value.len : 0 };
  model_control (svc->model, req->id, PROCESS_UPDATE, &res, task_done_empty, call);
}

/* ---- CloseIO, ResizePty ---- */

void
task_handle_close_io (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  struct task_service *svc = arg;
  const Containerd__Task__V2__CloseIORequest *req = (const void *) msg;
  shim_error_t err = NULL;
  /* Like the stock shim, any CloseIO closes stdin (the flag is not consulted). */
  if (model_close_stdin (svc->model, req->id, req->exec_id, &err) < 0)
    ttrpc_call_fail (call, &err);
  else
    task_reply_empty (call);
}

void
task_handle_resize_pty (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  struct task_service *svc = arg;
  const Containerd__Task__V2__ResizePtyRequest *req = (const void *) msg;
  shim_error_t err = NULL;
  if (model_resize (svc->model, req->id, req->exec_id, req->width, req->height, &err) < 0)
    ttrpc_call_fail (call, &err);
  else
    task_reply_empty (call);
}

/* ---- Stats: read from the cgroup files, never by forking the runtime ---- */

void
task_handle_stats (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  struct task_service *svc = arg;
  const Containerd__Task__V2__StatsRequest *req = (const void *) msg;
  shim_error_t err = NULL;
  struct cgroup *cg = model_cgroup (svc->model, req->id, &err);
  Google__Protobuf__Any *stats = cg ? stats_collect (cg, &err) : NULL;
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
