/* The cgroup files Stats reads (v1 blkio, memory, cpu, cpuacct, pids, hugetlb; v2 io.stat,
 * PSI, memory.events, the keyed and single-value files) and /proc/partitions. Their readers
 * take a directory fd and file names, so the input becomes a fixture tree on tmpfs: lines
 * "== <file name>" start each file, "== partitions" is /proc/partitions. Each file lands in
 * its v1 controller's directory (by name prefix) and in the v2 directory; both are then
 * collected as Stats does. */
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "platform/cgroup.h"
#include "google/protobuf/any.pb-c.h"
#include "base/pb.h"
#include "platform/stats.h"
#include "base/util.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static const char *const v1_ctrls[] = { "hugetlb", "cpuacct", "memory", "blkio", "pids", "cpu" };
static char base[64];
static struct cgroup *cg_v1, *cg_v2;

static int
remove_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void) st;
  (void) flag;
  (void) ftw;
  remove (path);
  return 0;
}

static void
remove_tree (void)
{
  nftw (base, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
make_dir (const char *fmt, const char *name)
{
  cleanup_free char *dir = xasprintf (fmt, base, name);
  if (mkdir_p (dir, 0700) < 0)
    abort ();
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  (void) argc;
  (void) argv;
  snprintf (base, sizeof base, "/dev/shm/cshim-fuzz-stats.%d", (int) getpid ());
  cleanup_free char *proc = xstrdup ("0::/c\n");
  cleanup_free char *mounts = xstrdup ("");
  for (size_t i = 0; i < ARRAY_SIZE (v1_ctrls); i++)
    {
      make_dir ("%s/sys/fs/cgroup/%s/c", v1_ctrls[i]);
      char *p = xasprintf ("%s%zu:%s:/c\n", proc, i + 1, v1_ctrls[i]);
      char *m = xasprintf ("%s%zu 1 0:%zu / /sys/fs/cgroup/%s rw - cgroup cgroup rw,%s\n", mounts,
                           i + 30, i + 30, v1_ctrls[i], v1_ctrls[i]);
      free (steal_ptr (&proc));
      free (steal_ptr (&mounts));
      proc = p;
      mounts = m;
    }
  make_dir ("%s/sys/fs/cgroup/%s/c", "unified");
  make_dir ("%s/%s", "proc");
  shim_error_t err = NULL;
  cg_v1 = cgroup_from_text (proc, mounts, base, &err);
  cg_v2 = cgroup_from_text (
      "0::/c\n", "29 1 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n", base, &err);
  if (cg_v1 == NULL || cg_v2 == NULL || cgroup_is_v2 (cg_v1) || !cgroup_is_v2 (cg_v2))
    abort ();
  atexit (remove_tree);
  return 0;
}

static bool
valid_name (const char *s, size_t n)
{
  if (n == 0 || n > 64 || (s[0] == '.' && (n == 1 || (n == 2 && s[1] == '.'))))
    return false;
  for (size_t i = 0; i < n; i++)
    if (!(s[i] == '.' || s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
          || (s[i] >= '0' && s[i] <= '9')))
      return false;
  return true;
}

static void
put_file (const char *dir, const char *name, const char *text, size_t len)
{
  cleanup_free char *path = xasprintf ("%s/%s", dir, name);
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || write_all (fd, text, len) < 0)
    abort ();
  close (fd);
}

/* Where name goes: its v1 controller's directory (NULL: none) and the v2 one. */
static const char *
v1_dir_of (const char *name)
{
  for (size_t i = 0; i < ARRAY_SIZE (v1_ctrls); i++)
    if (strncmp (name, v1_ctrls[i], strlen (v1_ctrls[i])) == 0 && name[strlen (v1_ctrls[i])] == '.')
      return cgroup_dir (cg_v1, v1_ctrls[i]);
  return NULL;
}

static void
place (const char *name, const char *text, size_t len)
{
  if (strcmp (name, "partitions") == 0)
    {
      cleanup_free char *proc = xasprintf ("%s/proc", base);
      put_file (proc, name, text, len);
      return;
    }
  const char *v1 = v1_dir_of (name);
  if (v1)
    put_file (v1, name, text, len);
  put_file (cgroup_dir (cg_v2, "memory"), name, text, len);
  /* The flat keyed parser, as the OOM watcher uses it on memory.events. */
  cleanup_free char *copy = xstrndup (text, len);
  uint64_t v;
  (void) stats_parse_key (copy, "oom_kill", &v);
}

static void
collect (const struct cgroup *cg)
{
  shim_error_t err = NULL;
  Google__Protobuf__Any *any = stats_collect (cg, &err);
  if (any == NULL)
    shim_error_release (&err);
  pb_any_free (any);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char **names = NULL;
  size_t n = 0;
  const char *p = (const char *) data, *end = p + size;
  while (p < end && n < 64)
    {
      const char *nl = memchr (p, '\n', end - p);
      const char *line_end = nl ? nl : end;
      const char *next = nl ? nl + 1 : end;
      if (line_end - p > 3 && memcmp (p, "== ", 3) == 0 && valid_name (p + 3, line_end - p - 3))
        {
          char *name = xstrndup (p + 3, line_end - p - 3);
          const char *body = next, *q = next;
          while (q < end && !(end - q > 3 && memcmp (q, "== ", 3) == 0))
            {
              const char *e = memchr (q, '\n', end - q);
              q = e ? e + 1 : end;
            }
          place (name, body, q - body);
          names = xrealloc (names, (n + 1) * sizeof *names);
          names[n++] = name;
          next = q;
        }
      p = next;
    }
  collect (cg_v1);
  collect (cg_v2);
  for (size_t i = 0; i < n; i++)
    {
      cleanup_free char *part = xasprintf ("%s/proc/%s", base, names[i]);
      unlink (part);
      const char *v1 = v1_dir_of (names[i]);
      cleanup_free char *a = v1 ? xasprintf ("%s/%s", v1, names[i]) : NULL;
      cleanup_free char *b = xasprintf ("%s/%s", cgroup_dir (cg_v2, "memory"), names[i]);
      if (a)
        unlink (a);
      unlink (b);
      free (names[i]);
    }
  free (names);
  return 0;
}
