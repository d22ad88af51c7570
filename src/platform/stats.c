/* Task Stats: the entry point, which picks the collector of the cgroup's hierarchy (v1 in
 * stats_v1.c, v2 in stats_v2.c; the file readers they share are in stats_files.c). */

#include "platform/stats.h"

#include "platform/cgroup.h"
#include "base/pb.h"
#include "platform/stats_internal.h"
#include "base/util.h"

struct Google__Protobuf__Any *
stats_collect (const struct cgroup *cg, shim_error_t *err)
{
  if (cg == NULL)
    {
      shim_error_make (err, 0, SHIM_NOT_FOUND, "cgroup does not exist");
      return NULL;
    }
  cleanup_pbmsg ProtobufCMessage *m
      = cgroup_is_v2 (cg) ? stats_collect_v2 (cg, err) : stats_collect_v1 (cg, err);
  if (m == NULL)
    return NULL;
  return pb_any_pack (m);
}
