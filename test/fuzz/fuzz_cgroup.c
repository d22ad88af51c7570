/* /proc/<pid>/cgroup and /proc/self/mountinfo, separated by the first NUL byte; then every
 * directory the result names. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "platform/cgroup.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  cleanup_free char *text = xmalloc (size + 2);
  memcpy (text, data, size);
  text[size] = text[size + 1] = '\0';
  const char *mountinfo = text + strlen (text) + 1;
  shim_error_t err = NULL;
  cleanup_cgroup struct cgroup *cg = cgroup_from_text (text, mountinfo, "", &err);
  if (cg == NULL)
    {
      shim_error_release (&err);
      return 0;
    }
  static const char *const ctrls[] = { "memory", "cpu", "cpuacct", "pids", "blkio", "hugetlb" };
  for (size_t i = 0; i < ARRAY_SIZE (ctrls); i++)
    {
      const char *dir = cgroup_dir (cg, ctrls[i]);
      if (dir && strlen (dir) > 2 * size + 64)
        abort ();
    }
  (void) cgroup_is_v2 (cg);
  return 0;
}
