#ifndef CSHIM_MOUNT_H
#define CSHIM_MOUNT_H

/* The task's rootfs mounts (CreateTaskRequest.rootfs), mounted onto <bundle>/rootfs in order
 * and unmounted on delete. */

#include <stddef.h>

#include "base/error.h"

struct mount_spec
{
  const char *type;
  const char *source;
  char *const *options;
  size_t n_options;
};

/* Splits mount options into MS_* flags and the data string (pure; data is heap). */
void mount_parse_options (char *const *options, size_t n, unsigned long *flags, char **data);
/* Mounts each spec onto target; on failure unmounts what it mounted. */
int mount_all (const char *target, const struct mount_spec *mounts, size_t n, shim_error_t *err);
/* Unmounts everything stacked on target (no error when nothing is mounted). */
int mount_unmount_all (const char *target, shim_error_t *err);

#endif
