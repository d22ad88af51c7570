#include "service/task_service.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "service/task_internal.h"
#include "containerd/events/task.pb-c.h"
#include "containerd/runc/v1/options.pb-c.h"
#include "containerd/task/v2/task.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "cshim/ids.pb-c.h"
#include "platform/cgroup.h"
#include "base/ident.h"
#include "base/log.h"
#include "platform/mount.h"
#include "platform/oom.h"
#include "base/pb.h"
#include "stdio/procio.h"
#include "wire/publisher.h"
#include "platform/reaper.h"
#include "runtime/runtime.h"
#include "service/shim.h"
#include "platform/spawn.h"
#include "wire/ttrpc_server.h"
#include "base/util.h"

struct task_service *
task_service_new (struct shim *shim)
{
  struct task_service *svc = xcalloc (1, sizeof *svc);
  svc->shim = shim;
  TAILQ_INIT (&svc->containers);
  return svc;
}

size_t
task_service_container_count (const struct task_service *svc)
{
  return svc->n_containers;
}

/* ---- lookups and small replies ---- */

struct container *
task_find_container (struct task_service *svc, const char *id)
{
  struct container *c;
  TAILQ_FOREACH (c, &svc->containers, link)
  if (strcmp (c->id, id) == 0)
    return c;
  return NULL;
}

struct process *
task_find_process (struct task_service *svc, const char *id, const char *exec_id, shim_error_t *err)
{
  struct container *c = task_get_container (svc, id, err);
  if (c == NULL)
    return NULL;
  struct process *p = container_process (c, exec_id);
  if (p == NULL)
    shim_error_make (err, 0, SHIM_NOT_FOUND, "process does not exist %s", exec_id);
  return p;
}

struct container *
task_get_container (struct task_service *svc, const char *id, shim_error_t *err)
{
  struct container *c = task_find_container (svc, id);
  if (c == NULL)
    shim_error_make (err, 0, SHIM_NOT_FOUND, "container not created");
  return c;
}

int
task_open_io (struct task_service *svc, struct process *p, shim_error_t *err)
{
  struct container *c = p->container;
  struct proc_io_config cfg = { .stdin_path = p->stdin_path,
                                .stdout_path = p->stdout_path,
                                .stderr_path = p->stderr_path,
                                .terminal = p->terminal,
                                .uid = c->opts.io_uid,
                                .gid = c->opts.io_gid,
                                .drop_when_full = strcmp (c->opts.io_policy, "drop") == 0,
                                .reaper = svc->shim->reaper,
                                .namespace = svc->shim->namespace,
                                .id = c->id };
  p->io = proc_io_new (svc->shim->base, &cfg, err);
  return p->io ? 0 : -1;
}

void
task_reply_empty (struct ttrpc_call *call)
{
  Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
  ttrpc_call_reply (call, &empty.base);
}

void
task_runtime_init (struct task_service *svc, struct container *c)
{
  c->rt = (struct runtime){ .base = svc->shim->base,
                            .reaper = svc->shim->reaper,
                            .cfg = &c->opts.runtime,
                            .namespace = svc->shim->namespace,
                            .cwd = c->bundle,
                            .log_path = c->log_path };
}

/* Runtime failures read like the stock shim's: "OCI runtime create failed: <runtime text>". */
void
task_fail_runtime (struct ttrpc_call *call, shim_error_t *err)
{
  task_fail_runtime_io (call, err, NULL);
}

void
task_fail_runtime_io (struct ttrpc_call *call, shim_error_t *err, struct proc_io *io)
{
  shim_error_t e = NULL;
  cleanup_free char *said = proc_io_take_stderr (io);
  if (said && strstr ((*err)->msg, said) == NULL)
    shim_error_make (&e, 0, (*err)->code, "OCI runtime %s: %s", (*err)->msg, said);
  else
    shim_error_make (&e, 0, (*err)->code, "OCI runtime %s", (*err)->msg);
  shim_error_release (err);
  ttrpc_call_fail (call, &e);
}

void
task_publish (struct task_service *svc, const char *topic, const ProtobufCMessage *event)
{
  publisher_publish (svc->shim->publisher, svc->shim->namespace, topic, event);
}

/* ---- exits: published in order, waiters answered ---- */

static void
answer_waiter (struct ttrpc_call *call, const struct process *p)
{
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  pb_timestamp_set (&ts, &p->exited_at);
  Containerd__Task__V2__WaitResponse resp = CONTAINERD__TASK__V2__WAIT_RESPONSE__INIT;
  resp.exit_status = p->exit_status;
  resp.exited_at = &ts;
  ttrpc_call_reply (call, &resp.base);
}

static void
answer_waiters (struct process *p)
{
  struct ttrpc_call *call;
  while ((call = process_pop_waiter (p)))
    answer_waiter (call, p);
}

static void
publish_oom (struct task_service *svc, struct container *c)
{
  Containerd__Events__TaskOOM ev = CONTAINERD__EVENTS__TASK_OOM__INIT;
  ev.container_id = c->id;
  task_publish (svc, "/tasks/oom", &ev.base);
}

static void
oom_cb (void *arg)
{
  struct container *c = arg;
  log_info ("container %s: OOM", c->id);
  publish_oom (c->service, c);
}

/* OOM is watched from right after create, so a process that is already paused in its cgroup
 * is covered; a failure to watch is logged, not fatal. */
void
task_watch_oom (struct task_service *svc, struct container *c)
{
  cleanup_error shim_error_t err = NULL;
  if (c->cgroup == NULL)
    c->cgroup = cgroup_of_pid (c->init.pid, &err);
  if (c->cgroup && c->oom == NULL)
    c->oom = oom_watch_new (svc->shim->base, c->cgroup, oom_cb, c, &err);
  if (err)
    log_warn ("container %s: no OOM events: %s", c->id, err->msg);
}

static void
publish_exit (struct task_service *svc, struct process *p)
{
  p->exit_published = true;
  /* An OOM kill the watch has not reported yet goes out now: TaskOOM always precedes the
   * container's TaskExit. */
  if (process_is_init (p) && p->container->oom && oom_watch_check (p->container->oom))
    publish_oom (svc, p->container);
  /* Every process that existed gets its TaskExit, a created init killed before Start too;
   * one the runtime never made (a failed exec) gets none. */
  if (p->pid > 0)
    {
      Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
      pb_timestamp_set (&ts, &p->exited_at);
      Containerd__Events__TaskExit ev = CONTAINERD__EVENTS__TASK_EXIT__INIT;
      ev.container_id = p->container->id;
      ev.id = (char *) process_name (p);
      ev.pid = p->pid;
      ev.exit_status = p->exit_status;
      ev.exited_at = &ts;
      task_publish (svc, "/tasks/exit", &ev.base);
    }
  log_debug ("%s exited with status %d", process_name (p), p->exit_status);
  answer_waiters (p);
}

void
task_flush_exits (struct task_service *svc, struct container *c)
{
  struct process *p;
  while ((p = container_next_exit (c)))
    publish_exit (svc, p);
}

static void
io_drained_cb (void *arg)
{
  struct process *p = arg;
  task_flush_exits (p->container->service, p->container);
}

static void
process_exit_cb (pid_t pid, int status, const struct timespec *when, void *arg)
{
  struct process *p = arg;
  (void) pid;
  process_record_exit (p, status, when);
  if (process_is_init (p))
    task_kill_execs (p->container);
  if (process_is_init (p) && p->container->kill_all_on_exit)
    task_kill_all_on_exit (p->container);
  if (p->io)
    {
      /* Output held open by a background child after the process exited is cut after the
       * drain deadline, so the exit is published and readers see EOF. */
      proc_io_process_exited (p->io, p->container->opts.exec_io_drain_ms);
      proc_io_on_drained (p->io, io_drained_cb, p);
    }
  task_flush_exits (p->container->service, p->container);
}

int
task_watch_pid_file (struct task_service *svc, struct process *p, const char *pid_file,
                     shim_error_t *err)
{
  cleanup_free char *text = NULL;
  if (read_file (pid_file, 64, &text, NULL, err) < 0 || runtime_parse_pid (text, &p->pid, err) < 0)
    return shim_error_wrap (err, "read pid of %s", process_name (p));
  p->watch = reaper_watch (svc->shim->reaper, p->pid, process_exit_cb, p);
  return 0;
}

/* ---- container teardown ---- */

static void
fail_queued_ops (struct container *c)
{
  struct op *op;
  while ((op = TAILQ_FIRST (&c->ops)))
    {
      TAILQ_REMOVE (&c->ops, op, link);
      shim_error_t err = NULL;
      shim_error_make (&err, 0, SHIM_NOT_FOUND, "container %s deleted", c->id);
      ttrpc_call_fail (op->call, &err);
      free (op);
    }
}

void
task_release_process (struct task_service *svc, struct process *p)
{
  if (p->watch)
    reaper_unwatch (svc->shim->reaper, p->watch);
  p->watch = NULL;
  answer_waiters (p);
}

/* Removes c from the service and frees it; its running op (if any) must be finished. */
void
task_destroy_container (struct task_service *svc, struct container *c)
{
  fail_queued_ops (c);
  if (c->killing_all)
    spawn_cancel (c->killing_all);
  c->killing_all = NULL;
  struct process *p;
  TAILQ_FOREACH (p, &c->execs, link)
  task_release_process (svc, p);
  task_release_process (svc, &c->init);
  if (c->rootfs)
    {
      cleanup_error shim_error_t err = NULL;
      if (mount_unmount_all (c->rootfs, &err) < 0)
        log_error_release (LOG_LEVEL_WARN, "unmount rootfs", &err);
    }
  TAILQ_REMOVE (&svc->containers, c, link);
  svc->n_containers--;
  free (c->running_op);
  c->running_op = NULL;
  container_free (c);
}

void
task_service_free (struct task_service *svc)
{
  if (svc == NULL)
    return;
  struct container *c;
  while ((c = TAILQ_FIRST (&svc->containers)))
    {
      if (c->running_op)
        {
          shim_error_t err = NULL;
          shim_error_make (&err, 0, SHIM_UNAVAILABLE, "shim is shutting down");
          if (c->running_op->spawn)
            spawn_cancel (c->running_op->spawn);
          ttrpc_call_fail (c->running_op->call, &err);
        }
      task_destroy_container (svc, c);
    }
  free (svc);
}

/* ---- Delete ---- */

static void
publish_delete (struct task_service *svc, struct container *c, const struct process *p)
{
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  pb_timestamp_set (&ts, &p->exited_at);
  Containerd__Events__TaskDelete ev = CONTAINERD__EVENTS__TASK_DELETE__INIT;
  ev.container_id = c->id;
  ev.pid = p->pid;
  ev.exit_status = p->exit_status;
  ev.exited_at = &ts;
  /* No `id`: the stock shim names only the container in TaskDelete. */
  task_publish (svc, "/tasks/delete", &ev.base);
}

void
task_reply_delete (struct ttrpc_call *call, const struct process *p)
{
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  pb_timestamp_set (&ts, &p->exited_at);
  Containerd__Task__V2__DeleteResponse resp = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
  resp.pid = p->pid;
  resp.exit_status = p->exit_status;
  resp.exited_at = &ts;
  ttrpc_call_reply (call, &resp.base);
}

static void
delete_done_cb (struct runtime_result *res, void *arg)
{
  struct op *op = arg;
  struct container *c = op->container;
  struct task_service *svc = c->service;
  op->spawn = NULL;
  /* Already gone from the runtime is what delete wanted. */
  if (res->err && res->err->code != SHIM_NOT_FOUND)
    {
      task_fail_runtime (op->call, &res->err);
      container_op_done (c);
      return;
    }
  struct process *p = &c->init;
  p->state = PROCESS_DELETED;
  /* An exit the runtime's delete caused (it kills a created init) went out as TaskExit, but
   * is not what Delete reports: as in the stock shim, that is the exit from before it. */
  if (op->exit_unreported)
    {
      p->exit_status = 0;
      p->exited_at = (struct timespec){ 0, 0 };
    }
  publish_delete (svc, c, p);
  task_reply_delete (op->call, p);
  if (svc->shim->task_deleted)
    svc->shim->task_deleted (svc->shim, c->bundle, svc->n_containers - 1);
  task_destroy_container (svc, c);
}

static void
delete_run (struct op *op)
{
  struct container *c = op->container;
  struct task_service *svc = c->service;
  const Containerd__Task__V2__DeleteRequest *req = op->req;
  shim_error_t err = NULL;
  struct process *p = container_process (c, req->exec_id);
  if (p == NULL)
    {
      shim_error_make (&err, 0, SHIM_NOT_FOUND, "process does not exist %s", req->exec_id);
      goto fail;
    }
  if (process_check (p->state, PROCESS_DELETE, &err) < 0)
    goto fail;
  /* An exit still waiting for its output to drain goes out now: TaskExit precedes
   * TaskDelete, and after Delete nobody reads that output. */
  if (p->exited && !p->exit_published)
    publish_exit (svc, p);
  if (!process_is_init (p))
    {
      task_delete_exec (op, p);
      return;
    }
  op->exit_unreported = !p->exited;
  struct runtime_call rc = { .verb = RUNTIME_DELETE, .id = c->id };
  op->spawn = runtime_run (&c->rt, &rc, NULL, delete_done_cb, op, &err);
  if (op->spawn)
    return;
fail:
  ttrpc_call_fail (op->call, &err);
  container_op_done (c);
}

/* ---- handlers that queue an op ---- */

void
task_submit_op (struct task_service *svc, struct ttrpc_call *call, const char *id, const void *req,
                void (*run) (struct op *), const void *ctx)
{
  shim_error_t err = NULL;
  struct container *c = task_get_container (svc, id, &err);
  if (c == NULL)
    {
      ttrpc_call_fail (call, &err);
      return;
    }
  struct op *op = op_new (c, call, req, run);
  op->ctx = ctx;
  container_submit (c, op);
}

static void
handle_delete (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  const Containerd__Task__V2__DeleteRequest *req = (const void *) msg;
  task_submit_op (arg, call, req->id, req, delete_run, NULL);
}

/* ---- Wait, State, Pids, Connect, Shutdown ---- */

static void
handle_wait (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  const Containerd__Task__V2__WaitRequest *req = (const void *) msg;
  shim_error_t err = NULL;
  struct process *p = task_find_process (arg, req->id, req->exec_id, &err);
  if (p == NULL)
    {
      ttrpc_call_fail (call, &err);
      return;
    }
  if (p->exit_published)
    {
      answer_waiter (call, p);
      return;
    }
  /* Waits parked by a client that has gone (containerd restarted) are dropped here, so
   * reconnects cannot pile them up. */
  struct waiter *w, *tmp;
  TAILQ_FOREACH_SAFE (w, &p->waiters, link, tmp)
  if (!ttrpc_call_connected (w->call))
    {
      TAILQ_REMOVE (&p->waiters, w, link);
      answer_waiter (w->call, p);
      free (w);
    }
  process_add_waiter (p, call);
}

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

static void
handle_state (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  const Containerd__Task__V2__StateRequest *req = (const void *) msg;
  shim_error_t err = NULL;
  struct process *p = task_find_process (arg, req->id, req->exec_id, &err);
  if (p == NULL)
    {
      ttrpc_call_fail (call, &err);
      return;
    }
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  pb_timestamp_set (&ts, &p->exited_at);
  Containerd__Task__V2__StateResponse resp = CONTAINERD__TASK__V2__STATE_RESPONSE__INIT;
  resp.id = (char *) process_name (p);
  resp.bundle = p->container->bundle;
  resp.pid = p->pid;
  resp.status = wire_status (process_visible_state (p));
  resp.stdin = p->stdin_path ? p->stdin_path : "";
  resp.stdout = p->stdout_path ? p->stdout_path : "";
  resp.stderr = p->stderr_path ? p->stderr_path : "";
  resp.terminal = p->terminal;
  resp.exit_status = p->exit_status;
  resp.exited_at = &ts;
  /* exec_id stays empty, as the stock shim leaves it (the request names the process). */
  ttrpc_call_reply (call, &resp.base);
}

static void
handle_connect (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  const Containerd__Task__V2__ConnectRequest *req = (const void *) msg;
  struct container *c = task_find_container (arg, req->id);
  Containerd__Task__V2__ConnectResponse resp = CONTAINERD__TASK__V2__CONNECT_RESPONSE__INIT;
  resp.shim_pid = getpid ();
  resp.task_pid = c ? c->init.pid : 0;
  resp.version = CSHIM_VERSION;
  ttrpc_call_reply (call, &resp.base);
}

static void
handle_shutdown (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  struct task_service *svc = arg;
  (void) msg;
  task_reply_empty (call);
  /* A grouped shim keeps serving while any container is left, a sandbox's until
   * ShutdownSandbox. */
  bool sandbox = svc->shim->sandbox_active && svc->shim->sandbox_active (svc->shim);
  if (svc->n_containers == 0 && !sandbox)
    svc->shim->request_exit (svc->shim);
}

static void
handle_unimplemented (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  shim_error_t err = NULL;
  (void) msg;
  (void) arg;
  shim_error_make (&err, 0, SHIM_UNIMPLEMENTED, "%s is not supported by cshim %s",
                   ttrpc_call_method (call), CSHIM_VERSION);
  ttrpc_call_fail (call, &err);
}

/* ---- method table ---- */

struct handler_entry
{
  const char *method;
  ttrpc_handler_fn fn;
};

static const struct handler_entry handlers[] = {
  { "State", handle_state },
  { "Create", task_handle_create },
  { "Start", task_handle_start },
  { "Delete", handle_delete },
  { "Pids", task_handle_pids },
  { "Pause", task_handle_pause },
  { "Resume", task_handle_resume },
  { "Checkpoint", task_handle_checkpoint },
  { "Kill", task_handle_kill },
  { "Exec", task_handle_exec },
  { "ResizePty", task_handle_resize_pty },
  { "CloseIO", task_handle_close_io },
  { "Stats", task_handle_stats },
  { "Update", task_handle_update },
  { "Wait", handle_wait },
  { "Connect", handle_connect },
  { "Shutdown", handle_shutdown },
};

static const char *const service_names[] = { "containerd.task.v2.Task", "containerd.task.v3.Task" };

static ttrpc_handler_fn
handler_for (const char *method)
{
  for (size_t i = 0; i < ARRAY_SIZE (handlers); i++)
    if (strcmp (handlers[i].method, method) == 0)
      return handlers[i].fn;
  return handle_unimplemented;
}

/* An id that names something new (Create's container id, Exec's exec id) must be a
 * containerd identifier: it becomes file names and runtime arguments, so anything else is
 * InvalidArgument before any handler runs. Any other id that is not one names nothing the
 * shim serves: NotFound, as the lookup would answer, whatever a C string (cut at a NUL) would
 * have found. The ids are read again as bytes for that; empty ids are left to the handlers. */
static int
check_id (const ProtobufCBinaryData *id, bool names_new, bool exec, shim_error_t *err)
{
  if (id->len == 0 || ident_valid ((const char *) id->data, id->len))
    return 0;
  if (names_new)
    return ident_check (exec ? "exec id" : "container id", (const char *) id->data, id->len, err);
  if (exec)
    return shim_error_make (err, 0, SHIM_NOT_FOUND, "process does not exist %.*s",
                            (int) strnlen ((const char *) id->data, id->len),
                            (const char *) id->data);
  return shim_error_make (err, 0, SHIM_NOT_FOUND, "container not created");
}

static int
check_ids (struct ttrpc_call *call, const ProtobufCMessage *msg, shim_error_t *err)
{
  const char *method = ttrpc_call_method (call);
  /* Connect answers for any id (task_pid 0 when it serves none). */
  if (strcmp (method, "Connect") == 0)
    return 0;
  ProtobufCBinaryData payload = ttrpc_call_payload (call);
  Cshim__TaskIds *ids = cshim__task_ids__unpack (NULL, payload.len, payload.data);
  if (ids == NULL) /* field 2 is not a string in this request (Shutdown's `now`) */
    return 0;
  int ret = check_id (&ids->id, strcmp (method, "Create") == 0, false, err);
  if (ret == 0 && protobuf_c_message_descriptor_get_field_by_name (msg->descriptor, "exec_id"))
    ret = check_id (&ids->exec_id, strcmp (method, "Exec") == 0, true, err);
  cshim__task_ids__free_unpacked (ids, NULL);
  return ret;
}

static void
handle_checked (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  shim_error_t err = NULL;
  if (check_ids (call, msg, &err) < 0)
    {
      ttrpc_call_fail (call, &err);
      return;
    }
  handler_for (ttrpc_call_method (call)) (call, msg, arg);
}

/* Built from the generated service descriptor so names and input types cannot drift. */
const struct ttrpc_method *
task_service_methods (size_t *n)
{
  static struct ttrpc_method table[2 * 17];
  static size_t count;
  const ProtobufCServiceDescriptor *sd = &containerd__task__v2__task__descriptor;
  if (count == 0)
    for (size_t s = 0; s < ARRAY_SIZE (service_names); s++)
      for (unsigned m = 0; m < sd->n_methods && count < ARRAY_SIZE (table); m++)
        table[count++] = (struct ttrpc_method){ service_names[s], sd->methods[m].name,
                                                sd->methods[m].input, handle_checked };
  *n = count;
  return table;
}
