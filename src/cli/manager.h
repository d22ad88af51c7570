#ifndef CSHIM_MANAGER_H
#define CSHIM_MANAGER_H

/* The short-lived shim commands containerd runs: `start` (find or spawn the server for a
 * grouping key, print its address) and `delete` (clean up after a dead server). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/buildinfo.h"
#include "base/error.h"

/* The bootstrap version that makes containerd 2.x call containerd.task.v3.Task. */
#define MANAGER_TASK_API_V3 3

struct shim_args
{
  const char *namespace;
  const char *id;
  const char *address; /* containerd's gRPC address */
  const char *publish_binary;
  const char *bundle;
  const char *socket; /* unix socket path (daemon mode without fd 3) */
  bool debug;
};

/* "<address>/<namespace>/<key>" cleaned like Go's filepath.Join, hashed with SHA-256:
 * unix:///run/containerd/s/<hex>, the same as containerd's runc shim. */
char *manager_socket_address (const char *address, const char *namespace, const char *key);
/* Grouping key from the bundle's config.json annotations (pure: takes its text). */
char *manager_group_key (const char *config_json, const char *id);

/* When data is containerd 2.3's BootstrapParams for us (same instance id and namespace):
 * the options Any it carries, packed (empty when none); NULL when data is not one. */
uint8_t *manager_bootstrap_options (const struct shim_args *args, const uint8_t *data, size_t len,
                                    size_t *out_len);

/* What `start` prints for address (*len bytes, not NUL-terminated for the protobuf):
 * - containerd 2.3+ sent BootstrapParams (bootstrap): a protobuf BootstrapResult, version 3;
 * - containerd 2.x (by its build info): JSON {"version":3,"address":...,"protocol":"ttrpc"},
 *   which 2.0-2.2 accept and answer by calling task v3;
 * - anything else, the plain address: 1.6 reads nothing else, 1.7 rejects version 3, and
 *   every version takes plain text as version 2. */
uint8_t *manager_start_reply (const char *address, bool bootstrap,
                              enum buildinfo_containerd containerd, size_t *len);

/* The server's body, run in the process `start` forks; returns its exit status. */
typedef int (*manager_serve_fn) (const struct shim_args *args);
/* start_word: the word `start` in the process's argv, blank in the server's copy from its
 * first instruction, so that its command line reads as a server's (ps, pgrep, tools telling
 * servers from invocations); NULL to leave argv alone. */
int manager_start (const struct shim_args *args, manager_serve_fn serve, char *start_word,
                   shim_error_t *err);
int manager_delete (const struct shim_args *args, shim_error_t *err);

#endif
