/* qube-policy-snapshot.c — the qubes of a QubeManager as the qrexec policy
 * sees them.  One builder for every caller (the qrexec daemon, the Admin
 * API), so that a rule means the same thing wherever it is evaluated. */
#include "config.h"

#include "qube-manager.h"
#include "qube-policy.h"

#define ADMIN_NAME "dom0"

static void
add_vm (QubePolicySystem *system, QubeVm *vm)
{
  g_auto(GStrv) tags = qube_vm_list_tags (vm);
  g_autofree char *for_dispvms = qube_vm_get_property (vm, "template_for_dispvms",
                                                       NULL, NULL, NULL);
  g_autofree char *dispvm = qube_vm_get_property (vm, "default_dispvm", NULL, NULL, NULL);
  g_autoptr(GError) error = NULL;
  const char *name = qube_vm_get_name (vm);

  if (qube_policy_system_has_qube (system, name))
    return;
  if (!qube_policy_system_add_qube (system, name, qube_vm_get_klass (vm),
                                    (const char *const *) tags,
                                    g_strcmp0 (for_dispvms, "True") == 0,
                                    dispvm != NULL && *dispvm != '\0' ? dispvm : NULL,
                                    &error))
    {
      g_debug ("qube '%s' left out of the policy snapshot: %s", name, error->message);
      return;
    }
  qube_policy_system_set_running (system, name,
                                  g_strcmp0 (qube_vm_get_state (vm), "Running") == 0, NULL);
}

/**
 * qube_policy_system_new_for_manager:
 * @manager: a #QubeManager
 * @names: (nullable) (array zero-terminated=1): the qubes a decision can
 *   depend on, or %NULL for every qube
 *
 * A snapshot of the qubes of @manager for policy evaluation: the admin qube
 * `dom0` (always, running, with the global `default_dispvm`) and each qube
 * with its class, tags, `template_for_dispvms`, `default_dispvm` and whether
 * it runs.  A single call names its source and target, so passing just
 * those makes its cost independent of the number of qubes.
 *
 * Returns: (transfer full): a new #QubePolicySystem
 */
QubePolicySystem *
qube_policy_system_new_for_manager (QubeManager *manager, const char *const *names)
{
  QubePolicySystem *system = qube_policy_system_new ();
  g_autofree char *default_dispvm = NULL;

  g_return_val_if_fail (QUBE_IS_MANAGER (manager), NULL);

  default_dispvm = qube_manager_get_property (manager, "default_dispvm", NULL, NULL);
  qube_policy_system_add_qube (system, ADMIN_NAME, "AdminVM", NULL, FALSE,
                               default_dispvm != NULL && *default_dispvm != '\0'
                               ? default_dispvm : NULL, NULL);
  qube_policy_system_set_running (system, ADMIN_NAME, TRUE, NULL);

  if (names == NULL)
    {
      g_autoptr(GPtrArray) vms = qube_manager_list_vms (manager);

      for (guint i = 0; i < vms->len; i++)
        add_vm (system, g_ptr_array_index (vms, i));
      return system;
    }
  for (guint i = 0; names[i] != NULL; i++)
    {
      g_autoptr(QubeVm) vm = qube_manager_lookup (manager, names[i], NULL);

      if (vm != NULL)
        add_vm (system, vm);
    }
  return system;
}
