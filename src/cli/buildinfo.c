#include "cli/buildinfo.h"

#include <elf.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

#define BUILDINFO_SECTION ".go.buildinfo"
#define BUILDINFO_MAGIC "\xff Go buildinf:"
#define BUILDINFO_HEADER 32 /* magic, pointer size, flags, padding */
#define BUILDINFO_FLAG_INLINE 0x2 /* strings follow the header (Go 1.18+) */
#define BUILDINFO_MAX (64u << 10) /* the section is a few hundred bytes to a few KiB */
#define SHSTRTAB_MAX (64u << 10)
#define SECTIONS_MAX 4096u
#define MODINFO_SENTINEL 16 /* Go brackets the module info with 16 bytes each side */

#define MODULE_V2 "github.com/containerd/containerd/v2"
#define MODULE_V1 "github.com/containerd/containerd"

static int
pread_exact (int fd, void *buf, size_t len, uint64_t off, shim_error_t *err)
{
  ssize_t n = pread (fd, buf, len, (off_t) off);
  if (n < 0)
    return shim_error_make (err, errno, SHIM_UNKNOWN, "read build info");
  if ((size_t) n != len)
    return shim_error_make (err, 0, SHIM_UNKNOWN, "short read of build info");
  return 0;
}

/* A copy of section name's contents, at most max bytes, or NULL. Only 64-bit ELF in the
 * host's byte order: the containerd that runs us is a native executable. */
static char *
read_section (int fd, const char *name, size_t max, size_t *len, shim_error_t *err)
{
  Elf64_Ehdr eh;
  if (pread_exact (fd, &eh, sizeof eh, 0, err) < 0)
    return NULL;
  bool native = eh.e_ident[EI_DATA] == (BYTE_ORDER == LITTLE_ENDIAN ? ELFDATA2LSB : ELFDATA2MSB);
  if (memcmp (eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 || !native
      || eh.e_shentsize != sizeof (Elf64_Shdr) || eh.e_shnum == 0 || eh.e_shnum > SECTIONS_MAX
      || eh.e_shstrndx >= eh.e_shnum)
    {
      shim_error_make (err, 0, SHIM_UNKNOWN, "not a native 64-bit ELF");
      return NULL;
    }
  cleanup_free Elf64_Shdr *sh = xcalloc (eh.e_shnum, sizeof *sh);
  if (pread_exact (fd, sh, eh.e_shnum * sizeof *sh, eh.e_shoff, err) < 0)
    return NULL;
  const Elf64_Shdr *strtab = &sh[eh.e_shstrndx];
  if (strtab->sh_size == 0 || strtab->sh_size > SHSTRTAB_MAX)
    {
      shim_error_make (err, 0, SHIM_UNKNOWN, "bad section name table");
      return NULL;
    }
  cleanup_free char *names = xcalloc (1, strtab->sh_size + 1);
  if (pread_exact (fd, names, strtab->sh_size, strtab->sh_offset, err) < 0)
    return NULL;
  for (unsigned i = 0; i < eh.e_shnum; i++)
    {
      if (sh[i].sh_name >= strtab->sh_size || strcmp (names + sh[i].sh_name, name) != 0
          || sh[i].sh_type == SHT_NOBITS)
        continue;
      *len = sh[i].sh_size < max ? sh[i].sh_size : max;
      cleanup_free char *data = xmalloc (*len + 1);
      if (pread_exact (fd, data, *len, sh[i].sh_offset, err) < 0)
        return NULL;
      data[*len] = '\0';
      return steal_ptr (&data);
    }
  shim_error_make (err, 0, SHIM_UNKNOWN, "no %s section", name);
  return NULL;
}

/* Go's uvarint length prefix; false when it runs past end. */
static bool
read_uvarint (const uint8_t **p, const uint8_t *end, uint64_t *v)
{
  *v = 0;
  for (unsigned shift = 0; *p < end && shift < 64; shift += 7)
    {
      uint8_t b = *(*p)++;
      *v |= (uint64_t) (b & 0x7f) << shift;
      if ((b & 0x80) == 0)
        return true;
    }
  return false;
}

/* The second inline string (module info) after the header; the first is the Go version. */
static char *
parse_modinfo (const uint8_t *data, size_t size, size_t *len, shim_error_t *err)
{
  if (size < BUILDINFO_HEADER || memcmp (data, BUILDINFO_MAGIC, strlen (BUILDINFO_MAGIC)) != 0
      || (data[15] & BUILDINFO_FLAG_INLINE) == 0)
    {
      shim_error_make (err, 0, SHIM_UNKNOWN, "no Go 1.18+ build info");
      return NULL;
    }
  const uint8_t *p = data + BUILDINFO_HEADER, *end = data + size;
  uint64_t n = 0;
  for (int i = 0; i < 2; i++)
    {
      if (i == 1)
        p += n;
      if (!read_uvarint (&p, end, &n) || n > (uint64_t) (end - p))
        {
          shim_error_make (err, 0, SHIM_UNKNOWN, "truncated build info");
          return NULL;
        }
    }
  if (n >= 2 * MODINFO_SENTINEL + 1 && p[n - MODINFO_SENTINEL - 1] == '\n')
    {
      p += MODINFO_SENTINEL;
      n -= 2 * MODINFO_SENTINEL;
    }
  *len = n;
  return xstrndup ((const char *) p, n);
}

char *
buildinfo_read (const char *path, size_t *len, shim_error_t *err)
{
  /* O_NONBLOCK: a FIFO named here must not hang `start`; only a regular file is read. */
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  struct stat st;
  if (fd < 0 || fstat (fd, &st) < 0)
    {
      shim_error_make (err, errno, SHIM_UNKNOWN, "open %s", path);
      return NULL;
    }
  if (!S_ISREG (st.st_mode))
    {
      shim_error_make (err, 0, SHIM_UNKNOWN, "%s: not a regular file", path);
      return NULL;
    }
  size_t size = 0;
  cleanup_free char *section = read_section (fd, BUILDINFO_SECTION, BUILDINFO_MAX, &size, err);
  if (section == NULL)
    {
      shim_error_wrap (err, "%s", path);
      return NULL;
    }
  char *info = parse_modinfo ((const uint8_t *) section, size, len, err);
  if (info == NULL)
    shim_error_wrap (err, "%s", path);
  return info;
}

static bool
is_module_path (const char *field, size_t n, const char *module, bool subpackages)
{
  size_t m = strlen (module);
  return n >= m && memcmp (field, module, m) == 0 && (n == m || (subpackages && field[m] == '/'));
}

/* One "key\tvalue[\t...]" line: 2 or 1 when it names containerd, else 0. */
static int
classify_line (const char *line, size_t n)
{
  const char *tab = memchr (line, '\t', n);
  if (tab == NULL)
    return 0;
  size_t key = tab - line;
  const char *field = tab + 1;
  const char *field_end = memchr (field, '\t', n - key - 1);
  size_t fn = field_end ? (size_t) (field_end - field) : n - key - 1;
  bool is_path = key == 4 && memcmp (line, "path", 4) == 0;
  bool is_mod = key == 3 && (memcmp (line, "mod", 3) == 0 || memcmp (line, "dep", 3) == 0);
  if (!is_path && !is_mod)
    return 0;
  if (is_module_path (field, fn, MODULE_V2, is_path))
    return 2;
  /* 1.x's main packages are under cmd/; other module paths below it (api, ...) are
   * separate modules that 2.x depends on too. */
  if (is_mod ? is_module_path (field, fn, MODULE_V1, false)
             : fn > strlen (MODULE_V1 "/cmd/")
                   && memcmp (field, MODULE_V1 "/cmd/", strlen (MODULE_V1 "/cmd/")) == 0)
    return 1;
  return 0;
}

enum buildinfo_containerd
buildinfo_classify (const char *info, size_t len)
{
  int found = 0;
  for (const char *p = info, *end = info + len; p < end;)
    {
      const char *nl = memchr (p, '\n', end - p);
      size_t n = nl ? (size_t) (nl - p) : (size_t) (end - p);
      int major = classify_line (p, n);
      if (major > found)
        found = major;
      p += n + 1;
    }
  return found == 2   ? BUILDINFO_CONTAINERD_2
         : found == 1 ? BUILDINFO_CONTAINERD_1
                      : BUILDINFO_UNKNOWN;
}

enum buildinfo_containerd
buildinfo_containerd_of (const char *path)
{
  if (path == NULL || path[0] == '\0')
    return BUILDINFO_UNKNOWN;
  size_t len = 0;
  cleanup_error shim_error_t err = NULL;
  cleanup_free char *info = buildinfo_read (path, &len, &err);
  return info ? buildinfo_classify (info, len) : BUILDINFO_UNKNOWN;
}
