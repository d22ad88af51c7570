#include "model/container.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "base/util.h"
#include "platform/cgroup.h"
#include "platform/oom.h"
#include "platform/spawn.h"
#include "runtime/trace.h"
#include "stdio/procio.h"

struct container *
container_new (const char *id, const char *bundle)
{
  struct container *c = xcalloc (1, sizeof *c);
  c->id = xstrdup (id);
  c->bundle = xstrdup (bundle);
  c->log_path = xasprintf ("%s/log.json", bundle);
  config_init (&c->opts);
  process_init (&c->init, c, NULL);
  TAILQ_INIT (&c->execs);
  TAILQ_INIT (&c->ops);
  return c;
}

void
container_free (struct container *c)
{
  if (c == NULL)
    return;
  struct process *p;
  while ((p = TAILQ_FIRST (&c->execs)))
    container_remove_exec (c, p);
  process_release (&c->init);
  config_release (&c->opts);
  free (c->id);
  free (c->bundle);
  free (c->log_path);
  free (c->rootfs);
  free (c->checkpoint);
  oom_watch_free (c->oom);
  trace_close (c->rt.trace);
  cgroup_free (c->cgroup);
  free (c);
}

struct process *
container_process (struct container *c, const char *exec_id)
{
  if (exec_id == NULL || exec_id[0] == '\0')
    return &c->init;
  struct process *p;
  TAILQ_FOREACH (p, &c->execs, link)
  if (strcmp (p->exec_id, exec_id) == 0)
    return p;
  return NULL;
}

struct process *
container_add_exec (struct container *c, const char *exec_id)
{
  struct process *p = xmalloc (sizeof *p);
  process_init (p, c, exec_id);
  TAILQ_INSERT_TAIL (&c->execs, p, link);
  return p;
}

void
container_remove_exec (struct container *c, struct process *p)
{
  TAILQ_REMOVE (&c->execs, p, link);
  process_release (p);
  free (p);
}

int
process_check_resize (const struct process *p, shim_error_t *err)
{
  return process_is_init (p) ? 0 : process_check (p->state, PROCESS_RESIZE, err);
}

int
container_check_exec_start (const struct container *c, shim_error_t *err)
{
  if (c->init.state == PROCESS_STOPPED || c->init.state == PROCESS_DELETED)
    return shim_error_make (err, 0, SHIM_FAILED_PRECONDITION,
                            "container %s init process is not running", c->id);
  return process_check (c->init.state, PROCESS_EXEC, err);
}

enum process_state
process_visible_state (const struct process *p)
{
  if (!process_is_init (p) && p->container->init.state == PROCESS_PAUSED)
    return PROCESS_PAUSED;
  return p->state;
}

void
op_init (struct op *op, struct container *c, void (*run) (struct op *),
         void (*free_op) (struct op *), model_done_fn done, void *arg)
{
  op->container = c;
  op->run = run;
  op->free_op = free_op;
  op->done = done;
  op->done_arg = arg;
}

void
container_run_next (struct container *c)
{
  if (c->running_op == NULL && !TAILQ_EMPTY (&c->ops))
    {
      struct op *op = TAILQ_FIRST (&c->ops);
      TAILQ_REMOVE (&c->ops, op, link);
      c->running_op = op;
      /* run() may finish synchronously and call container_op_finish(), which frees op and
       * possibly the container; nothing here touches either afterwards. */
      op->run (op);
    }
}

void
container_submit (struct container *c, struct op *op)
{
  TAILQ_INSERT_TAIL (&c->ops, op, link);
  container_run_next (c);
}

void
container_op_answer (struct container *c, const struct model_result *res, shim_error_t err)
{
  struct op *op = c->running_op;
  c->running_op = NULL;
  op->done (err ? NULL : res, err, op->done_arg);
  op->free_op (op);
}

void
container_op_finish (struct container *c, const struct model_result *res, shim_error_t err)
{
  container_op_answer (c, res, err);
  container_run_next (c);
}

void
op_cancel (struct op *op, shim_error_t err)
{
  if (op->spawn)
    spawn_cancel (op->spawn);
  op->spawn = NULL;
  op->done (NULL, err, op->done_arg);
  op->free_op (op);
}

static bool
spec_has_own_pid_namespace (const cJSON *spec)
{
  const cJSON *linux_ = cJSON_GetObjectItemCaseSensitive (spec, "linux");
  const cJSON *nss = cJSON_GetObjectItemCaseSensitive (linux_, "namespaces");
  const cJSON *ns;
  cJSON_ArrayForEach (ns, nss)
  {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive (ns, "type");
    const cJSON *path = cJSON_GetObjectItemCaseSensitive (ns, "path");
    if (cJSON_IsString (type) && strcmp (type->valuestring, "pid") == 0
        && (path == NULL || (cJSON_IsString (path) && path->valuestring[0] == '\0')))
      return true;
  }
  return false;
}

bool
container_spec_kills_all_on_exit (const char *spec)
{
  cJSON *doc = spec ? cJSON_Parse (spec) : NULL;
  bool own = doc && spec_has_own_pid_namespace (doc);
  cJSON_Delete (doc);
  return !own;
}

static bool
exit_ready (const struct process *p)
{
  return p->exited && !p->exit_published && !p->starting && p->killing == 0
         && (p->io == NULL || proc_io_drained (p->io));
}

struct process *
container_next_exit (struct container *c)
{
  struct process *p;
  bool exec_running = false;
  TAILQ_FOREACH (p, &c->execs, link)
  {
    if (exit_ready (p))
      return p;
    if ((p->started || p->starting) && !p->exit_published)
      exec_running = true;
  }
  if (exit_ready (&c->init) && !exec_running && c->killing_all == NULL)
    return &c->init;
  return NULL;
}
