/* Exec: the process spec checked and turned into the JSON the runtime reads; the model records
 * the process (the runtime runs at Start). */

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "containerd/task/v2/task.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "service/task_internal.h"
#include "wire/ttrpc_server.h"

#define PROCESS_SPEC_TYPE "types.containerd.io/opencontainers/runtime-spec/1/Process"

char *
task_exec_spec_json (const Google__Protobuf__Any *spec, bool terminal, shim_error_t *err)
{
  if (spec == NULL || spec->type_url == NULL || strcmp (spec->type_url, PROCESS_SPEC_TYPE) != 0)
    {
      shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "exec spec must be a `%s`",
                       PROCESS_SPEC_TYPE);
      return NULL;
    }
  /* An empty value comes unpacked with no data pointer at all. */
  const char *value = spec->value.len ? (const char *) spec->value.data : "";
  cleanup_free char *text = xstrndup (value, spec->value.len);
  cJSON *doc = cJSON_Parse (text);
  if (!cJSON_IsObject (doc))
    {
      cJSON_Delete (doc);
      shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "exec spec is not a JSON object");
      return NULL;
    }
  cJSON_DeleteItemFromObjectCaseSensitive (doc, "terminal");
  cJSON_AddBoolToObject (doc, "terminal", terminal);
  char *out = cJSON_PrintUnformatted (doc);
  cJSON_Delete (doc);
  if (out == NULL)
    shim_error_make (err, 0, SHIM_INVALID_ARGUMENT, "exec spec cannot be written back as JSON");
  return out;
}

void
task_handle_exec (struct ttrpc_call *call, const ProtobufCMessage *msg, void *arg)
{
  struct task_service *svc = arg;
  const Containerd__Task__V2__ExecProcessRequest *req = (const void *) msg;
  shim_error_t err = NULL;
  cleanup_free char *spec = NULL;
  /* The model's refusals (no container, a taken id, a paused init) come before the spec's. */
  if (model_exec_check (svc->model, req->id, req->exec_id, &err) == 0)
    spec = task_exec_spec_json (req->spec, req->terminal, &err);
  struct model_exec me
      = { req->id, req->exec_id, req->stdin, req->stdout, req->stderr, req->terminal, spec };
  if (spec == NULL || model_exec (svc->model, &me, &err) < 0)
    {
      ttrpc_call_fail (call, &err);
      return;
    }
  task_reply_empty (call);
}
