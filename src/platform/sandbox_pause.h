#ifndef CSHIM_SANDBOX_PAUSE_H
#define CSHIM_SANDBOX_PAUSE_H

/* The pod's pause process behind the Sandbox API. containerd's CRI plugin builds every app
 * container's spec from the sandbox pid (/proc/<pid>/ns/{ipc,uts,net,pid}), so a sandbox
 * needs a live process holding the pod's namespaces. It is cshim itself, run as
 * `containerd-shim-cshim-v2 pause`: pid 1 of a new pid namespace, in new IPC and UTS
 * namespaces, and in the pod's network namespace when containerd names one. */

#include <sys/types.h>

#include "base/error.h"

/* Starts the pause process as a child of the shim (the reaper reaps it); returns its pid. */
pid_t sandbox_pause_spawn (const char *netns_path, shim_error_t *err);

/* The `pause` action: reap orphans until SIGTERM or SIGINT. */
int sandbox_pause_run (shim_error_t *err);

#endif
