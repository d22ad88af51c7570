/* Start (init and exec processes), Exec, and the exec side of Delete. */

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "containerd/events/task.pb-c.h"
#include "containerd/task/v2/task.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "base/log.h"
#include "stdio/procio.h"
#include "platform/reaper.h"
#include "runtime/runtime.h"
#include "service/shim.h"
#include "service/task_internal.h"
#include "wire/ttrpc_server.h"
#include "base/util.h"

#define PROCESS_SPEC_TYPE "types.containerd.io/opencontainers/runtime-spec/1/Process"

static char *
exec_pid_file (const struct process *p)
{
  return process_is_init (p) ? xasprintf ("%s/init.pid", p->container->bundle)
                             : xasprintf ("%s/exec-%s.pid", p->container->bundle, p->exec_id);
}

static void
publish_started (struct task_service *svc, struct process *p)
{
  if (process_is_init (p))
    {
      Containerd__Events__TaskStart ev = CONTAINERD__EVENTS__TASK_START__INIT;
      ev.container_id = p->container->id;
      ev.pid = p->pid;
      task_publish (svc, "/tasks/start", &ev.base);
      return;
    }
  Containerd__Events__TaskExecStarted ev = CONTAINERD__EVENTS__TASK_EXEC_STARTED__INIT;
  ev.container_id = p->container->id;
  ev.exec_id = p->exec_id;
  ev.pid = p->pid;
  task_publish (svc, "/tasks/exec-started", &ev.base);
}

/* The spec file is only needed while `exec` runs, and an exec's pid file only until it is
 * read: the bundle is on tmpfs, and exec churn would fill it with one file per exec. */
static void
drop_exec_files (struct process *p)
{
  if (p->spec_path)
    unlink (p->spec_path);
  free (p->spec_path);
  p->spec_path = NULL;
  if (process_is_init (p))
    return;
  cleanup_free char *pid_file = exec_pid_file (p);
  unlink (pid_file);
}

/* exec and restore run the process itself, handing it its stdio; `start` of a created init
 * does not (create did). */
static bool
starts_with_io (const struct process *p)
{
  return !process_is_init (p) || p->container->checkpoint;
}

static void
start_done_cb (struct runtime_result *res, void *arg)
{
  struct op *op = arg;
  struct container *c = op->container;
  struct task_service *svc = c->service;
  struct process *p = op->process;
  shim_error_t err = NULL;
  op->spawn = NULL;
  p->starting = false;
  /* create read the init pid already, except when the process came from restore. */
  if (res->err == NULL && starts_with_io (p))
    {
      cleanup_free char *pid_file = exec_pid_file (p);
      task_watch_pid_file (svc, p, pid_file, &err);
    }
  drop_exec_files (p);
  if (res->err || err)
    {
      process_record_failed_start (p);
      if (res->err)
        task_fail_runtime_io (op->call, &res->err, starts_with_io (p) ? p->io : NULL);
      else
        ttrpc_call_fail (op->call, &err);
      task_flush_exits (svc, c);
      container_op_done (c);
      return;
    }
  if (starts_with_io (p))
    proc_io_start (p->io);
  p->state = process_next (p->state, PROCESS_START);
  p->started = true;
  if (process_is_init (p) && c->checkpoint)
    task_watch_oom (svc, c);
  publish_started (svc, p);
  Containerd__Task__V2__StartResponse resp = CONTAINERD__TASK__V2__START_RESPONSE__INIT;
  resp.pid = p->pid;
  ttrpc_call_reply (op->call, &resp.base);
  /* An exit reaped while the runtime ran was held back until the start event went out. */
  task_flush_exits (svc, c);
  container_op_done (c);
}

/* Runs the runtime call that starts p with its stdio: `exec` for an exec process, `restore`
 * for an init process created from a checkpoint. */
static struct spawn *
start_with_io (struct op *op, struct process *p, shim_error_t *err)
{
  struct container *c = p->container;
  cleanup_free char *pid_file = exec_pid_file (p);
  unlink (pid_file);
  cleanup_free char *work = c->opts.criu_work_path ? xstrdup (c->opts.criu_work_path)
                                                   : xasprintf ("%s/criu-work", c->bundle);
  struct runtime_criu criu = { .image_path = c->checkpoint, .work_path = work };
  struct runtime_call rc
      = { .verb = RUNTIME_EXEC, .id = c->id, .pid_file = pid_file, .process_file = p->spec_path };
  if (process_is_init (p))
    rc = (struct runtime_call){
      .verb = RUNTIME_RESTORE, .id = c->id, .pid_file = pid_file, .bundle = c->bundle, .criu = &criu
    };
  rc.console_socket = proc_io_console_socket (p->io);
  int fds[3];
  proc_io_runtime_fds (p->io, fds);
  struct runtime_io io = { .stdin_fd = fds[0], .stdout_fd = fds[1], .stderr_fd = fds[2] };
  return runtime_run (&c->rt, &rc, &io, start_done_cb, op, err);
}

static void
start_io_ready_cb (shim_error_t err, void *arg)
{
  struct op *op = arg;
  struct container *c = op->container;
  if (err == NULL)
    op->spawn = start_with_io (op, op->process, &err);
  if (op->spawn)
    return;
  op->process->starting = false;
  process_record_failed_start (op->process);
  ttrpc_call_fail (op->call, &err);
  task_flush_exits (c->service, c);
  container_op_done (c);
}

static void
start_run (struct op *op)
{
  struct container *c = op->container;
  const Containerd__Task__V2__StartRequest *req = op->req;
  shim_error_t err = NULL;
  struct process *p = container_process (c, req->exec_id);
  if (p == NULL)
    shim_error_make (&err, 0, SHIM_NOT_FOUND, "process does not exist %s", req->exec_id);
  else if (process_check (p->state, PROCESS_START, &err) < 0)
    p = NULL;
  else if (!process_is_init (p) && container_check_exec_start (c, &err) < 0)
    p = NULL;
  if (p)
    {
      op->process = p;
      p->starting = true;
      if (!starts_with_io (p))
        {
          struct runtime_call rc = { .verb = RUNTIME_START, .id = c->id };
          op->spawn = runtime_run (&c->rt, &rc, NULL, start_done_cb, op, &err);
        }
      else
        {
          /* The process's stdio must be ready before the runtime gets it. */
          proc_io_when_ready (p->io, start_io_ready_cb, op);
          return;
        }
      if (op->spawn)
        return;
      p->starting = false;
    }
  ttrpc_call_fail (op->call, &err);
  container_op_done (c);
}

void
task_handle_start (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  const Containerd__Task__V2__StartRequest *req = (const void *) msg;
  task_submit_op (arg, call, req->id, req, start_run, NULL);
}

/* ---- Exec: records the process; the runtime runs at Start ---- */

char *
task_exec_spec_json (const Google__Protobuf__Any *spec, bool terminal, shim_error_t *err)
{
  if (spec == NULL || spec->type_url == NULL || strcmp (spec->type_url, PROCESS_SPEC_TYPE) != 0)
    {
      shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "exec spec must be a `%s`",
                       PROCESS_SPEC_TYPE);
      return NULL;
    }
  /* An empty value comes unpacked with no data pointer at all. */
  const char *value = spec->value.len ? (const char *) spec->value.data : "";
  cleanup_free char *text = xstrndup (value, spec->value.len);
  cJSON *doc = cJSON_Parse (text);
  if (!cJSON_IsObject (doc))
    {
      cJSON_Delete (doc);
      shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "exec spec is not a JSON object");
      return NULL;
    }
  cJSON_DeleteItemFromObjectCaseSensitive (doc, "terminal");
  cJSON_AddBoolToObject (doc, "terminal", terminal);
  char *out = cJSON_PrintUnformatted (doc);
  cJSON_Delete (doc);
  if (out == NULL)
    shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "exec spec cannot be written back as JSON");
  return out;
}

/* The process spec written where the runtime reads it. */
static char *
write_spec (const struct container *c, const Google__Protobuf__Any *spec, bool terminal,
            shim_error_t *err)
{
  cleanup_free char *out = task_exec_spec_json (spec, terminal, err);
  if (out == NULL)
    return NULL;
  char *path = xasprintf ("%s/.cshim-exec-XXXXXX.json", c->bundle);
  int fd = mkostemps (path, 5, O_CLOEXEC);
  if (fd < 0 || write_all (fd, out, strlen (out)) < 0)
    {
      shim_error_make (err, errno, SHIM_UNKNOWN, "write exec spec `%s`", path);
      if (fd >= 0)
        {
          close (fd);
          unlink (path);
        }
      free (path);
      return NULL;
    }
  close (fd);
  return path;
}

static int
exec_validate (struct container *c, const Containerd__Task__V2__ExecProcessRequest *req,
               shim_error_t *err)
{
  if (req->exec_id[0] == '\0')
    return shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "exec needs an exec id");
  if (container_process (c, req->exec_id))
    return shim_error_make (err, 0, SHIM_ALREADY_EXISTS, "id %s: already exists", req->exec_id);
  return process_check (c->init.state, PROCESS_EXEC, err);
}

static int
exec_prepare (struct task_service *svc, struct process *p,
              const Containerd__Task__V2__ExecProcessRequest *req, shim_error_t *err)
{
  struct container *c = p->container;
  p->terminal = req->terminal;
  p->stdin_path = xstrdup (req->stdin);
  p->stdout_path = xstrdup (req->stdout);
  p->stderr_path = xstrdup (req->stderr);
  p->spec_path = write_spec (c, req->spec, req->terminal, err);
  if (p->spec_path == NULL)
    return -1;
  return task_open_io (svc, p, err);
}

void
task_handle_exec (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  struct task_service *svc = arg;
  const Containerd__Task__V2__ExecProcessRequest *req = (const void *) msg;
  shim_error_t err = NULL;
  struct container *c = task_get_container (svc, req->id, &err);
  if (c == NULL || exec_validate (c, req, &err) < 0)
    {
      ttrpc_call_fail (call, &err);
      return;
    }
  struct process *p = container_add_exec (c, req->exec_id);
  if (exec_prepare (svc, p, req, &err) < 0)
    {
      container_remove_exec (c, p);
      ttrpc_call_fail (call, &err);
      return;
    }
  Containerd__Events__TaskExecAdded ev = CONTAINERD__EVENTS__TASK_EXEC_ADDED__INIT;
  ev.container_id = c->id;
  ev.exec_id = p->exec_id;
  task_publish (svc, "/tasks/exec-added", &ev.base);
  task_reply_empty (call);
}

void
task_delete_exec (struct op *op, struct process *p)
{
  struct container *c = op->container;
  task_release_process (c->service, p);
  /* Its stdio is closed before the answer: a client that returns on it (ctr exec) finds
   * nothing of the exec held in the shim. */
  proc_io_free (p->io);
  p->io = NULL;
  task_reply_delete (op->call, p);
  container_remove_exec (c, p);
  container_op_done (c);
}

void
task_kill_execs (struct container *c)
{
  struct process *p;
  TAILQ_FOREACH (p, &c->execs, link)
  if (p->pid > 0 && !p->exited && kill (p->pid, SIGKILL) < 0 && errno != ESRCH)
    log_warn ("kill exec %s (pid %d): %s", p->exec_id, (int) p->pid, strerror (errno));
}
