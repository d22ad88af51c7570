/* Go build info from an ELF executable: bounded section reads, the inline string format, and
 * telling containerd 2.x from 1.x. The ELF files are built here, with <elf.h>. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/buildinfo.h"
#include "base/util.h"

#define SENTINEL                                                                                   \
  "0w\xaf\x0c\x92t\x08\x02"                                                                        \
  "A\xe1\xc1\x07\xe6\xd6\x18\xe6"
#define V2_INFO "path\tgithub.com/containerd/containerd/v2/cmd/containerd\nbuild\tGOOS=linux\n"
#define V1_INFO "path\tgithub.com/containerd/containerd/cmd/containerd\nbuild\tGOOS=linux\n"

static size_t
put_uvarint (uint8_t *p, size_t v)
{
  size_t n = 0;
  for (; v >= 0x80; v >>= 7)
    p[n++] = (uint8_t) (v | 0x80);
  p[n++] = (uint8_t) v;
  return n;
}

/* The .go.buildinfo contents Go 1.18+ writes: header, then the Go version and the module
 * info (between 16-byte sentinels) as length-prefixed strings. */
static size_t
make_buildinfo (uint8_t *out, const char *modinfo, uint8_t flags)
{
  memset (out, 0, 32);
  memcpy (out, "\xff Go buildinf:", 14);
  out[14] = 8;
  out[15] = flags;
  size_t n = 32;
  n += put_uvarint (out + n, 8);
  memcpy (out + n, "go1.27.1", 8);
  n += 8;
  size_t len = strlen (modinfo) + 32;
  n += put_uvarint (out + n, len);
  memcpy (out + n, SENTINEL, 16);
  memcpy (out + n + 16, modinfo, strlen (modinfo));
  memcpy (out + n + 16 + strlen (modinfo), SENTINEL, 16);
  return n + len;
}

/* A minimal ELF64: header, section contents, then the section headers (null, .shstrtab and
 * section `name` holding data). */
static char *
write_elf (const char *name, const uint8_t *data, size_t len)
{
  char path[] = "/tmp/test-buildinfo-XXXXXX";
  int fd = mkstemp (path);
  assert_true (fd >= 0);
  char names[64] = { 0 };
  strcpy (names + 1, ".shstrtab");
  strcpy (names + 11, name);
  size_t names_len = 11 + strlen (name) + 1;
  Elf64_Ehdr eh = { 0 };
  memcpy (eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_shentsize = sizeof (Elf64_Shdr);
  eh.e_shnum = 3;
  eh.e_shstrndx = 1;
  eh.e_shoff = sizeof eh + names_len + len;
  Elf64_Shdr sh[3] = { { 0 } };
  sh[1] = (Elf64_Shdr){
    .sh_name = 1, .sh_type = SHT_STRTAB, .sh_offset = sizeof eh, .sh_size = names_len
  };
  sh[2] = (Elf64_Shdr){
    .sh_name = 11, .sh_type = SHT_PROGBITS, .sh_offset = sizeof eh + names_len, .sh_size = len
  };
  assert_int_equal (write_all (fd, &eh, sizeof eh), 0);
  assert_int_equal (write_all (fd, names, names_len), 0);
  assert_int_equal (write_all (fd, data, len), 0);
  assert_int_equal (write_all (fd, sh, sizeof sh), 0);
  close (fd);
  return xstrdup (path);
}

static enum buildinfo_containerd
classify_elf (const char *section, const char *modinfo, uint8_t flags)
{
  uint8_t data[1024];
  size_t len = make_buildinfo (data, modinfo, flags);
  char *path = write_elf (section, data, len);
  enum buildinfo_containerd r = buildinfo_containerd_of (path);
  unlink (path);
  free (path);
  return r;
}

static void
test_reads_module_info (void **state)
{
  (void) state;
  uint8_t data[1024];
  size_t len = make_buildinfo (data, V2_INFO, 2);
  char *path = write_elf (".go.buildinfo", data, len);
  size_t info_len = 0;
  shim_error_t err = NULL;
  char *info = buildinfo_read (path, &info_len, &err);
  assert_null (err);
  assert_int_equal (info_len, strlen (V2_INFO));
  assert_string_equal (info, V2_INFO);
  free (info);
  unlink (path);
  free (path);
}

static void
test_containerd_major_from_elf (void **state)
{
  (void) state;
  assert_int_equal (classify_elf (".go.buildinfo", V2_INFO, 2), BUILDINFO_CONTAINERD_2);
  assert_int_equal (classify_elf (".go.buildinfo", V1_INFO, 2), BUILDINFO_CONTAINERD_1);
  /* Pre-1.18 pointer format, another section, not Go at all: unknown. */
  assert_int_equal (classify_elf (".go.buildinfo", V2_INFO, 0), BUILDINFO_UNKNOWN);
  assert_int_equal (classify_elf (".rodata", V2_INFO, 2), BUILDINFO_UNKNOWN);
}

/* Whatever is wrong with the file, the answer is "unknown", never a failure. */
static void
test_fails_safe (void **state)
{
  (void) state;
  assert_int_equal (buildinfo_containerd_of (NULL), BUILDINFO_UNKNOWN);
  assert_int_equal (buildinfo_containerd_of (""), BUILDINFO_UNKNOWN);
  assert_int_equal (buildinfo_containerd_of ("/nonexistent/containerd"), BUILDINFO_UNKNOWN);
  assert_int_equal (buildinfo_containerd_of ("/proc/self/exe"), BUILDINFO_UNKNOWN); /* C */
  char text[] = "/tmp/test-buildinfo-XXXXXX";
  int fd = mkstemp (text);
  assert_int_equal (write_all (fd, "#!/bin/sh\n", 10), 0);
  close (fd);
  assert_int_equal (buildinfo_containerd_of (text), BUILDINFO_UNKNOWN);
  /* A FIFO with no writer: answered at once, not waited on. */
  unlink (text);
  assert_int_equal (mkfifo (text, 0600), 0);
  assert_int_equal (buildinfo_containerd_of (text), BUILDINFO_UNKNOWN);
  unlink (text);

  /* A length prefix past the end of the section. */
  uint8_t data[1024];
  size_t len = make_buildinfo (data, V2_INFO, 2);
  char *path = write_elf (".go.buildinfo", data, len - 20);
  size_t info_len;
  shim_error_t err = NULL;
  assert_null (buildinfo_read (path, &info_len, &err));
  assert_non_null (err);
  assert_non_null (strstr (err->msg, "truncated"));
  shim_error_release (&err);
  assert_int_equal (buildinfo_containerd_of (path), BUILDINFO_UNKNOWN);
  unlink (path);
  free (path);
}

#define CLASSIFY(s) buildinfo_classify (s, strlen (s))

static void
test_classify (void **state)
{
  (void) state;
  /* containerd as a dependency of another main module (an embedding distribution). */
  assert_int_equal (CLASSIFY ("path\texample.com/k\nmod\texample.com/k\tv1\t\n"
                              "dep\tgithub.com/containerd/containerd/v2\tv2.1.0\th1:x=\n"),
                    BUILDINFO_CONTAINERD_2);
  assert_int_equal (CLASSIFY ("path\texample.com/k\n"
                              "dep\tgithub.com/containerd/containerd\tv1.7.24\th1:x=\n"),
                    BUILDINFO_CONTAINERD_1);
  assert_int_equal (CLASSIFY ("mod\tgithub.com/containerd/containerd\tv1.7.24\t\n"),
                    BUILDINFO_CONTAINERD_1);
  /* containerd's api module is used by 1.x and 2.x alike: no signal. */
  assert_int_equal (CLASSIFY ("path\texample.com/k\n"
                              "dep\tgithub.com/containerd/containerd/api\tv1.8.0\t\n"),
                    BUILDINFO_UNKNOWN);
  /* A future major or a look-alike is not 2.x. */
  assert_int_equal (CLASSIFY ("path\tgithub.com/containerd/containerd/v3/cmd/containerd\n"),
                    BUILDINFO_UNKNOWN);
  assert_int_equal (CLASSIFY ("path\tgithub.com/containerd/containerd/v20/cmd/containerd\n"),
                    BUILDINFO_UNKNOWN);
  assert_int_equal (CLASSIFY ("build\tpath\tgithub.com/containerd/containerd/v2\n"),
                    BUILDINFO_UNKNOWN);
  assert_int_equal (CLASSIFY (""), BUILDINFO_UNKNOWN);
  assert_int_equal (CLASSIFY ("path"), BUILDINFO_UNKNOWN);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_reads_module_info),
    cmocka_unit_test (test_containerd_major_from_elf),
    cmocka_unit_test (test_fails_safe),
    cmocka_unit_test (test_classify),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
