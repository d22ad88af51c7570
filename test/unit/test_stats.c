/* Task stats from cgroup files: v1 and v2 fixture trees in a temp dir, unpacked with the
 * generated descriptors. The v1 contents are modelled on a real Debian 12 kernel 6.x host. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "platform/cgroup.h"
#include "google/protobuf/any.pb-c.h"
#include "io/containerd/cgroups/v1/metrics.pb-c.h"
#include "io/containerd/cgroups/v2/metrics.pb-c.h"
#include "base/pb.h"
#include "platform/stats.h"
#include "testutil.h"
#include "base/util.h"

#define V1(type) Io__Containerd__Cgroups__V1__##type
#define V2(type) Io__Containerd__Cgroups__V2__##type

static const char v1_proc[] = "10:hugetlb:/default/web\n"
                              "9:name=systemd:/default/web\n"
                              "8:pids:/default/web\n"
                              "7:blkio:/default/web\n"
                              "4:memory:/default/web\n"
                              "2:cpuacct:/default/web\n"
                              "1:cpu:/default/web\n"
                              "0::/\n";

static const char v1_mountinfo[]
    = "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
      "32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
      "34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
      "37 30 0:34 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio\n"
      "38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
      "39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
      "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
      "41 30 0:38 / /sys/fs/cgroup/hugetlb rw,relatime - cgroup cgroup rw,hugetlb\n";

static const char v1_memory_stat[] = "cache 1605632\n"
                                     "rss 1814528\n"
                                     "rss_huge 0\n"
                                     "shmem 0\n"
                                     "mapped_file 4096\n"
                                     "dirty 28672\n"
                                     "writeback 0\n"
                                     "workingset_refault_anon 0\n"
                                     "workingset_refault_file 388\n"
                                     "swap 0\n"
                                     "swapcached 0\n"
                                     "pgpgin 27044\n"
                                     "pgpgout 26210\n"
                                     "pgfault 62629\n"
                                     "pgmajfault 1\n"
                                     "inactive_anon 1806336\n"
                                     "active_anon 8192\n"
                                     "inactive_file 196608\n"
                                     "active_file 1409024\n"
                                     "unevictable 0\n"
                                     "hierarchical_memory_limit 9223372036854771712\n"
                                     "hierarchical_memsw_limit 9223372036854771712\n"
                                     "total_cache 1605632\n"
                                     "total_rss 1814528\n"
                                     "total_rss_huge 0\n"
                                     "total_shmem 0\n"
                                     "total_mapped_file 4096\n"
                                     "total_dirty 28672\n"
                                     "total_writeback 0\n"
                                     "total_workingset_refault_anon 0\n"
                                     "total_workingset_refault_file 388\n"
                                     "total_swap 0\n"
                                     "total_swapcached 0\n"
                                     "total_pgpgin 27044\n"
                                     "total_pgpgout 26210\n"
                                     "total_pgfault 62629\n"
                                     "total_pgmajfault 1\n"
                                     "total_inactive_anon 1806336\n"
                                     "total_active_anon 8192\n"
                                     "total_inactive_file 196608\n"
                                     "total_active_file 1409024\n"
                                     "total_unevictable 0\n";

static const char v2_memory_stat[] = "anon 1523712\n"
                                     "file 8192000\n"
                                     "kernel 573440\n"
                                     "kernel_stack 49152\n"
                                     "pagetables 106496\n"
                                     "sock 4096\n"
                                     "shmem 8192\n"
                                     "file_mapped 3571712\n"
                                     "file_dirty 4096\n"
                                     "file_writeback 0\n"
                                     "swapcached 0\n"
                                     "anon_thp 2097152\n"
                                     "inactive_anon 1495040\n"
                                     "active_anon 28672\n"
                                     "inactive_file 5074944\n"
                                     "active_file 3117056\n"
                                     "unevictable 0\n"
                                     "slab_reclaimable 245760\n"
                                     "slab_unreclaimable 143360\n"
                                     "slab 389120\n"
                                     "workingset_refault_anon 0\n"
                                     "workingset_refault_file 12\n"
                                     "workingset_activate_anon 0\n"
                                     "workingset_activate_file 3\n"
                                     "workingset_restore_anon 0\n"
                                     "workingset_restore_file 0\n"
                                     "workingset_nodereclaim 0\n"
                                     "pgscan 7\n"
                                     "pgsteal 6\n"
                                     "pgfault 4321\n"
                                     "pgmajfault 12\n"
                                     "pgrefill 1\n"
                                     "pgactivate 5\n"
                                     "pgdeactivate 2\n"
                                     "pglazyfree 0\n"
                                     "pglazyfreed 0\n"
                                     "thp_fault_alloc 1\n"
                                     "thp_collapse_alloc 0\n";

struct fixture
{
  char dir[64];
};

static int
setup (void **state)
{
  struct fixture *f = xcalloc (1, sizeof *f);
  strcpy (f->dir, "/tmp/cshim-stats-XXXXXX");
  if (mkdtemp (f->dir) == NULL)
    return -1;
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fixture *f = *state;
  remove_tree (f->dir);
  free (f);
  return 0;
}

/* Writes <root>/<sub>/<name>, creating directories. */
static void
put (const struct fixture *f, const char *sub, const char *name, const char *content)
{
  cleanup_free char *dir = xasprintf ("%s/%s", f->dir, sub);
  assert_int_equal (mkdir_p (dir, 0755), 0);
  cleanup_free char *path = xasprintf ("%s/%s", dir, name);
  write_text (path, content);
}

#define MEM1 "sys/fs/cgroup/memory/default/web"

static void
put_v1_memory (const struct fixture *f)
{
  put (f, MEM1, "memory.stat", v1_memory_stat);
  put (f, MEM1, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
  put (f, MEM1, "memory.usage_in_bytes", "4341760\n");
  put (f, MEM1, "memory.limit_in_bytes", "8388608\n");
  put (f, MEM1, "memory.max_usage_in_bytes", "4907008\n");
  put (f, MEM1, "memory.failcnt", "17\n");
  put (f, MEM1, "memory.memsw.usage_in_bytes", "4534272\n");
  put (f, MEM1, "memory.memsw.limit_in_bytes", "9223372036854771712\n");
  put (f, MEM1, "memory.memsw.max_usage_in_bytes", "5000000\n");
  put (f, MEM1, "memory.memsw.failcnt", "0\n");
  put (f, MEM1, "memory.kmem.usage_in_bytes", "708608\n");
  put (f, MEM1, "memory.kmem.limit_in_bytes", "9223372036854771712\n");
  put (f, MEM1, "memory.kmem.max_usage_in_bytes", "800000\n");
  put (f, MEM1, "memory.kmem.failcnt", "0\n");
  put (f, MEM1, "memory.kmem.tcp.usage_in_bytes", "0\n");
  put (f, MEM1, "memory.kmem.tcp.limit_in_bytes", "9223372036854771712\n");
  put (f, MEM1, "memory.kmem.tcp.max_usage_in_bytes", "0\n");
  put (f, MEM1, "memory.kmem.tcp.failcnt", "0\n");
}

static void
put_v1_others (const struct fixture *f)
{
  put (f, "sys/fs/cgroup/cpuacct/default/web", "cpuacct.stat", "user 27207\nsystem 29438\n");
  put (f, "sys/fs/cgroup/cpuacct/default/web", "cpuacct.usage", "566484262993\n");
  put (f, "sys/fs/cgroup/cpuacct/default/web", "cpuacct.usage_percpu",
       "267543502182 298983359477 \n");
  put (f, "sys/fs/cgroup/cpu/default/web", "cpu.stat",
       "nr_periods 10\nnr_throttled 2\nthrottled_time 5000\nnr_bursts 0\nburst_time 0\n");
  put (f, "sys/fs/cgroup/pids/default/web", "pids.current", "3\n");
  put (f, "sys/fs/cgroup/pids/default/web", "pids.max", "max\n");
  /* blk-mq host: the CFQ files exist but say nothing, so the throttle files count. */
  put (f, "sys/fs/cgroup/blkio/default/web", "blkio.io_serviced_recursive", "Total 0\n");
  put (f, "sys/fs/cgroup/blkio/default/web", "blkio.throttle.io_service_bytes_recursive",
       "254:0 Read 4096\n254:0 Write 8192\n254:0 Sync 12288\n254:0 Async 0\n"
       "254:0 Discard 0\n254:0 Total 12288\nTotal 12288\n");
  /* Only the non-recursive form: an older kernel. */
  put (f, "sys/fs/cgroup/blkio/default/web", "blkio.throttle.io_serviced",
       "254:0 Read 1\n254:0 Write 2\n8:16 Read 5\nTotal 8\n");
  put (f, "proc", "partitions", "major minor  #blocks  name\n\n 254        0  268435456 vda\n");
  put (f, "sys/fs/cgroup/hugetlb/default/web", "hugetlb.2MB.usage_in_bytes", "2097152\n");
  put (f, "sys/fs/cgroup/hugetlb/default/web", "hugetlb.2MB.max_usage_in_bytes", "4194304\n");
  put (f, "sys/fs/cgroup/hugetlb/default/web", "hugetlb.2MB.failcnt", "1\n");
  put (f, "sys/fs/cgroup/hugetlb/default/web", "hugetlb.2MB.rsvd.usage_in_bytes", "99\n");
  put (f, "sys/fs/cgroup/hugetlb/default/web", "hugetlb.1GB.usage_in_bytes", "0\n");
}

static V1 (Metrics) * collect_v1 (const struct fixture *f)
{
  shim_error_t err = NULL;
  cleanup_cgroup struct cgroup *cg = cgroup_from_text (v1_proc, v1_mountinfo, f->dir, &err);
  assert_non_null (cg);
  Google__Protobuf__Any *any = stats_collect (cg, &err);
  assert_null (err);
  assert_non_null (any);
  assert_string_equal (any->type_url, "io.containerd.cgroups.v1.Metrics");
  ProtobufCMessage *m
      = pb_any_unpack (any, &io__containerd__cgroups__v1__metrics__descriptor, &err);
  assert_non_null (m);
  pb_any_free (any);
  return (V1 (Metrics) *) m;
}

static void
assert_entry (const V1 (MemoryEntry) * e, uint64_t usage, uint64_t limit, uint64_t max,
              uint64_t failcnt)
{
  assert_non_null (e);
  assert_int_equal (e->usage, usage);
  assert_int_equal (e->limit, limit);
  assert_int_equal (e->max, max);
  assert_int_equal (e->failcnt, failcnt);
}

static void
test_v1_memory (void **state)
{
  struct fixture *f = *state;
  put_v1_memory (f);
  put_v1_others (f);
  V1 (Metrics) *m = collect_v1 (f);
  const V1 (MemoryStat) *mem = m->memory;
  assert_non_null (mem);
  assert_int_equal (mem->cache, 1605632);
  assert_int_equal (mem->rss, 1814528);
  assert_int_equal (mem->mapped_file, 4096);
  assert_int_equal (mem->dirty, 28672);
  assert_int_equal (mem->pg_pg_in, 27044);
  assert_int_equal (mem->pg_pg_out, 26210);
  assert_int_equal (mem->pg_fault, 62629);
  assert_int_equal (mem->pg_maj_fault, 1);
  assert_int_equal (mem->inactive_anon, 1806336);
  assert_int_equal (mem->active_file, 1409024);
  assert_int_equal (mem->hierarchical_memory_limit, 9223372036854771712ull);
  assert_int_equal (mem->hierarchical_swap_limit, 9223372036854771712ull);
  assert_int_equal (mem->total_cache, 1605632);
  assert_int_equal (mem->total_rss, 1814528);
  assert_int_equal (mem->total_pg_pg_in, 27044);
  assert_int_equal (mem->total_pg_maj_fault, 1);
  assert_int_equal (mem->total_inactive_anon, 1806336);
  assert_int_equal (mem->total_active_file, 1409024);
  assert_entry (mem->usage, 4341760, 8388608, 4907008, 17);
  assert_entry (mem->swap, 4534272, 9223372036854771712ull, 5000000, 0);
  assert_entry (mem->kernel, 708608, 9223372036854771712ull, 800000, 0);
  assert_entry (mem->kernel_tcp, 0, 9223372036854771712ull, 0, 0);
  assert_non_null (m->memory_oom_control);
  assert_int_equal (m->memory_oom_control->oom_kill_disable, 0);
  assert_int_equal (m->memory_oom_control->under_oom, 0);
  assert_int_equal (m->memory_oom_control->oom_kill, 3);
  protobuf_c_message_free_unpacked (&m->base, NULL);
}

static void
test_v1_cpu_pids_hugetlb (void **state)
{
  struct fixture *f = *state;
  put_v1_memory (f);
  put_v1_others (f);
  V1 (Metrics) *m = collect_v1 (f);
  const V1 (CPUUsage) *u = m->cpu->usage;
  assert_int_equal (u->total, 566484262993ull);
  long hz = sysconf (_SC_CLK_TCK);
  assert_int_equal (u->user, 27207ull * 1000000000ull / (uint64_t) hz);
  assert_int_equal (u->kernel, 29438ull * 1000000000ull / (uint64_t) hz);
  assert_int_equal (u->n_per_cpu, 2);
  assert_int_equal (u->per_cpu[0], 267543502182ull);
  assert_int_equal (u->per_cpu[1], 298983359477ull);
  assert_int_equal (m->cpu->throttling->periods, 10);
  assert_int_equal (m->cpu->throttling->throttled_periods, 2);
  assert_int_equal (m->cpu->throttling->throttled_time, 5000);
  assert_non_null (m->pids);
  assert_int_equal (m->pids->current, 3);
  assert_int_equal (m->pids->limit, 0); /* "max" on v1 */
  /* Smallest page size first; the rsvd counters are not a page size. */
  assert_int_equal (m->n_hugetlb, 2);
  assert_string_equal (m->hugetlb[0]->pagesize, "2MB");
  assert_int_equal (m->hugetlb[0]->usage, 2097152);
  assert_int_equal (m->hugetlb[0]->max, 4194304);
  assert_int_equal (m->hugetlb[0]->failcnt, 1);
  assert_string_equal (m->hugetlb[1]->pagesize, "1GB");
  protobuf_c_message_free_unpacked (&m->base, NULL);
}

static void
test_v1_blkio_throttle (void **state)
{
  struct fixture *f = *state;
  put_v1_memory (f);
  put_v1_others (f);
  V1 (Metrics) *m = collect_v1 (f);
  const V1 (BlkIOStat) *b = m->blkio;
  assert_non_null (b);
  assert_int_equal (b->n_io_service_bytes_recursive, 6); /* the "Total" line is dropped */
  const V1 (BlkIOEntry) *e = b->io_service_bytes_recursive[1];
  assert_string_equal (e->op, "Write");
  assert_string_equal (e->device, "/dev/vda");
  assert_int_equal (e->major, 254);
  assert_int_equal (e->minor, 0);
  assert_int_equal (e->value, 8192);
  assert_int_equal (b->n_io_serviced_recursive, 3);
  /* 8:16 is not in the fixture's /proc/partitions. */
  assert_string_equal (b->io_serviced_recursive[2]->device, "");
  assert_int_equal (b->io_serviced_recursive[2]->value, 5);
  assert_int_equal (b->n_sectors_recursive, 0);
  protobuf_c_message_free_unpacked (&m->base, NULL);
}

/* The CFQ files, when they have data, are used and the throttle ones are not. */
static void
test_v1_blkio_cfq (void **state)
{
  struct fixture *f = *state;
  put_v1_others (f);
  put (f, "sys/fs/cgroup/blkio/default/web", "blkio.io_serviced_recursive",
       "254:0 Read 7\n254:0 Write 9\nTotal 16\n");
  put (f, "sys/fs/cgroup/blkio/default/web", "blkio.sectors_recursive", "254:0 96\n");
  V1 (Metrics) *m = collect_v1 (f);
  const V1 (BlkIOStat) *b = m->blkio;
  assert_int_equal (b->n_io_serviced_recursive, 2);
  assert_int_equal (b->io_serviced_recursive[0]->value, 7);
  assert_int_equal (b->n_sectors_recursive, 1);
  assert_string_equal (b->sectors_recursive[0]->op, "");
  assert_int_equal (b->sectors_recursive[0]->value, 96);
  assert_int_equal (b->n_io_service_bytes_recursive, 0);
  protobuf_c_message_free_unpacked (&m->base, NULL);
}

/* Only memory.stat exists: everything else is left out, nothing fails. */
static void
test_v1_missing_files (void **state)
{
  struct fixture *f = *state;
  put (f, MEM1, "memory.stat", "cache 5\nrss -4096\n");
  V1 (Metrics) *m = collect_v1 (f);
  assert_non_null (m->memory);
  assert_int_equal (m->memory->cache, 5);
  assert_int_equal (m->memory->rss, 0); /* negative accounting reads as 0 */
  assert_entry (m->memory->usage, 0, 0, 0, 0);
  assert_non_null (m->memory->kernel_tcp);
  assert_null (m->memory_oom_control);
  assert_null (m->pids);
  assert_null (m->blkio);
  assert_int_equal (m->n_hugetlb, 0);
  /* cpu is always there, zero without cpuacct. */
  assert_non_null (m->cpu);
  assert_non_null (m->cpu->usage);
  assert_int_equal (m->cpu->usage->total, 0);
  assert_int_equal (m->cpu->usage->n_per_cpu, 0);
  protobuf_c_message_free_unpacked (&m->base, NULL);
}

static void
test_v1_missing_dir (void **state)
{
  struct fixture *f = *state;
  shim_error_t err = NULL;
  cleanup_cgroup struct cgroup *cg = cgroup_from_text (v1_proc, v1_mountinfo, f->dir, &err);
  assert_non_null (cg);
  assert_null (stats_collect (cg, &err));
  assert_non_null (err);
  assert_int_equal (err->code, SHIM_NOT_FOUND);
  assert_string_equal (err->msg, "cgroup does not exist");
  shim_error_release (&err);
  assert_null (stats_collect (NULL, &err));
  assert_int_equal (err->code, SHIM_NOT_FOUND);
  shim_error_release (&err);
}

#define DIR2 "sys/fs/cgroup/default/web"
static const char v2_mountinfo[] = "26 22 0:23 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 "
                                   "rw,nsdelegate,memory_recursiveprot\n";

static void
put_v2 (const struct fixture *f)
{
  put (f, DIR2, "cgroup.procs", "42\n");
  put (f, DIR2, "pids.current", "4\n");
  put (f, DIR2, "pids.max", "max\n");
  put (f, DIR2, "cpu.stat",
       "usage_usec 1402816\nuser_usec 1009133\nsystem_usec 393683\n"
       "core_sched.force_idle_usec 0\nnr_periods 120\nnr_throttled 7\nthrottled_usec 35121\n"
       "nr_bursts 1\nburst_usec 20\n");
  put (f, DIR2, "cpu.pressure",
       "some avg10=1.50 avg60=0.25 avg300=0.00 total=123456\n"
       "full avg10=0.00 avg60=0.00 avg300=0.00 total=789\n");
  put (f, DIR2, "memory.stat", v2_memory_stat);
  put (f, DIR2, "memory.current", "9715712\n");
  put (f, DIR2, "memory.max", "max\n");
  put (f, DIR2, "memory.swap.current", "0\n");
  put (f, DIR2, "memory.swap.max", "max\n");
  put (f, DIR2, "memory.peak", "12000000\n");
  put (f, DIR2, "memory.events", "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n");
  put (f, DIR2, "io.stat",
       "254:0 rbytes=1052672 wbytes=8192 rios=35 wios=2 dbytes=0 dios=0\n"
       "8:16 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n");
  put (f, DIR2, "hugetlb.2MB.current", "2097152\n");
  put (f, DIR2, "hugetlb.2MB.max", "max\n");
  put (f, DIR2, "hugetlb.2MB.events", "max 6\n");
  put (f, DIR2, "hugetlb.2MB.rsvd.current", "0\n");
}

static V2 (Metrics) * collect_v2 (const struct fixture *f)
{
  shim_error_t err = NULL;
  cleanup_cgroup struct cgroup *cg
      = cgroup_from_text ("0::/default/web\n", v2_mountinfo, f->dir, &err);
  assert_non_null (cg);
  assert_true (cgroup_is_v2 (cg));
  Google__Protobuf__Any *any = stats_collect (cg, &err);
  assert_null (err);
  assert_non_null (any);
  assert_string_equal (any->type_url, "io.containerd.cgroups.v2.Metrics");
  ProtobufCMessage *m
      = pb_any_unpack (any, &io__containerd__cgroups__v2__metrics__descriptor, &err);
  assert_non_null (m);
  pb_any_free (any);
  return (V2 (Metrics) *) m;
}

static void
test_v2_pids_cpu (void **state)
{
  struct fixture *f = *state;
  put_v2 (f);
  V2 (Metrics) *m = collect_v2 (f);
  assert_int_equal (m->pids->current, 4);
  assert_int_equal (m->pids->limit, UINT64_MAX);
  assert_int_equal (m->cpu->usage_usec, 1402816);
  assert_int_equal (m->cpu->user_usec, 1009133);
  assert_int_equal (m->cpu->system_usec, 393683);
  assert_int_equal (m->cpu->nr_periods, 120);
  assert_int_equal (m->cpu->nr_throttled, 7);
  assert_int_equal (m->cpu->throttled_usec, 35121);
  assert_int_equal (m->cpu->nr_bursts, 1);
  assert_int_equal (m->cpu->burst_usec, 20);
  assert_non_null (m->cpu->psi);
  assert_float_equal (m->cpu->psi->some->avg10, 1.5, 1e-9);
  assert_float_equal (m->cpu->psi->some->avg60, 0.25, 1e-9);
  assert_int_equal (m->cpu->psi->some->total, 123456);
  assert_int_equal (m->cpu->psi->full->total, 789);
  protobuf_c_message_free_unpacked (&m->base, NULL);
}

static void
test_v2_memory (void **state)
{
  struct fixture *f = *state;
  put_v2 (f);
  V2 (Metrics) *m = collect_v2 (f);
  const V2 (MemoryStat) *mem = m->memory;
  assert_int_equal (mem->anon, 1523712);
  assert_int_equal (mem->file, 8192000);
  assert_int_equal (mem->kernel_stack, 49152);
  assert_int_equal (mem->slab, 389120);
  assert_int_equal (mem->sock, 4096);
  assert_int_equal (mem->shmem, 8192);
  assert_int_equal (mem->file_mapped, 3571712);
  assert_int_equal (mem->anon_thp, 2097152);
  assert_int_equal (mem->active_file, 3117056);
  assert_int_equal (mem->slab_unreclaimable, 143360);
  assert_int_equal (mem->pgfault, 4321);
  assert_int_equal (mem->pgmajfault, 12);
  assert_int_equal (mem->workingset_refault_file, 12);
  assert_int_equal (mem->workingset_activate_file, 3);
  assert_int_equal (mem->pgscan, 7);
  assert_int_equal (mem->pgsteal, 6);
  assert_int_equal (mem->pgrefill, 1);
  assert_int_equal (mem->pgdeactivate, 2);
  assert_int_equal (mem->thp_fault_alloc, 1);
  assert_int_equal (mem->usage, 9715712);
  assert_int_equal (mem->usage_limit, UINT64_MAX);
  assert_int_equal (mem->swap_usage, 0);
  assert_int_equal (mem->swap_limit, UINT64_MAX);
  assert_int_equal (mem->max_usage, 12000000);
  assert_int_equal (mem->swap_max_usage, 0); /* no memory.swap.peak */
  assert_null (mem->psi); /* no memory.pressure */
  protobuf_c_message_free_unpacked (&m->base, NULL);
}

static void
test_v2_events_io_hugetlb (void **state)
{
  struct fixture *f = *state;
  put_v2 (f);
  V2 (Metrics) *m = collect_v2 (f);
  assert_non_null (m->memory_events);
  assert_int_equal (m->memory_events->max, 12);
  assert_int_equal (m->memory_events->oom, 2);
  assert_int_equal (m->memory_events->oom_kill, 1);
  assert_non_null (m->io);
  assert_int_equal (m->io->n_usage, 2);
  assert_int_equal (m->io->usage[0]->major, 254);
  assert_int_equal (m->io->usage[0]->minor, 0);
  assert_int_equal (m->io->usage[0]->rbytes, 1052672);
  assert_int_equal (m->io->usage[0]->wbytes, 8192);
  assert_int_equal (m->io->usage[0]->rios, 35);
  assert_int_equal (m->io->usage[0]->wios, 2);
  assert_int_equal (m->io->usage[1]->major, 8);
  assert_int_equal (m->io->usage[1]->minor, 16);
  assert_int_equal (m->n_hugetlb, 1);
  assert_string_equal (m->hugetlb[0]->pagesize, "2MB");
  assert_int_equal (m->hugetlb[0]->current, 2097152);
  assert_int_equal (m->hugetlb[0]->max, UINT64_MAX);
  assert_int_equal (m->hugetlb[0]->failcnt, 6);
  protobuf_c_message_free_unpacked (&m->base, NULL);
}

/* A v2 cgroup with no controller files: an empty message, not an error. */
static void
test_v2_missing_files (void **state)
{
  struct fixture *f = *state;
  put (f, DIR2, "cgroup.procs", "");
  put (f, DIR2, "memory.events", "");
  V2 (Metrics) *m = collect_v2 (f);
  assert_null (m->pids);
  assert_null (m->cpu);
  assert_null (m->memory);
  assert_null (m->memory_events); /* an empty file says nothing */
  assert_null (m->io);
  assert_int_equal (m->n_hugetlb, 0);
  protobuf_c_message_free_unpacked (&m->base, NULL);
}

static void
test_v2_missing_dir (void **state)
{
  struct fixture *f = *state;
  shim_error_t err = NULL;
  cleanup_cgroup struct cgroup *cg = cgroup_from_text ("0::/gone\n", v2_mountinfo, f->dir, &err);
  assert_non_null (cg);
  assert_null (stats_collect (cg, &err));
  assert_int_equal (err->code, SHIM_NOT_FOUND);
  assert_string_equal (err->msg, "cgroup does not exist");
  shim_error_release (&err);
}

static void
test_parse_key (void **state)
{
  (void) state;
  uint64_t v = 99;
  const char *ev = "low 0\nhigh 1\nmax 2\noom 3\noom_kill 4\n";
  assert_true (stats_parse_key (ev, "oom_kill", &v));
  assert_int_equal (v, 4);
  assert_true (stats_parse_key (ev, "oom", &v));
  assert_int_equal (v, 3);
  assert_false (stats_parse_key (ev, "oom_group_kill", &v));
  assert_false (stats_parse_key ("oom_kill x\n", "oom_kill", &v));
  assert_false (stats_parse_key ("oom_kill\n", "oom_kill", &v));
  assert_false (stats_parse_key ("", "oom_kill", &v));
  /* No trailing newline, as a half-written file may look. */
  assert_true (stats_parse_key ("under_oom 1", "under_oom", &v));
  assert_int_equal (v, 1);
}

/* This machine's own cgroup, read from the real kernel files. */
static void
test_real_cgroup (void **state)
{
  (void) state;
  shim_error_t err = NULL;
  cleanup_cgroup struct cgroup *cg = cgroup_of_pid (getpid (), &err);
  assert_non_null (cg);
  Google__Protobuf__Any *any = stats_collect (cg, &err);
  assert_non_null (any);
  if (cgroup_is_v2 (cg))
    {
      pb_any_free (any);
      skip ();
    }
  ProtobufCMessage *pm
      = pb_any_unpack (any, &io__containerd__cgroups__v1__metrics__descriptor, &err);
  pb_any_free (any);
  assert_non_null (pm);
  V1 (Metrics) *m = (V1 (Metrics) *) pm;
  assert_non_null (m->memory);
  assert_true (m->memory->usage->usage > 0);
  assert_true (m->memory->usage->limit > 0);
  assert_non_null (m->memory_oom_control);
  assert_true (m->cpu->usage->total > 0);
  assert_true (m->cpu->usage->n_per_cpu > 0);
  protobuf_c_message_free_unpacked (pm, NULL);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_v1_memory, setup, teardown),
    cmocka_unit_test_setup_teardown (test_v1_cpu_pids_hugetlb, setup, teardown),
    cmocka_unit_test_setup_teardown (test_v1_blkio_throttle, setup, teardown),
    cmocka_unit_test_setup_teardown (test_v1_blkio_cfq, setup, teardown),
    cmocka_unit_test_setup_teardown (test_v1_missing_files, setup, teardown),
    cmocka_unit_test_setup_teardown (test_v1_missing_dir, setup, teardown),
    cmocka_unit_test_setup_teardown (test_v2_pids_cpu, setup, teardown),
    cmocka_unit_test_setup_teardown (test_v2_memory, setup, teardown),
    cmocka_unit_test_setup_teardown (test_v2_events_io_hugetlb, setup, teardown),
    cmocka_unit_test_setup_teardown (test_v2_missing_files, setup, teardown),
    cmocka_unit_test_setup_teardown (test_v2_missing_dir, setup, teardown),
    cmocka_unit_test (test_parse_key),
    cmocka_unit_test (test_real_cgroup),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
