/* Every request of the Task service as containerd sends it: the first byte picks the method
 * (in the service descriptor's order), the rest is the payload the server unpacks. Then what
 * the handlers parse out of it before any runtime runs: Create's options Any (config.c) and
 * rootfs mount options (mount.c), Exec's process spec, Checkpoint's options Any. */
#include <stdint.h>
#include <stdlib.h>

#include "runtime/config.h"
#include "containerd/linux/runc/runc.pb-c.h"
#include "containerd/runc/v1/options.pb-c.h"
#include "containerd/task/v2/task.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "platform/mount.h"
#include "base/pb.h"
#include "service/task_internal.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
create (const Containerd__Task__V2__CreateTaskRequest *req)
{
  struct task_options o;
  config_init (&o);
  shim_error_t err = NULL;
  if (config_apply_any (&o, req->options, &err) < 0)
    shim_error_release (&err);
  config_release (&o);
  for (size_t i = 0; i < req->n_rootfs; i++)
    {
      unsigned long flags;
      char *mdata = NULL;
      mount_parse_options (req->rootfs[i]->options, req->rootfs[i]->n_options, &flags, &mdata);
      free (mdata);
    }
}

static void
exec (const Containerd__Task__V2__ExecProcessRequest *req)
{
  shim_error_t err = NULL;
  char *spec = task_exec_spec_json (req->spec, req->terminal, &err);
  if (spec == NULL)
    shim_error_release (&err);
  free (spec);
}

static void
checkpoint (const Containerd__Task__V2__CheckpointTaskRequest *req)
{
  const ProtobufCMessageDescriptor *desc
      = pb_any_is (req->options, &containerd__linux__runc__checkpoint_options__descriptor)
            ? &containerd__linux__runc__checkpoint_options__descriptor
            : &containerd__runc__v1__checkpoint_options__descriptor;
  if (req->options == NULL)
    return;
  shim_error_t err = NULL;
  cleanup_pbmsg ProtobufCMessage *m = pb_any_unpack (req->options, desc, &err);
  if (m == NULL)
    shim_error_release (&err);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const ProtobufCServiceDescriptor *svc = &containerd__task__v2__task__descriptor;
  if (size == 0)
    return 0;
  const ProtobufCMethodDescriptor *method = &svc->methods[data[0] % svc->n_methods];
  ProtobufCMessage *msg = protobuf_c_message_unpack (method->input, NULL, size - 1, data + 1);
  if (msg == NULL)
    return 0;
  if (method->input == &containerd__task__v2__create_task_request__descriptor)
    create ((const void *) msg);
  else if (method->input == &containerd__task__v2__exec_process_request__descriptor)
    exec ((const void *) msg);
  else if (method->input == &containerd__task__v2__checkpoint_task_request__descriptor)
    checkpoint ((const void *) msg);
  protobuf_c_message_free_unpacked (msg, NULL);
  return 0;
}
