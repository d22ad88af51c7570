#include "platform/cgroup.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* mountinfo grows with every container's mounts; past this we would rather miss a mount
 * than hold megabytes. The cgroup mounts come early (they are set up at boot). */
#define MOUNTINFO_MAX (8u << 20)
#define PROC_CGROUP_MAX (64u << 10)

enum cg_controller
{
  CG_MEMORY,
  CG_CPU,
  CG_CPUACCT,
  CG_PIDS,
  CG_BLKIO,
  CG_HUGETLB,
  CG_N,
};

static const char *const controller_names[CG_N] = {
  [CG_MEMORY] = "memory", [CG_CPU] = "cpu",     [CG_CPUACCT] = "cpuacct",
  [CG_PIDS] = "pids",     [CG_BLKIO] = "blkio", [CG_HUGETLB] = "hugetlb",
};

struct cgroup
{
  bool v2;
  char *root;
  char *unified;
  char *dirs[CG_N];
};

/* What /proc/<pid>/cgroup says; the strings point into the caller's copy of the text. */
struct proc_paths
{
  const char *v1[CG_N];
  const char *unified;
};

struct mount_point
{
  const char *root; /* the hierarchy path mounted there (4th mountinfo field) */
  const char *target; /* the mount point */
};

struct mounts
{
  struct mount_point v1[CG_N];
  struct mount_point v2;
};

static int
controller_index (const char *name)
{
  for (size_t i = 0; i < CG_N; i++)
    if (strcmp (name, controller_names[i]) == 0)
      return (int) i;
  return -1;
}

/* "<id>:<controller,...>:<path>"; the path may itself contain ':'. */
static void
parse_proc_line (char *line, struct proc_paths *p)
{
  char *id = strsep (&line, ":");
  char *list = strsep (&line, ":");
  if (list == NULL || line == NULL)
    return;
  if (strcmp (id, "0") == 0 && list[0] == '\0')
    {
      p->unified = line;
      return;
    }
  for (char *name; (name = strsep (&list, ",")) != NULL;)
    {
      int i = controller_index (name);
      if (i >= 0 && p->v1[i] == NULL)
        p->v1[i] = line;
    }
}

static void
parse_proc_cgroup (char *text, struct proc_paths *p)
{
  for (char *line; (line = strsep (&text, "\n")) != NULL;)
    if (line[0] != '\0')
      parse_proc_line (line, p);
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void
unescape_octal (char *s)
{
  char *w = s;
  for (const char *r = s; *r; w++)
    {
      if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0'
          && r[3] <= '7')
        {
          *w = (char) ((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
          r += 4;
        }
      else
        *w = *r++;
    }
  *w = '\0';
}

static void
record_v1_mount (struct mounts *m, char *super_opts, const struct mount_point *mp)
{
  for (char *opt; (opt = strsep (&super_opts, ",")) != NULL;)
    {
      int i = controller_index (opt);
      /* The first mount wins: later ones are usually bind mounts of the same hierarchy. */
      if (i >= 0 && m->v1[i].target == NULL)
        m->v1[i] = *mp;
    }
}

/* "<id> <parent> <maj:min> <root> <target> <opts> [optional...] - <fstype> <source> <super>" */
static void
parse_mount_line (char *line, struct mounts *m)
{
  char *f[5];
  for (size_t i = 0; i < ARRAY_SIZE (f); i++)
    if ((f[i] = strsep (&line, " ")) == NULL)
      return;
  char *rest = line ? strstr (line, " - ") : NULL;
  if (rest == NULL)
    return;
  rest += 3;
  char *fstype = strsep (&rest, " ");
  char *source = strsep (&rest, " ");
  if (source == NULL || rest == NULL)
    return;
  unescape_octal (f[3]);
  unescape_octal (f[4]);
  struct mount_point mp = { .root = f[3], .target = f[4] };
  if (strcmp (fstype, "cgroup") == 0)
    record_v1_mount (m, rest, &mp);
  else if (strcmp (fstype, "cgroup2") == 0
           && (m->v2.target == NULL || strcmp (mp.target, "/sys/fs/cgroup") == 0))
    m->v2 = mp; /* the canonical place beats another cgroup2 mount */
}

static void
parse_mountinfo (char *text, struct mounts *m)
{
  for (char *line; (line = strsep (&text, "\n")) != NULL;)
    if (line[0] != '\0')
      parse_mount_line (line, m);
}

/* path as seen from the mount: the hierarchy path minus what the mount's root already is
 * (a cgroup mount inside a container often has root /<container path>). */
static char *
join_dir (const char *root, const struct mount_point *mp, const char *path)
{
  size_t n = strlen (mp->root);
  const char *rel = path;
  if (strcmp (mp->root, "/") != 0 && strncmp (path, mp->root, n) == 0
      && (path[n] == '/' || path[n] == '\0'))
    rel = path + n;
  if (strcmp (rel, "/") == 0)
    rel = "";
  return xasprintf ("%s%s%s", root, mp->target, rel);
}

static size_t
resolve_v1 (struct cgroup *cg, const struct proc_paths *p, const struct mounts *m)
{
  size_t found = 0;
  for (size_t i = 0; i < CG_N; i++)
    {
      if (p->v1[i] == NULL || m->v1[i].target == NULL)
        continue;
      cg->dirs[i] = join_dir (cg->root, &m->v1[i], p->v1[i]);
      found++;
    }
  return found;
}

struct cgroup *
cgroup_from_text (const char *proc_cgroup, const char *mountinfo, const char *root,
                  shim_error_t *err)
{
  cleanup_free char *pc = xstrdup (proc_cgroup);
  cleanup_free char *mi = xstrdup (mountinfo);
  struct proc_paths paths = { 0 };
  struct mounts mounts = { 0 };
  parse_proc_cgroup (pc, &paths);
  parse_mountinfo (mi, &mounts);

  cleanup_cgroup struct cgroup *cg = xcalloc (1, sizeof *cg);
  cg->root = xstrdup (root ? root : "");
  /* Hybrid hosts list both; the v1 controllers are the ones that hold the limits. */
  if (resolve_v1 (cg, &paths, &mounts) > 0)
    return steal_ptr (&cg);
  if (paths.unified != NULL && mounts.v2.target != NULL)
    {
      cg->v2 = true;
      cg->unified = join_dir (cg->root, &mounts.v2, paths.unified);
      return steal_ptr (&cg);
    }
  shim_error_make (err, 0, SHIM_NOT_FOUND, "no memory, cpu, pids, blkio or hugetlb cgroup found");
  return NULL;
}

struct cgroup *
cgroup_of_pid (pid_t pid, shim_error_t *err)
{
  cleanup_free char *path = xasprintf ("/proc/%d/cgroup", (int) pid);
  cleanup_free char *proc_cgroup = NULL;
  cleanup_free char *mountinfo = NULL;
  if (read_file (path, PROC_CGROUP_MAX, &proc_cgroup, NULL, err) < 0)
    {
      if (err && *err && ((*err)->errno_ == ENOENT || (*err)->errno_ == ESRCH))
        (*err)->code = SHIM_NOT_FOUND; /* the process is gone */
      shim_error_wrap (err, "cgroup of pid %d", (int) pid);
      return NULL;
    }
  if (read_file ("/proc/self/mountinfo", MOUNTINFO_MAX, &mountinfo, NULL, err) < 0)
    return NULL;
  struct cgroup *cg = cgroup_from_text (proc_cgroup, mountinfo, NULL, err);
  if (cg == NULL)
    shim_error_wrap (err, "pid %d", (int) pid);
  return cg;
}

bool
cgroup_is_v2 (const struct cgroup *cg)
{
  return cg->v2;
}

const char *
cgroup_dir (const struct cgroup *cg, const char *controller)
{
  if (cg->v2)
    return cg->unified;
  int i = controller ? controller_index (controller) : -1;
  return i < 0 ? NULL : cg->dirs[i];
}

const char *
cgroup_root (const struct cgroup *cg)
{
  return cg->root;
}

void
cgroup_free (struct cgroup *cg)
{
  if (cg == NULL)
    return;
  for (size_t i = 0; i < CG_N; i++)
    free (cg->dirs[i]);
  free (cg->unified);
  free (cg->root);
  free (cg);
}

void
cleanup_cgroupp (struct cgroup **cg)
{
  cgroup_free (*cg);
}
