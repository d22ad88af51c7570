/* Task Stats on cgroup v2: io.containerd.cgroups.v2.Metrics from the unified directory,
 * pressure (PSI) included where the kernel has it on. */

#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "platform/cgroup.h"
#include "io/containerd/cgroups/v2/metrics.pb-c.h"
#include "platform/stats_internal.h"
#include "base/util.h"

#define V2(type) Io__Containerd__Cgroups__V2__##type
#define NEW2(type, desc)                                                                           \
  ((V2 (type) *) stats_msg_new (&io__containerd__cgroups__v2__##desc##__descriptor))

/* "some avg10=0.00 avg60=0.00 avg300=0.00 total=0" */
static void
parse_psi_fields (char *fields, V2 (PSIData) * d)
{
  static const struct key_field avgs[] = {
    { "avg10", offsetof (V2 (PSIData), avg10) },
    { "avg60", offsetof (V2 (PSIData), avg60) },
    { "avg300", offsetof (V2 (PSIData), avg300) },
  };
  char *save = NULL;
  for (char *kv = strtok_r (fields, " ", &save); kv; kv = strtok_r (NULL, " ", &save))
    {
      char *value = strchr (kv, '=');
      if (value == NULL)
        continue;
      *value++ = '\0';
      const struct key_field *f = stats_find_key (avgs, ARRAY_SIZE (avgs), kv);
      if (f)
        *(double *) stats_field_at (d, f->offset) = strtod (value, NULL);
      else if (strcmp (kv, "total") == 0)
        stats_parse_num (value, &d->total);
    }
}

/* <resource>.pressure; NULL when PSI is off (the file is absent or reads EOPNOTSUPP). */
static V2 (PSIStats) * read_psi (int dirfd, const char *name)
{
  cleanup_free char *text = stats_read_text (dirfd, name);
  if (text == NULL)
    return NULL;
  V2 (PSIStats) *psi = NEW2 (PSIStats, psistats);
  char *cursor = text;
  for (char *line; (line = strsep (&cursor, "\n")) != NULL;)
    {
      char *kind = strsep (&line, " ");
      V2 (PSIData) **slot = strcmp (kind, "some") == 0   ? &psi->some
                            : strcmp (kind, "full") == 0 ? &psi->full
                                                         : NULL;
      if (slot == NULL || line == NULL || *slot != NULL)
        continue;
      *slot = NEW2 (PSIData, psidata);
      parse_psi_fields (line, *slot);
    }
  return psi;
}

static void
v2_pids (int dirfd, V2 (Metrics) * m)
{
  uint64_t current;
  if (!stats_read_u64 (dirfd, "pids.current", UINT64_MAX, &current))
    return;
  m->pids = NEW2 (PidsStat, pids_stat);
  m->pids->current = current;
  stats_read_u64 (dirfd, "pids.max", UINT64_MAX, &m->pids->limit);
}

#define CS2(key)                                                                                   \
  {                                                                                                \
#key, offsetof(V2(CPUStat), key)                                                               \
  }
static const struct key_field v2_cpu_stat[] = {
  CS2 (usage_usec),   CS2 (user_usec),      CS2 (system_usec), CS2 (nr_periods),
  CS2 (nr_throttled), CS2 (throttled_usec), CS2 (nr_bursts),   CS2 (burst_usec),
};

static void
v2_cpu (int dirfd, V2 (Metrics) * m)
{
  cleanup_free char *text = stats_read_text (dirfd, "cpu.stat");
  if (text == NULL)
    return;
  m->cpu = NEW2 (CPUStat, cpustat);
  stats_parse_keyed (text, v2_cpu_stat, ARRAY_SIZE (v2_cpu_stat), m->cpu);
  m->cpu->psi = read_psi (dirfd, "cpu.pressure");
}

/* memory.stat keys carry the field names. */
#define MS2(key)                                                                                   \
  {                                                                                                \
#key, offsetof(V2(MemoryStat), key)                                                            \
  }
static const struct key_field v2_memory_stat[] = {
  MS2 (anon),
  MS2 (file),
  MS2 (kernel_stack),
  MS2 (slab),
  MS2 (sock),
  MS2 (shmem),
  MS2 (file_mapped),
  MS2 (file_dirty),
  MS2 (file_writeback),
  MS2 (anon_thp),
  MS2 (inactive_anon),
  MS2 (active_anon),
  MS2 (inactive_file),
  MS2 (active_file),
  MS2 (unevictable),
  MS2 (slab_reclaimable),
  MS2 (slab_unreclaimable),
  MS2 (pgfault),
  MS2 (pgmajfault),
  MS2 (workingset_refault),
  MS2 (workingset_activate),
  MS2 (workingset_nodereclaim),
  MS2 (pgrefill),
  MS2 (pgscan),
  MS2 (pgsteal),
  MS2 (pgactivate),
  MS2 (pgdeactivate),
  MS2 (pglazyfree),
  MS2 (pglazyfreed),
  MS2 (thp_fault_alloc),
  MS2 (thp_collapse_alloc),
  MS2 (workingset_refault_anon),
  MS2 (workingset_refault_file),
  MS2 (workingset_activate_anon),
  MS2 (workingset_activate_file),
};

static const struct key_field v2_memory_files[] = {
  { "memory.current", offsetof (V2 (MemoryStat), usage) },
  { "memory.max", offsetof (V2 (MemoryStat), usage_limit) },
  { "memory.swap.current", offsetof (V2 (MemoryStat), swap_usage) },
  { "memory.swap.max", offsetof (V2 (MemoryStat), swap_limit) },
  { "memory.peak", offsetof (V2 (MemoryStat), max_usage) },
  { "memory.swap.peak", offsetof (V2 (MemoryStat), swap_max_usage) },
};

static void
v2_memory (int dirfd, V2 (Metrics) * m)
{
  cleanup_free char *text = stats_read_text (dirfd, "memory.stat");
  if (text == NULL)
    return;
  m->memory = NEW2 (MemoryStat, memory_stat);
  stats_parse_keyed (text, v2_memory_stat, ARRAY_SIZE (v2_memory_stat), m->memory);
  stats_read_files (dirfd, v2_memory_files, ARRAY_SIZE (v2_memory_files), UINT64_MAX, m->memory);
  m->memory->psi = read_psi (dirfd, "memory.pressure");
}

#define ME2(key)                                                                                   \
  {                                                                                                \
#key, offsetof(V2(MemoryEvents), key)                                                          \
  }
static const struct key_field v2_memory_events[] = {
  ME2 (low), ME2 (high), ME2 (max), ME2 (oom), ME2 (oom_kill), ME2 (oom_group_kill),
};

static void
v2_events (int dirfd, V2 (Metrics) * m)
{
  V2 (MemoryEvents) *ev = NEW2 (MemoryEvents, memory_events);
  if (stats_read_keyed (dirfd, "memory.events", v2_memory_events, ARRAY_SIZE (v2_memory_events), ev)
      == 0)
    {
      protobuf_c_message_free_unpacked (&ev->base, NULL);
      return;
    }
  m->memory_events = ev;
}

#define IO2(key)                                                                                   \
  {                                                                                                \
#key, offsetof(V2(IOEntry), key)                                                               \
  }
static const struct key_field v2_io_keys[] = { IO2 (rbytes), IO2 (wbytes), IO2 (rios), IO2 (wios) };

/* "<major>:<minor> rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N" */
static V2 (IOEntry) * parse_io_line (char *line)
{
  char *save = NULL;
  char *dev = strtok_r (line, " ", &save);
  char *minor = dev ? strchr (dev, ':') : NULL;
  if (minor == NULL)
    return NULL;
  *minor++ = '\0';
  uint64_t maj, min;
  if (!stats_parse_num (dev, &maj) || !stats_parse_num (minor, &min))
    return NULL;
  V2 (IOEntry) *e = NEW2 (IOEntry, ioentry);
  e->major = maj;
  e->minor = min;
  for (char *kv = strtok_r (NULL, " ", &save); kv; kv = strtok_r (NULL, " ", &save))
    {
      char *value = strchr (kv, '=');
      if (value == NULL)
        continue;
      *value++ = '\0';
      const struct key_field *f = stats_find_key (v2_io_keys, ARRAY_SIZE (v2_io_keys), kv);
      if (f)
        stats_parse_num (value, stats_field_at (e, f->offset));
    }
  return e;
}

static void
v2_io (int dirfd, V2 (Metrics) * m)
{
  cleanup_free char *text = stats_read_text (dirfd, "io.stat");
  if (text == NULL)
    return;
  m->io = NEW2 (IOStat, iostat);
  char *cursor = text;
  for (char *line; (line = strsep (&cursor, "\n")) != NULL;)
    {
      V2 (IOEntry) *e = parse_io_line (line);
      if (e)
        PUSH (m->io->usage, m->io->n_usage, e);
    }
  m->io->psi = read_psi (dirfd, "io.pressure");
}

static void
v2_hugetlb (int dirfd, V2 (Metrics) * m)
{
  static const struct key_field files[] = {
    { "current", offsetof (V2 (HugeTlbStat), current) },
    { "max", offsetof (V2 (HugeTlbStat), max) },
  };
  /* Allocations refused at the limit: the "max" count in hugetlb.<size>.events. */
  static const struct key_field failcnt = { "max", offsetof (V2 (HugeTlbStat), failcnt) };
  cleanup_strv char **sizes = stats_list_page_sizes (dirfd, ".current");
  for (size_t i = 0; sizes && sizes[i]; i++)
    {
      V2 (HugeTlbStat) *h = NEW2 (HugeTlbStat, huge_tlb_stat);
      h->pagesize = xstrdup (sizes[i]);
      for (size_t f = 0; f < ARRAY_SIZE (files); f++)
        {
          cleanup_free char *name = xasprintf ("hugetlb.%s.%s", sizes[i], files[f].key);
          stats_read_u64 (dirfd, name, UINT64_MAX, stats_field_at (h, files[f].offset));
        }
      cleanup_free char *events = xasprintf ("hugetlb.%s.events", sizes[i]);
      stats_read_keyed (dirfd, events, &failcnt, 1, h);
      PUSH (m->hugetlb, m->n_hugetlb, h);
    }
}

static void (*const v2_parts[]) (int dirfd, V2 (Metrics) * m) = {
  v2_pids, v2_cpu, v2_memory, v2_events, v2_io, v2_hugetlb,
};

ProtobufCMessage *
stats_collect_v2 (const struct cgroup *cg, shim_error_t *err)
{
  const char *dir = cgroup_dir (cg, "memory");
  cleanup_close int dirfd = dir ? open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  if (dirfd < 0)
    {
      shim_error_make (err, 0, SHIM_NOT_FOUND, "cgroup does not exist");
      return NULL;
    }
  V2 (Metrics) *m = NEW2 (Metrics, metrics);
  for (size_t i = 0; i < ARRAY_SIZE (v2_parts); i++)
    v2_parts[i](dirfd, m);
  return &m->base;
}
