/* The model's events (model_events) as containerd's TaskX events, queued on the publisher in
 * the order the model reports them. TaskCreate echoes its request (rootfs, stdio), so the
 * Create handler publishes it. */

#include "containerd/events/task.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "base/pb.h"
#include "service/shim.h"
#include "service/task_internal.h"
#include "wire/publisher.h"

void
task_publish (struct task_service *svc, const char *topic, const ProtobufCMessage *event)
{
  publisher_publish (svc->shim->publisher, svc->shim->namespace, topic, event);
}

static void
on_exec_added (void *arg, const char *id, const char *exec_id)
{
  Containerd__Events__TaskExecAdded ev = CONTAINERD__EVENTS__TASK_EXEC_ADDED__INIT;
  ev.container_id = (char *) id;
  ev.exec_id = (char *) exec_id;
  task_publish (arg, "/tasks/exec-added", &ev.base);
}

static void
on_started (void *arg, const char *id, const char *exec_id, pid_t pid)
{
  if (exec_id == NULL)
    {
      Containerd__Events__TaskStart ev = CONTAINERD__EVENTS__TASK_START__INIT;
      ev.container_id = (char *) id;
      ev.pid = pid;
      task_publish (arg, "/tasks/start", &ev.base);
      return;
    }
  Containerd__Events__TaskExecStarted ev = CONTAINERD__EVENTS__TASK_EXEC_STARTED__INIT;
  ev.container_id = (char *) id;
  ev.exec_id = (char *) exec_id;
  ev.pid = pid;
  task_publish (arg, "/tasks/exec-started", &ev.base);
}

static void
on_oom (void *arg, const char *id)
{
  Containerd__Events__TaskOOM ev = CONTAINERD__EVENTS__TASK_OOM__INIT;
  ev.container_id = (char *) id;
  task_publish (arg, "/tasks/oom", &ev.base);
}

static void
on_exited (void *arg, const char *id, const char *exec_id, pid_t pid, int status,
           const struct timespec *at)
{
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  pb_timestamp_set (&ts, at);
  Containerd__Events__TaskExit ev = CONTAINERD__EVENTS__TASK_EXIT__INIT;
  ev.container_id = (char *) id;
  ev.id = (char *) (exec_id ? exec_id : id);
  ev.pid = pid;
  ev.exit_status = status;
  ev.exited_at = &ts;
  task_publish (arg, "/tasks/exit", &ev.base);
}

static void
on_paused (void *arg, const char *id)
{
  Containerd__Events__TaskPaused ev = CONTAINERD__EVENTS__TASK_PAUSED__INIT;
  ev.container_id = (char *) id;
  task_publish (arg, "/tasks/paused", &ev.base);
}

static void
on_resumed (void *arg, const char *id)
{
  Containerd__Events__TaskResumed ev = CONTAINERD__EVENTS__TASK_RESUMED__INIT;
  ev.container_id = (char *) id;
  task_publish (arg, "/tasks/resumed", &ev.base);
}

static void
on_checkpointed (void *arg, const char *id, const char *image_path)
{
  Containerd__Events__TaskCheckpointed ev = CONTAINERD__EVENTS__TASK_CHECKPOINTED__INIT;
  ev.container_id = (char *) id;
  ev.checkpoint = (char *) image_path;
  task_publish (arg, "/tasks/checkpointed", &ev.base);
}

static void
on_deleted (void *arg, const char *id, pid_t pid, int status, const struct timespec *at)
{
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  pb_timestamp_set (&ts, at);
  Containerd__Events__TaskDelete ev = CONTAINERD__EVENTS__TASK_DELETE__INIT;
  ev.container_id = (char *) id;
  ev.pid = pid;
  ev.exit_status = status;
  ev.exited_at = &ts;
  /* No `id`: the stock shim names only the container in TaskDelete. */
  task_publish (arg, "/tasks/delete", &ev.base);
}

static void
on_removed (void *arg, const char *bundle, size_t remaining)
{
  struct task_service *svc = arg;
  if (svc->shim->task_deleted)
    svc->shim->task_deleted (svc->shim, bundle, remaining);
}

const struct model_events task_events = {
  .exec_added = on_exec_added,
  .started = on_started,
  .oom = on_oom,
  .exited = on_exited,
  .paused = on_paused,
  .resumed = on_resumed,
  .checkpointed = on_checkpointed,
  .deleted = on_deleted,
  .removed = on_removed,
};
