/* cmd-policy.c — `qube policy`: what the qrexec policy decides for a call
 * (`check`) and what is wrong in the policy files (`lint`).  The policy
 * directory is --policy-dir, else $QUBE_POLICY_DIR, else Qubes' own. */
#include "config.h"

#include <string.h>

#include "output.h"
#include "qube-cli.h"

static const char *
policy_dir_for (const char *option)
{
  const char *env = g_getenv ("QUBE_POLICY_DIR");

  if (option != NULL)
    return option;
  return env != NULL && *env != '\0' ? env : QUBE_POLICY_DEFAULT_DIR;
}

static void
print_decision_json (QubePolicyDecision *d)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  const char *const *targets = qube_policy_decision_get_targets (d);

  json_builder_begin_object (b);
  cli_json_add_string_member (b, "action",
                              qube_policy_action_to_string (qube_policy_decision_get_action (d)));
  cli_json_add_string_member (b, "source", qube_policy_decision_get_source (d));
  cli_json_add_string_member (b, "service", qube_policy_decision_get_service (d));
  cli_json_add_string_member (b, "argument", qube_policy_decision_get_argument (d));
  cli_json_add_string_member (b, "requested_target", qube_policy_decision_get_requested_target (d));
  cli_json_add_string_member (b, "target", qube_policy_decision_get_target (d));
  json_builder_set_member_name (b, "targets");
  json_builder_begin_array (b);
  for (gsize i = 0; targets != NULL && targets[i] != NULL; i++)
    json_builder_add_string_value (b, targets[i]);
  json_builder_end_array (b);
  cli_json_add_string_member (b, "default_target", qube_policy_decision_get_default_target (d));
  cli_json_add_string_member (b, "user", qube_policy_decision_get_user (d));
  cli_json_add_string_member (b, "file", qube_policy_decision_get_file (d));
  if (qube_policy_decision_get_file (d) != NULL)
    cli_json_add_int_member (b, "line", qube_policy_decision_get_line (d));
  else
    {
      json_builder_set_member_name (b, "line");
      json_builder_add_null_value (b);
    }
  cli_json_add_string_member (b, "reason", qube_policy_decision_get_reason (d));
  json_builder_end_object (b);
  cli_json_print_builder (b);
}

static void
print_decision (QubePolicyDecision *d)
{
  GString *line = g_string_new (qube_policy_action_to_string (qube_policy_decision_get_action (d)));
  const char *const *targets = qube_policy_decision_get_targets (d);

  if (qube_policy_decision_get_target (d) != NULL)
    g_string_append_printf (line, " target=%s", qube_policy_decision_get_target (d));
  if (targets != NULL && targets[0] != NULL)
    {
      g_autofree char *joined = g_strjoinv (",", (char **) targets);

      g_string_append_printf (line, " targets=%s", joined);
    }
  if (qube_policy_decision_get_default_target (d) != NULL)
    g_string_append_printf (line, " default_target=%s", qube_policy_decision_get_default_target (d));
  if (qube_policy_decision_get_user (d) != NULL)
    g_string_append_printf (line, " user=%s", qube_policy_decision_get_user (d));
  if (qube_policy_decision_get_file (d) != NULL)
    g_string_append_printf (line, " rule=%s:%u", qube_policy_decision_get_file (d),
                            qube_policy_decision_get_line (d));
  else
    g_string_append (line, " rule=none");
  if (qube_policy_decision_get_reason (d) != NULL)
    g_string_append_printf (line, " (%s)", qube_policy_decision_get_reason (d));
  g_print ("%s\n", line->str);
  g_string_free (line, TRUE);
}

static int
policy_check (Cli *cli, const char *dir, char **args)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *service = NULL;
  g_autofree char *argument = NULL;
  g_autoptr(QubePolicy) policy = NULL;
  g_autoptr(QubePolicySystem) system = NULL;
  g_autoptr(QubePolicyDecision) decision = NULL;
  QubeManager *manager;

  if (g_strv_length (args) != 4)
    return cli_usage_error (cli, "check needs SOURCE TARGET SERVICE[+ARGUMENT]");
  if (!qube_policy_split_call (args[3], &service, &argument, &error))
    return cli_usage_error (cli, "%s", error->message);
  manager = cli_get_manager (cli, &error);
  if (manager == NULL)
    return cli_fail (error);
  system = qube_qrexec_policy_system_new (manager);
  policy = qube_policy_load (dir);
  decision = qube_policy_evaluate (policy, system, args[1], args[2], service, argument);
  if (cli->json)
    print_decision_json (decision);
  else
    print_decision (decision);
  return CLI_EXIT_OK;
}

static int
policy_lint (Cli *cli, const char *dir, char **args)
{
  g_autoptr(QubePolicy) policy = NULL;
  g_autoptr(GPtrArray) problems = NULL;
  gboolean errors = FALSE;

  if (args[1] != NULL)
    return cli_usage_error (cli, "lint takes no argument ('%s')", args[1]);
  policy = qube_policy_load (dir);
  problems = qube_policy_lint (policy);
  for (guint i = 0; i < problems->len; i++)
    {
      QubePolicyProblem *p = g_ptr_array_index (problems, i);
      g_autofree char *text = qube_policy_problem_to_string (p);

      g_print ("%s\n", text);
      errors |= qube_policy_problem_is_error (p);
    }
  return errors ? CLI_EXIT_FAILED : CLI_EXIT_OK;
}

static int
run_policy (Cli *cli, int argc, char **argv)
{
  g_auto(GStrv) args = NULL;
  g_autofree char *dir = NULL;
  int status;
  const GOptionEntry entries[] = {
    { "policy-dir", 0, 0, G_OPTION_ARG_FILENAME, &dir,
      "Read the policy from DIR (default: $QUBE_POLICY_DIR, else " QUBE_POLICY_DEFAULT_DIR ")", "DIR" },
    { NULL }
  };

  if (!cli_parse (cli, entries, TRUE, 1, -1, argc, argv, &args, &status))
    return status;
  if (strcmp (args[0], "check") == 0)
    return policy_check (cli, policy_dir_for (dir), args);
  if (strcmp (args[0], "lint") == 0)
    return policy_lint (cli, policy_dir_for (dir), args);
  return cli_usage_error (cli, "unknown action '%s' (expected check or lint)", args[0]);
}

const CliCommand cli_policy_commands[] = {
  { "policy", "check SOURCE TARGET SERVICE[+ARG] | lint",
    "Show what the qrexec policy decides for a call, or check the policy files", run_policy },
  { NULL }
};
