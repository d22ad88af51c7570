/* Start (init, exec, restore), Exec, and the exec side of Delete. */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "model/model_internal.h"
#include "runtime/runtime.h"
#include "stdio/procio.h"

struct start_op
{
  struct op op;
  char *exec_id;
  shim_error_t err; /* what Start answers once an untracked exec is killed */
};

static void
start_op_free (struct op *op)
{
  struct start_op *s = (struct start_op *) op;
  free (s->exec_id);
  shim_error_release (&s->err);
  free (s);
}

static char *
exec_pid_file (const struct process *p)
{
  return process_is_init (p) ? xasprintf ("%s/init.pid", p->container->bundle)
                             : xasprintf ("%s/exec-%s.pid", p->container->bundle, p->exec_id);
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

/* The start failed (runtime error, or its pid unknown): Waits are answered, exits flushed. */
static void
start_failed (struct op *op, shim_error_t err)
{
  struct container *c = op->container;
  op->process->starting = false;
  process_record_failed_start (op->process);
  container_op_answer (c, NULL, err);
  model_flush_exits (c);
  container_run_next (c);
}

/* ---- an exec the runtime started but whose pid is unknown ---- */

/* A detached exec whose runtime exited is reparented to the shim (its subreaper); a process
 * the container made itself has its parent in the container. */
static bool
is_our_child (pid_t pid)
{
  cleanup_free char *path = xasprintf ("/proc/%d/stat", (int) pid);
  cleanup_free char *text = NULL;
  if (read_file (path, 4096, &text, NULL, NULL) < 0)
    return false;
  const char *rp = strrchr (text, ')');
  int ppid = 0;
  return rp && sscanf (rp + 1, " %*c %d", &ppid) == 1 && ppid == (int) getpid ();
}

static bool
tracked (struct container *c, pid_t pid)
{
  struct process *p;
  TAILQ_FOREACH (p, &c->execs, link)
  if (p->pid == pid)
    return true;
  return c->init.pid == pid;
}

static void
untracked_ps_cb (struct runtime_result *res, void *arg)
{
  struct start_op *s = arg;
  struct container *c = s->op.container;
  cleanup_free pid_t *pids = NULL;
  size_t n = 0;
  s->op.spawn = NULL;
  if (res->err == NULL && model_parse_pids (res->out ? res->out : "", &pids, &n, NULL) == 0)
    for (size_t i = 0; i < n; i++)
      if (!tracked (c, pids[i]) && is_our_child (pids[i]))
        {
          log_warn ("exec %s: killing pid %d, started with no readable pid file", s->exec_id,
                    (int) pids[i]);
          kill (pids[i], SIGKILL);
        }
  start_failed (&s->op, steal_ptr (&s->err));
}

/* The runtime started the exec but its pid cannot be read: it would run untracked, its exit
 * never reported. Like create, which force-deletes such a container, the start fails only
 * once the process is killed: it is looked for in the container's process list. */
static void
kill_untracked_exec (struct start_op *s, shim_error_t err)
{
  struct container *c = s->op.container;
  cleanup_error shim_error_t run_err = NULL;
  struct runtime_call rc = { .verb = RUNTIME_PS, .id = c->id };
  s->err = err;
  s->op.spawn = model_run (c, &rc, NULL, untracked_ps_cb, s, &run_err);
  if (s->op.spawn)
    return;
  log_warn ("exec %s: cannot look for its process: %s", s->exec_id, run_err->msg);
  start_failed (&s->op, steal_ptr (&s->err));
}

static void
start_succeeded (struct op *op, struct process *p)
{
  struct container *c = op->container;
  if (starts_with_io (p))
    proc_io_start (p->io);
  process_move (p, PROCESS_START);
  p->started = true;
  if (process_is_init (p) && c->checkpoint)
    model_watch_oom (c);
  MODEL_EMIT (c->model, started, c->id, p->exec_id, p->pid);
  struct model_result r = { .pid = p->pid };
  container_op_answer (c, &r, NULL);
  /* An exit reaped while the runtime ran was held back until the start event went out. */
  model_flush_exits (c);
  container_run_next (c);
}

static void
start_done_cb (struct runtime_result *res, void *arg)
{
  struct start_op *s = arg;
  struct process *p = s->op.process;
  shim_error_t err = NULL;
  s->op.spawn = NULL;
  p->starting = false;
  /* create read the init pid already, except when the process came from restore. */
  if (res->err == NULL && starts_with_io (p))
    {
      cleanup_free char *pid_file = exec_pid_file (p);
      model_watch_pid_file (p, pid_file, &err);
    }
  drop_exec_files (p);
  if (res->err)
    start_failed (&s->op, model_runtime_error (&res->err, starts_with_io (p) ? p->io : NULL));
  else if (err && !process_is_init (p) && p->pid <= 0)
    kill_untracked_exec (s, err);
  else if (err)
    start_failed (&s->op, err);
  else
    start_succeeded (&s->op, p);
}

/* Runs the runtime call that starts p with its stdio: `exec` for an exec process, `restore`
 * for an init process created from a checkpoint. */
static struct spawn *
start_with_io (struct start_op *s, struct process *p, shim_error_t *err)
{
  struct container *c = p->container;
  cleanup_free char *pid_file = exec_pid_file (p);
  unlink (pid_file);
  cleanup_free char *work = model_criu_work_path (c, NULL);
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
  p->spawned_ms = now_monotonic_ms ();
  return model_run (c, &rc, &io, start_done_cb, s, err);
}

static void
start_io_ready_cb (shim_error_t err, void *arg)
{
  struct start_op *s = arg;
  if (err == NULL)
    s->op.spawn = start_with_io (s, s->op.process, &err);
  if (s->op.spawn == NULL)
    start_failed (&s->op, err);
}

static int
start_check (struct container *c, struct process *p, const char *exec_id, shim_error_t *err)
{
  if (p == NULL)
    return shim_error_make (err, 0, SHIM_NOT_FOUND, "process does not exist %s", exec_id);
  if (process_check (p->state, PROCESS_START, err) < 0)
    return -1;
  return process_is_init (p) ? 0 : container_check_exec_start (c, err);
}

static void
start_run (struct op *op)
{
  struct start_op *s = (struct start_op *) op;
  struct container *c = op->container;
  shim_error_t err = NULL;
  struct process *p = container_process (c, s->exec_id);
  if (start_check (c, p, s->exec_id, &err) < 0)
    {
      container_op_finish (c, NULL, err);
      return;
    }
  op->process = p;
  p->starting = true;
  if (starts_with_io (p))
    {
      /* The process's stdio must be ready before the runtime gets it. */
      proc_io_when_ready (p->io, start_io_ready_cb, s);
      return;
    }
  struct runtime_call rc = { .verb = RUNTIME_START, .id = c->id };
  op->spawn = model_run (c, &rc, NULL, start_done_cb, s, &err);
  if (op->spawn)
    return;
  p->starting = false;
  container_op_finish (c, NULL, err);
}

void
model_start (struct model *m, const char *id, const char *exec_id, model_done_fn done, void *arg)
{
  struct start_op *s = model_op_new (m, id, sizeof *s, start_run, start_op_free, done, arg);
  if (s == NULL)
    return;
  s->exec_id = exec_id ? xstrdup (exec_id) : NULL;
  container_submit (s->op.container, &s->op);
}

/* ---- Exec: records the process; the runtime runs at Start ---- */

/* The process spec written where the runtime reads it. */
static char *
write_spec (const struct container *c, const char *json, shim_error_t *err)
{
  char *path = xasprintf ("%s/.cshim-exec-XXXXXX.json", c->bundle);
  int fd = mkostemps (path, 5, O_CLOEXEC);
  if (fd < 0 || write_all (fd, json, strlen (json)) < 0)
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

int
model_exec_check (struct model *m, const char *id, const char *exec_id, shim_error_t *err)
{
  struct container *c = model_get (m, id, err);
  if (c == NULL)
    return -1;
  if (exec_id == NULL || exec_id[0] == '\0')
    return shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "exec needs an exec id");
  if (container_process (c, exec_id))
    return shim_error_make (err, 0, SHIM_ALREADY_EXISTS, "id %s: already exists", exec_id);
  return process_check (c->init.state, PROCESS_EXEC, err);
}

int
model_exec (struct model *m, const struct model_exec *req, shim_error_t *err)
{
  if (model_exec_check (m, req->id, req->exec_id, err) < 0)
    return -1;
  struct container *c = model_find (m, req->id);
  struct process *p = container_add_exec (c, req->exec_id);
  p->terminal = req->terminal;
  p->stdin_path = xstrdup (req->stdin_path);
  p->stdout_path = xstrdup (req->stdout_path);
  p->stderr_path = xstrdup (req->stderr_path);
  p->spec_path = write_spec (c, req->spec_json, err);
  if (p->spec_path == NULL || model_open_io (m, p, err) < 0)
    {
      container_remove_exec (c, p);
      return -1;
    }
  MODEL_EMIT (m, exec_added, c->id, p->exec_id);
  return 0;
}

void
model_delete_exec (struct op *op, struct process *p)
{
  struct container *c = op->container;
  model_unwatch (p);
  process_answer_waiters (p);
  /* Its stdio is closed before the answer: a client that returns on it (ctr exec) finds
   * nothing of the exec held in the shim. */
  proc_io_free (p->io);
  p->io = NULL;
  struct model_result r
      = { .pid = p->pid, .exit_status = p->exit_status, .exited_at = p->exited_at };
  container_op_answer (c, &r, NULL);
  container_remove_exec (c, p);
  container_run_next (c);
}
