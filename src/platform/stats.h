#ifndef CSHIM_STATS_H
#define CSHIM_STATS_H

/* Task Stats: the container's cgroup files read directly (nothing is forked), packed as the
 * Any containerd expects: io.containerd.cgroups.v1.Metrics on cgroup v1 (also hybrid),
 * io.containerd.cgroups.v2.Metrics on v2. Files or controllers that are absent are left out
 * of the message; that is not an error. */

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"

struct cgroup;
struct Google__Protobuf__Any;

/* Heap Any (free with pb_any_free). NotFound "cgroup does not exist" when cg is NULL or none
 * of its directories exists any more. */
struct Google__Protobuf__Any *stats_collect (const struct cgroup *cg, shim_error_t *err);

/* The number on the "<key> <number>" line of a flat keyed cgroup file (memory.events,
 * memory.oom_control, cpu.stat, ...). False when the key is absent or not a number. */
bool stats_parse_key (const char *text, const char *key, uint64_t *value);

#endif
