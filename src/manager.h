#ifndef CSHIM_MANAGER_H
#define CSHIM_MANAGER_H

/* The short-lived shim commands containerd runs: `start` (find or spawn the server for a
 * grouping key, print its address) and `delete` (clean up after a dead server). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct shim_args
{
  const char *namespace;
  const char *id;
  const char *address;        /* containerd's gRPC address */
  const char *publish_binary;
  const char *bundle;
  const char *socket;         /* unix socket path (daemon mode without fd 3) */
  bool debug;
  const char *self;           /* path to re-exec for the daemon */
};

/* "<address>/<namespace>/<key>" cleaned like Go's filepath.Join, hashed with SHA-256:
 * unix:///run/containerd/s/<hex>, the same as containerd's runc shim. */
char *manager_socket_address (const char *address, const char *namespace, const char *key);
/* Grouping key from the bundle's config.json annotations (pure: takes its text). */
char *manager_group_key (const char *config_json, const char *id);

/* When data is containerd 2.3's BootstrapParams for us (same instance id and namespace):
 * the options Any it carries, packed (empty when none); NULL when data is not one. */
uint8_t *manager_bootstrap_options (const struct shim_args *args, const uint8_t *data,
                                    size_t len, size_t *out_len);

int manager_start (const struct shim_args *args, shim_error_t *err);
int manager_delete (const struct shim_args *args, shim_error_t *err);

#endif
