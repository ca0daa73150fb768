/* test-names.c — the naming rules (core/qube-names.c): which qube names,
 * feature keys and tags are accepted, and what the refusals say. */
#include "config.h"

#include <check.h>

#include "qube-error.h"
#include "qube-manager.h"
#include "qube-vm-private.h"
#include "state-fixture.h"

static void
assert_name_ok (const char *name)
{
  g_autoptr(GError) error = NULL;

  ck_assert_msg (qube_name_is_valid (name, &error), "'%s' refused: %s", name,
                 error != NULL ? error->message : "?");
  ck_assert_ptr_null (error);
}

static void
assert_name_refused (const char *name, const char *message)
{
  g_autoptr(GError) error = NULL;

  ck_assert_msg (!qube_name_is_valid (name, &error), "'%s' accepted", name);
  fixture_assert_error (&error, QUBE_ERROR_INVALID_NAME, message);
}

START_TEST (test_valid_names)
{
  assert_name_ok ("work");
  assert_name_ok ("sys-net");
  assert_name_ok ("fedora-39.xfce");
  assert_name_ok ("A_b.c-9");
  assert_name_ok ("x");
  assert_name_ok ("dm");
  assert_name_ok ("dom0x");
  assert_name_ok ("a-dm0");
  assert_name_ok ("NONE");
  /* 31 characters is the longest name */
  assert_name_ok ("abcdefghijklmnopqrstuvwxyz01234");
}
END_TEST

START_TEST (test_empty_and_long)
{
  assert_name_refused (NULL, "a qube name must not be empty");
  assert_name_refused ("", "a qube name must not be empty");
  assert_name_refused ("abcdefghijklmnopqrstuvwxyz012345",
                       "qube name 'abcdefghijklmnopqrstuvwxyz012345' is too long: "
                       "32 characters, at most 31 are allowed");
}
END_TEST

START_TEST (test_first_character)
{
  assert_name_refused ("1work", "qube name '1work' must start with a letter");
  assert_name_refused ("-work", "qube name '-work' must start with a letter");
  assert_name_refused ("_work", "qube name '_work' must start with a letter");
  assert_name_refused (".work", "qube name '.work' must start with a letter");
}
END_TEST

START_TEST (test_charset)
{
  assert_name_refused ("my work",
                       "qube name 'my work' contains ' ': only letters, digits, '_', '.' "
                       "and '-' are allowed");
  assert_name_refused ("a/b",
                       "qube name 'a/b' contains '/': only letters, digits, '_', '.' "
                       "and '-' are allowed");
  assert_name_refused ("a:b",
                       "qube name 'a:b' contains ':': only letters, digits, '_', '.' "
                       "and '-' are allowed");
  /* a control character is shown escaped, never raw */
  assert_name_refused ("a\nb",
                       "qube name 'a\\nb' contains '\\n': only letters, digits, '_', '.' "
                       "and '-' are allowed");
  /* not ASCII: refused on its first byte, which is shown escaped */
  assert_name_refused ("caf\xc3\xa9",
                       "qube name 'caf\xc3\xa9' contains '\\303': only letters, digits, "
                       "'_', '.' and '-' are allowed");
}
END_TEST

START_TEST (test_reserved)
{
  assert_name_refused ("none", "qube name 'none' is reserved");
  assert_name_refused ("default", "qube name 'default' is reserved");
  assert_name_refused ("dom0", "qube name 'dom0' is reserved");
  assert_name_refused ("Domain-0", "qube name 'Domain-0' is reserved");
  assert_name_refused ("work-dm",
                       "qube name 'work-dm' must not end in '-dm' (reserved for device models)");
}
END_TEST

START_TEST (test_keys)
{
  g_autoptr(GError) error = NULL;

  ck_assert (_qube_key_is_valid ("tag", "created-by-dom0", &error));
  ck_assert (_qube_key_is_valid ("feature name", "service.qubes-update-check", &error));
  /* keys may start with anything in the charset, unlike qube names */
  ck_assert (_qube_key_is_valid ("feature name", "0day_.-", &error));
  ck_assert_ptr_null (error);

  ck_assert (!_qube_key_is_valid ("tag", "", &error));
  fixture_assert_error (&error, QUBE_ERROR_INVALID_NAME, "a tag must not be empty");
  ck_assert (!_qube_key_is_valid ("tag", "a=b", &error));
  fixture_assert_error (&error, QUBE_ERROR_INVALID_NAME,
                        "tag 'a=b' contains '=': only letters, digits, '_', '.' and '-' "
                        "are allowed");

  g_autofree char *long_key = g_strnfill (256, 'k');
  ck_assert (!_qube_key_is_valid ("feature name", long_key, &error));
  fixture_assert_error (&error, QUBE_ERROR_INVALID_NAME,
                        "feature name is too long: 256 bytes, at most 255 are allowed");
  long_key[255] = '\0';
  ck_assert (_qube_key_is_valid ("feature name", long_key, &error));
}
END_TEST

int
main (void)
{
  Suite *suite = suite_create ("names");
  TCase *tc = tcase_create ("names");

  tcase_add_test (tc, test_valid_names);
  tcase_add_test (tc, test_empty_and_long);
  tcase_add_test (tc, test_first_character);
  tcase_add_test (tc, test_charset);
  tcase_add_test (tc, test_reserved);
  tcase_add_test (tc, test_keys);
  suite_add_tcase (suite, tc);
  return fixture_run_suite (suite);
}
