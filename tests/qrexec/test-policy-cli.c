/* test-policy-cli.c — `qube policy check` and `qube policy lint`: what a
 * user sees for a call (decision, target, the deciding rule's file:line,
 * text and JSON), where the policy is read from, and the problems lint
 * lists with its exit status. */
#include "config.h"

#include <check.h>
#include <string.h>
#include <sys/wait.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "qube-run.h"
#include <json-glib/json-glib.h>

static char *tmp_dir;
static char *state_dir;
static char *policy_dir;


/* Runs `qube ARGS…`; QUBE_POLICY_DIR is set only when `env_policy_dir`. */
static Run *
qube_runv (const char *env_policy_dir, const char *const *args)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_auto(GStrv) envp = g_get_environ ();
  g_autoptr(GError) error = NULL;
  Run *run = g_new0 (Run, 1);
  int wait_status;

  g_ptr_array_add (argv, g_build_filename (g_getenv ("QUBE_TEST_BUILDDIR"), "cli", "qube", NULL));
  for (const char *const *a = args; *a != NULL; a++)
    g_ptr_array_add (argv, g_strdup (*a));
  g_ptr_array_add (argv, NULL);
  envp = g_environ_setenv (envp, "QUBE_STATE_DIR", state_dir, TRUE);
  envp = g_environ_setenv (envp, "LC_ALL", "C.UTF-8", TRUE);
  envp = g_environ_unsetenv (envp, "QUBE_POLICY_DIR");
  if (env_policy_dir != NULL)
    envp = g_environ_setenv (envp, "QUBE_POLICY_DIR", env_policy_dir, TRUE);
  if (!g_spawn_sync (NULL, (char **) argv->pdata, envp, G_SPAWN_DEFAULT, NULL, NULL,
                     &run->out, &run->err, &wait_status, &error))
    ck_abort_msg ("cannot run qube: %s", error->message);
  ck_assert (WIFEXITED (wait_status));
  run->status = WEXITSTATUS (wait_status);
  return run;
}

#define qube_run(...) qube_runv (NULL, (const char *const[]) { __VA_ARGS__, NULL })

static void
write_policy (const char *name, const char *text)
{
  g_autofree char *path = g_build_filename (policy_dir, name, NULL);

  ck_assert (g_file_set_contents (path, text, -1, NULL));
}

static void
setup (void)
{
  tmp_dir = g_dir_make_tmp ("qube-policy-cli-XXXXXX", NULL);
  ck_assert (tmp_dir != NULL);
  state_dir = g_build_filename (tmp_dir, "state", NULL);
  policy_dir = g_build_filename (tmp_dir, "policy.d", NULL);
  g_mkdir_with_parents (policy_dir, 0755);
  {
    g_autoptr(Run) a = qube_run ("create", "-C", "StandaloneVM", "work");
    g_autoptr(Run) b = qube_run ("create", "-C", "StandaloneVM", "vault");
    g_autoptr(Run) c = qube_run ("tags", "work", "add", "secret");

    ck_assert_msg (a->status == 0 && b->status == 0 && c->status == 0, "%s%s%s", a->err, b->err, c->err);
  }
  write_policy ("30-test.policy",
                "# comment\n"
                "test.Allow  *      work        vault  allow user=root\n"
                "test.Ask    *      work        vault  ask default_target=vault\n"
                "test.Tag    *      @tag:secret vault  allow\n"
                "test.Arg    +one   work        vault  allow\n"
                "test.Arg    *      work        vault  deny\n");
}

static void
teardown (void)
{
  g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", tmp_dir);

  (void) !system (cmd);
  g_clear_pointer (&tmp_dir, g_free);
  g_clear_pointer (&state_dir, g_free);
  g_clear_pointer (&policy_dir, g_free);
}

static char *
rule (int line)
{
  return g_strdup_printf ("rule=%s/30-test.policy:%d", policy_dir, line);
}

START_TEST (test_check_allow_prints_target_and_rule)
{
  g_autoptr(Run) run = qube_run ("policy", "check", "--policy-dir", policy_dir, "work", "vault", "test.Allow");
  g_autofree char *where = rule (2);

  ck_assert_int_eq (run->status, 0);
  ck_assert_msg (g_str_has_prefix (run->out, "allow target=vault user=root "), "%s", run->out);
  ck_assert_msg (strstr (run->out, where) != NULL, "%s", run->out);
}
END_TEST

START_TEST (test_check_argument_decides)
{
  g_autoptr(Run) one = qube_run ("policy", "check", "--policy-dir", policy_dir, "work", "vault", "test.Arg+one");
  g_autoptr(Run) two = qube_run ("policy", "check", "--policy-dir", policy_dir, "work", "vault", "test.Arg+two");
  g_autofree char *r5 = rule (5);
  g_autofree char *r6 = rule (6);

  ck_assert_msg (g_str_has_prefix (one->out, "allow target=vault") && strstr (one->out, r5), "%s", one->out);
  ck_assert_msg (g_str_has_prefix (two->out, "deny") && strstr (two->out, r6), "%s", two->out);
}
END_TEST

START_TEST (test_check_tags_come_from_the_qubes)
{
  g_autoptr(Run) work = qube_run ("policy", "check", "--policy-dir", policy_dir, "work", "vault", "test.Tag");
  g_autoptr(Run) vault = qube_run ("policy", "check", "--policy-dir", policy_dir, "vault", "work", "test.Tag");

  ck_assert_msg (g_str_has_prefix (work->out, "allow target=vault"), "%s", work->out);
  ck_assert_msg (g_str_has_prefix (vault->out, "deny rule=none"), "%s", vault->out);
}
END_TEST

START_TEST (test_check_tag_of_a_qube_made_by_a_dotted_qube)
{
  g_autoptr(Run) tag = qube_run ("tags", "vault", "add", "created-by-my.vm");
  g_autoptr(Run) lint = NULL;
  g_autoptr(Run) check = NULL;

  /* core/qube-admin.c tags a qube made by CALLER created-by-CALLER, and
   * qube names may hold '.' */
  ck_assert_msg (tag->status == 0, "%s", tag->err);
  write_policy ("20-made.policy", "test.Made * work @tag:created-by-my.vm allow user=\n");
  lint = qube_run ("policy", "lint", "--policy-dir", policy_dir);
  ck_assert_msg (lint->status == 0 && *lint->out == '\0', "%s", lint->out);
  check = qube_run ("policy", "check", "--policy-dir", policy_dir, "work", "vault", "test.Made");
  /* no user= printed: the default user */
  ck_assert_msg (g_str_has_prefix (check->out, "allow target=vault rule="), "%s", check->out);
}
END_TEST

START_TEST (test_check_json)
{
  g_autoptr(Run) run = qube_run ("policy", "check", "--json", "--policy-dir", policy_dir,
                                 "work", "vault", "test.Ask+x");
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autofree char *file = g_build_filename (policy_dir, "30-test.policy", NULL);
  JsonObject *obj;

  ck_assert_int_eq (run->status, 0);
  ck_assert_msg (json_parser_load_from_data (parser, run->out, -1, NULL), "%s", run->out);
  obj = json_node_get_object (json_parser_get_root (parser));
  ck_assert_str_eq (json_object_get_string_member (obj, "action"), "ask");
  ck_assert_str_eq (json_object_get_string_member (obj, "service"), "test.Ask");
  ck_assert_str_eq (json_object_get_string_member (obj, "argument"), "+x");
  ck_assert_str_eq (json_object_get_string_member (obj, "default_target"), "vault");
  ck_assert_str_eq (json_object_get_string_member (obj, "file"), file);
  ck_assert_int_eq (json_object_get_int_member (obj, "line"), 3);
  ck_assert_str_eq (json_array_get_string_element (json_object_get_array_member (obj, "targets"), 0),
                    "vault");
}
END_TEST

START_TEST (test_check_no_rule_denies)
{
  g_autoptr(Run) run = qube_run ("policy", "check", "--policy-dir", policy_dir, "vault", "work", "test.Other");

  ck_assert_int_eq (run->status, 0);
  ck_assert_msg (g_str_has_prefix (run->out, "deny rule=none (no matching rule"), "%s", run->out);
}
END_TEST

START_TEST (test_policy_dir_from_environment)
{
  g_autoptr(Run) run = qube_runv (policy_dir, (const char *const[]) {
                                    "policy", "check", "work", "vault", "test.Allow", NULL });

  ck_assert_msg (g_str_has_prefix (run->out, "allow target=vault"), "%s%s", run->out, run->err);
}
END_TEST

START_TEST (test_invalid_file_denies_everything_and_lint_says_where)
{
  g_autofree char *bad = g_build_filename (policy_dir, "50-bad.policy", NULL);
  g_autofree char *where = g_strdup_printf ("%s:2: error:", bad);
  g_autoptr(Run) clean = qube_run ("policy", "lint", "--policy-dir", policy_dir);
  g_autoptr(Run) lint = NULL;
  g_autoptr(Run) check = NULL;

  ck_assert_int_eq (clean->status, 0);
  ck_assert_str_eq (clean->out, "");
  write_policy ("50-bad.policy", "test.Allow * work vault allow\ntest.Allow * work vault maybe\n");
  lint = qube_run ("policy", "lint", "--policy-dir", policy_dir);
  ck_assert_int_eq (lint->status, 1);
  ck_assert_msg (g_str_has_prefix (lint->out, where), "%s", lint->out);
  check = qube_run ("policy", "check", "--policy-dir", policy_dir, "work", "vault", "test.Allow");
  ck_assert_msg (g_str_has_prefix (check->out, "deny") && strstr (check->out, "50-bad.policy:2") != NULL,
                 "%s", check->out);
}
END_TEST

START_TEST (test_lint_lists_the_first_100_problems)
{
  g_autofree char *bad = g_build_filename (policy_dir, "50-bad.policy", NULL);
  g_autofree char *first = g_strdup_printf ("%s:1: error: wrong number of fields", bad);
  g_autofree char *hundredth = g_strdup_printf ("%s:100: error: wrong number of fields", bad);
  g_autofree char *rest = g_strdup_printf ("%s:0: error: 50 more problems not listed (50 errors)",
                                           policy_dir);
  GString *text = g_string_new ("");
  g_autoptr(Run) lint = NULL;
  g_auto(GStrv) lines = NULL;

  for (int i = 0; i < 150; i++)
    g_string_append (text, "x\n");
  write_policy ("50-bad.policy", text->str);
  g_string_free (text, TRUE);
  lint = qube_run ("policy", "lint", "--policy-dir", policy_dir);
  ck_assert_int_eq (lint->status, 1);
  lines = g_strsplit (lint->out, "\n", -1);
  ck_assert_uint_eq (g_strv_length (lines), 102); /* and "" after the last newline */
  ck_assert_msg (g_str_has_prefix (lines[0], first), "%s", lines[0]);
  ck_assert_msg (g_str_has_prefix (lines[99], hundredth), "%s", lines[99]);
  ck_assert_msg (g_str_has_prefix (lines[100], rest), "%s", lines[100]);
}
END_TEST

START_TEST (test_usage_errors)
{
  g_autoptr(Run) few = qube_run ("policy", "check", "work", "vault");
  g_autoptr(Run) action = qube_run ("policy", "frob");

  ck_assert_int_eq (few->status, 2);
  ck_assert_msg (strstr (few->err, "SOURCE TARGET SERVICE") != NULL, "%s", few->err);
  ck_assert_int_eq (action->status, 2);
  ck_assert_msg (strstr (action->err, "unknown action 'frob'") != NULL, "%s", action->err);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("policy-cli");
  TCase *tc = tcase_create ("policy");
  SRunner *runner;
  int failed;

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_check_allow_prints_target_and_rule);
  tcase_add_test (tc, test_check_argument_decides);
  tcase_add_test (tc, test_check_tags_come_from_the_qubes);
  tcase_add_test (tc, test_check_tag_of_a_qube_made_by_a_dotted_qube);
  tcase_add_test (tc, test_check_json);
  tcase_add_test (tc, test_check_no_rule_denies);
  tcase_add_test (tc, test_policy_dir_from_environment);
  tcase_add_test (tc, test_invalid_file_denies_everything_and_lint_says_where);
  tcase_add_test (tc, test_lint_lists_the_first_100_problems);
  tcase_add_test (tc, test_usage_errors);
  suite_add_tcase (s, tc);
  runner = srunner_create (s);
  srunner_run_all (runner, CK_NORMAL);
  failed = srunner_ntests_failed (runner);
  srunner_free (runner);
  return failed == 0 ? 0 : 1;
}
