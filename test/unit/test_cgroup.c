/* Resolving a process's cgroups from /proc/<pid>/cgroup and mountinfo text. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "platform/cgroup.h"
#include "base/util.h"

/* This machine's kind: v1 controllers, cpu and cpuacct in separate hierarchies, a named
 * systemd hierarchy and an empty v2 hierarchy at /sys/fs/cgroup/unified. */
static const char hybrid_cgroup[] = "10:hugetlb:/\n"
                                    "9:name=systemd:/ctr\n"
                                    "8:pids:/default/web\n"
                                    "7:blkio:/default/web\n"
                                    "6:freezer:/default/web\n"
                                    "5:devices:/default/web\n"
                                    "4:memory:/default/web\n"
                                    "3:cpuset:/default/web\n"
                                    "2:cpuacct:/default/web\n"
                                    "1:cpu:/default/web\n"
                                    "0::/default/web\n";

static const char hybrid_mountinfo[]
    = "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
      "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
      "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
      "32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
      "33 30 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
      "34 30 0:31 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n"
      "35 30 0:32 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices\n"
      "36 30 0:33 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n"
      "37 30 0:34 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio\n"
      "38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
      "39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n"
      "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
      "41 30 0:38 / /sys/fs/cgroup/hugetlb rw,relatime - cgroup cgroup rw,hugetlb\n";

static void
test_hybrid (void **state)
{
  (void) state;
  shim_error_t err = NULL;
  cleanup_cgroup struct cgroup *cg = cgroup_from_text (hybrid_cgroup, hybrid_mountinfo, NULL, &err);
  assert_non_null (cg);
  assert_null (err);
  assert_false (cgroup_is_v2 (cg));
  assert_string_equal (cgroup_dir (cg, "memory"), "/sys/fs/cgroup/memory/default/web");
  assert_string_equal (cgroup_dir (cg, "cpu"), "/sys/fs/cgroup/cpu/default/web");
  assert_string_equal (cgroup_dir (cg, "cpuacct"), "/sys/fs/cgroup/cpuacct/default/web");
  assert_string_equal (cgroup_dir (cg, "pids"), "/sys/fs/cgroup/pids/default/web");
  assert_string_equal (cgroup_dir (cg, "blkio"), "/sys/fs/cgroup/blkio/default/web");
  /* The root of a hierarchy has no trailing slash. */
  assert_string_equal (cgroup_dir (cg, "hugetlb"), "/sys/fs/cgroup/hugetlb");
  /* Controllers the shim does not read, and named hierarchies, resolve to nothing. */
  assert_null (cgroup_dir (cg, "freezer"));
  assert_null (cgroup_dir (cg, "name=systemd"));
  assert_null (cgroup_dir (cg, "systemd"));
  assert_null (cgroup_dir (cg, NULL));
  assert_string_equal (cgroup_root (cg), "");
}

static void
test_comounted_cpu_cpuacct (void **state)
{
  (void) state;
  const char *proc = "12:name=systemd:/x\n4:cpu,cpuacct:/k8s/pod1/c1\n3:memory:/k8s/pod1/c1\n";
  const char *mi = "31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
                   "34 30 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
                   "39 30 0:36 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n";
  shim_error_t err = NULL;
  cleanup_cgroup struct cgroup *cg = cgroup_from_text (proc, mi, NULL, &err);
  assert_non_null (cg);
  assert_string_equal (cgroup_dir (cg, "cpu"), "/sys/fs/cgroup/cpu,cpuacct/k8s/pod1/c1");
  assert_string_equal (cgroup_dir (cg, "cpuacct"), "/sys/fs/cgroup/cpu,cpuacct/k8s/pod1/c1");
  assert_string_equal (cgroup_dir (cg, "memory"), "/sys/fs/cgroup/memory/k8s/pod1/c1");
  /* Listed in neither file. */
  assert_null (cgroup_dir (cg, "pids"));
}

static void
test_pure_v2 (void **state)
{
  (void) state;
  const char *proc = "0::/system.slice/containerd.service/default/web\n";
  const char *mi = "22 1 254:0 / / rw - ext4 /dev/vda rw\n"
                   "26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - "
                   "cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
  shim_error_t err = NULL;
  cleanup_cgroup struct cgroup *cg = cgroup_from_text (proc, mi, NULL, &err);
  assert_non_null (cg);
  assert_true (cgroup_is_v2 (cg));
  const char *want = "/sys/fs/cgroup/system.slice/containerd.service/default/web";
  assert_string_equal (cgroup_dir (cg, "memory"), want);
  assert_string_equal (cgroup_dir (cg, "pids"), want);
  assert_string_equal (cgroup_dir (cg, "io"), want);
}

/* A v2 entry next to usable v1 controllers: v1 wins (the hybrid layout). */
static void
test_hybrid_prefers_v1 (void **state)
{
  (void) state;
  const char *proc = "4:memory:/a\n0::/a\n";
  const char *mi = "34 30 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
                   "40 30 0:37 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
  shim_error_t err = NULL;
  cleanup_cgroup struct cgroup *cg = cgroup_from_text (proc, mi, NULL, &err);
  assert_non_null (cg);
  assert_false (cgroup_is_v2 (cg));
  assert_string_equal (cgroup_dir (cg, "memory"), "/sys/fs/cgroup/memory/a");
}

/* Inside a container the hierarchy is often mounted from the container's own cgroup. */
static void
test_mount_root_stripped (void **state)
{
  (void) state;
  const char *proc = "4:memory:/docker/abc/sub\n";
  const char *mi = "34 30 0:31 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup "
                   "rw,memory\n";
  shim_error_t err = NULL;
  cleanup_cgroup struct cgroup *cg = cgroup_from_text (proc, mi, NULL, &err);
  assert_non_null (cg);
  assert_string_equal (cgroup_dir (cg, "memory"), "/sys/fs/cgroup/memory/sub");

  /* "/docker/abcdef" is not under "/docker/abc": no partial-component stripping. */
  cleanup_cgroup struct cgroup *other
      = cgroup_from_text ("4:memory:/docker/abcdef\n", mi, NULL, &err);
  assert_non_null (other);
  assert_string_equal (cgroup_dir (other, "memory"), "/sys/fs/cgroup/memory/docker/abcdef");
}

static void
test_root_prefix_and_escapes (void **state)
{
  (void) state;
  const char *proc = "4:memory:/a b\n0::/x\n";
  const char *mi = "34 30 0:31 / /mnt/my\\040cgroups/memory rw - cgroup cgroup rw,memory\n";
  shim_error_t err = NULL;
  cleanup_cgroup struct cgroup *cg = cgroup_from_text (proc, mi, "/tmp/fx", &err);
  assert_non_null (cg);
  assert_string_equal (cgroup_dir (cg, "memory"), "/tmp/fx/mnt/my cgroups/memory/a b");
  assert_string_equal (cgroup_root (cg), "/tmp/fx");
}

/* The canonical /sys/fs/cgroup wins over another cgroup2 mount listed first. */
static void
test_v2_mount_choice (void **state)
{
  (void) state;
  const char *mi = "50 22 0:40 / /run/other rw - cgroup2 cgroup2 rw\n"
                   "26 22 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
  shim_error_t err = NULL;
  cleanup_cgroup struct cgroup *cg = cgroup_from_text ("0::/\n", mi, NULL, &err);
  assert_non_null (cg);
  assert_string_equal (cgroup_dir (cg, "memory"), "/sys/fs/cgroup");
}

static void
test_nothing_usable (void **state)
{
  (void) state;
  shim_error_t err = NULL;
  /* Only a named hierarchy. */
  assert_null (cgroup_from_text ("1:name=systemd:/x\n", hybrid_mountinfo, NULL, &err));
  assert_non_null (err);
  assert_int_equal (err->code, SHIM_NOT_FOUND);
  shim_error_release (&err);
  /* A v2 entry but no cgroup2 mount. */
  const char *mi = "34 30 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
  assert_null (cgroup_from_text ("0::/x\n", mi, NULL, &err));
  assert_int_equal (err->code, SHIM_NOT_FOUND);
  shim_error_release (&err);
  /* Garbage in both. */
  assert_null (cgroup_from_text ("garbage\n::\n", "x y\n - \n", NULL, &err));
  shim_error_release (&err);
  assert_null (cgroup_from_text ("", "", NULL, &err));
  shim_error_release (&err);
}

static void
test_of_pid (void **state)
{
  (void) state;
  shim_error_t err = NULL;
  cleanup_cgroup struct cgroup *cg = cgroup_of_pid (getpid (), &err);
  assert_non_null (cg);
  const char *dir = cgroup_dir (cg, "memory");
  assert_non_null (dir);
  assert_int_equal (access (dir, F_OK), 0);

  /* A reaped child's pid no longer exists. */
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    _exit (0);
  assert_int_equal (waitpid (pid, NULL, 0), pid);
  assert_null (cgroup_of_pid (pid, &err));
  assert_non_null (err);
  assert_int_equal (err->code, SHIM_NOT_FOUND);
  shim_error_release (&err);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_hybrid),
    cmocka_unit_test (test_comounted_cpu_cpuacct),
    cmocka_unit_test (test_pure_v2),
    cmocka_unit_test (test_hybrid_prefers_v1),
    cmocka_unit_test (test_mount_root_stripped),
    cmocka_unit_test (test_root_prefix_and_escapes),
    cmocka_unit_test (test_v2_mount_choice),
    cmocka_unit_test (test_nothing_usable),
    cmocka_unit_test (test_of_pid),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
