/* The shim's command line in Go's flag syntax, as containerd 1.6 and 2.x write it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cli/args.h"
#include "base/util.h"

struct parsed
{
  struct shim_args a;
  const char *action;
  bool version, info;
  int ret;
};

static struct parsed
parse (char **argv)
{
  struct parsed p = { 0 };
  int argc = 0;
  while (argv[argc])
    argc++;
  p.ret = args_parse (argc, argv, &p.a, &p.action, &p.version, &p.info);
  return p;
}

static void
test_start_as_containerd_writes_it (void **state)
{
  (void) state;
  /* The argv containerd 1.6.20 gave the shim for `start` (test/fuzz/corpus/fuzz_args). */
  char *argv[] = { "shim",
                   "-namespace",
                   "ns1",
                   "-address",
                   "/run/containerd/containerd.sock",
                   "-publish-binary",
                   "/usr/bin/containerd",
                   "-id",
                   "c1",
                   "-debug",
                   "start",
                   NULL };
  struct parsed p = parse (argv);
  assert_int_equal (p.ret, 0);
  assert_string_equal (p.a.namespace, "ns1");
  assert_string_equal (p.a.address, "/run/containerd/containerd.sock");
  assert_string_equal (p.a.publish_binary, "/usr/bin/containerd");
  assert_string_equal (p.a.id, "c1");
  assert_true (p.a.debug);
  assert_string_equal (p.action, "start");
  assert_false (p.version || p.info);
}

static void
test_flag_forms (void **state)
{
  (void) state;
  char *argv[]
      = { "shim", "--bundle=/b", "-socket", "/s", "-debug=false", "--v", "-info", "delete", NULL };
  struct parsed p = parse (argv);
  assert_int_equal (p.ret, 0);
  assert_string_equal (p.a.bundle, "/b");
  assert_string_equal (p.a.socket, "/s");
  assert_false (p.a.debug);
  assert_true (p.version);
  assert_true (p.info);
  assert_string_equal (p.action, "delete");
}

static void
test_errors (void **state)
{
  (void) state;
  char *missing[] = { "shim", "-id", NULL };
  assert_int_equal (parse (missing).ret, -1);
  char *unknown[] = { "shim", "-bogus", NULL };
  assert_int_equal (parse (unknown).ret, -1);
  char *prefix[] = { "shim", "-deb", NULL };
  assert_int_equal (parse (prefix).ret, -1);
  char *dash[] = { "shim", "-", NULL };
  assert_int_equal (parse (dash).ret, -1);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_start_as_containerd_writes_it),
    cmocka_unit_test (test_flag_forms),
    cmocka_unit_test (test_errors),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
