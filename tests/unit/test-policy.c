/* test-policy.c — unit tests of the qrexec policy engine (core/qube-policy*.c).
 *
 * Fixture directories live in tests/policy/; smaller cases are written
 * into a temporary policy directory by each test.  Every test evaluates
 * calls the way the daemon will and checks what a user would see: the
 * action, the resolved target, the deciding file:line and lint messages.
 */
#include "config.h"

#include <check.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qube-error.h"
#include "qube-policy-private.h"

#define ALLOW QUBE_POLICY_ACTION_ALLOW
#define DENY QUBE_POLICY_ACTION_DENY
#define ASK QUBE_POLICY_ACTION_ASK

static char *tmpdir;
static QubePolicySystem *sys;

static void
rm_rf (const char *path)
{
  g_autofree char *cmd = NULL;

  if (path == NULL)
    return;
  cmd = g_strdup_printf ("rm -rf '%s'", path);
  ck_assert_int_eq (system (cmd), 0);
}

static void
setup (void)
{
  const char *work_tags[] = { "work", NULL };
  const char *vault_tags[] = { "secure", NULL };
  const char *dvm_tags[] = { "dvm-work", NULL };
  const char *dom0_tags[] = { "work", NULL };
  g_autoptr(GError) error = NULL;

  tmpdir = g_dir_make_tmp ("test-policy-XXXXXX", &error);
  ck_assert_ptr_nonnull (tmpdir);
  sys = qube_policy_system_new ();
  ck_assert (qube_policy_system_add_qube (sys, "dom0", "AdminVM", dom0_tags, FALSE, NULL, &error));
  ck_assert (qube_policy_system_add_qube (sys, "work", "AppVM", work_tags, FALSE, "work-dvm", &error));
  ck_assert (qube_policy_system_add_qube (sys, "personal", "AppVM", NULL, FALSE, NULL, &error));
  ck_assert (qube_policy_system_add_qube (sys, "vault", "AppVM", vault_tags, FALSE, "work-dvm", &error));
  ck_assert (qube_policy_system_add_qube (sys, "work-dvm", "AppVM", dvm_tags, TRUE, NULL, &error));
  ck_assert (qube_policy_system_add_qube (sys, "other-dvm", "AppVM", NULL, TRUE, NULL, &error));
  ck_assert (qube_policy_system_add_qube (sys, "fedora", "TemplateVM", NULL, FALSE, NULL, &error));
  ck_assert (qube_policy_system_add_qube (sys, "disp7", "DispVM", NULL, FALSE, "work-dvm", &error));
  ck_assert (qube_policy_system_set_dispvm_template (sys, "disp7", "work-dvm", &error));
  ck_assert (qube_policy_system_set_running (sys, "work", TRUE, &error));
  ck_assert (qube_policy_system_set_running (sys, "dom0", TRUE, &error));
}

static void
teardown (void)
{
  rm_rf (tmpdir);
  g_clear_pointer (&tmpdir, g_free);
  g_clear_object (&sys);
}

static char *
fixture (const char *name)
{
  const char *srcdir = g_getenv ("QUBE_TEST_SRCDIR");

  return g_build_filename (srcdir ? srcdir : ".", "tests", "policy", name, NULL);
}

static void
write_file (const char *name, const char *contents, gssize length)
{
  g_autofree char *path = g_build_filename (tmpdir, name, NULL);
  g_autofree char *dir = g_path_get_dirname (path);
  g_autoptr(GError) error = NULL;

  ck_assert_int_eq (g_mkdir_with_parents (dir, 0755), 0);
  ck_assert_msg (g_file_set_contents (path, contents, length, &error), "%s",
                 error ? error->message : "");
}

/* One policy file in the temporary directory, loaded. */
static QubePolicy *
load_one (const char *contents)
{
  write_file ("50-test.policy", contents, -1);
  return qube_policy_load (tmpdir);
}

static QubePolicyDecision *
eval (QubePolicy *policy, const char *source, const char *target,
      const char *service, const char *argument)
{
  QubePolicyDecision *d = qube_policy_evaluate (policy, sys, source, target, service, argument);

  ck_assert_ptr_nonnull (d);
  ck_assert_ptr_nonnull (qube_policy_decision_get_reason (d));
  return d;
}

/* Evaluates a call and checks the action, showing the reason if it differs. */
static QubePolicyDecision *
decide (QubePolicy *policy, const char *source, const char *target,
        const char *service, const char *argument, QubePolicyAction expected)
{
  QubePolicyDecision *d = eval (policy, source, target, service, argument);

  ck_assert_msg (qube_policy_decision_get_action (d) == expected,
                 "%s -> %s %s%s: expected %s, got %s: %s", source, target, service,
                 qube_policy_decision_get_argument (d), qube_policy_action_to_string (expected),
                 qube_policy_action_to_string (qube_policy_decision_get_action (d)),
                 qube_policy_decision_get_reason (d));
  return d;
}

static QubePolicyAction
action_of (QubePolicy *policy, const char *source, const char *target,
           const char *service, const char *argument)
{
  g_autoptr(QubePolicyDecision) d = eval (policy, source, target, service, argument);

  return qube_policy_decision_get_action (d);
}

static void
assert_allowed_to (QubePolicy *policy, const char *source, const char *target,
                   const char *service, const char *argument, const char *resolved)
{
  g_autoptr(QubePolicyDecision) d = decide (policy, source, target, service, argument, ALLOW);

  ck_assert_str_eq (qube_policy_decision_get_target (d), resolved);
}

/* The line of the deciding rule in 50-test.policy. */
static guint
line_of (QubePolicy *policy, const char *source, const char *target,
         const char *service, const char *argument)
{
  g_autoptr(QubePolicyDecision) d = eval (policy, source, target, service, argument);

  return qube_policy_decision_get_line (d);
}

static char *
lint_text (QubePolicy *policy)
{
  g_autoptr(GPtrArray) problems = qube_policy_lint (policy);
  GString *s = g_string_new ("");

  for (guint i = 0; i < problems->len; i++)
    {
      g_autofree char *one = qube_policy_problem_to_string (problems->pdata[i]);
      g_string_append_printf (s, "%s\n", one);
    }
  return g_string_free (s, FALSE);
}

/* A one-rule policy that must be rejected, with `why` in the message on
 * line 2 of the file. */
static void
assert_line_invalid (const char *rule, const char *why)
{
  g_autofree char *text = g_strdup_printf ("# bad\n%s\n* * @anyvm @anyvm allow\n", rule);
  g_autoptr(QubePolicy) policy = load_one (text);
  g_autofree char *lint = lint_text (policy);
  g_autofree char *where = g_strdup_printf ("50-test.policy:2: error: ");

  ck_assert_msg (!qube_policy_is_valid (policy), "accepted: %s", rule);
  ck_assert_msg (strstr (lint, where) != NULL, "no error at line 2 for '%s': %s", rule, lint);
  ck_assert_msg (strstr (lint, why) != NULL, "'%s' gave '%s', expected '%s'", rule, lint, why);
  /* The allow-everything line after it must not take effect. */
  ck_assert_int_eq (action_of (policy, "work", "personal", "test.Any", NULL), DENY);
}

static void
assert_line_valid (const char *rule)
{
  g_autofree char *text = g_strdup_printf ("%s\n", rule);
  g_autoptr(QubePolicy) policy = load_one (text);
  g_autofree char *lint = lint_text (policy);

  ck_assert_msg (qube_policy_is_valid (policy), "rejected '%s': %s", rule, lint);
  ck_assert_uint_eq (qube_policy_get_n_rules (policy), 1);
}

START_TEST (test_fixture_first_match_and_default_deny)
{
  g_autofree char *dir = fixture ("basic");
  g_autoptr(QubePolicy) policy = qube_policy_load (dir);
  g_autofree char *lint = lint_text (policy);
  g_autoptr(QubePolicyDecision) d = NULL;

  ck_assert_msg (qube_policy_is_valid (policy), "%s", lint);
  ck_assert_str_eq (lint, "");

  /* line 5 denies work -> personal before line 6 allows @anyvm */
  d = decide (policy, "work", "personal", "test.First", NULL, DENY);
  ck_assert (g_str_has_suffix (qube_policy_decision_get_file (d), "basic/10-first.policy"));
  ck_assert_uint_eq (qube_policy_decision_get_line (d), 5);
  ck_assert_ptr_nonnull (strstr (qube_policy_decision_get_reason (d), "10-first.policy:5"));
  ck_assert (qube_policy_decision_get_notify (d));
  g_clear_object (&d);

  d = decide (policy, "work", "vault", "test.First", NULL, ALLOW);
  ck_assert_str_eq (qube_policy_decision_get_target (d), "vault");
  ck_assert_uint_eq (qube_policy_decision_get_line (d), 6);
  ck_assert (!qube_policy_decision_get_notify (d));
  g_clear_object (&d);

  /* nothing matches: denied, with no rule named */
  d = decide (policy, "personal", "work", "test.Unknown", NULL, DENY);
  ck_assert_ptr_null (qube_policy_decision_get_file (d));
  ck_assert_ptr_nonnull (strstr (qube_policy_decision_get_reason (d), "no matching rule"));

  /* README is not a *.policy file: its rule is not read */
  ck_assert_int_eq (action_of (policy, "work", "personal", "test.Readme", NULL), DENY);
}
END_TEST

START_TEST (test_fixture_file_order)
{
  g_autofree char *dir = fixture ("basic");
  g_autoptr(QubePolicy) policy = qube_policy_load (dir);
  g_autoptr(QubePolicyDecision) d = NULL;

  /* 05-order.policy is read before 20-second.policy */
  d = decide (policy, "work", "personal", "test.Order", NULL, DENY);
  ck_assert (g_str_has_suffix (qube_policy_decision_get_file (d), "05-order.policy"));
  ck_assert_int_eq (action_of (policy, "personal", "work", "test.Order", NULL), ALLOW);
}
END_TEST

START_TEST (test_order_is_c_locale_and_names_checked)
{
  g_autoptr(QubePolicy) policy = NULL;
  g_autoptr(QubePolicy) bad = NULL;
  g_autofree char *lint = NULL;

  /* '-' (0x2d) sorts before '0' and '_' (0x5f) after the digits */
  write_file ("a_1.policy", "test.O * @anyvm @anyvm deny\n", -1);
  write_file ("a-1.policy", "test.O * @anyvm @anyvm allow\n", -1);
  write_file ("a01.policy", "test.O * @anyvm @anyvm deny\n", -1);
  write_file (".hidden.policy", "test.H * @anyvm @anyvm allow\n", -1);
  write_file ("notes.txt", "this is not policy\n", -1);
  policy = qube_policy_load (tmpdir);
  ck_assert (qube_policy_is_valid (policy));
  ck_assert_int_eq (action_of (policy, "work", "personal", "test.O", NULL), ALLOW);
  ck_assert_int_eq (action_of (policy, "work", "personal", "test.H", NULL), DENY);

  /* an upper-case *.policy name makes the policy invalid, as in Qubes */
  write_file ("Upper.policy", "test.U * @anyvm @anyvm allow\n", -1);
  bad = qube_policy_load (tmpdir);
  lint = lint_text (bad);
  ck_assert (!qube_policy_is_valid (bad));
  ck_assert_ptr_nonnull (strstr (lint, "Upper.policy:0: error: invalid file name"));
  ck_assert_int_eq (action_of (bad, "work", "personal", "test.O", NULL), DENY);
}
END_TEST

START_TEST (test_fixture_includes)
{
  g_autofree char *dir = fixture ("basic");
  g_autoptr(QubePolicy) policy = qube_policy_load (dir);
  g_autoptr(QubePolicyDecision) d = NULL;

  d = decide (policy, "work", "personal", "test.Extra", NULL, ALLOW);
  ck_assert (g_str_has_suffix (qube_policy_decision_get_file (d), "include/extra"));
  ck_assert_uint_eq (qube_policy_decision_get_line (d), 2);
  g_clear_object (&d);

  ck_assert_int_eq (action_of (policy, "work", "personal", "test.Dir", NULL), ALLOW);
  ck_assert_int_eq (action_of (policy, "work", "personal", "test.DirIgnored", NULL), DENY);

  /* !include-service: old format, $ for @, params after a comma */
  assert_allowed_to (policy, "vault", "@dispvm", "test.Legacy", "+x", "@dispvm:work-dvm");
  d = decide (policy, "work", "personal", "test.Legacy", NULL, ALLOW);
  ck_assert_str_eq (qube_policy_decision_get_user (d), "root");
  ck_assert_uint_eq (qube_policy_decision_get_line (d), 3);
  g_clear_object (&d);
  ck_assert_int_eq (action_of (policy, "personal", "work", "test.Legacy", NULL), DENY);
}
END_TEST

START_TEST (test_include_relative_to_policy_dir_and_errors)
{
  g_autoptr(QubePolicy) policy = NULL;
  g_autofree char *lint = NULL;

  write_file ("sub/inc", "test.Inc * work personal allow\n", -1);
  write_file ("10-a.policy",
              "!include sub/inc\n"
              "!include sub/missing\n"
              "!include-dir sub/inc\n"
              "!include\n"
              "!include-service test.X\n"
              "!include-service test.X bad sub/inc\n"
              "!bogus x\n", -1);
  policy = qube_policy_load (tmpdir);
  lint = lint_text (policy);
  ck_assert (!qube_policy_is_valid (policy));
  ck_assert_ptr_nonnull (strstr (lint, "10-a.policy:2: error: not a file"));
  ck_assert_ptr_nonnull (strstr (lint, "10-a.policy:3: error: not a directory"));
  ck_assert_ptr_nonnull (strstr (lint, "10-a.policy:4: error: invalid number of params"));
  ck_assert_ptr_nonnull (strstr (lint, "10-a.policy:5: error: invalid number of params"));
  ck_assert_ptr_nonnull (strstr (lint, "10-a.policy:6: error: argument 'bad' does not start with +"));
  ck_assert_ptr_nonnull (strstr (lint, "10-a.policy:7: error: invalid directive '!bogus'"));
  /* the valid include was read, but the invalid policy denies anyway */
  ck_assert_uint_eq (qube_policy_get_n_rules (policy), 1);
  ck_assert_int_eq (action_of (policy, "work", "personal", "test.Inc", NULL), DENY);
}
END_TEST

START_TEST (test_include_service_nested)
{
  g_autoptr(QubePolicy) policy = NULL;
  g_autoptr(QubePolicyDecision) d = NULL;
  g_autofree char *lint = NULL;

  /* $include: in an old-format file includes more of the same service */
  write_file ("svc/first", "$tag:work vault ask,default_target=vault\n$include:svc/second\n", -1);
  write_file ("svc/second", "# more\n$anyvm $anyvm deny,notify=no\n", -1);
  write_file ("10-svc.policy", "!include-service test.Svc +x svc/first\n", -1);
  policy = qube_policy_load (tmpdir);
  lint = lint_text (policy);
  ck_assert_msg (qube_policy_is_valid (policy), "%s", lint);
  ck_assert_uint_eq (qube_policy_get_n_rules (policy), 2);
  d = decide (policy, "work", "vault", "test.Svc", "+x", ASK);
  ck_assert_str_eq (qube_policy_decision_get_default_target (d), "vault");
  g_clear_object (&d);
  /* the rules apply to that service and argument only */
  ck_assert_int_eq (action_of (policy, "work", "vault", "test.Svc", "+y"), DENY);
  d = decide (policy, "personal", "vault", "test.Svc", "+x", DENY);
  ck_assert (g_str_has_suffix (qube_policy_decision_get_file (d), "svc/second"));
  ck_assert_uint_eq (qube_policy_decision_get_line (d), 2);
  ck_assert (!qube_policy_decision_get_notify (d));
}
END_TEST

START_TEST (test_include_loop)
{
  g_autofree char *dir = fixture ("loop");
  g_autoptr(QubePolicy) policy = qube_policy_load (dir);
  g_autofree char *lint = lint_text (policy);
  g_autoptr(QubePolicy) self_dir = NULL;
  g_autofree char *lint2 = NULL;

  ck_assert (!qube_policy_is_valid (policy));
  ck_assert_msg (strstr (lint, "include/b:1: error: include loop") != NULL, "%s", lint);
  ck_assert_int_eq (action_of (policy, "work", "personal", "test.Loop", NULL), DENY);

  /* a policy file including its own directory */
  write_file ("10-self.policy", "!include-dir .\n", -1);
  self_dir = qube_policy_load (tmpdir);
  lint2 = lint_text (self_dir);
  ck_assert_msg (strstr (lint2, "10-self.policy:1: error: include loop") != NULL, "%s", lint2);
}
END_TEST

START_TEST (test_unreadable_file_is_named)
{
  g_autofree char *path = g_build_filename (tmpdir, "10-mem.policy", NULL);
  g_autofree char *itself = g_strdup_printf ("%s:0: error: cannot read policy file: ", path);
  g_autofree char *include = g_strdup_printf ("%s/20-inc.policy:2: error: cannot read policy file: ",
                                              tmpdir);
  g_autoptr(QubePolicy) policy = NULL;
  g_autofree char *lint = NULL;

  /* A regular file that no one can read, root included: reading
   * /proc/self/mem at offset 0 fails with EIO.  A file of the policy
   * directory is named with line 0; an included one at its !include line. */
  ck_assert_int_eq (symlink ("/proc/self/mem", path), 0);
  write_file ("20-inc.policy", "test.U * work personal allow\n!include 10-mem.policy\n", -1);
  policy = qube_policy_load (tmpdir);
  lint = lint_text (policy);
  ck_assert_msg (g_str_has_prefix (lint, itself), "%s", lint);
  ck_assert_msg (strstr (lint, include) != NULL, "%s", lint);
  ck_assert_ptr_null (strstr (lint, "(null)"));
  ck_assert_int_eq (action_of (policy, "work", "personal", "test.U", NULL), DENY);
}
END_TEST

START_TEST (test_fixture_invalid_denies_everything)
{
  g_autofree char *dir = fixture ("invalid");
  g_autoptr(QubePolicy) policy = qube_policy_load (dir);
  g_autofree char *lint = lint_text (policy);
  g_autoptr(QubePolicyDecision) d = NULL;

  ck_assert (!qube_policy_is_valid (policy));
  ck_assert_msg (strstr (lint, "50-broken.policy:2: error: invalid action: 'alow'") != NULL,
                 "%s", lint);
  ck_assert_msg (strstr (lint, "50-broken.policy:3: error: allow action for @default rule "
                               "must specify target= option") != NULL, "%s", lint);
  d = decide (policy, "work", "personal", "test.Any", NULL, DENY);
  ck_assert_ptr_nonnull (strstr (qube_policy_decision_get_reason (d), "policy is invalid"));
  ck_assert (g_str_has_suffix (qube_policy_decision_get_file (d), "50-broken.policy"));
  ck_assert_uint_eq (qube_policy_decision_get_line (d), 2);
}
END_TEST

START_TEST (test_missing_dir_and_env)
{
  g_autofree char *missing = g_build_filename (tmpdir, "nope", NULL);
  g_autoptr(QubePolicy) policy = qube_policy_load (missing);
  g_autoptr(QubePolicy) from_env = NULL;
  g_autofree char *lint = lint_text (policy);

  ck_assert (!qube_policy_is_valid (policy));
  ck_assert_ptr_nonnull (strstr (lint, "cannot read policy directory"));
  ck_assert_int_eq (action_of (policy, "work", "personal", "test.Any", NULL), DENY);

  write_file ("10-env.policy", "test.Env * work personal allow\n", -1);
  g_setenv ("QUBE_POLICY_DIR", tmpdir, TRUE);
  from_env = qube_policy_load (NULL);
  g_unsetenv ("QUBE_POLICY_DIR");
  ck_assert_str_eq (qube_policy_get_dir (from_env), tmpdir);
  ck_assert_int_eq (action_of (from_env, "work", "personal", "test.Env", NULL), ALLOW);
}
END_TEST

START_TEST (test_argument_matching)
{
  g_autofree char *dir = fixture ("basic");
  g_autoptr(QubePolicy) policy = qube_policy_load (dir);
  g_autoptr(QubePolicyDecision) d = NULL;

  /* "+" is the empty argument only */
  ck_assert_uint_eq (line_of (policy, "work", "personal", "test.Arg", NULL), 10);
  ck_assert_uint_eq (line_of (policy, "work", "personal", "test.Arg", "+"), 10);
  ck_assert_uint_eq (line_of (policy, "work", "personal", "test.Arg", ""), 10);
  /* a named argument, with or without its "+" */
  d = eval (policy, "work", "personal", "test.Arg", "+one");
  ck_assert_uint_eq (qube_policy_decision_get_line (d), 11);
  ck_assert_str_eq (qube_policy_decision_get_user (d), "alice");
  ck_assert_str_eq (qube_policy_decision_get_argument (d), "+one");
  g_clear_object (&d);
  ck_assert_uint_eq (line_of (policy, "work", "personal", "test.Arg", "one"), 11);
  /* "*" catches the rest; notify=no on a deny */
  d = decide (policy, "work", "personal", "test.Arg", "+two", DENY);
  ck_assert_uint_eq (qube_policy_decision_get_line (d), 12);
  ck_assert (!qube_policy_decision_get_notify (d));
}
END_TEST

START_TEST (test_anyvm_and_adminvm)
{
  g_autoptr(QubePolicy) policy = load_one (
    "test.A * @anyvm @anyvm allow\n"
    "test.A * @anyvm @adminvm ask\n"
    "test.A * dom0 work allow\n"
    "test.B * @adminvm @anyvm allow\n"
    "test.C * @anyvm dom0 allow\n"
    "test.W * * * allow\n");
  g_autoptr(QubePolicyDecision) d = NULL;

  ck_assert (qube_policy_is_valid (policy));
  assert_allowed_to (policy, "work", "personal", "test.A", NULL, "personal");
  /* @anyvm as target does not match dom0 ... */
  ck_assert_int_eq (action_of (policy, "work", "dom0", "test.A", NULL), ASK);
  ck_assert_int_eq (action_of (policy, "work", "@adminvm", "test.A", NULL), ASK);
  /* ... nor as source */
  ck_assert_uint_eq (line_of (policy, "dom0", "work", "test.A", NULL), 3);
  ck_assert_int_eq (action_of (policy, "dom0", "work", "test.B", NULL), ALLOW);
  ck_assert_int_eq (action_of (policy, "work", "personal", "test.B", NULL), DENY);
  /* dom0 in a rule is @adminvm; the resolved target is "dom0" */
  d = decide (policy, "work", "@adminvm", "test.C", NULL, ALLOW);
  ck_assert_str_eq (qube_policy_decision_get_target (d), "dom0");
  ck_assert_str_eq (qube_policy_decision_get_requested_target (d), "@adminvm");
  /* "*" matches the admin qube too */
  assert_allowed_to (policy, "work", "dom0", "test.W", NULL, "dom0");
  assert_allowed_to (policy, "dom0", "work", "test.W", NULL, "work");
}
END_TEST

START_TEST (test_tag_and_type)
{
  g_autoptr(QubePolicy) policy = load_one (
    "test.T * @tag:work @tag:secure allow\n"
    "test.T * @type:AppVM @type:TemplateVM allow\n"
    "test.T * @type:AdminVM @tag:work allow\n");

  ck_assert (qube_policy_is_valid (policy));
  assert_allowed_to (policy, "work", "vault", "test.T", NULL, "vault");
  ck_assert_int_eq (action_of (policy, "personal", "vault", "test.T", NULL), DENY);
  assert_allowed_to (policy, "personal", "fedora", "test.T", NULL, "fedora");
  ck_assert_int_eq (action_of (policy, "fedora", "fedora", "test.T", NULL), DENY);
  ck_assert_int_eq (action_of (policy, "disp7", "fedora", "test.T", NULL), DENY);
  assert_allowed_to (policy, "dom0", "work", "test.T", NULL, "work");
  /* @tag matches qube names only, never the @adminvm keyword */
  ck_assert_int_eq (action_of (policy, "dom0", "dom0", "test.T", NULL), DENY);
}
END_TEST

START_TEST (test_tag_with_dot_and_default_user)
{
  const char *made_tags[] = { "created-by-my.vm", NULL };
  g_autoptr(QubePolicy) policy = load_one (
    "test.T * my.vm @tag:created-by-my.vm allow user=\n"
    "test.T * my.vm @anyvm deny\n");
  g_autoptr(QubePolicyDecision) d = NULL;

  ck_assert (qube_policy_system_add_qube (sys, "my.vm", "AppVM", NULL, FALSE, NULL, NULL));
  ck_assert (qube_policy_system_add_qube (sys, "made", "AppVM", made_tags, FALSE, NULL, NULL));
  ck_assert_msg (qube_policy_is_valid (policy), "%s", lint_text (policy));
  /* what a qube made through the Admin API is tagged with matches */
  d = decide (policy, "my.vm", "made", "test.T", NULL, ALLOW);
  ck_assert_str_eq (qube_policy_decision_get_target (d), "made");
  /* an empty user= is the target's default user */
  ck_assert_ptr_null (qube_policy_decision_get_user (d));
  ck_assert_int_eq (action_of (policy, "my.vm", "personal", "test.T", NULL), DENY);
}
END_TEST

START_TEST (test_dispvm)
{
  g_autoptr(QubePolicy) policy = load_one (
    "test.D * @anyvm @dispvm allow\n"
    "test.D * @anyvm @dispvm:other-dvm allow\n"
    "test.D * @anyvm @dispvm:work-dvm deny\n"
    "test.E * work @dispvm:work-dvm allow\n"
    "test.F * @anyvm @dispvm:@tag:dvm-work allow\n"
    "test.G * @dispvm:work-dvm @anyvm allow\n"
    "test.H * @dispvm:@tag:dvm-work personal allow\n"
    "test.R * @anyvm @default allow target=@dispvm\n"
    "test.S * @anyvm @anyvm allow target=@dispvm:work-dvm\n");
  g_autoptr(QubePolicyDecision) d = NULL;

  ck_assert_msg (qube_policy_is_valid (policy), "%s", lint_text (policy));
  /* @dispvm resolves to the caller's default disposable template and stays
   * a disposable request for the caller to make */
  d = decide (policy, "work", "@dispvm", "test.D", NULL, ALLOW);
  ck_assert_str_eq (qube_policy_decision_get_target (d), "@dispvm:work-dvm");
  ck_assert (qube_policy_decision_is_dispvm (d));
  ck_assert_str_eq (qube_policy_decision_get_requested_target (d), "@dispvm");
  g_clear_object (&d);
  /* no default disposable template: denied, saying why */
  d = decide (policy, "personal", "@dispvm", "test.D", NULL, DENY);
  ck_assert_ptr_nonnull (strstr (qube_policy_decision_get_reason (d), "no disposable template"));
  g_clear_object (&d);
  /* @dispvm:NAME only for disposable templates */
  assert_allowed_to (policy, "work", "@dispvm:other-dvm", "test.D", NULL, "@dispvm:other-dvm");
  ck_assert_uint_eq (line_of (policy, "work", "@dispvm:work-dvm", "test.D", NULL), 3);
  d = decide (policy, "work", "@dispvm:fedora", "test.D", NULL, DENY);
  ck_assert_ptr_nonnull (strstr (qube_policy_decision_get_reason (d), "not a template"));
  g_clear_object (&d);
  ck_assert_int_eq (action_of (policy, "work", "@dispvm:nosuch", "test.D", NULL), DENY);
  /* a @dispvm:NAME rule matches @dispvm when NAME is the caller's default */
  assert_allowed_to (policy, "work", "@dispvm", "test.E", NULL, "@dispvm:work-dvm");
  ck_assert_int_eq (action_of (policy, "work", "@dispvm:other-dvm", "test.E", NULL), DENY);
  /* @dispvm:@tag: as target */
  assert_allowed_to (policy, "vault", "@dispvm", "test.F", NULL, "@dispvm:work-dvm");
  assert_allowed_to (policy, "vault", "@dispvm:work-dvm", "test.F", NULL, "@dispvm:work-dvm");
  ck_assert_int_eq (action_of (policy, "vault", "@dispvm:other-dvm", "test.F", NULL), DENY);
  /* as source: valid, and matching no caller, as in Qubes (not even a
   * disposable made from the template, nor the template itself) */
  ck_assert_int_eq (action_of (policy, "disp7", "work", "test.G", NULL), DENY);
  ck_assert_int_eq (action_of (policy, "work-dvm", "work", "test.G", NULL), DENY);
  ck_assert_int_eq (action_of (policy, "disp7", "personal", "test.H", NULL), DENY);
  ck_assert_int_eq (action_of (policy, "work-dvm", "personal", "test.H", NULL), DENY);
  /* target= redirections to disposables */
  assert_allowed_to (policy, "vault", "", "test.R", NULL, "@dispvm:work-dvm");
  ck_assert_int_eq (action_of (policy, "personal", "", "test.R", NULL), DENY);
  assert_allowed_to (policy, "personal", "vault", "test.S", NULL, "@dispvm:work-dvm");
}
END_TEST

START_TEST (test_default_and_redirect)
{
  g_autoptr(QubePolicy) policy = load_one (
    "test.R * work @default allow target=vault\n"
    "test.R * work @anyvm allow\n"
    "test.N * work @anyvm allow\n"
    "test.M * work @default allow target=nosuch\n"
    "test.L * work @anyvm allow target=work\n"
    "test.X * @anyvm @anyvm deny\n");
  g_autoptr(QubePolicyDecision) d = NULL;

  ck_assert_msg (qube_policy_is_valid (policy), "%s", lint_text (policy));
  /* no target named: @default, redirected by target= */
  assert_allowed_to (policy, "work", NULL, "test.R", NULL, "vault");
  assert_allowed_to (policy, "work", "@default", "test.R", NULL, "vault");
  assert_allowed_to (policy, "work", "personal", "test.R", NULL, "personal");
  /* allow without any target: denied */
  d = decide (policy, "work", "", "test.N", NULL, DENY);
  ck_assert_ptr_nonnull (strstr (qube_policy_decision_get_reason (d), "no target"));
  g_clear_object (&d);
  /* a target that does not exist is treated as @default (Qubes does the
   * same so that callers cannot probe which qubes exist) */
  d = decide (policy, "work", "ghost", "test.R", NULL, ALLOW);
  ck_assert_str_eq (qube_policy_decision_get_target (d), "vault");
  ck_assert_str_eq (qube_policy_decision_get_requested_target (d), "@default");
  g_clear_object (&d);
  ck_assert_int_eq (action_of (policy, "work", "ghost", "test.N", NULL), DENY);
  ck_assert_int_eq (action_of (policy, "personal", "ghost", "test.X", NULL), DENY);
  /* redirect to a qube that does not exist */
  ck_assert_int_eq (action_of (policy, "work", "", "test.M", NULL), DENY);
  /* a qube cannot call itself */
  ck_assert_int_eq (action_of (policy, "work", "personal", "test.L", NULL), DENY);
  /* requests with a keyword that cannot be a call target */
  ck_assert_int_eq (action_of (policy, "work", "@anyvm", "test.R", NULL), DENY);
  ck_assert_int_eq (action_of (policy, "work", "@tag:work", "test.R", NULL), DENY);
  ck_assert_int_eq (action_of (policy, "work", "bad name", "test.R", NULL), DENY);
  /* invalid source or service */
  ck_assert_int_eq (action_of (policy, "-bad", "vault", "test.R", NULL), DENY);
  ck_assert_int_eq (action_of (policy, "work", "vault", "test+R", NULL), DENY);
  ck_assert_int_eq (action_of (policy, "work", "vault", "test.R", "+a b"), DENY);
}
END_TEST

START_TEST (test_params)
{
  g_autoptr(QubePolicy) policy = load_one (
    "test.P * work personal allow user=bob notify=yes autostart=no\n"
    "test.P * work @anyvm allow autostart=no\n"
    "test.Q * @anyvm @anyvm deny notify=no\n"
    "test.Q * @anyvm @adminvm deny\n"
    "test.S * @anyvm @anyvm ask autostart=no default_target=work user=u\n");
  g_autoptr(QubePolicyDecision) d = NULL;
  const char *const *targets;

  ck_assert_msg (qube_policy_is_valid (policy), "%s", lint_text (policy));
  /* personal is halted and autostart=no: denied */
  d = decide (policy, "work", "personal", "test.P", NULL, DENY);
  ck_assert_ptr_nonnull (strstr (qube_policy_decision_get_reason (d), "autostart"));
  g_clear_object (&d);
  ck_assert (qube_policy_system_set_running (sys, "personal", TRUE, NULL));
  d = decide (policy, "work", "personal", "test.P", NULL, ALLOW);
  ck_assert_str_eq (qube_policy_decision_get_user (d), "bob");
  ck_assert (qube_policy_decision_get_notify (d));
  ck_assert (!qube_policy_decision_get_autostart (d));
  g_clear_object (&d);
  /* the admin qube always runs; a disposable never does yet */
  d = decide (policy, "work", "fedora", "test.P", NULL, DENY);
  g_clear_object (&d);
  d = decide (policy, "work", "@dispvm", "test.P", NULL, DENY);
  g_clear_object (&d);
  /* notify defaults: yes for deny */
  d = eval (policy, "vault", "work", "test.Q", NULL);
  ck_assert (!qube_policy_decision_get_notify (d));
  g_clear_object (&d);
  d = eval (policy, "vault", "dom0", "test.Q", NULL);
  ck_assert (qube_policy_decision_get_notify (d));
  g_clear_object (&d);
  /* ask with autostart=no offers only running qubes (and dom0) */
  d = decide (policy, "vault", "", "test.S", NULL, ASK);
  targets = qube_policy_decision_get_targets (d);
  ck_assert_uint_eq (g_strv_length ((char **) targets), 2);
  ck_assert_str_eq (targets[0], "personal");
  ck_assert_str_eq (targets[1], "work");
  ck_assert_str_eq (qube_policy_decision_get_default_target (d), "work");
  ck_assert_str_eq (qube_policy_decision_get_user (d), "u");
}
END_TEST

/* The targets an ask decision offers, joined by spaces. */
static char *
offered (QubePolicy *policy, const char *source, const char *target, const char *service)
{
  g_autoptr(QubePolicyDecision) d = decide (policy, source, target, service, NULL, ASK);

  return g_strjoinv (" ", (char **) qube_policy_decision_get_targets (d));
}

START_TEST (test_ask_targets)
{
  g_autoptr(QubePolicy) policy = load_one (
    "test.A * work vault deny\n"
    "test.A * work @anyvm ask default_target=@dispvm\n"
    "test.A * work @dispvm allow\n"
    "test.A * work @adminvm allow\n"
    "test.B * work @anyvm ask target=vault\n"
    "test.C * work @tag:secure deny\n"
    "test.C * work @anyvm ask default_target=vault\n"
    "test.C * work @type:AppVM allow\n");
  g_autoptr(QubePolicyDecision) d = NULL;
  g_autofree char *joined = NULL;

  ck_assert_msg (qube_policy_is_valid (policy), "%s", lint_text (policy));
  /* ask collects from every rule for the call; deny above removes vault,
   * the caller itself is never offered, @dispvm is its template */
  d = decide (policy, "work", "personal", "test.A", NULL, ASK);
  joined = g_strjoinv (" ", (char **) qube_policy_decision_get_targets (d));
  ck_assert_str_eq (joined, "@dispvm:other-dvm @dispvm:work-dvm disp7 dom0 fedora other-dvm "
                            "personal work-dvm");
  ck_assert_str_eq (qube_policy_decision_get_default_target (d), "@dispvm:work-dvm");
  ck_assert_uint_eq (qube_policy_decision_get_line (d), 2);
  g_clear_object (&d);
  g_clear_pointer (&joined, g_free);
  /* target= offers just that one */
  joined = offered (policy, "work", "personal", "test.B");
  ck_assert_str_eq (joined, "vault");
  g_clear_pointer (&joined, g_free);
  /* a deny removes what it covers from what the rules after it add; a
   * default that is not offered is dropped */
  d = eval (policy, "work", "personal", "test.C", NULL);
  joined = g_strjoinv (" ", (char **) qube_policy_decision_get_targets (d));
  ck_assert_str_eq (joined, "@dispvm:other-dvm @dispvm:work-dvm disp7 fedora other-dvm "
                            "personal work-dvm");
  ck_assert_ptr_null (qube_policy_decision_get_default_target (d));
}
END_TEST

START_TEST (test_ask_dispvm_is_resolved_last)
{
  g_autoptr(QubePolicy) policy = load_one (
    "test.A * work @dispvm deny\n"
    "test.A * work @anyvm ask\n"
    "test.B * work @dispvm:work-dvm deny\n"
    "test.B * work @default ask\n"
    "test.B * work @dispvm allow\n");
  g_autofree char *anyvm = NULL;
  g_autofree char *dvm = NULL;

  ck_assert_msg (qube_policy_is_valid (policy), "%s", lint_text (policy));
  /* As in Qubes, @dispvm is a keyword of its own while deny rules take
   * targets away, and becomes @dispvm:TEMPLATE only at the end: denying
   * @dispvm leaves the @dispvm:work-dvm that @anyvm covers ... */
  anyvm = offered (policy, "work", "", "test.A");
  ck_assert_str_eq (anyvm, "@dispvm:other-dvm @dispvm:work-dvm disp7 fedora other-dvm "
                           "personal vault work-dvm");
  /* ... and denying @dispvm:work-dvm leaves what @dispvm becomes */
  dvm = offered (policy, "work", "", "test.B");
  ck_assert_str_eq (dvm, "@dispvm:work-dvm");
}
END_TEST

static char *
write_agent (const char *script_body)
{
  g_autofree char *text = g_strdup_printf ("#!/bin/sh\n%s\n", script_body);
  g_autofree char *path = g_build_filename (tmpdir, "agent.sh", NULL);

  write_file ("agent.sh", text, -1);
  ck_assert_int_eq (g_chmod (path, 0755), 0);
  return g_steal_pointer (&path);
}

static QubePolicyDecision *
resolve (QubePolicy *policy, const char *agent)
{
  g_autoptr(QubePolicyDecision) d = decide (policy, "work", "vault", "test.Ask", "+arg", ASK);
  return qube_policy_decision_resolve_ask (d, agent, NULL);
}

static void
assert_agent_denies (QubePolicy *policy, const char *script_body, const char *why)
{
  g_autofree char *agent = write_agent (script_body);
  g_autoptr(QubePolicyDecision) d = resolve (policy, agent);

  ck_assert_int_eq (qube_policy_decision_get_action (d), DENY);
  ck_assert_msg (strstr (qube_policy_decision_get_reason (d), why) != NULL, "%s: %s",
                 script_body, qube_policy_decision_get_reason (d));
  ck_assert_uint_eq (qube_policy_decision_get_line (d), 1);
}

START_TEST (test_prompt_agent)
{
  g_autoptr(QubePolicy) policy = load_one (
    "test.Ask * work @tag:secure ask default_target=vault user=u\n"
    "test.Ask * work personal allow\n");
  g_autoptr(QubePolicyDecision) d = NULL;
  g_autofree char *agent = NULL;
  g_autofree char *args_path = g_build_filename (tmpdir, "args", NULL);
  g_autofree char *args = NULL;
  g_autofree char *script = NULL;

  /* no agent configured: denied, saying so */
  d = resolve (policy, NULL);
  ck_assert_int_eq (qube_policy_decision_get_action (d), DENY);
  ck_assert_ptr_nonnull (strstr (qube_policy_decision_get_reason (d), "no prompt agent is configured"));
  g_clear_object (&d);

  /* the agent gets source, service, argument, default and the choices */
  script = g_strdup_printf ("echo \"$*\" > '%s'\necho 'allow vault'", args_path);
  agent = write_agent (script);
  d = resolve (policy, agent);
  ck_assert_msg (qube_policy_decision_get_action (d) == ALLOW, "%s",
                 qube_policy_decision_get_reason (d));
  ck_assert_str_eq (qube_policy_decision_get_target (d), "vault");
  ck_assert_str_eq (qube_policy_decision_get_user (d), "u");
  ck_assert_uint_eq (qube_policy_decision_get_line (d), 1);
  ck_assert (g_file_get_contents (args_path, &args, NULL, NULL));
  ck_assert_str_eq (args, "work test.Ask +arg vault personal vault\n");
  g_clear_object (&d);

  /* a refusal, a choice that was not offered, a failing agent, nonsense */
  assert_agent_denies (policy, "echo deny", "denied by the prompt agent");
  /* a refusal is announced as the ask rule says (default no), a failed
   * prompt as any other denial (write_agent() rewrites one file: each
   * answer below is taken before the next agent is written) */
  {
    g_autofree char *no = write_agent ("echo deny");
    g_autoptr(QubePolicyDecision) refused = resolve (policy, no);
    g_autoptr(QubePolicy) loud = load_one ("test.Ask * work @anyvm ask default_target=vault notify=yes\n");
    g_autoptr(QubePolicyDecision) ask = decide (loud, "work", "vault", "test.Ask", "+arg", ASK);
    g_autoptr(QubePolicyDecision) refused_loud = qube_policy_decision_resolve_ask (ask, no, NULL);
    g_autofree char *broken = write_agent ("exit 3");
    g_autoptr(QubePolicyDecision) failed = resolve (policy, broken);

    ck_assert (!qube_policy_decision_get_notify (refused));
    ck_assert_int_eq (qube_policy_decision_get_action (refused_loud), DENY);
    ck_assert (qube_policy_decision_get_notify (refused_loud));
    ck_assert_int_eq (qube_policy_decision_get_action (failed), DENY);
    ck_assert (qube_policy_decision_get_notify (failed));
  }
  assert_agent_denies (policy, "echo 'allow fedora'", "not offered");
  assert_agent_denies (policy, "echo 'allow vault'; exit 3", "did not exit with status 0");
  assert_agent_denies (policy, "echo yes", "answered neither");
  /* giving up on a slow agent denies */
  {
    g_autofree char *slow = write_agent ("exec sleep 600");
    g_autoptr(GCancellable) cancel = g_cancellable_new ();
    g_autoptr(QubePolicyDecision) ask = decide (policy, "work", "vault", "test.Ask", "+arg", ASK);
    g_autoptr(QubePolicyDecision) gave_up = NULL;

    g_cancellable_cancel (cancel);
    gave_up = qube_policy_decision_resolve_ask (ask, slow, cancel);
    ck_assert_int_eq (qube_policy_decision_get_action (gave_up), DENY);
    ck_assert_ptr_nonnull (strstr (qube_policy_decision_get_reason (gave_up), "failed"));
  }
  d = resolve (policy, "/nonexistent/agent");
  ck_assert_int_eq (qube_policy_decision_get_action (d), DENY);
  ck_assert_ptr_nonnull (strstr (qube_policy_decision_get_reason (d), "cannot run prompt agent"));
}
END_TEST

START_TEST (test_valid_syntax)
{
  assert_line_valid ("qubes.Filecopy + @anyvm @anyvm ask");
  assert_line_valid ("* * @tag:a-b_c @type:DispVM deny notify=yes");
  assert_line_valid ("s.X +a.b-c_d+e @dispvm:work-dvm @dispvm:@tag:x allow target=@adminvm user=root");
  assert_line_valid ("s.X * @anyvm @default ask target=@dispvm default_target=@dispvm");
  assert_line_valid ("s.X * * * allow autostart=yes notify=no");
  assert_line_valid ("\t s.X\t*\t\tdom0 \t @adminvm   deny   \r");
  /* tags as the tag store takes them, '.' included (created-by-my.vm) */
  assert_line_valid ("s.X * @tag:created-by-my.vm @dispvm:@tag:a.b_C-9 allow");
  assert_line_valid ("s.X * my.vm @tag:.x. allow");
  /* an empty user= is the default user, as in Qubes */
  assert_line_valid ("s.X * my.vm personal allow user=");
}
END_TEST

START_TEST (test_invalid_syntax)
{
  assert_line_invalid ("s.X * work", "wrong number of fields");
  assert_line_invalid ("s.X * work personal", "wrong number of fields");
  assert_line_invalid ("s.X * work personal permit", "invalid action: 'permit'");
  assert_line_invalid ("* +arg work personal allow", "only * argument allowed for * service");
  assert_line_invalid ("s.X arg work personal allow", "does not start with +");
  assert_line_invalid ("s+X * work personal allow", "service 's+X' contains invalid characters");
  assert_line_invalid ("s.X +a/b work personal allow", "argument '+a/b' contains invalid characters");
  assert_line_invalid ("s.X * @default personal allow", "'@default' cannot be used as a source");
  assert_line_invalid ("s.X * @dispvm personal allow", "'@dispvm' cannot be used as a source");
  assert_line_invalid ("s.X * work @foo allow", "invalid target token: '@foo'");
  assert_line_invalid ("s.X * @tag: personal allow", "invalid empty source token");
  assert_line_invalid ("s.X * work @dispvm:@foo:x allow", "invalid target token");
  assert_line_invalid ("s.X * work 9lives allow", "not a valid qube name");
  assert_line_invalid ("s.X * work personal allow target=@anyvm", "'@anyvm' cannot be used as a redirect target");
  assert_line_invalid ("s.X * work personal allow target=@tag:x", "cannot be used as a redirect target");
  assert_line_invalid ("s.X * work personal ask default_target=@default", "cannot be used as a redirect target");
  assert_line_invalid ("s.X * work @default allow", "allow action for @default rule must specify target= option");
  assert_line_invalid ("s.X * work personal allow default_target=work", "invalid parameter for action allow");
  assert_line_invalid ("s.X * work personal deny target=work", "invalid parameter for action deny");
  assert_line_invalid ("s.X * work personal deny user=root", "invalid parameter for action deny");
  assert_line_invalid ("s.X * work personal deny autostart=no", "invalid parameter for action deny");
  assert_line_invalid ("s.X * work personal allow color=red", "invalid parameter for action allow");
  assert_line_invalid ("s.X * work personal allow user", "invalid action parameter syntax");
  assert_line_invalid ("s.X * work personal allow user=a user=b", "parameter given twice: 'user'");
  assert_line_invalid ("s.X * work personal allow notify=true", "'notify' is 'true', but can be only 'yes' or 'no'");
  assert_line_invalid ("s.X * work personal ask autostart=1", "'autostart' is '1'");
  assert_line_invalid ("s.X * work personal allow user=a:b", "invalid user 'a:b'");
  assert_line_invalid ("s.X * wörk personal allow", "invalid source token");
  assert_line_invalid ("s.X * work @tag:a/b allow", "invalid target token: '@tag:a/b' (not a valid tag)");
  assert_line_invalid ("s.X * @tag:a:b work allow", "invalid source token: '@tag:a:b' (not a valid tag)");
  assert_line_invalid ("s.X * work personal allow user=a b", "invalid action parameter syntax: 'b'");
  assert_line_invalid ("!include-dir", "invalid number of params");
}
END_TEST

START_TEST (test_bad_bytes)
{
  g_autofree char *long_line = NULL;
  g_autoptr(QubePolicy) policy = NULL;
  g_autoptr(QubePolicy) nul = NULL;
  g_autoptr(QubePolicy) latin1 = NULL;
  g_autofree char *lint = NULL;
  g_autofree char *lint_nul = NULL;
  g_autofree char *lint_latin1 = NULL;
  GString *s = g_string_new ("# ok\n# ");

  /* an overlong line, even in a comment */
  for (int i = 0; i < QUBE_POLICY_MAX_LINE; i++)
    g_string_append_c (s, 'x');
  g_string_append (s, "\n* * @anyvm @anyvm allow\n");
  long_line = g_string_free (s, FALSE);
  policy = load_one (long_line);
  lint = lint_text (policy);
  ck_assert (!qube_policy_is_valid (policy));
  ck_assert_msg (strstr (lint, "50-test.policy:2: error: line is longer than") != NULL, "%s", lint);
  ck_assert_int_eq (action_of (policy, "work", "personal", "s.X", NULL), DENY);

  write_file ("50-test.policy", "* * @anyvm @anyvm allow\ns.X * work\0 personal allow\n", 48);
  nul = qube_policy_load (tmpdir);
  lint_nul = lint_text (nul);
  ck_assert_msg (strstr (lint_nul, "50-test.policy:2: error: line contains a NUL byte") != NULL,
                 "%s", lint_nul);
  ck_assert_int_eq (action_of (nul, "work", "personal", "s.X", NULL), DENY);

  write_file ("50-test.policy", "# caf\xe9\n* * @anyvm @anyvm allow\n", -1);
  latin1 = qube_policy_load (tmpdir);
  lint_latin1 = lint_text (latin1);
  ck_assert_msg (strstr (lint_latin1, "50-test.policy:1: error: line is not valid UTF-8") != NULL,
                 "%s", lint_latin1);
}
END_TEST

START_TEST (test_problems_are_capped)
{
  GString *s = g_string_new ("test.C * work personal allow\n");
  g_autofree char *text = NULL;
  g_autoptr(QubePolicy) policy = NULL;
  g_autoptr(GPtrArray) problems = NULL;
  g_autofree char *first = NULL;
  g_autofree char *last = NULL;
  g_autofree char *summary = NULL;

  /* 200000 bad lines keep 100 problems and one that counts the rest */
  for (int i = 0; i < 200000; i++)
    g_string_append (s, "x\n");
  text = g_string_free (s, FALSE);
  policy = load_one (text);
  problems = qube_policy_lint (policy);
  ck_assert (!qube_policy_is_valid (policy));
  ck_assert_uint_eq (problems->len, 101);
  first = qube_policy_problem_to_string (problems->pdata[0]);
  ck_assert_msg (strstr (first, "50-test.policy:2: error: wrong number of fields") != NULL, "%s", first);
  last = qube_policy_problem_to_string (problems->pdata[99]);
  ck_assert_msg (strstr (last, "50-test.policy:101: error: ") != NULL, "%s", last);
  summary = qube_policy_problem_to_string (problems->pdata[100]);
  ck_assert_msg (g_str_has_prefix (summary, tmpdir), "%s", summary);
  ck_assert_msg (strstr (summary, ":0: error: 199900 more problems not listed (199900 errors)") != NULL,
                 "%s", summary);
  ck_assert_int_eq (action_of (policy, "work", "personal", "test.C", NULL), DENY);
}
END_TEST

/* A policy whose 10-top.policy includes a chain of `depth` files, each
 * including the next `times` times (times^depth loads without a limit). */
static QubePolicy *
load_include_chain (int depth, int times, const char *last_text)
{
  for (int i = 0; i < depth; i++)
    {
      g_autofree char *name = g_strdup_printf ("inc/f%d", i);
      GString *s = g_string_new ("");

      for (int j = 0; j < times; j++)
        if (i + 1 < depth)
          g_string_append_printf (s, "!include inc/f%d\n", i + 1);
        else
          g_string_append (s, last_text);
      write_file (name, s->str, -1);
      g_string_free (s, TRUE);
    }
  write_file ("10-top.policy", "!include inc/f0\n", -1);
  write_file ("20-after.policy", "test.After * work personal allow\n", -1);
  return qube_policy_load (tmpdir);
}

START_TEST (test_files_read_are_capped)
{
  g_autoptr(QubePolicy) policy = load_include_chain (13, 2, "# leaf\n");
  g_autoptr(GPtrArray) problems = qube_policy_lint (policy);
  g_autofree char *lint = lint_text (policy);
  g_autofree char *where = g_strdup_printf ("%s/inc/f", tmpdir);

  /* 2^13 - 1 loads without the limit: the 1025th file is an error, named
   * at its !include line, and nothing is read after it */
  ck_assert (!qube_policy_is_valid (policy));
  ck_assert_uint_eq (problems->len, 1);
  ck_assert_msg (g_str_has_prefix (lint, where), "%s", lint);
  ck_assert_msg (strstr (lint, " error: not read: '") != NULL
                 && strstr (lint, "': the policy reads at most 1024 files") != NULL, "%s", lint);
  ck_assert_uint_eq (qube_policy_get_n_rules (policy), 0);
  ck_assert_int_eq (action_of (policy, "work", "personal", "test.After", NULL), DENY);
}
END_TEST

START_TEST (test_bytes_read_are_capped)
{
  GString *big = g_string_new ("");
  g_autoptr(QubePolicy) policy = NULL;
  g_autofree char *lint = NULL;
  g_autofree char *top = g_strdup_printf ("%s/10-top.policy:", tmpdir);
  g_autofree char *f0 = g_strdup_printf ("%s/inc/f0:", tmpdir);

  /* one 1 MiB file (long comment lines) included 40 times */
  while (big->len < 1024 * 1024)
    {
      g_string_append_c (big, '#');
      for (int i = 0; i < 1022; i++)
        g_string_append_c (big, 'x');
      g_string_append_c (big, '\n');
    }
  write_file ("inc/big", big->str, big->len);
  g_string_free (big, TRUE);
  policy = load_include_chain (1, 40, "!include inc/big\n");
  lint = lint_text (policy);
  ck_assert (!qube_policy_is_valid (policy));
  ck_assert_msg (g_str_has_prefix (lint, f0), "%s", lint);
  ck_assert_msg (strstr (lint, "error: not read: '") != NULL
                 && strstr (lint, "inc/big': the policy reads at most 33554432 bytes") != NULL,
                 "%s", lint);
  ck_assert_ptr_null (strstr (lint, top));
  ck_assert_int_eq (action_of (policy, "work", "personal", "test.After", NULL), DENY);
}
END_TEST

START_TEST (test_comments_whitespace_crlf)
{
  g_autoptr(QubePolicy) policy = load_one (
    "# comment\r\n"
    "   # indented comment\r\n"
    "\r\n"
    " \t \r\n"
    "test.C\t*\twork\tpersonal\tallow\r\n"
    "test.C * work vault allow # not a comment: becomes a parameter\n");
  g_autofree char *lint = lint_text (policy);

  ck_assert (!qube_policy_is_valid (policy));
  ck_assert_msg (strstr (lint, "50-test.policy:6: error: invalid action parameter syntax: '#'") != NULL,
                 "%s", lint);
  ck_assert_uint_eq (qube_policy_get_n_rules (policy), 1);
}
END_TEST

START_TEST (test_lone_cr_ends_a_line)
{
  g_autoptr(QubePolicy) policy = load_one (
    "# one\r"
    "test.C * work personal allow target=vault\r"
    "# comment\r\n"
    "test.D\x1c*\x1fwork personal deny\r"
    "\r"
    "test.E * work personal permit\n");
  g_autofree char *lint = lint_text (policy);
  g_autofree char *only = g_strdup_printf ("%s/50-test.policy:6: error: invalid action: "
                                           "'permit' (expected allow, deny or ask)\n", tmpdir);

  /* as Qubes reads it: a lone \r ends a line, \r\n is one line end, and
   * \x1c-\x1f separate fields as Python's str.split() has it */
  ck_assert_uint_eq (qube_policy_get_n_rules (policy), 2);
  ck_assert_str_eq (lint, only);

  /* the same rules, valid, decide at those lines */
  g_clear_object (&policy);
  policy = load_one ("# one\rtest.C * work personal allow target=vault\r# comment\r\n"
                     "test.D\x1c*\x1fwork personal deny\r");
  ck_assert_msg (qube_policy_is_valid (policy), "%s", lint_text (policy));
  ck_assert_uint_eq (line_of (policy, "work", "personal", "test.C", NULL), 2);
  assert_allowed_to (policy, "work", "personal", "test.C", NULL, "vault");
  ck_assert_uint_eq (line_of (policy, "work", "personal", "test.D", NULL), 4);
}
END_TEST

START_TEST (test_compat40_warning)
{
  g_autoptr(QubePolicy) policy = load_one ("!compat-4.0\ntest.C * work personal allow\n");
  g_autoptr(GPtrArray) problems = qube_policy_lint (policy);

  ck_assert (qube_policy_is_valid (policy));
  ck_assert_uint_eq (problems->len, 1);
  ck_assert (!qube_policy_problem_is_error (problems->pdata[0]));
  ck_assert_uint_eq (qube_policy_problem_get_line (problems->pdata[0]), 1);
  ck_assert_int_eq (action_of (policy, "work", "personal", "test.C", NULL), ALLOW);
}
END_TEST

START_TEST (test_split_call_and_system)
{
  g_autofree char *svc = NULL;
  g_autofree char *arg = NULL;
  g_autoptr(GError) error = NULL;

  ck_assert (qube_policy_split_call ("qubes.Filecopy", &svc, &arg, &error));
  ck_assert_str_eq (svc, "qubes.Filecopy");
  ck_assert_str_eq (arg, "+");
  g_clear_pointer (&svc, g_free);
  g_clear_pointer (&arg, g_free);
  ck_assert (qube_policy_split_call ("admin.vm.property.Get+netvm", &svc, &arg, &error));
  ck_assert_str_eq (svc, "admin.vm.property.Get");
  ck_assert_str_eq (arg, "+netvm");
  ck_assert (!qube_policy_split_call ("bad/service", &svc, &arg, &error));
  ck_assert_ptr_nonnull (strstr (error->message, "bad/service"));
  g_clear_error (&error);

  ck_assert (!qube_policy_system_add_qube (sys, "work", "AppVM", NULL, FALSE, NULL, &error));
  ck_assert (g_error_matches (error, QUBE_ERROR, QUBE_ERROR_EXISTS));
  g_clear_error (&error);
  ck_assert (!qube_policy_system_add_qube (sys, "no way", "AppVM", NULL, FALSE, NULL, &error));
  g_clear_error (&error);
  ck_assert (!qube_policy_system_set_running (sys, "ghost", TRUE, &error));
  ck_assert (g_error_matches (error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND));
  ck_assert (qube_policy_system_has_qube (sys, "vault"));
  ck_assert (!qube_policy_system_has_qube (sys, "ghost"));
}
END_TEST

START_TEST (test_buffer_refuses_includes)
{
  const char text[] = "!include /etc/passwd\ntest.B * work personal allow\n";
  g_autoptr(QubePolicy) policy = _qube_policy_new_from_buffer ("buf.policy", text, sizeof text - 1);
  g_autofree char *lint = lint_text (policy);

  ck_assert_msg (strstr (lint, "buf.policy:1: error: include directives are not allowed here") != NULL,
                 "%s", lint);
  ck_assert_int_eq (action_of (policy, "work", "personal", "test.B", NULL), DENY);
}
END_TEST

static Suite *
policy_suite (void)
{
  Suite *s = suite_create ("policy");
  TCase *tc = tcase_create ("policy");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_fixture_first_match_and_default_deny);
  tcase_add_test (tc, test_fixture_file_order);
  tcase_add_test (tc, test_order_is_c_locale_and_names_checked);
  tcase_add_test (tc, test_fixture_includes);
  tcase_add_test (tc, test_include_relative_to_policy_dir_and_errors);
  tcase_add_test (tc, test_include_service_nested);
  tcase_add_test (tc, test_include_loop);
  tcase_add_test (tc, test_unreadable_file_is_named);
  tcase_add_test (tc, test_fixture_invalid_denies_everything);
  tcase_add_test (tc, test_missing_dir_and_env);
  tcase_add_test (tc, test_argument_matching);
  tcase_add_test (tc, test_anyvm_and_adminvm);
  tcase_add_test (tc, test_tag_and_type);
  tcase_add_test (tc, test_tag_with_dot_and_default_user);
  tcase_add_test (tc, test_dispvm);
  tcase_add_test (tc, test_default_and_redirect);
  tcase_add_test (tc, test_params);
  tcase_add_test (tc, test_ask_targets);
  tcase_add_test (tc, test_ask_dispvm_is_resolved_last);
  tcase_add_test (tc, test_prompt_agent);
  tcase_add_test (tc, test_valid_syntax);
  tcase_add_test (tc, test_invalid_syntax);
  tcase_add_test (tc, test_bad_bytes);
  tcase_add_test (tc, test_problems_are_capped);
  tcase_add_test (tc, test_files_read_are_capped);
  tcase_add_test (tc, test_bytes_read_are_capped);
  tcase_add_test (tc, test_comments_whitespace_crlf);
  tcase_add_test (tc, test_lone_cr_ends_a_line);
  tcase_add_test (tc, test_compat40_warning);
  tcase_add_test (tc, test_split_call_and_system);
  tcase_add_test (tc, test_buffer_refuses_includes);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (policy_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
