#include "stats.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup.h"
#include "google/protobuf/any.pb-c.h"
#include "io/containerd/cgroups/v1/metrics.pb-c.h"
#include "io/containerd/cgroups/v2/metrics.pb-c.h"
#include "pb.h"
#include "util.h"

/* Generous for blkio files on hosts with many devices; everything else is a few KB. */
#define CG_FILE_MAX (1u << 20)

#define V1(type) Io__Containerd__Cgroups__V1__##type
#define V2(type) Io__Containerd__Cgroups__V2__##type
#define NEW1(type, desc)                                                                           \
  ((V1 (type) *) msg_new (&io__containerd__cgroups__v1__##desc##__descriptor))
#define NEW2(type, desc)                                                                           \
  ((V2 (type) *) msg_new (&io__containerd__cgroups__v2__##desc##__descriptor))

/* Appends item to a protobuf-c repeated field (pointer array + count). */
#define PUSH(arr, n, item)                                                                         \
  do                                                                                               \
    {                                                                                              \
      (arr) = xrealloc ((arr), ((n) + 1) * sizeof *(arr));                                         \
      (arr)[(n)++] = (item);                                                                       \
    }                                                                                              \
  while (0)

/* A key (or file name) and where its uint64 goes inside a message. */
struct key_field
{
  const char *key;
  size_t offset;
};

/* Every message is built on the heap with the default allocator, so the whole tree is freed
 * by protobuf_c_message_free_unpacked (cleanup_pbmsg). */
static void *
msg_new (const ProtobufCMessageDescriptor *desc)
{
  void *m = xmalloc (desc->sizeof_message);
  protobuf_c_message_init (desc, m);
  return m;
}

static void *
field_at (void *msg, size_t offset)
{
  return (char *) msg + offset;
}

/* Decimal number, trailing blanks allowed. A negative value (v1 accounting can briefly go
 * below zero) reads as 0, as containerd/cgroups does. */
static bool
parse_num (const char *s, uint64_t *v)
{
  char *end;
  errno = 0;
  if (*s == '-')
    {
      long long n = strtoll (s, &end, 10);
      *v = 0;
      return errno == 0 && end != s && n <= 0 && strspn (end, " \t\n") == strlen (end);
    }
  unsigned long long n = strtoull (s, &end, 10);
  if (errno != 0 || end == s || strspn (end, " \t\n") != strlen (end))
    return false;
  *v = n;
  return true;
}

static const struct key_field *
find_key (const struct key_field *table, size_t n, const char *key)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp (table[i].key, key) == 0)
      return &table[i];
  return NULL;
}

/* "<key> <number>" lines into msg through table; returns how many lines landed. Unknown keys
 * are skipped: kernels keep adding them. */
static size_t
parse_keyed (const char *text, const struct key_field *table, size_t n, void *msg)
{
  cleanup_free char *copy = xstrdup (text);
  char *cursor = copy;
  size_t matched = 0;
  for (char *line; (line = strsep (&cursor, "\n")) != NULL;)
    {
      char *value = strchr (line, ' ');
      if (value == NULL)
        continue;
      *value++ = '\0';
      const struct key_field *f = find_key (table, n, line);
      uint64_t v;
      if (f == NULL || !parse_num (value, &v))
        continue;
      memcpy (field_at (msg, f->offset), &v, sizeof v);
      matched++;
    }
  return matched;
}

bool
stats_parse_key (const char *text, const char *key, uint64_t *value)
{
  const struct key_field one = { key, 0 };
  return parse_keyed (text, &one, 1, value) > 0;
}

/* NULL when the file cannot be read: an absent controller file is normal. */
static char *
read_text (int dirfd, const char *name)
{
  char *text = NULL;
  cleanup_error shim_error_t err = NULL;
  if (read_file_at (dirfd, name, CG_FILE_MAX, &text, NULL, &err) < 0)
    return NULL;
  return text;
}

/* Single-value file; "max" (no limit) reads as max_value. */
static bool
read_u64 (int dirfd, const char *name, uint64_t max_value, uint64_t *out)
{
  cleanup_free char *text = read_text (dirfd, name);
  if (text == NULL)
    return false;
  text[strcspn (text, "\n")] = '\0';
  if (strcmp (text, "max") == 0)
    {
      *out = max_value;
      return true;
    }
  return parse_num (text, out);
}

static size_t
read_keyed (int dirfd, const char *name, const struct key_field *table, size_t n, void *msg)
{
  cleanup_free char *text = read_text (dirfd, name);
  return text ? parse_keyed (text, table, n, msg) : 0;
}

/* Each readable file of table into msg; returns how many were read. */
static size_t
read_files (int dirfd, const struct key_field *table, size_t n, uint64_t max_value, void *msg)
{
  size_t found = 0;
  for (size_t i = 0; i < n; i++)
    if (read_u64 (dirfd, table[i].key, max_value, field_at (msg, table[i].offset)))
      found++;
  return found;
}

/* Huge page sizes as the kernel names them ("64KB", "2MB", "1GB"), for sorting. */
static uint64_t
page_size_bytes (const char *s)
{
  char *unit;
  uint64_t n = strtoull (s, &unit, 10);
  int shift = unit[0] == 'K' ? 10 : unit[0] == 'M' ? 20 : unit[0] == 'G' ? 30 : 0;
  return n << shift;
}

static int
page_size_cmp (const void *a, const void *b)
{
  uint64_t x = page_size_bytes (*(char *const *) a), y = page_size_bytes (*(char *const *) b);
  return x < y ? -1 : x > y;
}

/* The <size> of every "hugetlb.<size><suffix>" in the directory, smallest first. Sizes with a
 * further dot ("2MB.rsvd") are the reservation counters, not usage. */
static char **
list_page_sizes (int dirfd, const char *suffix)
{
  int fd = openat (dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *dir = fd >= 0 ? fdopendir (fd) : NULL;
  if (dir == NULL)
    {
      if (fd >= 0)
        close (fd);
      return NULL;
    }
  char **sizes = NULL;
  size_t slen = strlen (suffix);
  const size_t plen = strlen ("hugetlb.");
  for (struct dirent *de; (de = readdir (dir)) != NULL;)
    {
      size_t len = strlen (de->d_name);
      if (strncmp (de->d_name, "hugetlb.", plen) != 0 || len <= plen + slen
          || strcmp (de->d_name + len - slen, suffix) != 0)
        continue;
      cleanup_free char *name = xstrndup (de->d_name + plen, len - plen - slen);
      if (strchr (name, '.') == NULL)
        strv_push (&sizes, name);
    }
  closedir (dir);
  if (sizes)
    qsort (sizes, strv_len (sizes), sizeof *sizes, page_size_cmp);
  return sizes;
}

/* ---- cgroup v1 ---- */

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
  cleanup_free char *text = read_text (AT_FDCWD, path);
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
static V1 (BlkIOEntry) *
parse_blkio_line (char *line, const struct partitions *parts)
{
  char *tok[4], *save = NULL;
  size_t n = 0;
  for (char *t = strtok_r (line, " :", &save); t && n < ARRAY_SIZE (tok);
       t = strtok_r (NULL, " :", &save))
    tok[n++] = t;
  uint64_t major, minor, value;
  if (n < 3 || !parse_num (tok[0], &major) || !parse_num (tok[1], &minor)
      || !parse_num (tok[n - 1], &value))
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
  size_t n_offset;      /* the repeated field's count ... */
  size_t offset;        /* ... and array inside BlkIOStat */
};

#define BLK(name, fallback, field)                                                                 \
  { name, fallback, offsetof (V1 (BlkIOStat), n_##field), offsetof (V1 (BlkIOStat), field) }

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
  BLK ("blkio.throttle.io_serviced_recursive", "blkio.throttle.io_serviced",
       io_serviced_recursive),
  BLK ("blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_service_bytes",
       io_service_bytes_recursive),
};

static size_t
read_blkio_file (int dirfd, const struct blkio_file *f, const struct partitions *parts,
                 V1 (BlkIOStat) *stat)
{
  cleanup_free char *text = read_text (dirfd, f->name);
  if (text == NULL && f->fallback)
    text = read_text (dirfd, f->fallback);
  size_t *n = field_at (stat, f->n_offset);
  V1 (BlkIOEntry) ***items = field_at (stat, f->offset);
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
v1_blkio (int dirfd, const struct cgroup *cg, V1 (Metrics) *m)
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

#define MS1(key, field) { key, offsetof (V1 (MemoryStat), field) }
static const struct key_field v1_memory_stat[] = {
  MS1 ("cache", cache), MS1 ("rss", rss), MS1 ("rss_huge", rss_huge),
  MS1 ("mapped_file", mapped_file), MS1 ("dirty", dirty), MS1 ("writeback", writeback),
  MS1 ("pgpgin", pg_pg_in), MS1 ("pgpgout", pg_pg_out), MS1 ("pgfault", pg_fault),
  MS1 ("pgmajfault", pg_maj_fault), MS1 ("inactive_anon", inactive_anon),
  MS1 ("active_anon", active_anon), MS1 ("inactive_file", inactive_file),
  MS1 ("active_file", active_file), MS1 ("unevictable", unevictable),
  MS1 ("hierarchical_memory_limit", hierarchical_memory_limit),
  MS1 ("hierarchical_memsw_limit", hierarchical_swap_limit), MS1 ("total_cache", total_cache),
  MS1 ("total_rss", total_rss), MS1 ("total_rss_huge", total_rss_huge),
  MS1 ("total_mapped_file", total_mapped_file), MS1 ("total_dirty", total_dirty),
  MS1 ("total_writeback", total_writeback), MS1 ("total_pgpgin", total_pg_pg_in),
  MS1 ("total_pgpgout", total_pg_pg_out), MS1 ("total_pgfault", total_pg_fault),
  MS1 ("total_pgmajfault", total_pg_maj_fault), MS1 ("total_inactive_anon", total_inactive_anon),
  MS1 ("total_active_anon", total_active_anon), MS1 ("total_inactive_file", total_inactive_file),
  MS1 ("total_active_file", total_active_file), MS1 ("total_unevictable", total_unevictable),
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
v1_memory_entry (int dirfd, const char *prefix, V1 (MemoryEntry) *e)
{
  for (size_t i = 0; i < ARRAY_SIZE (v1_entry_files); i++)
    {
      cleanup_free char *name = xasprintf ("%s%s", prefix, v1_entry_files[i].key);
      read_u64 (dirfd, name, 0, field_at (e, v1_entry_files[i].offset));
    }
}

static void
v1_oom_control (int dirfd, V1 (Metrics) *m)
{
  cleanup_free char *text = read_text (dirfd, "memory.oom_control");
  if (text == NULL)
    return;
  m->memory_oom_control = NEW1 (MemoryOomControl, memory_oom_control);
  parse_keyed (text, v1_oom_keys, ARRAY_SIZE (v1_oom_keys), m->memory_oom_control);
}

static void
v1_memory (int dirfd, const struct cgroup *cg, V1 (Metrics) *m)
{
  (void) cg;
  v1_oom_control (dirfd, m);
  cleanup_free char *text = read_text (dirfd, "memory.stat");
  if (text == NULL)
    return;
  m->memory = NEW1 (MemoryStat, memory_stat);
  parse_keyed (text, v1_memory_stat, ARRAY_SIZE (v1_memory_stat), m->memory);
  /* All four entries are always present (ctr prints memory.usage without a nil check);
   * swap and kmem stay zero when that accounting is off. */
  for (size_t i = 0; i < ARRAY_SIZE (v1_memory_entries); i++)
    {
      V1 (MemoryEntry) *e = NEW1 (MemoryEntry, memory_entry);
      memcpy (field_at (m->memory, v1_memory_entries[i].offset), &e, sizeof e);
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
v1_cpuacct (int dirfd, const struct cgroup *cg, V1 (Metrics) *m)
{
  (void) cg;
  V1 (CPUUsage) *u = m->cpu->usage;
  read_u64 (dirfd, "cpuacct.usage", 0, &u->total);
  /* cpuacct.stat counts USER_HZ ticks: "user N" and "system N". */
  uint64_t ticks[2] = { 0, 0 };
  static const struct key_field stat_keys[] = { { "user", 0 }, { "system", sizeof ticks[0] } };
  if (read_keyed (dirfd, "cpuacct.stat", stat_keys, ARRAY_SIZE (stat_keys), ticks) > 0)
    {
      u->user = ticks_to_ns (ticks[0]);
      u->kernel = ticks_to_ns (ticks[1]);
    }
  cleanup_free char *percpu = read_text (dirfd, "cpuacct.usage_percpu");
  char *cursor = percpu, *tok;
  while (cursor && (tok = strsep (&cursor, " \n")) != NULL)
    {
      uint64_t v;
      if (*tok && parse_num (tok, &v))
        PUSH (u->per_cpu, u->n_per_cpu, v);
    }
}

static void
v1_cpu (int dirfd, const struct cgroup *cg, V1 (Metrics) *m)
{
  (void) cg;
  static const struct key_field keys[] = {
    { "nr_periods", offsetof (V1 (Throttle), periods) },
    { "nr_throttled", offsetof (V1 (Throttle), throttled_periods) },
    { "throttled_time", offsetof (V1 (Throttle), throttled_time) },
  };
  read_keyed (dirfd, "cpu.stat", keys, ARRAY_SIZE (keys), m->cpu->throttling);
}

static void
v1_pids (int dirfd, const struct cgroup *cg, V1 (Metrics) *m)
{
  (void) cg;
  uint64_t current;
  if (!read_u64 (dirfd, "pids.current", 0, &current))
    return; /* the root cgroup has no pids files */
  m->pids = NEW1 (PidsStat, pids_stat);
  m->pids->current = current;
  read_u64 (dirfd, "pids.max", 0, &m->pids->limit); /* v1 reports no limit as 0 */
}

static void
v1_hugetlb (int dirfd, const struct cgroup *cg, V1 (Metrics) *m)
{
  (void) cg;
  static const struct key_field files[] = {
    { "usage_in_bytes", offsetof (V1 (HugetlbStat), usage) },
    { "max_usage_in_bytes", offsetof (V1 (HugetlbStat), max) },
    { "failcnt", offsetof (V1 (HugetlbStat), failcnt) },
  };
  cleanup_strv char **sizes = list_page_sizes (dirfd, ".usage_in_bytes");
  for (size_t i = 0; sizes && sizes[i]; i++)
    {
      V1 (HugetlbStat) *h = NEW1 (HugetlbStat, hugetlb_stat);
      h->pagesize = xstrdup (sizes[i]);
      for (size_t f = 0; f < ARRAY_SIZE (files); f++)
        {
          cleanup_free char *name = xasprintf ("hugetlb.%s.%s", sizes[i], files[f].key);
          read_u64 (dirfd, name, 0, field_at (h, files[f].offset));
        }
      PUSH (m->hugetlb, m->n_hugetlb, h);
    }
}

/* One collector per v1 controller directory. */
static const struct
{
  const char *controller;
  void (*collect) (int dirfd, const struct cgroup *cg, V1 (Metrics) *m);
} v1_parts[] = {
  { "memory", v1_memory }, { "cpuacct", v1_cpuacct }, { "cpu", v1_cpu },
  { "pids", v1_pids },     { "blkio", v1_blkio },     { "hugetlb", v1_hugetlb },
};

static ProtobufCMessage *
collect_v1 (const struct cgroup *cg, shim_error_t *err)
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

/* ---- cgroup v2 ---- */

/* "some avg10=0.00 avg60=0.00 avg300=0.00 total=0" */
static void
parse_psi_fields (char *fields, V2 (PSIData) *d)
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
      const struct key_field *f = find_key (avgs, ARRAY_SIZE (avgs), kv);
      if (f)
        *(double *) field_at (d, f->offset) = strtod (value, NULL);
      else if (strcmp (kv, "total") == 0)
        parse_num (value, &d->total);
    }
}

/* <resource>.pressure; NULL when PSI is off (the file is absent or reads EOPNOTSUPP). */
static V2 (PSIStats) *
read_psi (int dirfd, const char *name)
{
  cleanup_free char *text = read_text (dirfd, name);
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
v2_pids (int dirfd, V2 (Metrics) *m)
{
  uint64_t current;
  if (!read_u64 (dirfd, "pids.current", UINT64_MAX, &current))
    return;
  m->pids = NEW2 (PidsStat, pids_stat);
  m->pids->current = current;
  read_u64 (dirfd, "pids.max", UINT64_MAX, &m->pids->limit);
}

#define CS2(key) { #key, offsetof (V2 (CPUStat), key) }
static const struct key_field v2_cpu_stat[] = {
  CS2 (usage_usec),   CS2 (user_usec),      CS2 (system_usec), CS2 (nr_periods),
  CS2 (nr_throttled), CS2 (throttled_usec), CS2 (nr_bursts),   CS2 (burst_usec),
};

static void
v2_cpu (int dirfd, V2 (Metrics) *m)
{
  cleanup_free char *text = read_text (dirfd, "cpu.stat");
  if (text == NULL)
    return;
  m->cpu = NEW2 (CPUStat, cpustat);
  parse_keyed (text, v2_cpu_stat, ARRAY_SIZE (v2_cpu_stat), m->cpu);
  m->cpu->psi = read_psi (dirfd, "cpu.pressure");
}

/* memory.stat keys carry the field names. */
#define MS2(key) { #key, offsetof (V2 (MemoryStat), key) }
static const struct key_field v2_memory_stat[] = {
  MS2 (anon), MS2 (file), MS2 (kernel_stack), MS2 (slab), MS2 (sock), MS2 (shmem),
  MS2 (file_mapped), MS2 (file_dirty), MS2 (file_writeback), MS2 (anon_thp), MS2 (inactive_anon),
  MS2 (active_anon), MS2 (inactive_file), MS2 (active_file), MS2 (unevictable),
  MS2 (slab_reclaimable), MS2 (slab_unreclaimable), MS2 (pgfault), MS2 (pgmajfault),
  MS2 (workingset_refault), MS2 (workingset_activate), MS2 (workingset_nodereclaim),
  MS2 (pgrefill), MS2 (pgscan), MS2 (pgsteal), MS2 (pgactivate), MS2 (pgdeactivate),
  MS2 (pglazyfree), MS2 (pglazyfreed), MS2 (thp_fault_alloc), MS2 (thp_collapse_alloc),
  MS2 (workingset_refault_anon), MS2 (workingset_refault_file), MS2 (workingset_activate_anon),
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
v2_memory (int dirfd, V2 (Metrics) *m)
{
  cleanup_free char *text = read_text (dirfd, "memory.stat");
  if (text == NULL)
    return;
  m->memory = NEW2 (MemoryStat, memory_stat);
  parse_keyed (text, v2_memory_stat, ARRAY_SIZE (v2_memory_stat), m->memory);
  read_files (dirfd, v2_memory_files, ARRAY_SIZE (v2_memory_files), UINT64_MAX, m->memory);
  m->memory->psi = read_psi (dirfd, "memory.pressure");
}

#define ME2(key) { #key, offsetof (V2 (MemoryEvents), key) }
static const struct key_field v2_memory_events[] = {
  ME2 (low), ME2 (high), ME2 (max), ME2 (oom), ME2 (oom_kill), ME2 (oom_group_kill),
};

static void
v2_events (int dirfd, V2 (Metrics) *m)
{
  V2 (MemoryEvents) *ev = NEW2 (MemoryEvents, memory_events);
  if (read_keyed (dirfd, "memory.events", v2_memory_events, ARRAY_SIZE (v2_memory_events), ev)
      == 0)
    {
      protobuf_c_message_free_unpacked (&ev->base, NULL);
      return;
    }
  m->memory_events = ev;
}

#define IO2(key) { #key, offsetof (V2 (IOEntry), key) }
static const struct key_field v2_io_keys[] = { IO2 (rbytes), IO2 (wbytes), IO2 (rios), IO2 (wios) };

/* "<major>:<minor> rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N" */
static V2 (IOEntry) *
parse_io_line (char *line)
{
  char *save = NULL;
  char *dev = strtok_r (line, " ", &save);
  char *minor = dev ? strchr (dev, ':') : NULL;
  if (minor == NULL)
    return NULL;
  *minor++ = '\0';
  uint64_t maj, min;
  if (!parse_num (dev, &maj) || !parse_num (minor, &min))
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
      const struct key_field *f = find_key (v2_io_keys, ARRAY_SIZE (v2_io_keys), kv);
      if (f)
        parse_num (value, field_at (e, f->offset));
    }
  return e;
}

static void
v2_io (int dirfd, V2 (Metrics) *m)
{
  cleanup_free char *text = read_text (dirfd, "io.stat");
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
v2_hugetlb (int dirfd, V2 (Metrics) *m)
{
  static const struct key_field files[] = {
    { "current", offsetof (V2 (HugeTlbStat), current) },
    { "max", offsetof (V2 (HugeTlbStat), max) },
  };
  /* Allocations refused at the limit: the "max" count in hugetlb.<size>.events. */
  static const struct key_field failcnt = { "max", offsetof (V2 (HugeTlbStat), failcnt) };
  cleanup_strv char **sizes = list_page_sizes (dirfd, ".current");
  for (size_t i = 0; sizes && sizes[i]; i++)
    {
      V2 (HugeTlbStat) *h = NEW2 (HugeTlbStat, huge_tlb_stat);
      h->pagesize = xstrdup (sizes[i]);
      for (size_t f = 0; f < ARRAY_SIZE (files); f++)
        {
          cleanup_free char *name = xasprintf ("hugetlb.%s.%s", sizes[i], files[f].key);
          read_u64 (dirfd, name, UINT64_MAX, field_at (h, files[f].offset));
        }
      cleanup_free char *events = xasprintf ("hugetlb.%s.events", sizes[i]);
      read_keyed (dirfd, events, &failcnt, 1, h);
      PUSH (m->hugetlb, m->n_hugetlb, h);
    }
}

static void (*const v2_parts[]) (int dirfd, V2 (Metrics) *m) = {
  v2_pids, v2_cpu, v2_memory, v2_events, v2_io, v2_hugetlb,
};

static ProtobufCMessage *
collect_v2 (const struct cgroup *cg, shim_error_t *err)
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

struct Google__Protobuf__Any *
stats_collect (const struct cgroup *cg, shim_error_t *err)
{
  if (cg == NULL)
    {
      shim_error_make (err, 0, SHIM_NOT_FOUND, "cgroup does not exist");
      return NULL;
    }
  cleanup_pbmsg ProtobufCMessage *m = cgroup_is_v2 (cg) ? collect_v2 (cg, err)
                                                        : collect_v1 (cg, err);
  if (m == NULL)
    return NULL;
  return pb_any_pack (m);
}
