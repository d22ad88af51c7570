/* Task Stats on cgroup v1 (also hybrid): io.containerd.cgroups.v1.Metrics from the
 * directories of the memory, cpuacct, cpu, pids, blkio and hugetlb controllers. */

#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "platform/cgroup.h"
#include "io/containerd/cgroups/v1/metrics.pb-c.h"
#include "platform/stats_internal.h"
#include "base/util.h"

#define V1(type) Io__Containerd__Cgroups__V1__##type
#define NEW1(type, desc)                                                                           \
  ((V1 (type) *) stats_msg_new (&io__containerd__cgroups__v1__##desc##__descriptor))

/* major:minor → /dev/<name>, from /proc/partitions, as blkio entries carry a device name. */
struct partition
{
  uint64_t major, minor;
  char name[64];
};

struct partitions
{
  struct partition *items;
  size_t n;
};

static void
partitions_load (const struct cgroup *cg, struct partitions *p)
{
  cleanup_free char *path = xasprintf ("%s/proc/partitions", cgroup_root (cg));
  cleanup_free char *text = stats_read_text (AT_FDCWD, path);
  char *cursor = text;
  for (char *line; cursor && (line = strsep (&cursor, "\n")) != NULL;)
    {
      struct partition part;
      /* The header and blank lines do not match and are skipped. */
      if (sscanf (line, "%" SCNu64 " %" SCNu64 " %*u %63s", &part.major, &part.minor, part.name)
          != 3)
        continue;
      PUSH (p->items, p->n, part);
    }
}

static char *
partition_device (const struct partitions *p, uint64_t major, uint64_t minor)
{
  for (size_t i = 0; i < p->n; i++)
    if (p->items[i].major == major && p->items[i].minor == minor)
      return xasprintf ("/dev/%s", p->items[i].name);
  return xstrdup ("");
}

/* "<major>:<minor> [<op>] <value>"; the "Total <value>" line yields nothing. */
static V1 (BlkIOEntry) * parse_blkio_line (char *line, const struct partitions *parts)
{
  char *tok[4], *save = NULL;
  size_t n = 0;
  for (char *t = strtok_r (line, " :", &save); t && n < ARRAY_SIZE (tok);
       t = strtok_r (NULL, " :", &save))
    tok[n++] = t;
  uint64_t major, minor, value;
  if (n < 3 || !stats_parse_num (tok[0], &major) || !stats_parse_num (tok[1], &minor)
      || !stats_parse_num (tok[n - 1], &value))
    return NULL;
  V1 (BlkIOEntry) *e = NEW1 (BlkIOEntry, blk_ioentry);
  e->major = major;
  e->minor = minor;
  e->value = value;
  e->op = xstrdup (n == 4 ? tok[2] : "");
  e->device = partition_device (parts, major, minor);
  return e;
}

struct blkio_file
{
  const char *name;
  const char *fallback; /* read when name is absent (older kernels) */
  size_t n_offset; /* the repeated field's count ... */
  size_t offset; /* ... and array inside BlkIOStat */
};

#define BLK(name, fallback, field)                                                                 \
  {                                                                                                \
    name, fallback, offsetof (V1 (BlkIOStat), n_##field), offsetof (V1 (BlkIOStat), field)         \
  }

/* The CFQ/BFQ-era recursive files; empty or absent on blk-mq hosts. */
static const struct blkio_file blkio_cfq[] = {
  BLK ("blkio.sectors_recursive", NULL, sectors_recursive),
  BLK ("blkio.io_service_bytes_recursive", NULL, io_service_bytes_recursive),
  BLK ("blkio.io_serviced_recursive", NULL, io_serviced_recursive),
  BLK ("blkio.io_queued_recursive", NULL, io_queued_recursive),
  BLK ("blkio.io_service_time_recursive", NULL, io_service_time_recursive),
  BLK ("blkio.io_wait_time_recursive", NULL, io_wait_time_recursive),
  BLK ("blkio.io_merged_recursive", NULL, io_merged_recursive),
  BLK ("blkio.time_recursive", NULL, io_time_recursive),
};

/* What the throttle layer counts on every kernel. The _recursive forms match the field names
 * (and include child cgroups); containerd/cgroups reads the plain files, which are the same
 * for a container without sub-cgroups. */
static const struct blkio_file blkio_throttle[] = {
  BLK ("blkio.throttle.io_serviced_recursive", "blkio.throttle.io_serviced", io_serviced_recursive),
  BLK ("blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_service_bytes",
       io_service_bytes_recursive),
};

static size_t
read_blkio_file (int dirfd, const struct blkio_file *f, const struct partitions *parts,
                 V1 (BlkIOStat) * stat)
{
  cleanup_free char *text = stats_read_text (dirfd, f->name);
  if (text == NULL && f->fallback)
    text = stats_read_text (dirfd, f->fallback);
  size_t *n = stats_field_at (stat, f->n_offset);
  V1 (BlkIOEntry) ***items = stats_field_at (stat, f->offset);
  size_t before = *n;
  char *cursor = text;
  for (char *line; cursor && (line = strsep (&cursor, "\n")) != NULL;)
    {
      V1 (BlkIOEntry) *e = parse_blkio_line (line, parts);
      if (e)
        PUSH (*items, *n, e);
    }
  return *n - before;
}

static void
v1_blkio (int dirfd, const struct cgroup *cg, V1 (Metrics) * m)
{
  struct partitions parts = { 0 };
  partitions_load (cg, &parts);
  m->blkio = NEW1 (BlkIOStat, blk_iostat);
  size_t found = 0;
  for (size_t i = 0; i < ARRAY_SIZE (blkio_cfq); i++)
    found += read_blkio_file (dirfd, &blkio_cfq[i], &parts, m->blkio);
  for (size_t i = 0; found == 0 && i < ARRAY_SIZE (blkio_throttle); i++)
    read_blkio_file (dirfd, &blkio_throttle[i], &parts, m->blkio);
  free (parts.items);
}

#define MS1(key, field)                                                                            \
  {                                                                                                \
    key, offsetof (V1 (MemoryStat), field)                                                         \
  }
static const struct key_field v1_memory_stat[] = {
  MS1 ("cache", cache),
  MS1 ("rss", rss),
  MS1 ("rss_huge", rss_huge),
  MS1 ("mapped_file", mapped_file),
  MS1 ("dirty", dirty),
  MS1 ("writeback", writeback),
  MS1 ("pgpgin", pg_pg_in),
  MS1 ("pgpgout", pg_pg_out),
  MS1 ("pgfault", pg_fault),
  MS1 ("pgmajfault", pg_maj_fault),
  MS1 ("inactive_anon", inactive_anon),
  MS1 ("active_anon", active_anon),
  MS1 ("inactive_file", inactive_file),
  MS1 ("active_file", active_file),
  MS1 ("unevictable", unevictable),
  MS1 ("hierarchical_memory_limit", hierarchical_memory_limit),
  MS1 ("hierarchical_memsw_limit", hierarchical_swap_limit),
  MS1 ("total_cache", total_cache),
  MS1 ("total_rss", total_rss),
  MS1 ("total_rss_huge", total_rss_huge),
  MS1 ("total_mapped_file", total_mapped_file),
  MS1 ("total_dirty", total_dirty),
  MS1 ("total_writeback", total_writeback),
  MS1 ("total_pgpgin", total_pg_pg_in),
  MS1 ("total_pgpgout", total_pg_pg_out),
  MS1 ("total_pgfault", total_pg_fault),
  MS1 ("total_pgmajfault", total_pg_maj_fault),
  MS1 ("total_inactive_anon", total_inactive_anon),
  MS1 ("total_active_anon", total_active_anon),
  MS1 ("total_inactive_file", total_inactive_file),
  MS1 ("total_active_file", total_active_file),
  MS1 ("total_unevictable", total_unevictable),
};

/* memory.<prefix><file> → one MemoryEntry each. */
static const struct key_field v1_memory_entries[] = {
  MS1 ("memory.", usage),
  MS1 ("memory.memsw.", swap),
  MS1 ("memory.kmem.", kernel),
  MS1 ("memory.kmem.tcp.", kernel_tcp),
};

static const struct key_field v1_entry_files[] = {
  { "usage_in_bytes", offsetof (V1 (MemoryEntry), usage) },
  { "max_usage_in_bytes", offsetof (V1 (MemoryEntry), max) },
  { "failcnt", offsetof (V1 (MemoryEntry), failcnt) },
  { "limit_in_bytes", offsetof (V1 (MemoryEntry), limit) },
};

static const struct key_field v1_oom_keys[] = {
  { "oom_kill_disable", offsetof (V1 (MemoryOomControl), oom_kill_disable) },
  { "under_oom", offsetof (V1 (MemoryOomControl), under_oom) },
  { "oom_kill", offsetof (V1 (MemoryOomControl), oom_kill) },
};

static void
v1_memory_entry (int dirfd, const char *prefix, V1 (MemoryEntry) * e)
{
  for (size_t i = 0; i < ARRAY_SIZE (v1_entry_files); i++)
    {
      cleanup_free char *name = xasprintf ("%s%s", prefix, v1_entry_files[i].key);
      stats_read_u64 (dirfd, name, 0, stats_field_at (e, v1_entry_files[i].offset));
    }
}

static void
v1_oom_control (int dirfd, V1 (Metrics) * m)
{
  cleanup_free char *text = stats_read_text (dirfd, "memory.oom_control");
  if (text == NULL)
    return;
  m->memory_oom_control = NEW1 (MemoryOomControl, memory_oom_control);
  stats_parse_keyed (text, v1_oom_keys, ARRAY_SIZE (v1_oom_keys), m->memory_oom_control);
}

static void
v1_memory (int dirfd, const struct cgroup *cg, V1 (Metrics) * m)
{
  (void) cg;
  v1_oom_control (dirfd, m);
  cleanup_free char *text = stats_read_text (dirfd, "memory.stat");
  if (text == NULL)
    return;
  m->memory = NEW1 (MemoryStat, memory_stat);
  stats_parse_keyed (text, v1_memory_stat, ARRAY_SIZE (v1_memory_stat), m->memory);
  /* All four entries are always present (ctr prints memory.usage without a nil check);
   * swap and kmem stay zero when that accounting is off. */
  for (size_t i = 0; i < ARRAY_SIZE (v1_memory_entries); i++)
    {
      V1 (MemoryEntry) *e = NEW1 (MemoryEntry, memory_entry);
      memcpy (stats_field_at (m->memory, v1_memory_entries[i].offset), &e, sizeof e);
      v1_memory_entry (dirfd, v1_memory_entries[i].key, e);
    }
}

/* USER_HZ ticks → ns without overflowing on long-lived cgroups. */
static uint64_t
ticks_to_ns (uint64_t ticks)
{
  long hz = sysconf (_SC_CLK_TCK);
  uint64_t h = hz > 0 ? (uint64_t) hz : 100;
  return ticks / h * 1000000000ull + ticks % h * 1000000000ull / h;
}

static void
v1_cpuacct (int dirfd, const struct cgroup *cg, V1 (Metrics) * m)
{
  (void) cg;
  V1 (CPUUsage) *u = m->cpu->usage;
  stats_read_u64 (dirfd, "cpuacct.usage", 0, &u->total);
  /* cpuacct.stat counts USER_HZ ticks: "user N" and "system N". */
  uint64_t ticks[2] = { 0, 0 };
  static const struct key_field stat_keys[] = { { "user", 0 }, { "system", sizeof ticks[0] } };
  if (stats_read_keyed (dirfd, "cpuacct.stat", stat_keys, ARRAY_SIZE (stat_keys), ticks) > 0)
    {
      u->user = ticks_to_ns (ticks[0]);
      u->kernel = ticks_to_ns (ticks[1]);
    }
  cleanup_free char *percpu = stats_read_text (dirfd, "cpuacct.usage_percpu");
  char *cursor = percpu, *tok;
  while (cursor && (tok = strsep (&cursor, " \n")) != NULL)
    {
      uint64_t v;
      if (*tok && stats_parse_num (tok, &v))
        PUSH (u->per_cpu, u->n_per_cpu, v);
    }
}

static void
v1_cpu (int dirfd, const struct cgroup *cg, V1 (Metrics) * m)
{
  (void) cg;
  static const struct key_field keys[] = {
    { "nr_periods", offsetof (V1 (Throttle), periods) },
    { "nr_throttled", offsetof (V1 (Throttle), throttled_periods) },
    { "throttled_time", offsetof (V1 (Throttle), throttled_time) },
  };
  stats_read_keyed (dirfd, "cpu.stat", keys, ARRAY_SIZE (keys), m->cpu->throttling);
}

static void
v1_pids (int dirfd, const struct cgroup *cg, V1 (Metrics) * m)
{
  (void) cg;
  uint64_t current;
  if (!stats_read_u64 (dirfd, "pids.current", 0, &current))
    return; /* the root cgroup has no pids files */
  m->pids = NEW1 (PidsStat, pids_stat);
  m->pids->current = current;
  stats_read_u64 (dirfd, "pids.max", 0, &m->pids->limit); /* v1 reports no limit as 0 */
}

static void
v1_hugetlb (int dirfd, const struct cgroup *cg, V1 (Metrics) * m)
{
  (void) cg;
  static const struct key_field files[] = {
    { "usage_in_bytes", offsetof (V1 (HugetlbStat), usage) },
    { "max_usage_in_bytes", offsetof (V1 (HugetlbStat), max) },
    { "failcnt", offsetof (V1 (HugetlbStat), failcnt) },
  };
  cleanup_strv char **sizes = stats_list_page_sizes (dirfd, ".usage_in_bytes");
  for (size_t i = 0; sizes && sizes[i]; i++)
    {
      V1 (HugetlbStat) *h = NEW1 (HugetlbStat, hugetlb_stat);
      h->pagesize = xstrdup (sizes[i]);
      for (size_t f = 0; f < ARRAY_SIZE (files); f++)
        {
          cleanup_free char *name = xasprintf ("hugetlb.%s.%s", sizes[i], files[f].key);
          stats_read_u64 (dirfd, name, 0, stats_field_at (h, files[f].offset));
        }
      PUSH (m->hugetlb, m->n_hugetlb, h);
    }
}

/* One collector per v1 controller directory. */
static const struct
{
  const char *controller;
  void (*collect) (int dirfd, const struct cgroup *cg, V1 (Metrics) * m);
} v1_parts[] = {
  { "memory", v1_memory }, { "cpuacct", v1_cpuacct }, { "cpu", v1_cpu },
  { "pids", v1_pids },     { "blkio", v1_blkio },     { "hugetlb", v1_hugetlb },
};

ProtobufCMessage *
stats_collect_v1 (const struct cgroup *cg, shim_error_t *err)
{
  V1 (Metrics) *m = NEW1 (Metrics, metrics);
  /* Like containerd's shim, cpu is always there with both parts (ctr dereferences them). */
  m->cpu = NEW1 (CPUStat, cpustat);
  m->cpu->usage = NEW1 (CPUUsage, cpuusage);
  m->cpu->throttling = NEW1 (Throttle, throttle);
  size_t found = 0;
  for (size_t i = 0; i < ARRAY_SIZE (v1_parts); i++)
    {
      const char *dir = cgroup_dir (cg, v1_parts[i].controller);
      cleanup_close int dirfd = dir ? open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
      if (dirfd < 0)
        continue;
      v1_parts[i].collect (dirfd, cg, m);
      found++;
    }
  if (found == 0)
    {
      protobuf_c_message_free_unpacked (&m->base, NULL);
      shim_error_make (err, 0, SHIM_NOT_FOUND, "cgroup does not exist");
      return NULL;
    }
  return &m->base;
}
