#ifndef CSHIM_PROFILE_INTERNAL_H
#define CSHIM_PROFILE_INTERNAL_H

/* The probe's disk cache file (profile_probe.c): a header line with the binary's file
 * id ("<dev> <ino> <size> <mtime s> <mtime ns>"), then the `--version` text. */

#include <sys/types.h>
#include <time.h>

struct file_id
{
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
};

/* The `--version` text of a cache file's data when its header names id, else NULL. Pure; the
 * caller frees. */
char *profile_cache_parse (const char *data, const struct file_id *id);

#endif
