/* Checkpoint: the runtime's `checkpoint` (CRIU) on the container's op queue. Restore is the
 * other half: Create records the image and Start runs the runtime's `restore`. */

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "model/model_internal.h"
#include "platform/spawn.h"
#include "runtime/runtime.h"

struct checkpoint_op
{
  struct op op;
  struct runtime_criu criu; /* points into the strings below */
  char *image_path;
  char *work_path;
  char *parent_path;
  char *cgroups_mode;
  char **empty_ns;
  bool own_work; /* work_path is the default one: removed after the call, as the stock shim does */
};

static void
checkpoint_op_free (struct op *op)
{
  struct checkpoint_op *k = (struct checkpoint_op *) op;
  free (k->image_path);
  free (k->work_path);
  free (k->parent_path);
  free (k->cgroups_mode);
  strv_free (k->empty_ns);
  free (k);
}

static bool
empty (const char *s)
{
  return s == NULL || s[0] == '\0';
}

char *
model_criu_work_path (const struct container *c, bool *own)
{
  if (own)
    *own = c->opts.criu_work_path == NULL;
  return c->opts.criu_work_path ? xstrdup (c->opts.criu_work_path)
                                : xasprintf ("%s/criu-work", c->bundle);
}

/* The request's path wins; the options' image path, then the runtime options', follow. */
static int
resolve_paths (struct checkpoint_op *k, shim_error_t *err)
{
  struct container *c = k->op.container;
  if (empty (k->image_path) && c->opts.criu_image_path)
    {
      free (k->image_path);
      k->image_path = xstrdup (c->opts.criu_image_path);
    }
  if (empty (k->image_path))
    return shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "checkpoint needs an image path");
  if (empty (k->work_path))
    {
      free (k->work_path);
      k->work_path = model_criu_work_path (c, &k->own_work);
    }
  k->criu.image_path = k->image_path;
  k->criu.work_path = k->work_path;
  k->criu.cgroups_mode = empty (k->cgroups_mode) ? NULL : k->cgroups_mode;
  k->criu.empty_ns = k->empty_ns;
  return 0;
}

/* CRIU's own log explains most failures: keep it in the bundle, as the stock shim does. */
static void
keep_dump_log (const struct checkpoint_op *k)
{
  cleanup_free char *src = xasprintf ("%s/dump.log", k->work_path);
  cleanup_free char *dst = xasprintf ("%s/criu-dump.log", k->op.container->bundle);
  cleanup_free char *text = NULL;
  size_t len = 0;
  if (read_file (src, 4u << 20, &text, &len, NULL) == 0)
    write_file_atomic (dst, text, len, 0600, NULL);
}

static void
answered (const struct model_result *res, shim_error_t err, void *arg)
{
  (void) res;
  (void) arg;
  shim_error_release (&err);
}

static void
work_removed_cb (const struct spawn_result *res, void *arg)
{
  struct checkpoint_op *k = arg;
  k->op.spawn = NULL;
  if (res->exit_code != 0)
    log_warn ("remove CRIU work dir %s: exit status %d", k->work_path, res->exit_code);
  container_op_finish (k->op.container, NULL, NULL);
}

/* Answers the Checkpoint, then removes a default work dir (it only holds CRIU's scratch
 * files; dump.log is kept apart) in a child, not in the loop: the container's next op waits
 * for it, so a later checkpoint never finds the old files nor loses its own. */
static void
checkpoint_finish (struct checkpoint_op *k, const struct model_result *res, shim_error_t err)
{
  struct container *c = k->op.container;
  k->op.done (err ? NULL : res, err, k->op.done_arg);
  k->op.done = answered;
  char *const argv[] = { "rm", "-rf", "--", k->work_path, NULL };
  struct spawn_req req = { .argv = argv,
                           .stdin_fd = SPAWN_FD_NULL,
                           .stdout_fd = SPAWN_FD_NULL,
                           .stderr_fd = SPAWN_FD_NULL,
                           .timeout_ms = 60000 };
  cleanup_error shim_error_t rm_err = NULL;
  if (k->own_work)
    k->op.spawn
        = spawn_start (c->model->cfg.base, c->model->cfg.reaper, &req, work_removed_cb, k, &rm_err);
  if (rm_err)
    log_warn ("remove CRIU work dir %s: %s", k->work_path, rm_err->msg);
  if (k->op.spawn == NULL)
    container_op_finish (c, NULL, NULL);
}

static void
checkpoint_done_cb (struct runtime_result *res, void *arg)
{
  struct checkpoint_op *k = arg;
  struct container *c = k->op.container;
  k->op.spawn = NULL;
  if (res->err)
    {
      keep_dump_log (k);
      checkpoint_finish (k, NULL, model_runtime_error (&res->err, NULL));
      return;
    }
  MODEL_EMIT (c->model, checkpointed, c->id, k->image_path);
  struct model_result r = { 0 };
  checkpoint_finish (k, &r, NULL);
}

static void
checkpoint_run (struct op *op)
{
  struct checkpoint_op *k = (struct checkpoint_op *) op;
  struct container *c = op->container;
  shim_error_t err = NULL;
  if (process_check (c->init.state, PROCESS_CHECKPOINT, &err) < 0 || resolve_paths (k, &err) < 0)
    {
      container_op_finish (c, NULL, err);
      return;
    }
  mkdir_p (k->work_path, 0700);
  struct runtime_call rc = { .verb = RUNTIME_CHECKPOINT, .id = c->id, .criu = &k->criu };
  op->spawn = model_run (c, &rc, NULL, checkpoint_done_cb, k, &err);
  if (op->spawn == NULL)
    checkpoint_finish (k, NULL, err);
}

static char *
dup_or_null (const char *s)
{
  return s ? xstrdup (s) : NULL;
}

void
model_checkpoint (struct model *m, const char *id, const struct model_checkpoint *req,
                  model_done_fn done, void *arg)
{
  shim_error_t err = NULL;
  struct container *c = model_get (m, id, &err);
  if (c == NULL)
    {
      model_fail (done, arg, err);
      return;
    }
  struct checkpoint_op *k = xcalloc (1, sizeof *k);
  op_init (&k->op, c, checkpoint_run, checkpoint_op_free, done, arg);
  k->criu = req->criu;
  k->criu.leave_running = !req->exit;
  k->image_path = dup_or_null (empty (req->path) ? req->criu.image_path : req->path);
  k->work_path = dup_or_null (req->criu.work_path);
  k->parent_path = dup_or_null (req->criu.parent_path);
  k->criu.parent_path = k->parent_path;
  k->cgroups_mode = dup_or_null (req->criu.cgroups_mode);
  for (char *const *ns = req->criu.empty_ns; ns && *ns; ns++)
    strv_push (&k->empty_ns, *ns);
  container_submit (c, &k->op);
}
