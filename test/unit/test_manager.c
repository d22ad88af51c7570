/* `start` helpers: socket address (must equal containerd's runc shim) and grouping key;
 * mount option parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <sys/mount.h>

#include "manager.h"
#include "mount.h"

/* Captured from containerd-shim-runc-v2 1.6.20: the `address` file it wrote for container
 * "stock1" in namespace "default" of a containerd listening on /tmp/cd1/containerd.sock. */
#define STOCK_ADDRESS                                                                              \
  "unix:///run/containerd/s/1f71ee1da4eec5f3cd574ce414fdcbd57fefab35d592460970c08e42c4f8d6b0"

static void
test_socket_address_matches_upstream (void **state)
{
  (void) state;
  char *a = manager_socket_address ("/tmp/cd1/containerd.sock", "default", "stock1");
  assert_string_equal (a, STOCK_ADDRESS);
  free (a);
  /* filepath.Join cleans the path: doubled slashes and "." do not change the hash. */
  a = manager_socket_address ("/tmp//cd1/./containerd.sock/", "default", "stock1");
  assert_string_equal (a, STOCK_ADDRESS);
  free (a);
  a = manager_socket_address ("/tmp/cd1/containerd.sock", "other", "stock1");
  assert_string_not_equal (a, STOCK_ADDRESS);
  free (a);
}

static void
test_group_key (void **state)
{
  (void) state;
  char *k = manager_group_key (NULL, "id1");
  assert_string_equal (k, "id1");
  free (k);
  k = manager_group_key ("{\"annotations\":{\"io.kubernetes.cri.sandbox-id\":\"sb\"}}", "id1");
  assert_string_equal (k, "sb");
  free (k);
  k = manager_group_key ("{\"annotations\":{\"io.kubernetes.cri.sandbox-id\":\"sb\","
                         "\"io.containerd.runc.v2.group\":\"grp\"}}",
                         "id1");
  assert_string_equal (k, "grp");
  free (k);
  k = manager_group_key ("not json", "id1");
  assert_string_equal (k, "id1");
  free (k);
  k = manager_group_key ("{\"annotations\":{\"io.containerd.runc.v2.group\":\"\"}}", "id1");
  assert_string_equal (k, "id1");
  free (k);
}

static void
test_mount_options (void **state)
{
  (void) state;
  char *opts[] = { "ro", "nosuid", "lowerdir=/a:/b", "upperdir=/u", "rw", "rbind" };
  unsigned long flags;
  char *data;
  mount_parse_options (opts, 4, &flags, &data);
  assert_int_equal (flags, MS_RDONLY | MS_NOSUID);
  assert_string_equal (data, "lowerdir=/a:/b,upperdir=/u");
  free (data);
  mount_parse_options (opts, 6, &flags, &data);
  assert_int_equal (flags, MS_NOSUID | MS_BIND | MS_REC);
  free (data);
  mount_parse_options (opts, 0, &flags, &data);
  assert_int_equal (flags, 0);
  assert_null (data);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_socket_address_matches_upstream),
    cmocka_unit_test (test_group_key),
    cmocka_unit_test (test_mount_options),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
