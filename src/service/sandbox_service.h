#ifndef CSHIM_SANDBOX_SERVICE_H
#define CSHIM_SANDBOX_SERVICE_H

/* containerd's Sandbox API (containerd.runtime.sandbox.v1.Sandbox), which containerd 2.x
 * drives when a CRI runtime has `sandboxer = "shim"`: one pod per shim, held by a pause
 * process (sandbox_pause.h). The pod's containers then come through the Task service of
 * the same shim. Also decides when a shim serving a pod may exit: containerd 2.x skips
 * Shutdown for tasks of a sandbox, so nobody tells the shim its last task is gone. */

#include <stdbool.h>
#include <stddef.h>

struct shim;
struct sandbox_service;
struct ttrpc_method;

/* What the service needs from the daemon; arg is passed back. */
struct sandbox_hooks
{
  size_t (*task_count) (void *arg); /* containers the shim still serves */
  void (*exit) (void *arg); /* end the shim once containerd has read the last reply */
};

struct sandbox_service *sandbox_service_new (struct shim *shim, const struct sandbox_hooks *hooks,
                                             void *arg);
/* Kills a pause process still running; parked calls are answered Unavailable. */
void sandbox_service_free (struct sandbox_service *sb);
/* The method table for ttrpc_server_add_service; its handler arg is sb. */
const struct ttrpc_method *sandbox_service_methods (size_t *n);
/* WaitSandbox and StopSandbox calls waiting for an answer (tests, debugging). */
size_t sandbox_service_parked (const struct sandbox_service *sb);
/* True from CreateSandbox until ShutdownSandbox: the shim must keep serving. */
bool sandbox_service_active (const struct sandbox_service *sb);
/* Whether the shim should exit now that Delete removed a container whose bundle is given,
 * leaving remaining containers: after ShutdownSandbox, or when the task belonged to a
 * sandbox (containerd wrote <bundle>/sandbox) and no sandbox of ours is active. */
bool sandbox_service_exit_after_delete (struct sandbox_service *sb, const char *bundle,
                                        size_t remaining);

#endif
