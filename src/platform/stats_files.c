/* The readers and parsers of cgroup files that the v1 (stats_v1.c) and v2 (stats_v2.c)
 * collectors share. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "platform/stats_internal.h"
#include "base/util.h"

/* Generous for blkio files on hosts with many devices; everything else is a few KB. */
#define CG_FILE_MAX (1u << 20)

void *
stats_msg_new (const ProtobufCMessageDescriptor *desc)
{
  void *m = xmalloc (desc->sizeof_message);
  protobuf_c_message_init (desc, m);
  return m;
}

void *
stats_field_at (void *msg, size_t offset)
{
  return (char *) msg + offset;
}

bool
stats_parse_num (const char *s, uint64_t *v)
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

const struct key_field *
stats_find_key (const struct key_field *table, size_t n, const char *key)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp (table[i].key, key) == 0)
      return &table[i];
  return NULL;
}

size_t
stats_parse_keyed (const char *text, const struct key_field *table, size_t n, void *msg)
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
      const struct key_field *f = stats_find_key (table, n, line);
      uint64_t v;
      if (f == NULL || !stats_parse_num (value, &v))
        continue;
      memcpy (stats_field_at (msg, f->offset), &v, sizeof v);
      matched++;
    }
  return matched;
}

bool
stats_parse_key (const char *text, const char *key, uint64_t *value)
{
  const struct key_field one = { key, 0 };
  return stats_parse_keyed (text, &one, 1, value) > 0;
}

char *
stats_read_text (int dirfd, const char *name)
{
  char *text = NULL;
  cleanup_error shim_error_t err = NULL;
  if (read_file_at (dirfd, name, CG_FILE_MAX, &text, NULL, &err) < 0)
    return NULL;
  return text;
}

bool
stats_read_u64 (int dirfd, const char *name, uint64_t max_value, uint64_t *out)
{
  cleanup_free char *text = stats_read_text (dirfd, name);
  if (text == NULL)
    return false;
  text[strcspn (text, "\n")] = '\0';
  if (strcmp (text, "max") == 0)
    {
      *out = max_value;
      return true;
    }
  return stats_parse_num (text, out);
}

size_t
stats_read_keyed (int dirfd, const char *name, const struct key_field *table, size_t n, void *msg)
{
  cleanup_free char *text = stats_read_text (dirfd, name);
  return text ? stats_parse_keyed (text, table, n, msg) : 0;
}

size_t
stats_read_files (int dirfd, const struct key_field *table, size_t n, uint64_t max_value, void *msg)
{
  size_t found = 0;
  for (size_t i = 0; i < n; i++)
    if (stats_read_u64 (dirfd, table[i].key, max_value, stats_field_at (msg, table[i].offset)))
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

char **
stats_list_page_sizes (int dirfd, const char *suffix)
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
