/* fuzz-policy.c — libFuzzer harness for the qrexec policy parser.
 *
 * Parses arbitrary bytes as one policy file (includes refused, so no file
 * outside the input is read), lints it, and evaluates a few calls against
 * a fixed system.  Must never crash, hang or leak.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "qube-policy-private.h"

static QubePolicySystem *
make_system (void)
{
  QubePolicySystem *system = qube_policy_system_new ();
  const char *work_tags[] = { "work", NULL };
  const char *dvm_tags[] = { "dvm", "work", NULL };

  qube_policy_system_add_qube (system, "dom0", "AdminVM", NULL, FALSE, NULL, NULL);
  qube_policy_system_add_qube (system, "work", "AppVM", work_tags, FALSE, "work-dvm", NULL);
  qube_policy_system_add_qube (system, "personal", "AppVM", NULL, FALSE, NULL, NULL);
  qube_policy_system_add_qube (system, "work-dvm", "AppVM", dvm_tags, TRUE, NULL, NULL);
  qube_policy_system_add_qube (system, "disp12", "DispVM", NULL, FALSE, "work-dvm", NULL);
  qube_policy_system_add_qube (system, "fedora", "TemplateVM", NULL, FALSE, NULL, NULL);
  qube_policy_system_set_running (system, "work", TRUE, NULL);
  qube_policy_system_set_dispvm_template (system, "disp12", "work-dvm", NULL);
  return system;
}

static const char *const calls[][4] = {
  /* source, target, service, argument */
  { "work", "personal", "qubes.Filecopy", NULL },
  { "work", "", "qubes.OpenInVM", "+" },
  { "work", "@dispvm", "qubes.OpenURL", "+x" },
  { "personal", "@dispvm:work-dvm", "qubes.VMShell", NULL },
  { "work", "dom0", "admin.vm.List", "+" },
  { "disp12", "nonexistent", "test.Service", "+arg" },
  { "dom0", "work", "qubes.Gpg", NULL },
};

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static QubePolicySystem *system;
  g_autoptr(QubePolicy) policy = NULL;
  g_autoptr(GPtrArray) problems = NULL;

  if (system == NULL)
    system = make_system ();
  policy = _qube_policy_new_from_buffer ("fuzz.policy", (const char *) data, size);
  problems = qube_policy_lint (policy);
  for (guint i = 0; i < problems->len; i++)
    g_free (qube_policy_problem_to_string (problems->pdata[i]));
  for (size_t i = 0; i < G_N_ELEMENTS (calls); i++)
    {
      g_autoptr(QubePolicyDecision) d =
        qube_policy_evaluate (policy, system, calls[i][0], calls[i][1], calls[i][2], calls[i][3]);
      g_autoptr(QubePolicyDecision) final = qube_policy_decision_resolve_ask (d, NULL, NULL);

      if (qube_policy_decision_get_action (final) == QUBE_POLICY_ACTION_ALLOW
          && qube_policy_decision_get_target (final) == NULL)
        abort ();
      if (!qube_policy_is_valid (policy)
          && qube_policy_decision_get_action (d) != QUBE_POLICY_ACTION_DENY)
        abort ();
    }
  return 0;
}
