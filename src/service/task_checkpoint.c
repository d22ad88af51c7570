/* Checkpoint: the runtime's `checkpoint` (CRIU) on the container's op queue. Restore is the
 * other half: Create records the image and Start runs the runtime's `restore` (task_exec.c). */

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "containerd/events/task.pb-c.h"
#include "containerd/linux/runc/runc.pb-c.h"
#include "containerd/runc/v1/options.pb-c.h"
#include "containerd/task/v2/task.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "base/log.h"
#include "base/pb.h"
#include "runtime/runtime.h"
#include "service/shim.h"
#include "service/task_internal.h"
#include "wire/ttrpc_server.h"
#include "base/util.h"

struct checkpoint_ctx
{
  struct runtime_criu criu;
  char *image_path;
  char *work_path;
  char *parent_path;
  char *cgroups_mode;
  char **empty_ns;
  bool exit;
  bool own_work; /* work_path is the default one: removed after the call, as the stock shim does */
};

static void
checkpoint_ctx_free (struct checkpoint_ctx *ck)
{
  free (ck->image_path);
  free (ck->work_path);
  free (ck->parent_path);
  free (ck->cgroups_mode);
  strv_free (ck->empty_ns);
  free (ck);
}

/* The fields both option messages share, whatever their numbering. */
struct criu_fields
{
  bool exit, open_tcp, external_unix_sockets, terminal, file_locks;
  char **empty_namespaces;
  size_t n_empty_namespaces;
  const char *cgroups_mode, *image_path, *work_path;
};

static void
fill_ctx (struct checkpoint_ctx *ck, const struct criu_fields *f)
{
  ck->exit = f->exit;
  ck->image_path = xstrdup (f->image_path);
  ck->work_path = xstrdup (f->work_path);
  ck->cgroups_mode = xstrdup (f->cgroups_mode);
  ck->criu = (struct runtime_criu){ .tcp_established = f->open_tcp,
                                    .ext_unix_sk = f->external_unix_sockets,
                                    .shell_job = f->terminal,
                                    .file_locks = f->file_locks };
  for (size_t i = 0; i < f->n_empty_namespaces; i++)
    strv_push (&ck->empty_ns, f->empty_namespaces[i]);
}

/* containerd.runc.v1.CheckpointOptions, or the legacy containerd.linux.runc one ctr 1.x sends
 * for other runtime names (image/work paths numbered the other way round). */
static int
read_options (struct checkpoint_ctx *ck, const Google__Protobuf__Any *any, shim_error_t *err)
{
  if (any == NULL || any->type_url == NULL || any->type_url[0] == '\0')
    return 0;
  bool legacy = pb_any_is (any, &containerd__linux__runc__checkpoint_options__descriptor);
  cleanup_pbmsg ProtobufCMessage *m
      = pb_any_unpack (any,
                       legacy ? &containerd__linux__runc__checkpoint_options__descriptor
                              : &containerd__runc__v1__checkpoint_options__descriptor,
                       err);
  if (m == NULL)
    return -1;
  struct criu_fields f;
  if (legacy)
    {
      const Containerd__Linux__Runc__CheckpointOptions *o = (const void *) m;
      f = (struct criu_fields){
        o->exit,       o->open_tcp,         o->external_unix_sockets, o->terminal,
        o->file_locks, o->empty_namespaces, o->n_empty_namespaces,    o->cgroups_mode,
        o->image_path, o->work_path
      };
    }
  else
    {
      const Containerd__Runc__V1__CheckpointOptions *o = (const void *) m;
      f = (struct criu_fields){
        o->exit,       o->open_tcp,         o->external_unix_sockets, o->terminal,
        o->file_locks, o->empty_namespaces, o->n_empty_namespaces,    o->cgroups_mode,
        o->image_path, o->work_path
      };
    }
  fill_ctx (ck, &f);
  return 0;
}

static struct checkpoint_ctx *
checkpoint_ctx_new (const struct container *c,
                    const Containerd__Task__V2__CheckpointTaskRequest *req, shim_error_t *err)
{
  struct checkpoint_ctx *ck = xcalloc (1, sizeof *ck);
  if (read_options (ck, req->options, err) < 0)
    {
      checkpoint_ctx_free (ck);
      return NULL;
    }
  /* The request's path wins; the options' image path, then the runtime options', follow. */
  const char *image = req->path && req->path[0] ? req->path : NULL;
  if (image == NULL && (ck->image_path == NULL || ck->image_path[0] == '\0'))
    image = c->opts.criu_image_path;
  if (image)
    {
      free (ck->image_path);
      ck->image_path = xstrdup (image);
    }
  if (ck->image_path == NULL || ck->image_path[0] == '\0')
    {
      checkpoint_ctx_free (ck);
      shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "checkpoint needs an image path");
      return NULL;
    }
  if (ck->work_path == NULL || ck->work_path[0] == '\0')
    {
      free (ck->work_path);
      ck->own_work = c->opts.criu_work_path == NULL;
      ck->work_path = c->opts.criu_work_path ? xstrdup (c->opts.criu_work_path)
                                             : xasprintf ("%s/criu-work", c->bundle);
    }
  ck->criu.image_path = ck->image_path;
  ck->criu.work_path = ck->work_path;
  ck->criu.cgroups_mode = ck->cgroups_mode && ck->cgroups_mode[0] ? ck->cgroups_mode : NULL;
  ck->criu.empty_ns = ck->empty_ns;
  ck->criu.leave_running = !ck->exit;
  return ck;
}

/* CRIU's own log explains most failures: keep it in the bundle, as the stock shim does. */
static void
keep_dump_log (const struct container *c, const struct checkpoint_ctx *ck)
{
  cleanup_free char *src = xasprintf ("%s/dump.log", ck->work_path);
  cleanup_free char *dst = xasprintf ("%s/criu-dump.log", c->bundle);
  cleanup_free char *text = NULL;
  size_t len = 0;
  if (read_file (src, 4u << 20, &text, &len, NULL) == 0)
    write_file_atomic (dst, text, len, 0600, NULL);
}

static int
remove_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void) st;
  (void) flag;
  (void) ftw;
  remove (path);
  return 0;
}

/* A default work dir only holds CRIU's scratch files (dump.log is kept apart). */
static void
drop_work_dir (const struct checkpoint_ctx *ck)
{
  if (ck->own_work)
    nftw (ck->work_path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
checkpoint_done_cb (struct runtime_result *res, void *arg)
{
  struct op *op = arg;
  struct container *c = op->container;
  struct checkpoint_ctx *ck = (struct checkpoint_ctx *) op->ctx;
  op->spawn = NULL;
  if (res->err)
    {
      keep_dump_log (c, ck);
      task_fail_runtime (op->call, &res->err);
    }
  else
    {
      Containerd__Events__TaskCheckpointed ev = CONTAINERD__EVENTS__TASK_CHECKPOINTED__INIT;
      ev.container_id = c->id;
      ev.checkpoint = ck->image_path;
      task_publish (c->service, "/tasks/checkpointed", &ev.base);
      task_reply_empty (op->call);
    }
  drop_work_dir (ck);
  checkpoint_ctx_free (ck);
  container_op_done (c);
}

static void
checkpoint_run (struct op *op)
{
  struct container *c = op->container;
  shim_error_t err = NULL;
  struct checkpoint_ctx *ck = NULL;
  if (process_check (c->init.state, PROCESS_CHECKPOINT, &err) < 0)
    goto fail;
  ck = checkpoint_ctx_new (c, op->req, &err);
  if (ck == NULL)
    goto fail;
  mkdir_p (ck->work_path, 0700);
  op->ctx = ck;
  struct runtime_call rc = { .verb = RUNTIME_CHECKPOINT, .id = c->id, .criu = &ck->criu };
  op->spawn = runtime_run (&c->rt, &rc, NULL, checkpoint_done_cb, op, &err);
  if (op->spawn)
    return;
  drop_work_dir (ck);
  checkpoint_ctx_free (ck);
fail:
  ttrpc_call_fail (op->call, &err);
  container_op_done (c);
}

void
task_handle_checkpoint (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  const Containerd__Task__V2__CheckpointTaskRequest *req = (const void *) msg;
  task_submit_op (arg, call, req->id, req, checkpoint_run, NULL);
}
