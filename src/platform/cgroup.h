#ifndef CSHIM_CGROUP_H
#define CSHIM_CGROUP_H

/* Where a process's cgroups live, from /proc/<pid>/cgroup and /proc/self/mountinfo.
 *
 * cgroup v1 (also the hybrid layout, where an empty v2 hierarchy is mounted next to the v1
 * controllers): one directory per controller the shim reads (memory, cpu, cpuacct, pids,
 * blkio, hugetlb); a controller that is not mounted or not listed has none.
 * cgroup v2: used only when none of those v1 controllers resolves and the process has a
 * "0::<path>" entry with a cgroup2 mount; every controller then shares one directory.
 * Named hierarchies (name=systemd) and other v1 controllers are ignored. */

#include <stdbool.h>
#include <sys/types.h>

#include "base/error.h"

struct cgroup;

/* Resolves pid's cgroups now (the result is a snapshot: moving the process later does not
 * change it). NotFound when pid is gone or has none of the cgroups above. */
struct cgroup *cgroup_of_pid (pid_t pid, shim_error_t *err);

/* Pure form for tests: the texts of /proc/<pid>/cgroup and mountinfo. root, when not NULL or
 * "", is prepended to every mount point (and to /proc paths other modules read for this
 * cgroup), so fixtures can live in a temp dir. */
struct cgroup *cgroup_from_text (const char *proc_cgroup, const char *mountinfo, const char *root,
                                 shim_error_t *err);

bool cgroup_is_v2 (const struct cgroup *cg);
/* The directory of controller ("memory", "cpu", "cpuacct", "pids", "blkio", "hugetlb"), or
 * NULL. On v2 the one unified directory, whatever the controller. */
const char *cgroup_dir (const struct cgroup *cg, const char *controller);
/* The root prefix given to cgroup_from_text ("" for the real filesystem). */
const char *cgroup_root (const struct cgroup *cg);
void cgroup_free (struct cgroup *cg);

void cleanup_cgroupp (struct cgroup **cg);
#define cleanup_cgroup __attribute__ ((cleanup (cleanup_cgroupp)))

#endif
