#include "service/sandbox_service.h"
#include "service/methods.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "containerd/runtime/sandbox/v1/sandbox.pb-c.h"
#include "containerd/types/metrics.pb-c.h"
#include "containerd/types/platform.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "base/log.h"
#include "base/pb.h"
#include "platform/reaper.h"
#include "platform/sandbox_pause.h"
#include "service/shim.h"
#include "wire/ttrpc_server.h"
#include "base/util.h"

#define SERVICE "containerd.runtime.sandbox.v1.Sandbox"

/* Go's GOARCH for this build: what containerd compares image platforms with. */
#if defined(__x86_64__)
#define GOARCH "amd64"
#elif defined(__aarch64__)
#define GOARCH "arm64"
#elif defined(__i386__)
#define GOARCH "386"
#elif defined(__arm__)
#define GOARCH "arm"
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define GOARCH "ppc64le"
#elif defined(__s390x__)
#define GOARCH "s390x"
#elif defined(__riscv) && __riscv_xlen == 64
#define GOARCH "riscv64"
#else
#error "unknown architecture: add its GOARCH name"
#endif

enum sandbox_state
{
  SANDBOX_NONE, /* no CreateSandbox yet */
  SANDBOX_CREATED, /* created, no pause process yet */
  SANDBOX_RUNNING, /* pause process started */
  SANDBOX_STOPPED, /* StopSandbox, or the pause process died */
  SANDBOX_SHUTDOWN, /* ShutdownSandbox: the shim leaves once its last task is gone */
};

struct call_list
{
  struct ttrpc_call **calls;
  size_t n;
};

struct sandbox_service
{
  struct shim *shim;
  struct sandbox_hooks hooks;
  void *hooks_arg;
  enum sandbox_state state;
  char *id;
  char *bundle;
  char *netns_path;
  pid_t pid;
  bool exited;
  struct reaper_watch *watch;
  struct timespec created_at;
  struct timespec exited_at;
  uint32_t exit_status;
  struct call_list waits; /* WaitSandbox until the sandbox stops */
  struct call_list stops; /* StopSandbox until the pause process is reaped */
};

struct sandbox_service *
sandbox_service_new (struct shim *shim, const struct sandbox_hooks *hooks, void *arg)
{
  struct sandbox_service *sb = xcalloc (1, sizeof *sb);
  sb->shim = shim;
  sb->hooks = *hooks;
  sb->hooks_arg = arg;
  return sb;
}

/* Calls whose client has gone (containerd restarted) are dropped when the next one parks, as
 * parked task Waits are, so reconnecting clients cannot pile them up. */
static void
park (struct call_list *l, struct ttrpc_call *call)
{
  size_t kept = 0;
  for (size_t i = 0; i < l->n; i++)
    if (ttrpc_call_connected (l->calls[i]))
      l->calls[kept++] = l->calls[i];
    else
      ttrpc_call_reply (l->calls[i], NULL); /* frees it: nobody reads the answer */
  l->n = kept;
  l->calls = xrealloc (l->calls, (l->n + 1) * sizeof *l->calls);
  l->calls[l->n++] = call;
}

size_t
sandbox_service_parked (const struct sandbox_service *sb)
{
  return sb->waits.n + sb->stops.n;
}

static void
fail_all (struct call_list *l, const char *why)
{
  for (size_t i = 0; i < l->n; i++)
    {
      shim_error_t err = NULL;
      shim_error_make (&err, 0, SHIM_UNAVAILABLE, "%s", why);
      ttrpc_call_fail (l->calls[i], &err);
    }
  free (l->calls);
  *l = (struct call_list){ 0 };
}

static bool
pause_alive (const struct sandbox_service *sb)
{
  return sb->pid > 0 && !sb->exited;
}

void
sandbox_service_free (struct sandbox_service *sb)
{
  if (sb == NULL)
    return;
  if (pause_alive (sb))
    kill (sb->pid, SIGKILL);
  if (sb->watch)
    reaper_unwatch (sb->shim->reaper, sb->watch);
  fail_all (&sb->waits, "shim is shutting down");
  fail_all (&sb->stops, "shim is shutting down");
  free (sb->id);
  free (sb->bundle);
  free (sb->netns_path);
  free (sb);
}

bool
sandbox_service_active (const struct sandbox_service *sb)
{
  return sb->state != SANDBOX_NONE && sb->state != SANDBOX_SHUTDOWN;
}

bool
sandbox_service_exit_after_delete (struct sandbox_service *sb, const char *bundle, size_t remaining)
{
  if (remaining > 0)
    return false;
  if (sb->state == SANDBOX_SHUTDOWN)
    return true;
  if (sb->state != SANDBOX_NONE)
    return false;
  /* containerd writes this file when it hands the task to a sandbox's shim; it then skips
   * the Shutdown that would otherwise follow the task's Delete. */
  cleanup_free char *marker = xasprintf ("%s/sandbox", bundle);
  return access (marker, F_OK) == 0;
}

/* ---- replies ---- */

static void
reply_wait (struct sandbox_service *sb, struct ttrpc_call *call)
{
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  pb_timestamp_set (&ts, &sb->exited_at);
  Containerd__Runtime__Sandbox__V1__WaitSandboxResponse resp
      = CONTAINERD__RUNTIME__SANDBOX__V1__WAIT_SANDBOX_RESPONSE__INIT;
  resp.exit_status = sb->exit_status;
  resp.exited_at = &ts;
  ttrpc_call_reply (call, &resp.base);
}

static void
answer_waits (struct sandbox_service *sb)
{
  struct call_list l = sb->waits;
  sb->waits = (struct call_list){ 0 };
  for (size_t i = 0; i < l.n; i++)
    reply_wait (sb, l.calls[i]);
  free (l.calls);
}

static void
answer_stops (struct sandbox_service *sb)
{
  struct call_list l = sb->stops;
  sb->stops = (struct call_list){ 0 };
  for (size_t i = 0; i < l.n; i++)
    ttrpc_call_reply (l.calls[i], NULL);
  free (l.calls);
}

/* The sandbox has ended (stopped, shut down or its pause process died). */
static void
sandbox_ended (struct sandbox_service *sb, enum sandbox_state state)
{
  if (sb->state != SANDBOX_SHUTDOWN)
    sb->state = state;
  if (sb->exited_at.tv_sec == 0)
    sb->exited_at = now_realtime ();
  answer_waits (sb);
}

static void
pause_exit_cb (pid_t pid, int status, const struct timespec *when, void *arg)
{
  struct sandbox_service *sb = arg;
  sb->watch = NULL;
  sb->exited = true;
  sb->exit_status = (uint32_t) wait_status_to_exit_code (status);
  if (sb->exited_at.tv_sec == 0)
    sb->exited_at = *when;
  log_info ("sandbox %s: pause process %d exited with status %u", sb->id, (int) pid,
            sb->exit_status);
  answer_stops (sb);
  sandbox_ended (sb, SANDBOX_STOPPED);
}

/* ---- handlers ---- */

/* The sandbox a request names, or NULL once call has been answered NotFound (what containerd
 * reads as "already gone"). */
static struct sandbox_service *
sandbox_for (struct ttrpc_call *call, void *arg, const char *id)
{
  struct sandbox_service *sb = arg;
  if (sb->state != SANDBOX_NONE && strcmp (sb->id, id) == 0)
    return sb;
  shim_error_t err = NULL;
  shim_error_make (&err, 0, SHIM_NOT_FOUND, "sandbox %s not found", id);
  ttrpc_call_fail (call, &err);
  return NULL;
}

static void
handle_create (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  struct sandbox_service *sb = arg;
  const Containerd__Runtime__Sandbox__V1__CreateSandboxRequest *req = (const void *) msg;
  shim_error_t err = NULL;
  if (req->sandbox_id[0] == '\0')
    shim_error_make (&err, 0, SHIM_INVALID_ARGUMENT, "sandbox id is empty");
  else if (sb->state != SANDBOX_NONE)
    shim_error_make (&err, 0, SHIM_ALREADY_EXISTS, "sandbox %s already exists in this shim",
                     sb->id);
  if (err)
    {
      ttrpc_call_fail (call, &err);
      return;
    }
  sb->id = xstrdup (req->sandbox_id);
  sb->bundle = xstrdup (req->bundle_path);
  sb->netns_path = xstrdup (req->netns_path);
  sb->state = SANDBOX_CREATED;
  log_info ("sandbox %s created (netns %s)", sb->id,
            sb->netns_path[0] ? sb->netns_path : "of the node");
  ttrpc_call_reply (call, NULL);
}

static void
handle_start (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  const Containerd__Runtime__Sandbox__V1__StartSandboxRequest *req = (const void *) msg;
  struct sandbox_service *sb = sandbox_for (call, arg, req->sandbox_id);
  if (sb == NULL)
    return;
  shim_error_t err = NULL;
  if (sb->state != SANDBOX_CREATED)
    shim_error_make (&err, 0, SHIM_FAILED_PRECONDITION, "sandbox %s was already started", sb->id);
  pid_t pid = err ? -1 : sandbox_pause_spawn (sb->netns_path, &err);
  if (pid < 0)
    {
      ttrpc_call_fail (call, &err);
      return;
    }
  sb->pid = pid;
  sb->watch = reaper_watch (sb->shim->reaper, pid, pause_exit_cb, sb);
  sb->created_at = now_realtime ();
  sb->state = SANDBOX_RUNNING;
  log_info ("sandbox %s started, pause process %d", sb->id, (int) pid);
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  pb_timestamp_set (&ts, &sb->created_at);
  Containerd__Runtime__Sandbox__V1__StartSandboxResponse resp
      = CONTAINERD__RUNTIME__SANDBOX__V1__START_SANDBOX_RESPONSE__INIT;
  resp.pid = (uint32_t) pid;
  resp.created_at = &ts;
  ttrpc_call_reply (call, &resp.base);
}

static void
handle_platform (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  const Containerd__Runtime__Sandbox__V1__PlatformRequest *req = (const void *) msg;
  struct sandbox_service *sb = sandbox_for (call, arg, req->sandbox_id);
  if (sb == NULL)
    return;
  Containerd__Types__Platform platform = CONTAINERD__TYPES__PLATFORM__INIT;
  platform.os = (char *) "linux";
  platform.architecture = (char *) GOARCH;
  Containerd__Runtime__Sandbox__V1__PlatformResponse resp
      = CONTAINERD__RUNTIME__SANDBOX__V1__PLATFORM_RESPONSE__INIT;
  resp.platform = &platform;
  ttrpc_call_reply (call, &resp.base);
}

/* Answered once the pause process is gone: a stopped sandbox holds no process. */
static void
handle_stop (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  const Containerd__Runtime__Sandbox__V1__StopSandboxRequest *req = (const void *) msg;
  struct sandbox_service *sb = sandbox_for (call, arg, req->sandbox_id);
  if (sb == NULL)
    return;
  log_info ("sandbox %s: stop", sb->id);
  if (pause_alive (sb))
    {
      park (&sb->stops, call);
      /* The pod's containers were stopped first; nothing in the pause needs a grace time. */
      kill (sb->pid, SIGKILL);
      return;
    }
  sandbox_ended (sb, SANDBOX_STOPPED);
  ttrpc_call_reply (call, NULL);
}

static void
handle_wait (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  const Containerd__Runtime__Sandbox__V1__WaitSandboxRequest *req = (const void *) msg;
  struct sandbox_service *sb = sandbox_for (call, arg, req->sandbox_id);
  if (sb == NULL)
    return;
  if (sb->state == SANDBOX_STOPPED || sb->state == SANDBOX_SHUTDOWN)
    reply_wait (sb, call);
  else
    park (&sb->waits, call);
}

static cJSON *
status_info (const struct sandbox_service *sb)
{
  cJSON *info = cJSON_CreateObject ();
  cJSON_AddNumberToObject (info, "pid", sb->pid);
  cJSON_AddStringToObject (info, "bundle", sb->bundle);
  cJSON_AddStringToObject (info, "netnsPath", sb->netns_path);
  cJSON_AddNumberToObject (info, "shimPid", getpid ());
  return info;
}

static void
handle_status (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  const Containerd__Runtime__Sandbox__V1__SandboxStatusRequest *req = (const void *) msg;
  struct sandbox_service *sb = sandbox_for (call, arg, req->sandbox_id);
  if (sb == NULL)
    return;
  Google__Protobuf__Timestamp created = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  Google__Protobuf__Timestamp exited = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  pb_timestamp_set (&created, &sb->created_at);
  pb_timestamp_set (&exited, &sb->exited_at);
  Containerd__Runtime__Sandbox__V1__SandboxStatusResponse resp
      = CONTAINERD__RUNTIME__SANDBOX__V1__SANDBOX_STATUS_RESPONSE__INIT;
  resp.sandbox_id = sb->id;
  resp.pid = (uint32_t) sb->pid;
  /* The CRI plugin passes this through as the pod's state. */
  resp.state = (char *) (sb->state == SANDBOX_RUNNING && pause_alive (sb) ? "SANDBOX_READY"
                                                                          : "SANDBOX_NOTREADY");
  resp.created_at = &created;
  resp.exited_at = &exited;
  cleanup_free char *json = NULL;
  Containerd__Runtime__Sandbox__V1__SandboxStatusResponse__InfoEntry entry
      = CONTAINERD__RUNTIME__SANDBOX__V1__SANDBOX_STATUS_RESPONSE__INFO_ENTRY__INIT;
  Containerd__Runtime__Sandbox__V1__SandboxStatusResponse__InfoEntry *entries[] = { &entry };
  if (req->verbose)
    {
      cJSON *info = status_info (sb);
      json = cJSON_PrintUnformatted (info);
      cJSON_Delete (info);
      entry.key = (char *) "info";
      entry.value = json;
      resp.n_info = 1;
      resp.info = entries;
    }
  ttrpc_call_reply (call, &resp.base);
}

static void
handle_ping (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  const Containerd__Runtime__Sandbox__V1__PingRequest *req = (const void *) msg;
  struct sandbox_service *sb = sandbox_for (call, arg, req->sandbox_id);
  if (sb == NULL)
    return;
  ttrpc_call_reply (call, NULL);
}

static void
handle_shutdown (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  const Containerd__Runtime__Sandbox__V1__ShutdownSandboxRequest *req = (const void *) msg;
  struct sandbox_service *sb = sandbox_for (call, arg, req->sandbox_id);
  if (sb == NULL)
    return;
  log_info ("sandbox %s: shutdown", sb->id);
  if (pause_alive (sb))
    kill (sb->pid, SIGKILL);
  sb->state = SANDBOX_SHUTDOWN;
  answer_stops (sb);
  sandbox_ended (sb, SANDBOX_SHUTDOWN);
  ttrpc_call_reply (call, NULL);
  /* containerd deletes the sandbox's shim right after this; tasks still served keep it
   * up until their Delete (sandbox_service_exit_after_delete). */
  if (sb->hooks.task_count (sb->hooks_arg) == 0)
    sb->hooks.exit (sb->hooks_arg);
}

static void
handle_metrics (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  const Containerd__Runtime__Sandbox__V1__SandboxMetricsRequest *req = (const void *) msg;
  struct sandbox_service *sb = sandbox_for (call, arg, req->sandbox_id);
  if (sb == NULL)
    return;
  /* The pause process uses next to nothing; the pod's usage is its containers' (Stats). */
  struct timespec now = now_realtime ();
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  pb_timestamp_set (&ts, &now);
  Containerd__Types__Metric metric = CONTAINERD__TYPES__METRIC__INIT;
  metric.timestamp = &ts;
  metric.id = sb->id;
  Containerd__Runtime__Sandbox__V1__SandboxMetricsResponse resp
      = CONTAINERD__RUNTIME__SANDBOX__V1__SANDBOX_METRICS_RESPONSE__INIT;
  resp.metrics = &metric;
  ttrpc_call_reply (call, &resp.base);
}

/* ---- method table ---- */

static const struct method_handler handlers[] = {
  { "CreateSandbox", handle_create },   { "StartSandbox", handle_start },
  { "Platform", handle_platform },      { "StopSandbox", handle_stop },
  { "WaitSandbox", handle_wait },       { "SandboxStatus", handle_status },
  { "PingSandbox", handle_ping },       { "ShutdownSandbox", handle_shutdown },
  { "SandboxMetrics", handle_metrics },
};

/* Built once, from the generated service descriptor; methods we do not serve are left out. */
const struct ttrpc_method *
sandbox_service_methods (size_t *n)
{
  static struct ttrpc_method table[ARRAY_SIZE (handlers)];
  static size_t count;
  const ProtobufCServiceDescriptor *sd = &containerd__runtime__sandbox__v1__sandbox__descriptor;
  if (count == 0)
    count = methods_build (sd, SERVICE, handlers, ARRAY_SIZE (handlers), NULL, table, 0,
                           ARRAY_SIZE (table));
  *n = count;
  return table;
}
