/* Kill, Pids, and the container-wide verbs on the op queue: Pause, Resume, Update. */

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "model/model_internal.h"
#include "platform/spawn.h"
#include "runtime/runtime.h"

#define RESOURCES_TYPE "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"

/* A call that is not queued (Kill, Pids): the caller's callback, kept while the runtime runs,
 * in the model's list so that shutdown can end it. */
struct call_ctx
{
  TAILQ_ENTRY (call_ctx) link;
  struct model *m;
  char *id;
  model_done_fn done;
  void *arg;
  struct spawn *spawn;
  uint64_t serial; /* Kill: the container it holds (container->serial), 0: none */
};

static struct call_ctx *
call_ctx_new (struct model *m, const char *id, model_done_fn done, void *arg)
{
  struct call_ctx *x = xcalloc (1, sizeof *x);
  x->m = m;
  x->id = xstrdup (id);
  x->done = done;
  x->arg = arg;
  return x;
}

/* Runs rc for x's container c; x is listed while it runs, freed when it cannot start. */
static int
call_ctx_run (struct call_ctx *x, struct container *c, const struct runtime_call *rc,
              void (*cb) (struct runtime_result *, void *), shim_error_t *err)
{
  x->spawn = model_run (c, rc, NULL, cb, x, err);
  if (x->spawn == NULL)
    {
      free (x->id);
      free (x);
      return -1;
    }
  TAILQ_INSERT_TAIL (&x->m->calls, x, link);
  return 0;
}

static void
call_ctx_free (struct call_ctx *x)
{
  TAILQ_REMOVE (&x->m->calls, x, link);
  free (x->id);
  free (x);
}

void
model_cancel_calls (struct model *m)
{
  struct call_ctx *x;
  while ((x = TAILQ_FIRST (&m->calls)))
    {
      spawn_cancel (x->spawn);
      shim_error_t err = NULL;
      shim_error_make (&err, 0, SHIM_UNAVAILABLE, "shim is shutting down");
      x->done (NULL, err, x->arg);
      call_ctx_free (x);
    }
}

/* ---- Kill ---- */

/* The Kill is answered, then the init's exit it held back may go out (unless the container
 * went meanwhile: a Delete publishes the exit itself). */
static void
kill_done_cb (struct runtime_result *res, void *arg)
{
  struct call_ctx *x = arg;
  struct model_result r = { 0 };
  x->done (res->err ? NULL : &r, res->err ? model_runtime_error (&res->err, NULL) : NULL, x->arg);
  struct container *c = model_find (x->m, x->id);
  if (c && c->serial == x->serial)
    {
      c->init.killing--;
      model_flush_exits (c);
    }
  call_ctx_free (x);
}

/* An exec is signalled directly: the runtime's kill only reaches a container's init. */
static int
kill_exec (struct process *p, int signal, shim_error_t *err)
{
  /* An exec that never started has no pid; kill (0, ...) would signal the shim. */
  if (p->pid <= 0)
    return shim_error_make (err, 0, SHIM_FAILED_PRECONDITION, "process not created");
  if (kill (p->pid, signal) < 0)
    return shim_error_make (err, errno, errno == ESRCH ? SHIM_NOT_FOUND : SHIM_UNKNOWN, "kill %s",
                            process_name (p));
  return 0;
}

void
model_kill (struct model *m, const char *id, const char *exec_id, int signal, bool all,
            model_done_fn done, void *arg)
{
  shim_error_t err = NULL;
  struct model_result r = { 0 };
  struct process *p = model_find_process (m, id, exec_id, &err);
  if (p == NULL || process_check (p->state, PROCESS_KILL, &err) < 0)
    goto fail;
  if (!process_is_init (p))
    {
      if (kill_exec (p, signal, &err) < 0)
        goto fail;
      done (&r, NULL, arg);
      return;
    }
  struct runtime_call rc = { .verb = RUNTIME_KILL, .id = id, .signal = signal, .all = all };
  struct call_ctx *x = call_ctx_new (m, id, done, arg);
  x->serial = p->container->serial;
  /* Until the runtime's kill returns, the init's exit is held: its Kill is answered first, as
   * the stock shim's Kill holds the process (a client that deletes on the exit would otherwise
   * close the connection the Kill is still to be answered on). */
  if (call_ctx_run (x, p->container, &rc, kill_done_cb, &err) == 0)
    {
      p->killing++;
      return;
    }
fail:
  model_fail (done, arg, err);
}

/* ---- Pids ---- */

int
model_parse_pids (const char *out, pid_t **pids, size_t *n_pids, shim_error_t *err)
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

/* Exec pids carry their exec id; looked up when the answer is made (c may be gone). */
static const char *
exec_of (struct container *c, pid_t pid)
{
  struct process *p;
  if (c == NULL)
    return NULL;
  TAILQ_FOREACH (p, &c->execs, link)
  if (p->pid == pid)
    return p->exec_id;
  return NULL;
}

static void
pids_done_cb (struct runtime_result *res, void *arg)
{
  struct call_ctx *x = arg;
  shim_error_t err = NULL;
  cleanup_free pid_t *pids = NULL;
  size_t n = 0;
  if (res->err)
    err = model_runtime_error (&res->err, NULL);
  else if (model_parse_pids (res->out ? res->out : "", &pids, &n, &err) == 0)
    {
      struct container *c = model_find (x->m, x->id);
      cleanup_free const char **execs = xcalloc (n + 1, sizeof *execs);
      for (size_t i = 0; i < n; i++)
        execs[i] = exec_of (c, pids[i]);
      struct model_result r = { .pids = pids, .exec_ids = execs, .n_pids = n };
      x->done (&r, NULL, x->arg);
    }
  if (err)
    x->done (NULL, err, x->arg);
  call_ctx_free (x);
}

void
model_pids (struct model *m, const char *id, model_done_fn done, void *arg)
{
  shim_error_t err = NULL;
  struct container *c = model_get (m, id, &err);
  if (c)
    {
      struct call_ctx *x = call_ctx_new (m, id, done, arg);
      struct runtime_call rc = { .verb = RUNTIME_PS, .id = c->id };
      if (call_ctx_run (x, c, &rc, pids_done_cb, &err) == 0)
        return;
    }
  model_fail (done, arg, err);
}

/* ---- Pause / Resume / Update: runtime calls on the container's op queue ---- */

struct control_op
{
  struct op op;
  enum process_verb verb;
  char *type_url; /* Update: the resources' type and JSON */
  void *data;
  size_t len;
};

static void
control_op_free (struct op *op)
{
  struct control_op *k = (struct control_op *) op;
  free (k->type_url);
  free (k->data);
  free (k);
}

static void
control_done_cb (struct runtime_result *res, void *arg)
{
  struct control_op *k = arg;
  struct container *c = k->op.container;
  k->op.spawn = NULL;
  if (res->err)
    {
      container_op_finish (c, NULL, model_runtime_error (&res->err, NULL));
      return;
    }
  process_move (&c->init, k->verb);
  if (k->verb == PROCESS_PAUSE)
    MODEL_EMIT (c->model, paused, c->id);
  else if (k->verb == PROCESS_RESUME)
    MODEL_EMIT (c->model, resumed, c->id);
  struct model_result r = { 0 };
  container_op_finish (c, &r, NULL);
}

static const enum runtime_verb runtime_verbs[PROCESS_N_VERBS] = {
  [PROCESS_PAUSE] = RUNTIME_PAUSE,
  [PROCESS_RESUME] = RUNTIME_RESUME,
  [PROCESS_UPDATE] = RUNTIME_UPDATE,
};

static void
control_run (struct op *op)
{
  struct control_op *k = (struct control_op *) op;
  struct container *c = op->container;
  shim_error_t err = NULL;
  /* Update's resources go to the runtime as JSON on its stdin (`update --resources -`). */
  struct runtime_io io = { SPAWN_FD_NULL, SPAWN_FD_CAPTURE, SPAWN_FD_CAPTURE, k->data, k->len };
  if (process_check (c->init.state, k->verb, &err) == 0 && k->verb == PROCESS_UPDATE
      && (k->type_url == NULL || strcmp (k->type_url, RESOURCES_TYPE) != 0))
    shim_error_make (&err, 0, SHIM_INVALID_ARGUMENT, "update resources must be a `%s`",
                     RESOURCES_TYPE);
  if (err == NULL)
    {
      struct runtime_call rc = { .verb = runtime_verbs[k->verb], .id = c->id };
      op->spawn = model_run (c, &rc, &io, control_done_cb, k, &err);
      if (op->spawn)
        return;
    }
  container_op_finish (c, NULL, err);
}

void
model_control (struct model *m, const char *id, enum process_verb verb,
               const struct model_resources *resources, model_done_fn done, void *arg)
{
  struct control_op *k = model_op_new (m, id, sizeof *k, control_run, control_op_free, done, arg);
  if (k == NULL)
    return;
  k->verb = verb;
  if (resources && resources->type_url)
    {
      k->type_url = xstrdup (resources->type_url);
      k->data = resources->len ? memcpy (xmalloc (resources->len), resources->data, resources->len)
                               : NULL;
      k->len = resources->len;
    }
  container_submit (k->op.container, &k->op);
}
