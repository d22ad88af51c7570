#include "platform/mount.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "base/util.h"

struct flag_spec
{
  const char *name;
  bool clear;
  unsigned long flag;
};

static const struct flag_spec flag_table[] = {
  { "async", true, MS_SYNCHRONOUS },
  { "atime", true, MS_NOATIME },
  { "bind", false, MS_BIND },
  { "defaults", false, 0 },
  { "dev", true, MS_NODEV },
  { "diratime", true, MS_NODIRATIME },
  { "dirsync", false, MS_DIRSYNC },
  { "exec", true, MS_NOEXEC },
  { "mand", false, MS_MANDLOCK },
  { "noatime", false, MS_NOATIME },
  { "nodev", false, MS_NODEV },
  { "nodiratime", false, MS_NODIRATIME },
  { "noexec", false, MS_NOEXEC },
  { "nomand", true, MS_MANDLOCK },
  { "norelatime", true, MS_RELATIME },
  { "nostrictatime", true, MS_STRICTATIME },
  { "nosuid", false, MS_NOSUID },
  { "rbind", false, MS_BIND | MS_REC },
  { "relatime", false, MS_RELATIME },
  { "remount", false, MS_REMOUNT },
  { "ro", false, MS_RDONLY },
  { "rw", true, MS_RDONLY },
  { "strictatime", false, MS_STRICTATIME },
  { "suid", true, MS_NOSUID },
  { "sync", false, MS_SYNCHRONOUS },
};

void
mount_parse_options (char *const *options, size_t n, unsigned long *flags, char **data)
{
  char *out = NULL;
  *flags = 0;
  for (size_t i = 0; i < n; i++)
    {
      const struct flag_spec *f = NULL;
      for (size_t j = 0; j < ARRAY_SIZE (flag_table) && f == NULL; j++)
        if (strcmp (options[i], flag_table[j].name) == 0)
          f = &flag_table[j];
      if (f)
        {
          *flags = f->clear ? (*flags & ~f->flag) : (*flags | f->flag);
          continue;
        }
      char *next = out ? xasprintf ("%s,%s", out, options[i]) : xstrdup (options[i]);
      free (out);
      out = next;
    }
  *data = out;
}

static int
mount_one (const char *target, const struct mount_spec *m, shim_error_t *err)
{
  unsigned long flags;
  cleanup_free char *data = NULL;
  mount_parse_options (m->options, m->n_options, &flags, &data);
  /* A bind mount ignores MS_RDONLY on the first call: it takes a remount. */
  unsigned long first = (flags & MS_BIND) ? (flags & ~MS_RDONLY) : flags;
  if (mount (m->source, target, m->type, first, data) < 0)
    return shim_error_make (err, errno, SHIM_UNKNOWN, "mount %s `%s` on `%s` (options `%s`)",
                            m->type, m->source, target, data ? data : "");
  if ((flags & MS_BIND) && (flags & MS_RDONLY)
      && mount (NULL, target, NULL, flags | MS_REMOUNT, NULL) < 0)
    {
      int saved = errno;
      umount2 (target, MNT_DETACH);
      return shim_error_make (err, saved, SHIM_UNKNOWN, "remount `%s` read-only", target);
    }
  return 0;
}

int
mount_all (const char *target, const struct mount_spec *mounts, size_t n, shim_error_t *err)
{
  for (size_t i = 0; i < n; i++)
    {
      if (mount_one (target, &mounts[i], err) < 0)
        {
          mount_unmount_all (target, NULL);
          return -1;
        }
    }
  return 0;
}

int
mount_unmount_all (const char *target, shim_error_t *err)
{
  for (int i = 0; i < 64; i++)
    {
      if (umount2 (target, MNT_DETACH) == 0)
        continue;
      if (errno == EINVAL || errno == ENOENT)
        return 0;
      return shim_error_make (err, errno, SHIM_UNKNOWN, "unmount `%s`", target);
    }
  return 0;
}
