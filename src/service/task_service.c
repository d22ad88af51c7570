#include "service/task_service.h"

/* The Task service: its record over the model, Connect, Shutdown, the id checks every call
 * passes, and the method table. The other RPC families are in task_lifecycle.c,
 * task_exec.c, task_control.c and task_checkpoint.c; events in task_events.c. */

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/ident.h"
#include "base/util.h"
#include "containerd/task/v2/task.pb-c.h"
#include "cshim/ids.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "service/shim.h"
#include "service/task_internal.h"
#include "wire/ttrpc_server.h"

struct task_service *
task_service_new (struct shim *shim)
{
  struct task_service *svc = xcalloc (1, sizeof *svc);
  svc->shim = shim;
  struct model_config cfg = { .base = shim->base,
                              .reaper = shim->reaper,
                              .namespace = shim->namespace,
                              .events = &task_events,
                              .events_arg = svc };
  svc->model = model_new (&cfg);
  return svc;
}

void
task_service_free (struct task_service *svc)
{
  if (svc == NULL)
    return;
  model_free (svc->model);
  free (svc);
}

size_t
task_service_container_count (const struct task_service *svc)
{
  return model_container_count (svc->model);
}

void
task_reply_empty (struct ttrpc_call *call)
{
  Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
  ttrpc_call_reply (call, &empty.base);
}

void
task_done_empty (const struct model_result *res, shim_error_t err, void *arg)
{
  (void) res;
  if (err)
    ttrpc_call_fail (arg, &err);
  else
    task_reply_empty (arg);
}

/* ---- Connect, Shutdown ---- */

static void
handle_connect (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  const Containerd__Task__V2__ConnectRequest *req = (const void *) msg;
  struct task_service *svc = arg;
  Containerd__Task__V2__ConnectResponse resp = CONTAINERD__TASK__V2__CONNECT_RESPONSE__INIT;
  resp.shim_pid = getpid ();
  resp.task_pid = model_init_pid (svc->model, req->id);
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
  if (model_container_count (svc->model) == 0 && !sandbox)
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
  { "State", task_handle_state },
  { "Create", task_handle_create },
  { "Start", task_handle_start },
  { "Delete", task_handle_delete },
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
  { "Wait", task_handle_wait },
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
