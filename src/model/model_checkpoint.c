/* Checkpoint: the runtime's `checkpoint` (CRIU) on the container's op queue. Restore is the
 * other half: Create records the image and Start runs the runtime's `restore`. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "model/model_internal.h"
#include "platform/spawn.h"
#include "runtime/runtime.h"

/* A copy of dump.log and an rm -rf of CRIU's work dir: long only on a slow disk. */
#define CHECKPOINT_CLEANUP_TIMEOUT_MS 60000

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
  shim_error_t err; /* how the checkpoint failed: answered once the cleanup child is done */
};

/* Answers the Checkpoint (its result carries nothing: success or err) and frees k. */
static void
checkpoint_answer (struct checkpoint_op *k)
{
  static const struct model_result done = { 0 };
  container_op_finish (k->op.container, &done, steal_ptr (&k->err));
}

static void
checkpoint_op_free (struct op *op)
{
  struct checkpoint_op *k = (struct checkpoint_op *) op;
  free (k->image_path);
  free (k->work_path);
  free (k->parent_path);
  free (k->cgroups_mode);
  strv_free (k->empty_ns);
  shim_error_release (&k->err);
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

/* What the CRIU work leaves to do on disk is done by a child, never by the loop: on failure
 * CRIU's own log (dump.log, which explains most failures) is copied into the bundle as
 * criu-dump.log, and a default work dir (CRIU's scratch files) is removed. The stock shim does
 * both before it answers, so the Checkpoint is answered once the child is done; the container's
 * next op waits for it too, so a later checkpoint never finds the old files nor loses its own. */
static const char cleanup_script[]
    = "if [ -n \"$1\" ] && [ -f \"$1\" ]; then cp -f -- \"$1\" \"$2\"; fi; "
      "if [ -n \"$3\" ]; then rm -rf -- \"$3\"; fi";

static void
cleanup_done_cb (const struct spawn_result *res, void *arg)
{
  struct checkpoint_op *k = arg;
  k->op.spawn = NULL;
  if (res->exit_code != 0)
    log_warn ("checkpoint of %s: keeping dump.log / removing %s: exit status %d",
              k->op.container->id, k->work_path, res->exit_code);
  checkpoint_answer (k);
}

static void
checkpoint_finish (struct checkpoint_op *k, shim_error_t err)
{
  struct container *c = k->op.container;
  k->err = err;
  if (err == NULL && !k->own_work)
    {
      checkpoint_answer (k);
      return;
    }
  cleanup_free char *src = err ? xasprintf ("%s/dump.log", k->work_path) : xstrdup ("");
  cleanup_free char *dst = xasprintf ("%s/criu-dump.log", c->bundle);
  char *const argv[] = { "sh", "-c", (char *) cleanup_script,         "sh",
                         src,  dst,  k->own_work ? k->work_path : "", NULL };
  struct spawn_req req = { .argv = argv,
                           .stdin_fd = SPAWN_FD_NULL,
                           .stdout_fd = SPAWN_FD_NULL,
                           .stderr_fd = SPAWN_FD_NULL,
                           .timeout_ms = CHECKPOINT_CLEANUP_TIMEOUT_MS };
  cleanup_error shim_error_t spawn_err = NULL;
  k->op.spawn = spawn_start (c->model->cfg.base, c->model->cfg.reaper, &req, cleanup_done_cb, k,
                             &spawn_err);
  if (k->op.spawn)
    return;
  log_warn ("checkpoint of %s: cannot clean up after CRIU: %s", c->id, spawn_err->msg);
  checkpoint_answer (k);
}

static void
checkpoint_done_cb (struct runtime_result *res, void *arg)
{
  struct checkpoint_op *k = arg;
  struct container *c = k->op.container;
  k->op.spawn = NULL;
  if (res->err)
    {
      checkpoint_finish (k, model_runtime_error (&res->err, NULL));
      return;
    }
  MODEL_EMIT (c->model, checkpointed, c->id, k->image_path);
  checkpoint_finish (k, NULL);
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
  if (mkdir_p (k->work_path, 0700) < 0)
    {
      shim_error_make (&err, errno, SHIM_INTERNAL, "create CRIU work dir `%s`", k->work_path);
      container_op_finish (c, NULL, err);
      return;
    }
  struct runtime_call rc = { .verb = RUNTIME_CHECKPOINT, .id = c->id, .criu = &k->criu };
  op->spawn = model_run (c, &rc, NULL, checkpoint_done_cb, k, &err);
  if (op->spawn == NULL)
    checkpoint_finish (k, err);
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
  struct checkpoint_op *k
      = model_op_new (m, id, sizeof *k, checkpoint_run, checkpoint_op_free, done, arg);
  if (k == NULL)
    return;
  k->criu = req->criu;
  k->criu.leave_running = !req->exit;
  k->image_path = dup_or_null (empty (req->path) ? req->criu.image_path : req->path);
  k->work_path = dup_or_null (req->criu.work_path);
  k->parent_path = dup_or_null (req->criu.parent_path);
  k->criu.parent_path = k->parent_path;
  k->cgroups_mode = dup_or_null (req->criu.cgroups_mode);
  for (char *const *ns = req->criu.empty_ns; ns && *ns; ns++)
    strv_push (&k->empty_ns, *ns);
  container_submit (k->op.container, &k->op);
}
