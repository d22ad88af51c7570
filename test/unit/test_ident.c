/* Ids as containerd's identifiers: what the shim accepts before it names files after them. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "base/ident.h"

static bool
valid (const char *s)
{
  return ident_valid (s, strlen (s));
}

static void
test_accepted (void **state)
{
  (void) state;
  assert_true (valid ("a"));
  assert_true (valid ("exec-1"));
  assert_true (valid ("My.Container_2-x"));
  assert_true (valid ("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
  char max[IDENT_MAX + 1];
  memset (max, 'a', IDENT_MAX);
  max[IDENT_MAX] = '\0';
  assert_true (valid (max));
}

static void
test_refused (void **state)
{
  (void) state;
  static const char *const bad[] = { "",   "/",  "..",  "../x", "a/b", "a..b", "-a",  "a-",
                                     ".a", "a.", "a b", "a\nb", "a\n", "é",    "a:b", "a--b" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_false (valid (bad[i]));
  char over[IDENT_MAX + 2];
  memset (over, 'a', IDENT_MAX + 1);
  over[IDENT_MAX + 1] = '\0';
  assert_false (valid (over));
  /* The length counts, not the C string: a NUL inside is refused. */
  assert_false (ident_valid ("ab\0cd", 5));
  assert_true (ident_valid ("ab\0cd", 2));
}

static void
test_check_code (void **state)
{
  (void) state;
  shim_error_t err = NULL;
  assert_int_equal (ident_check ("exec id", "ok", 2, &err), 0);
  assert_null (err);
  assert_true (ident_check ("exec id", "../x", 4, &err) < 0);
  assert_int_equal (err->code, SHIM_INVALID_ARGUMENT);
  assert_non_null (strstr (err->msg, "invalid exec id"));
  assert_null (strstr (err->msg, "../x"));
  shim_error_release (&err);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_accepted),
    cmocka_unit_test (test_refused),
    cmocka_unit_test (test_check_code),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
