/* test-manager.c — QubeManager and QubeVm (core/qube-manager.c,
 * core/qube-vm.c): creating, listing, looking up, removing and cloning
 * qubes, features and tags, and every rule between qubes with the error a
 * user sees. */
#include "config.h"

#include <check.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "qube-dispvm.h"
#include "qube-dispvm-private.h"
#include "qube-error.h"
#include "qube-lifecycle.h"
#include "qube-manager.h"
#include "qube-qrexec-daemon.h"
#include "qube-vm-private.h"
#include "state-fixture.h"


static char *
list_names (void)
{
  g_autoptr(GPtrArray) vms = qube_manager_list_vms (fixture_manager);
  g_autoptr(GString) names = g_string_new (NULL);

  for (guint i = 0; i < vms->len; i++)
    g_string_append_printf (names, "%s%s", i > 0 ? " " : "",
                            qube_vm_get_name (vms->pdata[i]));
  return g_strdup (names->str);
}

static void
assert_create_fails (const char *klass, const char *name, const char *template_name,
                     const char *label, int code, const char *message)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVm) vm = qube_manager_create_vm (fixture_manager, klass, name, template_name,
                                                 label, &error);

  ck_assert_msg (vm == NULL, "%s %s was created", klass, name);
  fixture_assert_error (&error, code, message);
}

static void
assert_remove_fails (const char *name, int code, const char *message)
{
  g_autoptr(GError) error = NULL;

  ck_assert_msg (!qube_manager_remove_vm (fixture_manager, name, &error), "%s was removed", name);
  fixture_assert_error (&error, code, message);
}

START_TEST (test_new_store_has_dom0)
{
  g_autoptr(GPtrArray) vms = qube_manager_list_vms (fixture_manager);
  QubeVm *dom0;

  ck_assert_uint_eq (vms->len, 1);
  dom0 = vms->pdata[0];
  ck_assert_str_eq (qube_vm_get_name (dom0), "dom0");
  ck_assert_str_eq (qube_vm_get_klass (dom0), "AdminVM");
  ck_assert_str_eq (qube_vm_get_state (dom0), "Running");
  ck_assert_str_eq (qube_vm_get_uuid (dom0), "00000000-0000-0000-0000-000000000000");
  ck_assert_str_eq (qube_manager_get_state_dir (fixture_manager), fixture_state_dir);
}
END_TEST

START_TEST (test_create_and_list)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVm) fedora = fixture_create (fixture_manager, "TemplateVM", "fedora", NULL);
  g_autoptr(QubeVm) work = NULL;
  g_autoptr(QubeVm) vault = fixture_create (fixture_manager, "StandaloneVM", "vault", NULL);
  g_autoptr(QubeVm) found = NULL;
  g_autofree char *names = NULL;
  g_autofree char *label = NULL;

  work = qube_manager_create_vm (fixture_manager, "AppVM", "work", "fedora", "blue", &error);
  ck_assert_msg (work != NULL, "%s", error != NULL ? error->message : "");
  ck_assert_str_eq (qube_vm_get_klass (work), "AppVM");
  ck_assert_str_eq (qube_vm_get_state (work), "Halted");
  ck_assert (g_uuid_string_is_valid (qube_vm_get_uuid (work)));
  ck_assert_str_ne (qube_vm_get_uuid (work), qube_vm_get_uuid (fedora));
  label = fixture_get (work, "label", NULL);
  ck_assert_str_eq (label, "blue");

  names = list_names ();
  ck_assert_str_eq (names, "dom0 fedora vault work");

  found = qube_manager_lookup (fixture_manager, "work", &error);
  ck_assert_ptr_nonnull (found);
  ck_assert_str_eq (qube_vm_get_uuid (found), qube_vm_get_uuid (work));
  ck_assert_str_eq (qube_vm_get_klass (found), "AppVM");
  g_clear_object (&found);

  found = qube_manager_lookup (fixture_manager, "nosuch", &error);
  ck_assert_ptr_null (found);
  fixture_assert_error (&error, QUBE_ERROR_NOT_FOUND, "no such qube 'nosuch'");
}
END_TEST

START_TEST (test_list_sorted)
{
  g_autoptr(QubeVm) t = fixture_create (fixture_manager, "TemplateVM", "zeta", NULL);
  g_autoptr(QubeVm) a = fixture_create (fixture_manager, "AppVM", "alpha", "zeta");
  g_autoptr(QubeVm) m = fixture_create (fixture_manager, "AppVM", "mail", "zeta");
  g_autoptr(QubeVm) b = fixture_create (fixture_manager, "StandaloneVM", "Beta", NULL);
  g_autofree char *names = list_names ();

  /* byte order, as the Admin API lists them */
  ck_assert_str_eq (names, "Beta alpha dom0 mail zeta");
}
END_TEST

START_TEST (test_create_refused)
{
  g_autoptr(QubeVm) fedora = fixture_create (fixture_manager, "TemplateVM", "fedora", NULL);
  g_autoptr(QubeVm) work = fixture_create (fixture_manager, "AppVM", "work", "fedora");
  g_autofree char *names = NULL;

  assert_create_fails ("AdminVM", "host2", NULL, NULL, QUBE_ERROR_INVALID,
                       "cannot create qube 'host2': there is only one AdminVM, 'dom0'");
  assert_create_fails ("HVM", "x", NULL, NULL, QUBE_ERROR_INVALID,
                       "cannot create qube 'x': unknown class 'HVM' (TemplateVM, AppVM, "
                       "StandaloneVM or DispVM)");
  assert_create_fails ("AppVM", "my work", "fedora", NULL, QUBE_ERROR_INVALID_NAME,
                       "qube name 'my work' contains ' ': only letters, digits, '_', '.' "
                       "and '-' are allowed");
  assert_create_fails ("AppVM", "dom0", "fedora", NULL, QUBE_ERROR_INVALID_NAME,
                       "qube name 'dom0' is reserved");
  assert_create_fails ("AppVM", NULL, "fedora", NULL, QUBE_ERROR_INVALID_NAME,
                       "a qube name must not be empty");
  assert_create_fails ("AppVM", "work", "fedora", NULL, QUBE_ERROR_EXISTS,
                       "cannot create AppVM 'work': a qube named 'work' already exists");
  assert_create_fails ("TemplateVM", "fedora", NULL, NULL, QUBE_ERROR_EXISTS,
                       "cannot create TemplateVM 'fedora': a qube named 'fedora' already exists");
  assert_create_fails ("AppVM", "mail", NULL, NULL, QUBE_ERROR_INVALID,
                       "cannot create AppVM 'mail': an AppVM needs a template, and none was "
                       "given nor set as the global default_template");
  assert_create_fails ("AppVM", "mail", "work", NULL, QUBE_ERROR_INVALID,
                       "cannot create AppVM 'mail': template 'work': qube 'work' is an AppVM, "
                       "not a TemplateVM");
  assert_create_fails ("AppVM", "mail", "nosuch", NULL, QUBE_ERROR_NOT_FOUND,
                       "cannot create AppVM 'mail': template 'nosuch': no such qube 'nosuch'");
  assert_create_fails ("TemplateVM", "debian", "fedora", NULL, QUBE_ERROR_INVALID,
                       "cannot create TemplateVM 'debian': a TemplateVM has no template");
  assert_create_fails ("DispVM", "disp1", "fedora", NULL, QUBE_ERROR_INVALID,
                       "cannot create DispVM 'disp1': template 'fedora': qube 'fedora' is a "
                       "TemplateVM, not an AppVM");
  assert_create_fails ("DispVM", "disp1", "work", NULL, QUBE_ERROR_INVALID,
                       "cannot create DispVM 'disp1': template 'work': qube 'work' does not "
                       "have template_for_dispvms=True");
  /* a bad label undoes the whole creation */
  assert_create_fails ("AppVM", "mail", "fedora", "pink", QUBE_ERROR_INVALID,
                       "cannot create AppVM 'mail': cannot set label of qube 'mail' to 'pink': "
                       "not a label (one of red, orange, yellow, green, gray, blue, purple, black)");

  names = list_names ();
  ck_assert_str_eq (names, "dom0 fedora work");
}
END_TEST

START_TEST (test_create_with_global_defaults)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVm) fedora = fixture_create (fixture_manager, "TemplateVM", "fedora", NULL);
  g_autoptr(QubeVm) work = NULL;
  g_autoptr(QubeVm) dvm = NULL;
  g_autoptr(QubeVm) disp = NULL;
  g_autofree char *tmpl = NULL;
  g_autofree char *disp_tmpl = NULL;

  ck_assert (qube_manager_set_property (fixture_manager, "default_template", "fedora", &error));
  work = fixture_create (fixture_manager, "AppVM", "work", NULL);
  tmpl = fixture_get (work, "template", NULL);
  ck_assert_str_eq (tmpl, "fedora");

  assert_create_fails ("DispVM", "disp1", NULL, NULL, QUBE_ERROR_INVALID,
                       "cannot create DispVM 'disp1': a DispVM needs a template, and none was "
                       "given nor set as the global default_dispvm");
  dvm = fixture_create (fixture_manager, "AppVM", "dvm", "fedora");
  fixture_set (dvm, "template_for_dispvms", "True");
  ck_assert (qube_manager_set_property (fixture_manager, "default_dispvm", "dvm", &error));

  /* an unnamed disposable gets a free dispNNNN name */
  disp = qube_manager_create_vm (fixture_manager, "DispVM", NULL, NULL, NULL, &error);
  ck_assert_msg (disp != NULL, "%s", error != NULL ? error->message : "");
  ck_assert (g_str_has_prefix (qube_vm_get_name (disp), "disp"));
  ck_assert_str_eq (qube_vm_get_klass (disp), "DispVM");
  disp_tmpl = fixture_get (disp, "template", NULL);
  ck_assert_str_eq (disp_tmpl, "dvm");
}
END_TEST

START_TEST (test_remove)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVm) fedora = fixture_create (fixture_manager, "TemplateVM", "fedora", NULL);
  g_autoptr(QubeVm) work = fixture_create (fixture_manager, "AppVM", "work", "fedora");
  g_autofree char *names = NULL;

  qube_vm_set_feature (work, "gui", "1", &error);
  qube_vm_add_tag (work, "audited", &error);
  ck_assert_ptr_null (error);

  ck_assert (qube_manager_remove_vm (fixture_manager, "work", &error));
  names = list_names ();
  ck_assert_str_eq (names, "dom0 fedora");

  /* the old view does not find the qube any more */
  ck_assert (!qube_vm_set_property (work, "label", "blue", &error));
  fixture_assert_error (&error, QUBE_ERROR_NOT_FOUND, "qube 'work' no longer exists");
  ck_assert_ptr_null (qube_vm_get_property (work, "label", NULL, NULL, &error));
  fixture_assert_error (&error, QUBE_ERROR_NOT_FOUND, "qube 'work' no longer exists");

  /* a new qube of the same name does not inherit the old one's data */
  g_clear_object (&work);
  work = fixture_create (fixture_manager, "AppVM", "work", "fedora");
  ck_assert_ptr_null (qube_vm_get_feature (work, "gui"));
  ck_assert (!qube_vm_has_tag (work, "audited"));

  assert_remove_fails ("nosuch", QUBE_ERROR_NOT_FOUND,
                       "cannot remove qube 'nosuch': no such qube 'nosuch'");
  assert_remove_fails ("dom0", QUBE_ERROR_INVALID,
                       "cannot remove qube 'dom0': it is the AdminVM (the host itself)");
}
END_TEST

START_TEST (test_remove_template_in_use)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVm) fedora = fixture_create (fixture_manager, "TemplateVM", "fedora", NULL);
  g_autoptr(QubeVm) work = fixture_create (fixture_manager, "AppVM", "work", "fedora");
  g_autoptr(QubeVm) mail = fixture_create (fixture_manager, "AppVM", "mail", "fedora");

  assert_remove_fails ("fedora", QUBE_ERROR_IN_USE,
                       "cannot remove qube 'fedora': it is the template of 'mail', 'work'");
  ck_assert (qube_manager_remove_vm (fixture_manager, "mail", &error));
  assert_remove_fails ("fedora", QUBE_ERROR_IN_USE,
                       "cannot remove qube 'fedora': it is the template of 'work'");
  ck_assert (qube_manager_remove_vm (fixture_manager, "work", &error));

  ck_assert (qube_manager_set_property (fixture_manager, "default_template", "fedora", &error));
  assert_remove_fails ("fedora", QUBE_ERROR_IN_USE,
                       "cannot remove qube 'fedora': it is the global default_template");
  ck_assert (qube_manager_reset_property (fixture_manager, "default_template", &error));
  ck_assert (qube_manager_remove_vm (fixture_manager, "fedora", &error));
  ck_assert_ptr_null (error);
}
END_TEST

START_TEST (test_remove_netvm_and_dispvm_in_use)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVm) fedora = fixture_create (fixture_manager, "TemplateVM", "fedora", NULL);
  g_autoptr(QubeVm) sys_net = fixture_create (fixture_manager, "AppVM", "sys-net", "fedora");
  g_autoptr(QubeVm) work = fixture_create (fixture_manager, "AppVM", "work", "fedora");
  g_autoptr(QubeVm) dvm = fixture_create (fixture_manager, "AppVM", "dvm", "fedora");
  g_autoptr(QubeVm) disp = NULL;

  fixture_set (sys_net, "provides_network", "True");
  fixture_set (work, "netvm", "sys-net");
  fixture_set (dvm, "netvm", "sys-net");
  ck_assert (qube_manager_set_property (fixture_manager, "default_netvm", "sys-net", &error));
  assert_remove_fails ("sys-net", QUBE_ERROR_IN_USE,
                       "cannot remove qube 'sys-net': it is the netvm of 'dvm', 'work'; "
                       "it is the global default_netvm");

  fixture_set (dvm, "template_for_dispvms", "True");
  fixture_set (work, "default_dispvm", "dvm");
  disp = fixture_create (fixture_manager, "DispVM", "disp7", "dvm");
  assert_remove_fails ("dvm", QUBE_ERROR_IN_USE,
                       "cannot remove qube 'dvm': it is the template of 'disp7'; "
                       "it is the default_dispvm of 'work'");
  ck_assert (qube_manager_set_property (fixture_manager, "default_dispvm", "dvm", &error));
  assert_remove_fails ("dvm", QUBE_ERROR_IN_USE,
                       "cannot remove qube 'dvm': it is the template of 'disp7'; "
                       "it is the default_dispvm of 'work'; it is the global default_dispvm");
}
END_TEST

START_TEST (test_netvm_rules)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVm) fedora = fixture_create (fixture_manager, "TemplateVM", "fedora", NULL);
  g_autoptr(QubeVm) sys_net = fixture_create (fixture_manager, "AppVM", "sys-net", "fedora");
  g_autoptr(QubeVm) sys_fw = fixture_create (fixture_manager, "AppVM", "sys-firewall", "fedora");
  g_autoptr(QubeVm) vpn = fixture_create (fixture_manager, "AppVM", "vpn", "fedora");
  g_autoptr(QubeVm) work = fixture_create (fixture_manager, "AppVM", "work", "fedora");
  g_autofree char *netvm = NULL;

  fixture_assert_set_fails (work, "netvm", "sys-net", QUBE_ERROR_INVALID,
                            "cannot set netvm of qube 'work' to 'sys-net': qube 'sys-net' does not "
                            "have provides_network=True");
  fixture_assert_set_fails (work, "netvm", "dom0", QUBE_ERROR_INVALID,
                            "cannot set netvm of qube 'work' to 'dom0': qube 'dom0' does not have "
                            "provides_network=True");
  fixture_assert_set_fails (work, "netvm", "nosuch", QUBE_ERROR_NOT_FOUND,
                            "cannot set netvm of qube 'work' to 'nosuch': no such qube 'nosuch'");

  fixture_set (sys_net, "provides_network", "True");
  fixture_set (sys_fw, "provides_network", "True");
  fixture_set (vpn, "provides_network", "True");
  fixture_assert_set_fails (sys_net, "netvm", "sys-net", QUBE_ERROR_INVALID,
                            "cannot set netvm of qube 'sys-net' to 'sys-net': a qube cannot be its "
                            "own netvm");
  fixture_set (sys_fw, "netvm", "sys-net");
  fixture_set (vpn, "netvm", "sys-firewall");
  fixture_set (work, "netvm", "vpn");
  fixture_assert_set_fails (sys_net, "netvm", "sys-firewall", QUBE_ERROR_INVALID,
                            "cannot set netvm of qube 'sys-net' to 'sys-firewall': the netvm chain "
                            "would form a loop: sys-net -> sys-firewall -> sys-net");
  fixture_assert_set_fails (sys_net, "netvm", "vpn", QUBE_ERROR_INVALID,
                            "cannot set netvm of qube 'sys-net' to 'vpn': the netvm chain would form "
                            "a loop: sys-net -> vpn -> sys-firewall -> sys-net");
  netvm = fixture_get (sys_net, "netvm", NULL);
  ck_assert_str_eq (netvm, "");

  /* a loop through the global default: sys-net follows default_netvm */
  ck_assert (!qube_manager_set_property (fixture_manager, "default_netvm", "sys-firewall", &error));
  fixture_assert_error (&error, QUBE_ERROR_INVALID,
                        "cannot set global property default_netvm to 'sys-firewall': the "
                        "netvm chain would form a loop: sys-firewall -> sys-net -> sys-firewall");
  fixture_set (sys_net, "netvm", "");
  ck_assert (qube_manager_set_property (fixture_manager, "default_netvm", "sys-firewall", &error));
  /* resetting sys-net's netvm to that default would loop as well */
  ck_assert (!qube_vm_reset_property (sys_net, "netvm", &error));
  fixture_assert_error (&error, QUBE_ERROR_INVALID,
                        "cannot reset netvm of qube 'sys-net': the netvm chain would form a "
                        "loop: sys-net -> sys-firewall -> sys-net");

  /* provides_network cannot be dropped while used */
  fixture_assert_set_fails (sys_net, "provides_network", "False", QUBE_ERROR_IN_USE,
                            "cannot set provides_network of qube 'sys-net' to 'False': it is the "
                            "netvm of 'sys-firewall'");
  fixture_assert_set_fails (sys_fw, "provides_network", "false", QUBE_ERROR_IN_USE,
                            "cannot set provides_network of qube 'sys-firewall' to 'false': it is the "
                            "netvm of 'vpn'; it is the global default_netvm");
  ck_assert (!qube_vm_reset_property (vpn, "provides_network", &error));
  fixture_assert_error (&error, QUBE_ERROR_IN_USE,
                        "cannot reset provides_network of qube 'vpn': it is the netvm of 'work'");
  fixture_set (work, "netvm", "");
  ck_assert (qube_vm_reset_property (vpn, "provides_network", &error));
  ck_assert_ptr_null (error);
}
END_TEST

START_TEST (test_dispvm_template_rules)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVm) fedora = fixture_create (fixture_manager, "TemplateVM", "fedora", NULL);
  g_autoptr(QubeVm) dvm = fixture_create (fixture_manager, "AppVM", "dvm", "fedora");
  g_autoptr(QubeVm) work = fixture_create (fixture_manager, "AppVM", "work", "fedora");
  g_autoptr(QubeVm) disp = NULL;

  fixture_assert_set_fails (work, "default_dispvm", "dvm", QUBE_ERROR_INVALID,
                            "cannot set default_dispvm of qube 'work' to 'dvm': qube 'dvm' does not "
                            "have template_for_dispvms=True");
  fixture_set (dvm, "template_for_dispvms", "True");
  fixture_set (work, "default_dispvm", "dvm");
  disp = fixture_create (fixture_manager, "DispVM", "disp1", "dvm");
  fixture_assert_set_fails (disp, "template", "work", QUBE_ERROR_INVALID,
                            "cannot set template of qube 'disp1' to 'work': qube 'work' does not "
                            "have template_for_dispvms=True");
  fixture_assert_set_fails (dvm, "template_for_dispvms", "False", QUBE_ERROR_IN_USE,
                            "cannot set template_for_dispvms of qube 'dvm' to 'False': it is the "
                            "template of 'disp1'; it is the default_dispvm of 'work'");
}
END_TEST

START_TEST (test_clone)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVm) fedora = fixture_create (fixture_manager, "TemplateVM", "fedora", NULL);
  g_autoptr(QubeVm) work = fixture_create (fixture_manager, "AppVM", "work", "fedora");
  g_autoptr(QubeVm) copy = NULL;
  g_autofree char *memory = NULL;
  g_autofree char *tmpl = NULL;
  g_autofree char *feature = NULL;
  g_autofree char *label = NULL;
  g_auto(GStrv) tags = NULL;
  gboolean is_default = TRUE;
  g_autofree char *orig_memory = NULL;

  fixture_set (work, "memory", "800");
  fixture_set (work, "label", "green");
  ck_assert (qube_vm_set_feature (work, "gui", "1", &error));
  ck_assert (qube_vm_add_tag (work, "audited", &error));
  ck_assert (qube_vm_add_tag (work, "b-tag", &error));

  copy = qube_manager_clone_vm (fixture_manager, "work", "work2", &error);
  ck_assert_msg (copy != NULL, "%s", error != NULL ? error->message : "");
  ck_assert_str_eq (qube_vm_get_name (copy), "work2");
  ck_assert_str_eq (qube_vm_get_klass (copy), "AppVM");
  ck_assert (g_uuid_string_is_valid (qube_vm_get_uuid (copy)));
  ck_assert_str_ne (qube_vm_get_uuid (copy), qube_vm_get_uuid (work));
  memory = fixture_get (copy, "memory", &is_default);
  ck_assert_str_eq (memory, "800");
  ck_assert (!is_default);
  tmpl = fixture_get (copy, "template", NULL);
  ck_assert_str_eq (tmpl, "fedora");
  label = fixture_get (copy, "label", NULL);
  ck_assert_str_eq (label, "green");
  /* defaults stay defaults */
  g_free (fixture_get (copy, "vcpus", &is_default));
  ck_assert (is_default);
  feature = qube_vm_get_feature (copy, "gui");
  ck_assert_str_eq (feature, "1");
  tags = qube_vm_list_tags (copy);
  ck_assert (g_strv_equal ((const char *const *) tags,
                           (const char *const[]) { "audited", "b-tag", NULL }));

  /* the copy is independent */
  fixture_set (copy, "memory", "900");
  orig_memory = fixture_get (work, "memory", NULL);
  ck_assert_str_eq (orig_memory, "800");
  /* and it uses the template too */
  assert_remove_fails ("fedora", QUBE_ERROR_IN_USE,
                       "cannot remove qube 'fedora': it is the template of 'work', 'work2'");

  ck_assert_ptr_null (qube_manager_clone_vm (fixture_manager, "work", "fedora", &error));
  fixture_assert_error (&error, QUBE_ERROR_EXISTS,
                        "cannot clone qube 'work' to 'fedora': a qube named 'fedora' already exists");
  ck_assert_ptr_null (qube_manager_clone_vm (fixture_manager, "nosuch", "x", &error));
  fixture_assert_error (&error, QUBE_ERROR_NOT_FOUND,
                        "cannot clone qube 'nosuch' to 'x': no such qube 'nosuch'");
  ck_assert_ptr_null (qube_manager_clone_vm (fixture_manager, "dom0", "dom1", &error));
  fixture_assert_error (&error, QUBE_ERROR_INVALID,
                        "cannot clone qube 'dom0' to 'dom1': the AdminVM cannot be cloned");
  ck_assert_ptr_null (qube_manager_clone_vm (fixture_manager, "work", "9lives", &error));
  fixture_assert_error (&error, QUBE_ERROR_INVALID_NAME,
                        "cannot clone qube 'work' to '9lives': qube name '9lives' must start "
                        "with a letter");
}
END_TEST

START_TEST (test_features)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVm) fedora = fixture_create (fixture_manager, "TemplateVM", "fedora", NULL);
  g_autofree char *value = NULL;
  g_auto(GStrv) keys = NULL;

  ck_assert_ptr_null (qube_vm_get_feature (fedora, "gui"));
  ck_assert (qube_vm_set_feature (fedora, "gui", "1", &error));
  ck_assert (qube_vm_set_feature (fedora, "os-distribution", "fedora", &error));
  ck_assert (qube_vm_set_feature (fedora, "gui", "", &error));
  value = qube_vm_get_feature (fedora, "gui");
  ck_assert_str_eq (value, "");
  keys = qube_vm_list_features (fedora);
  ck_assert (g_strv_equal ((const char *const *) keys,
                           (const char *const[]) { "gui", "os-distribution", NULL }));

  ck_assert (qube_vm_remove_feature (fedora, "gui", &error));
  ck_assert_ptr_null (qube_vm_get_feature (fedora, "gui"));
  ck_assert (!qube_vm_remove_feature (fedora, "gui", &error));
  fixture_assert_error (&error, QUBE_ERROR_NOT_FOUND,
                        "cannot remove feature 'gui' of qube 'fedora': there is no such feature");
  ck_assert (!qube_vm_set_feature (fedora, "a/b", "x", &error));
  fixture_assert_error (&error, QUBE_ERROR_INVALID_NAME,
                        "cannot set feature 'a/b' of qube 'fedora': feature name 'a/b' contains "
                        "'/': only letters, digits, '_', '.' and '-' are allowed");
  ck_assert (!qube_vm_set_feature (fedora, "bad", "\xc3", &error));
  fixture_assert_error (&error, QUBE_ERROR_INVALID,
                        "cannot set feature 'bad' of qube 'fedora': the value is not valid "
                        "UTF-8 of at most 65536 bytes");
}
END_TEST

START_TEST (test_tags)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVm) dom0 = qube_manager_lookup (fixture_manager, "dom0", NULL);
  g_auto(GStrv) tags = NULL;

  ck_assert (!qube_vm_has_tag (dom0, "x"));
  ck_assert (qube_vm_add_tag (dom0, "zz", &error));
  ck_assert (qube_vm_add_tag (dom0, "aa", &error));
  /* adding twice is fine */
  ck_assert (qube_vm_add_tag (dom0, "aa", &error));
  ck_assert (qube_vm_has_tag (dom0, "aa"));
  tags = qube_vm_list_tags (dom0);
  ck_assert (g_strv_equal ((const char *const *) tags,
                           (const char *const[]) { "aa", "zz", NULL }));
  ck_assert (qube_vm_remove_tag (dom0, "aa", &error));
  ck_assert (!qube_vm_has_tag (dom0, "aa"));
  ck_assert (!qube_vm_remove_tag (dom0, "aa", &error));
  fixture_assert_error (&error, QUBE_ERROR_NOT_FOUND,
                        "cannot remove tag 'aa' from qube 'dom0': the qube does not carry it");
  ck_assert (!qube_vm_add_tag (dom0, "a tag", &error));
  fixture_assert_error (&error, QUBE_ERROR_INVALID_NAME,
                        "cannot add tag 'a tag' to qube 'dom0': tag 'a tag' contains ' ': "
                        "only letters, digits, '_', '.' and '-' are allowed");
}
END_TEST

/* A fake backend: the qubes named in `user_data` run. */
static gboolean
fake_backend_is_running (QubeVm *vm, gpointer user_data)
{
  return g_strv_contains (user_data, qube_vm_get_name (vm));
}

START_TEST (test_running)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVm) dom0 = qube_manager_lookup (fixture_manager, "dom0", NULL);
  g_autoptr(QubeVm) fedora = fixture_create (fixture_manager, "TemplateVM", "fedora", NULL);
  g_autoptr(QubeVm) work = fixture_create (fixture_manager, "AppVM", "work", "fedora");
  const char *running[] = { "work", NULL };

  /* without a backend reporting states, only the host runs */
  ck_assert (_qube_vm_is_running (dom0));
  ck_assert_str_eq (qube_vm_get_state (dom0), "Running");
  ck_assert (!_qube_vm_is_running (fedora));
  ck_assert_str_eq (qube_vm_get_state (fedora), "Halted");

  _qube_manager_set_running_func (fixture_manager, fake_backend_is_running, running);
  ck_assert_str_eq (qube_vm_get_state (work), "Running");
  ck_assert_str_eq (qube_vm_get_state (fedora), "Halted");
  assert_remove_fails ("work", QUBE_ERROR_RUNNING, "cannot remove qube 'work': it is running");
  /* what the running compartment was made from cannot change under it */
  fixture_assert_set_fails (work, "template", "fedora", QUBE_ERROR_RUNNING,
                            "cannot set template of qube 'work' to 'fedora': the qube is running");
  fixture_assert_set_fails (work, "backend", "xen", QUBE_ERROR_RUNNING,
                            "cannot set backend of qube 'work' to 'xen': the qube is running");
  ck_assert (!qube_vm_reset_property (work, "virt_mode", &error));
  fixture_assert_error (&error, QUBE_ERROR_RUNNING,
                        "cannot reset virt_mode of qube 'work': the qube is running");
  /* the rest can */
  fixture_set (work, "memory", "500");
  fixture_set (fedora, "backend", "xen");

  _qube_manager_set_running_func (fixture_manager, NULL, NULL);
  ck_assert (qube_manager_remove_vm (fixture_manager, "work", &error));
  ck_assert_ptr_null (error);
}
END_TEST

START_TEST (test_state_dir)
{
  g_autofree char *nested = g_build_filename (fixture_state_dir, "a", "b", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeManager) other = qube_manager_new (nested, &error);
  g_autofree char *from_env = NULL;
  g_autofree char *fallback = NULL;
  struct stat st;

  ck_assert_msg (other != NULL, "%s", error != NULL ? error->message : "");
  ck_assert_int_eq (stat (nested, &st), 0);
  ck_assert_int_eq (st.st_mode & 0777, 0700);

  g_setenv ("QUBE_STATE_DIR", nested, TRUE);
  from_env = qube_manager_default_state_dir ();
  ck_assert_str_eq (from_env, nested);
  g_unsetenv ("QUBE_STATE_DIR");
  fallback = qube_manager_default_state_dir ();
  if (geteuid () == 0)
    ck_assert_str_eq (fallback, "/var/lib/qube");
  else
    {
      g_autofree char *expected = g_build_filename (g_get_user_data_dir (), "qube", NULL);
      ck_assert_str_eq (fallback, expected);
    }
}
END_TEST

/* Asking the qrexec daemon for a preloaded disposable: with no daemon the
 * caller learns so at once; a daemon that takes the request and never
 * answers does not hold the caller for ever (it goes on to a cold start). */
START_TEST (test_dispvm_take_from_daemon)
{
  g_autofree char *socket_path = g_build_filename (qube_manager_get_runtime_dir (fixture_manager),
                                                   QUBE_QREXEC_DAEMON_SOCKET, NULL);
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_autoptr(GError) error = NULL;
  g_autofree char *name = NULL;
  gint64 start;
  int listener;

  name = qube_dispvm_take_preloaded (fixture_manager, "dvm", &error);
  ck_assert_ptr_null (name);
  fixture_assert_error (&error, QUBE_ERROR_NOT_RUNNING,
                        "no preloaded disposable of 'dvm': no qrexec daemon runs");

  /* A daemon stuck before its answer: it listens, never reads. */
  g_mkdir_with_parents (qube_manager_get_runtime_dir (fixture_manager), 0700);
  ck_assert_uint_lt (strlen (socket_path), sizeof addr.sun_path);
  strcpy (addr.sun_path, socket_path);
  listener = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge (listener, 0);
  ck_assert_int_eq (bind (listener, (struct sockaddr *) &addr, sizeof addr), 0);
  ck_assert_int_eq (listen (listener, 4), 0);
  _qube_dispvm_take_timeout_s = 1;
  start = g_get_monotonic_time ();
  name = qube_dispvm_take_preloaded (fixture_manager, "dvm", &error);
  ck_assert_ptr_null (name);
  fixture_assert_error (&error, QUBE_ERROR_TIMEOUT,
                        "no preloaded disposable of 'dvm': the qrexec daemon did not answer "
                        "in 1 s");
  /* It did wait for the answer. */
  ck_assert_int_ge (g_get_monotonic_time () - start, G_USEC_PER_SEC);
  close (listener);
  unlink (socket_path);
}
END_TEST

/* A failed disposable's console log is kept, with what its guest wrote,
 * and named in the error; only the newest QUBE_DISPVM_KEPT_CONSOLES_MAX
 * stay, so that disposables that keep failing do not fill the runtime
 * directory. */
START_TEST (test_dispvm_failed_consoles_bounded)
{
  const int n = QUBE_DISPVM_KEPT_CONSOLES_MAX + 4;
  g_autofree char *qubes_dir = NULL;

  for (int i = 0; i < n; i++)
    {
      g_autofree char *name = g_strdup_printf ("disp%d", 100 + i);
      g_autofree char *dir = qube_qrexec_qube_runtime_dir (fixture_manager, name);
      g_autofree char *console = g_build_filename (dir, "console.log", NULL);
      g_autofree char *kept = g_strconcat (dir, ".failed-console.log", NULL);
      g_autofree char *expected = g_strdup_printf ("the start failed (its console log: %s)", kept);
      g_autofree char *line = g_strdup_printf ("guest %d: no root device\n", i);
      g_autofree char *contents = NULL;
      GError *error = g_error_new_literal (QUBE_ERROR, QUBE_ERROR_FAILED, "the start failed");

      struct timespec written[2] = { { time (NULL) - 60 * i, 0 }, { time (NULL) - 60 * i, 0 } };

      ck_assert_int_eq (g_mkdir_with_parents (dir, 0700), 0);
      ck_assert (g_file_set_contents (console, line, -1, NULL));
      /* The later the failure, the older the guest's last line: the
       * order of failures is what counts. */
      ck_assert_int_eq (utimensat (AT_FDCWD, console, written, 0), 0);
      /* Failures some time apart (file times may be as coarse as a
       * timer tick). */
      g_usleep (20 * 1000);
      _qube_dispvm_error_keep_console (fixture_manager, name, error);
      ck_assert_str_eq (error->message, expected);
      ck_assert (g_file_get_contents (kept, &contents, NULL, NULL));
      ck_assert_str_eq (contents, line);
      g_error_free (error);
      if (qubes_dir == NULL)
        qubes_dir = g_path_get_dirname (dir);
    }

  for (int i = 0; i < n; i++)
    {
      g_autofree char *path = g_strdup_printf ("%s/disp%d.failed-console.log", qubes_dir, 100 + i);

      /* The oldest went; the newest are there. */
      ck_assert_msg (g_file_test (path, G_FILE_TEST_EXISTS) == (i >= n - QUBE_DISPVM_KEPT_CONSOLES_MAX),
                     "%s: %s", path, g_file_test (path, G_FILE_TEST_EXISTS) ? "kept" : "removed");
    }
}
END_TEST

int
main (void)
{
  Suite *suite = suite_create ("manager");
  TCase *tc = tcase_create ("manager");

  tcase_add_checked_fixture (tc, fixture_setup_manager, fixture_teardown_manager);
  tcase_add_test (tc, test_new_store_has_dom0);
  tcase_add_test (tc, test_create_and_list);
  tcase_add_test (tc, test_list_sorted);
  tcase_add_test (tc, test_create_refused);
  tcase_add_test (tc, test_create_with_global_defaults);
  tcase_add_test (tc, test_remove);
  tcase_add_test (tc, test_remove_template_in_use);
  tcase_add_test (tc, test_remove_netvm_and_dispvm_in_use);
  tcase_add_test (tc, test_netvm_rules);
  tcase_add_test (tc, test_dispvm_template_rules);
  tcase_add_test (tc, test_clone);
  tcase_add_test (tc, test_features);
  tcase_add_test (tc, test_tags);
  tcase_add_test (tc, test_running);
  tcase_add_test (tc, test_state_dir);
  tcase_add_test (tc, test_dispvm_take_from_daemon);
  tcase_add_test (tc, test_dispvm_failed_consoles_bounded);
  suite_add_tcase (suite, tc);
  return fixture_run_suite (suite);
}
