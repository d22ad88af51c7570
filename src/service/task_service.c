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
#include "google/protobuf/empty.pb-c.h"
#include "service/methods.h"
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

/* ---- the id checks every call passes ---- */

static int
read_varint (const uint8_t **p, const uint8_t *end, uint64_t *v)
{
  *v = 0;
  for (unsigned shift = 0; shift < 64 && *p < end; shift += 7)
    {
      uint8_t b = *(*p)++;
      *v |= (uint64_t) (b & 0x7f) << shift;
      if (!(b & 0x80))
        return 0;
    }
  return -1;
}

/* The bytes of fields 1 (id) and 2 (exec_id) of a request as they came on the wire: the
 * decoded request has them as C strings, which end at a NUL the wire allows. False when
 * either field is not length-delimited in this request (Shutdown's `now`): nothing to check.
 * The request was decoded already, so the payload is well-formed. */
static bool
wire_ids (ProtobufCBinaryData payload, ProtobufCBinaryData ids[2])
{
  const uint8_t *p = payload.data, *end = p + payload.len;
  ids[0] = ids[1] = (ProtobufCBinaryData){ 0, NULL };
  while (p < end)
    {
      uint64_t tag, len = 0;
      if (read_varint (&p, end, &tag) < 0)
        return false;
      unsigned field = (unsigned) (tag >> 3), type = tag & 7;
      bool id = field == 1 || field == 2;
      if ((id && type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED)
          || (type == PROTOBUF_C_WIRE_TYPE_VARINT && read_varint (&p, end, &len) < 0))
        return false;
      if (type == PROTOBUF_C_WIRE_TYPE_VARINT)
        continue;
      if (type == PROTOBUF_C_WIRE_TYPE_64BIT || type == PROTOBUF_C_WIRE_TYPE_32BIT)
        len = type == PROTOBUF_C_WIRE_TYPE_64BIT ? 8 : 4;
      else if (type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED || read_varint (&p, end, &len) < 0)
        return false;
      if (len > (uint64_t) (end - p))
        return false;
      if (id)
        ids[field - 1] = (ProtobufCBinaryData){ len, (uint8_t *) p };
      p += len;
    }
  return true;
}

/* An id that names something new (Create's container id, Exec's exec id) must be a
 * containerd identifier: it becomes file names and runtime arguments, so anything else is
 * InvalidArgument before any handler runs. Any other id that is not one names nothing the
 * shim serves: NotFound, as the lookup would answer, whatever a C string (cut at a NUL) would
 * have found. Empty ids are left to the handlers. */
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

enum
{
  NEW_ID = 1, /* Create: the container id names a new container */
  NEW_EXEC = 2, /* Exec: the exec id names a new process */
};

/* True when call may go on to its handler; else it was failed. */
static bool
ids_ok (struct ttrpc_call *call, const ProtobufCMessage *msg, unsigned flags)
{
  shim_error_t err = NULL;
  ProtobufCBinaryData ids[2];
  if (!wire_ids (ttrpc_call_payload (call), ids))
    return true;
  if (check_id (&ids[0], flags & NEW_ID, false, &err) == 0
      && (!protobuf_c_message_descriptor_get_field_by_name (msg->descriptor, "exec_id")
          || check_id (&ids[1], flags & NEW_EXEC, true, &err) == 0))
    return true;
  ttrpc_call_fail (call, &err);
  return false;
}

/* ---- method table ---- */

/* Each handler behind the id checks, named <handler>_checked. */
#define CHECKED(fn, flags)                                                                         \
  static void fn##_checked (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)       \
  {                                                                                                \
    if (ids_ok (call, msg, flags))                                                                 \
      fn (call, msg, arg);                                                                         \
  }

CHECKED (task_handle_state, 0)
CHECKED (task_handle_create, NEW_ID)
CHECKED (task_handle_start, 0)
CHECKED (task_handle_delete, 0)
CHECKED (task_handle_pids, 0)
CHECKED (task_handle_pause, 0)
CHECKED (task_handle_resume, 0)
CHECKED (task_handle_checkpoint, 0)
CHECKED (task_handle_kill, 0)
CHECKED (task_handle_exec, NEW_EXEC)
CHECKED (task_handle_resize_pty, 0)
CHECKED (task_handle_close_io, 0)
CHECKED (task_handle_stats, 0)
CHECKED (task_handle_update, 0)
CHECKED (task_handle_wait, 0)
CHECKED (handle_shutdown, 0)
CHECKED (handle_unimplemented, 0)

static const struct method_handler handlers[] = {
  { "State", task_handle_state_checked },
  { "Create", task_handle_create_checked },
  { "Start", task_handle_start_checked },
  { "Delete", task_handle_delete_checked },
  { "Pids", task_handle_pids_checked },
  { "Pause", task_handle_pause_checked },
  { "Resume", task_handle_resume_checked },
  { "Checkpoint", task_handle_checkpoint_checked },
  { "Kill", task_handle_kill_checked },
  { "Exec", task_handle_exec_checked },
  { "ResizePty", task_handle_resize_pty_checked },
  { "CloseIO", task_handle_close_io_checked },
  { "Stats", task_handle_stats_checked },
  { "Update", task_handle_update_checked },
  { "Wait", task_handle_wait_checked },
  /* Connect answers for any id (task_pid 0 when it serves none). */
  { "Connect", handle_connect },
  { "Shutdown", handle_shutdown_checked },
};

static const char *const service_names[] = { "containerd.task.v2.Task", "containerd.task.v3.Task" };

/* Built once, from the generated service descriptor. */
const struct ttrpc_method *
task_service_methods (size_t *n)
{
  static struct ttrpc_method table[2 * ARRAY_SIZE (handlers)];
  static size_t count;
  const ProtobufCServiceDescriptor *sd = &containerd__task__v2__task__descriptor;
  if (count == 0)
    for (size_t s = 0; s < ARRAY_SIZE (service_names); s++)
      count = methods_build (sd, service_names[s], handlers, ARRAY_SIZE (handlers),
                             handle_unimplemented_checked, table, count, ARRAY_SIZE (table));
  *n = count;
  return table;
}
