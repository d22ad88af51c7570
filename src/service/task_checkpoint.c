/* Checkpoint: the request's CRIU options decoded for the model. Restore is the other half:
 * Create records the image and Start runs the runtime's `restore` (model_start.c). */

#include <stdlib.h>
#include <string.h>

#include "base/pb.h"
#include "base/util.h"
#include "containerd/linux/runc/runc.pb-c.h"
#include "containerd/runc/v1/options.pb-c.h"
#include "containerd/task/v2/task.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "service/task_internal.h"
#include "wire/ttrpc_server.h"

/* The fields both option messages share, whatever their numbering. */
struct criu_fields
{
  bool exit, open_tcp, external_unix_sockets, terminal, file_locks;
  char **empty_namespaces;
  size_t n_empty_namespaces;
  const char *cgroups_mode, *image_path, *work_path;
};

static void
fill (struct model_checkpoint *ck, char ***empty_ns, const struct criu_fields *f)
{
  ck->exit = f->exit;
  ck->criu = (struct runtime_criu){ .image_path = f->image_path,
                                    .work_path = f->work_path,
                                    .cgroups_mode = f->cgroups_mode,
                                    .tcp_established = f->open_tcp,
                                    .ext_unix_sk = f->external_unix_sockets,
                                    .shell_job = f->terminal,
                                    .file_locks = f->file_locks };
  for (size_t i = 0; i < f->n_empty_namespaces; i++)
    strv_push (empty_ns, f->empty_namespaces[i]);
  ck->criu.empty_ns = *empty_ns;
}

/* containerd.runc.v1.CheckpointOptions, or the legacy containerd.linux.runc one ctr 1.x sends
 * for other runtime names (image/work paths numbered the other way round). The strings in ck
 * point into *msg. */
static int
read_options (struct model_checkpoint *ck, const Google__Protobuf__Any *any, ProtobufCMessage **msg,
              char ***empty_ns, shim_error_t *err)
{
  if (any == NULL || any->type_url == NULL || any->type_url[0] == '\0')
    return 0;
  bool legacy = pb_any_is (any, &containerd__linux__runc__checkpoint_options__descriptor);
  *msg = pb_any_unpack (any,
                        legacy ? &containerd__linux__runc__checkpoint_options__descriptor
                               : &containerd__runc__v1__checkpoint_options__descriptor,
                        err);
  if (*msg == NULL)
    return -1;
  struct criu_fields f;
  if (legacy)
    {
      const Containerd__Linux__Runc__CheckpointOptions *o = (const void *) *msg;
      f = (struct criu_fields){
        o->exit,       o->open_tcp,         o->external_unix_sockets, o->terminal,
        o->file_locks, o->empty_namespaces, o->n_empty_namespaces,    o->cgroups_mode,
        o->image_path, o->work_path
      };
    }
  else
    {
      const Containerd__Runc__V1__CheckpointOptions *o = (const void *) *msg;
      f = (struct criu_fields){
        o->exit,       o->open_tcp,         o->external_unix_sockets, o->terminal,
        o->file_locks, o->empty_namespaces, o->n_empty_namespaces,    o->cgroups_mode,
        o->image_path, o->work_path
      };
    }
  fill (ck, empty_ns, &f);
  return 0;
}

void
task_handle_checkpoint (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  struct task_service *svc = arg;
  const Containerd__Task__V2__CheckpointTaskRequest *req = (const void *) msg;
  shim_error_t err = NULL;
  cleanup_pbmsg ProtobufCMessage *opts = NULL;
  cleanup_strv char **empty_ns = NULL;
  struct model_checkpoint ck = { .path = req->path };
  /* A task that does not exist is NotFound whatever its options say. */
  if (model_check_exists (svc->model, req->id, &err) == 0)
    read_options (&ck, req->options, &opts, &empty_ns, &err);
  if (err)
    {
      ttrpc_call_fail (call, &err);
      return;
    }
  model_checkpoint (svc->model, req->id, &ck, task_done_empty, call);
}
