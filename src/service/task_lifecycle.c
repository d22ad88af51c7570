/* Create, Start, Delete, Wait, State: decode, validate, the model's verb, the reply. */

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/pb.h"
#include "base/util.h"
#include "containerd/events/task.pb-c.h"
#include "containerd/task/v2/task.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "platform/mount.h"
#include "runtime/config.h"
#include "service/task_internal.h"
#include "wire/ttrpc_server.h"

/* ---- Create ---- */

struct create_call
{
  struct task_service *svc;
  struct ttrpc_call *call;
  const Containerd__Task__V2__CreateTaskRequest *req;
  struct mount_spec *rootfs;
};

static void
publish_create (struct task_service *svc, const Containerd__Task__V2__CreateTaskRequest *req,
                pid_t pid)
{
  Containerd__Events__TaskIO io = CONTAINERD__EVENTS__TASK_IO__INIT;
  io.stdin = req->stdin;
  io.stdout = req->stdout;
  io.stderr = req->stderr;
  io.terminal = req->terminal;
  Containerd__Events__TaskCreate ev = CONTAINERD__EVENTS__TASK_CREATE__INIT;
  ev.container_id = req->id;
  ev.bundle = req->bundle;
  ev.n_rootfs = req->n_rootfs;
  ev.rootfs = req->rootfs;
  ev.io = &io;
  ev.checkpoint = req->checkpoint;
  ev.pid = pid;
  task_publish (svc, "/tasks/create", &ev.base);
}

static void
create_done (const struct model_result *res, shim_error_t err, void *arg)
{
  struct create_call *cc = arg;
  if (err)
    ttrpc_call_fail (cc->call, &err);
  else
    {
      publish_create (cc->svc, cc->req, res->pid);
      Containerd__Task__V2__CreateTaskResponse resp
          = CONTAINERD__TASK__V2__CREATE_TASK_RESPONSE__INIT;
      resp.pid = res->pid;
      ttrpc_call_reply (cc->call, &resp.base);
    }
  free (cc->rootfs);
  free (cc);
}

static struct mount_spec *
mount_specs (const Containerd__Task__V2__CreateTaskRequest *req)
{
  struct mount_spec *specs = xcalloc (req->n_rootfs + 1, sizeof *specs);
  for (size_t i = 0; i < req->n_rootfs; i++)
    specs[i] = (struct mount_spec){ req->rootfs[i]->type, req->rootfs[i]->source,
                                    req->rootfs[i]->options, req->rootfs[i]->n_options };
  return specs;
}

/* The options the task runs with: what `start` saved in the bundle, then the request's. */
static int
create_options (const Containerd__Task__V2__CreateTaskRequest *req, struct task_options *opts,
                shim_error_t *err)
{
  config_init (opts);
  if (config_apply_start_options (opts, req->bundle, err) == 0
      && config_apply_any (opts, req->options, err) == 0)
    return 0;
  log_warn ("create %s: %s", req->id, (*err)->msg);
  return -1;
}

void
task_handle_create (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  struct task_service *svc = arg;
  const Containerd__Task__V2__CreateTaskRequest *req = (const void *) msg;
  shim_error_t err = NULL;
  struct task_options opts;
  if (req->id[0] == '\0' || req->bundle[0] != '/')
    shim_error_make (&err, 0, SHIM_INVALID_ARGUMENT, "create needs an id and an absolute bundle");
  /* An existing id is refused before the options are read, as the stock shim does. */
  else if (model_check_new (svc->model, req->id, &err) == 0
           && create_options (req, &opts, &err) < 0)
    config_release (&opts);
  if (err)
    {
      ttrpc_call_fail (call, &err);
      return;
    }
  struct create_call *cc = xcalloc (1, sizeof *cc);
  *cc = (struct create_call){ svc, call, req, mount_specs (req) };
  struct model_create mc = { req->id,       req->bundle,     req->stdin, req->stdout,   req->stderr,
                             req->terminal, req->checkpoint, cc->rootfs, req->n_rootfs, &opts };
  model_create (svc->model, &mc, create_done, cc);
  config_release (&opts);
}

/* ---- Start ---- */

static void
start_done (const struct model_result *res, shim_error_t err, void *arg)
{
  if (err)
    {
      ttrpc_call_fail (arg, &err);
      return;
    }
  Containerd__Task__V2__StartResponse resp = CONTAINERD__TASK__V2__START_RESPONSE__INIT;
  resp.pid = res->pid;
  ttrpc_call_reply (arg, &resp.base);
}

void
task_handle_start (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  struct task_service *svc = arg;
  const Containerd__Task__V2__StartRequest *req = (const void *) msg;
  model_start (svc->model, req->id, req->exec_id, start_done, call);
}

/* ---- Delete ---- */

static void
delete_done (const struct model_result *res, shim_error_t err, void *arg)
{
  if (err)
    {
      ttrpc_call_fail (arg, &err);
      return;
    }
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  pb_timestamp_set (&ts, &res->exited_at);
  Containerd__Task__V2__DeleteResponse resp = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
  resp.pid = res->pid;
  resp.exit_status = res->exit_status;
  resp.exited_at = &ts;
  ttrpc_call_reply (arg, &resp.base);
}

void
task_handle_delete (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  struct task_service *svc = arg;
  const Containerd__Task__V2__DeleteRequest *req = (const void *) msg;
  model_delete (svc->model, req->id, req->exec_id, delete_done, call);
}

/* ---- Wait ---- */

static void
wait_done (int exit_status, const struct timespec *exited_at, void *arg)
{
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  pb_timestamp_set (&ts, exited_at);
  Containerd__Task__V2__WaitResponse resp = CONTAINERD__TASK__V2__WAIT_RESPONSE__INIT;
  resp.exit_status = exit_status;
  resp.exited_at = &ts;
  ttrpc_call_reply (arg, &resp.base);
}

/* Waits parked by a client that has gone (containerd restarted) are answered and dropped when
 * the next Wait parks, so reconnects cannot pile them up. */
static bool
wait_gone (void *arg)
{
  return !ttrpc_call_connected (arg);
}

void
task_handle_wait (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  struct task_service *svc = arg;
  const Containerd__Task__V2__WaitRequest *req = (const void *) msg;
  shim_error_t err = NULL;
  struct waiter w = { .done = wait_done, .gone = wait_gone, .arg = call };
  if (model_wait (svc->model, req->id, req->exec_id, &w, &err) < 0)
    ttrpc_call_fail (call, &err);
}

/* ---- State ---- */

static Containerd__V1__Types__Status
wire_status (enum process_state s)
{
  switch (s)
    {
    case PROCESS_CREATED:
      return CONTAINERD__V1__TYPES__STATUS__CREATED;
    case PROCESS_RUNNING:
      return CONTAINERD__V1__TYPES__STATUS__RUNNING;
    case PROCESS_PAUSED:
      return CONTAINERD__V1__TYPES__STATUS__PAUSED;
    case PROCESS_STOPPED:
    case PROCESS_DELETED:
      return CONTAINERD__V1__TYPES__STATUS__STOPPED;
    default:
      return CONTAINERD__V1__TYPES__STATUS__UNKNOWN;
    }
}

void
task_handle_state (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  struct task_service *svc = arg;
  const Containerd__Task__V2__StateRequest *req = (const void *) msg;
  shim_error_t err = NULL;
  struct model_state st;
  if (model_state (svc->model, req->id, req->exec_id, &st, &err) < 0)
    {
      ttrpc_call_fail (call, &err);
      return;
    }
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  pb_timestamp_set (&ts, &st.exited_at);
  Containerd__Task__V2__StateResponse resp = CONTAINERD__TASK__V2__STATE_RESPONSE__INIT;
  resp.id = (char *) st.id;
  resp.bundle = (char *) st.bundle;
  resp.pid = st.pid;
  resp.status = wire_status (st.state);
  resp.stdin = (char *) st.stdin_path;
  resp.stdout = (char *) st.stdout_path;
  resp.stderr = (char *) st.stderr_path;
  resp.terminal = st.terminal;
  resp.exit_status = st.exit_status;
  resp.exited_at = &ts;
  /* exec_id stays empty, as the stock shim leaves it (the request names the process). */
  ttrpc_call_reply (call, &resp.base);
}
