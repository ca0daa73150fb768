/* test-property.c — the property table (core/qube-property.c): types,
 * defaults, inheritance from the template and from global properties,
 * canonical values, and the errors for values that break a rule. */
#include "config.h"

#include <check.h>

#include "qube-error.h"
#include "qube-manager.h"
#include "state-fixture.h"

static QubeVm *fedora;   /* TemplateVM */
static QubeVm *work;     /* AppVM on fedora */

static void
setup (void)
{
  fixture_setup_manager ();
  fedora = fixture_create (fixture_manager, "TemplateVM", "fedora", NULL);
  work = fixture_create (fixture_manager, "AppVM", "work", "fedora");
}

static void
teardown (void)
{
  g_clear_object (&work);
  g_clear_object (&fedora);
  fixture_teardown_manager ();
}

static void
assert_value (QubeVm *vm, const char *name, const char *value, gboolean is_default)
{
  g_autoptr(GError) error = NULL;
  gboolean dflt = !is_default;
  g_autofree char *got = qube_vm_get_property (vm, name, &dflt, NULL, &error);

  ck_assert_msg (got != NULL, "%s of %s: %s", name, qube_vm_get_name (vm),
                 error != NULL ? error->message : "?");
  ck_assert_msg (g_strcmp0 (got, value) == 0, "%s of %s is '%s', expected '%s'",
                 name, qube_vm_get_name (vm), got, value);
  ck_assert_msg (dflt == is_default, "%s of %s: is_default is %d, expected %d",
                 name, qube_vm_get_name (vm), dflt, is_default);
}

static void
assert_type (QubeVm *vm, const char *name, QubePropertyType type)
{
  g_autoptr(GError) error = NULL;
  QubePropertyType got = 99;
  g_autofree char *value = qube_vm_get_property (vm, name, NULL, &got, &error);

  ck_assert_msg (value != NULL, "%s: %s", name, error != NULL ? error->message : "?");
  ck_assert_msg (got == type, "type of %s is %d, expected %d", name, got, type);
}

START_TEST (test_list)
{
  g_autoptr(QubeVm) dom0 = qube_manager_lookup (fixture_manager, "dom0", NULL);
  g_auto(GStrv) app = qube_vm_list_properties (work);
  g_auto(GStrv) tmpl = qube_vm_list_properties (fedora);
  g_auto(GStrv) admin = qube_vm_list_properties (dom0);
  const char *const app_expected[] = {
    "autostart", "backend", "default_dispvm", "include_in_backups", "kernel",
    "kernelopts", "label", "maxmem", "memory", "netvm", "provides_network",
    "template", "template_for_dispvms", "vcpus", "virt_mode", NULL,
  };
  const char *const admin_expected[] = {
    "default_dispvm", "include_in_backups", "label", NULL,
  };

  ck_assert (g_strv_equal ((const char *const *) app, app_expected));
  ck_assert (g_strv_equal ((const char *const *) admin, admin_expected));
  ck_assert (!g_strv_contains ((const char *const *) tmpl, "template"));
  ck_assert (!g_strv_contains ((const char *const *) tmpl, "template_for_dispvms"));
  ck_assert (g_strv_contains ((const char *const *) tmpl, "netvm"));
}
END_TEST

START_TEST (test_types)
{
  assert_type (work, "label", QUBE_PROPERTY_TYPE_LABEL);
  assert_type (work, "template", QUBE_PROPERTY_TYPE_VM);
  assert_type (work, "netvm", QUBE_PROPERTY_TYPE_VM);
  assert_type (work, "default_dispvm", QUBE_PROPERTY_TYPE_VM);
  assert_type (work, "provides_network", QUBE_PROPERTY_TYPE_BOOL);
  assert_type (work, "template_for_dispvms", QUBE_PROPERTY_TYPE_BOOL);
  assert_type (work, "autostart", QUBE_PROPERTY_TYPE_BOOL);
  assert_type (work, "include_in_backups", QUBE_PROPERTY_TYPE_BOOL);
  assert_type (work, "memory", QUBE_PROPERTY_TYPE_INT);
  assert_type (work, "maxmem", QUBE_PROPERTY_TYPE_INT);
  assert_type (work, "vcpus", QUBE_PROPERTY_TYPE_INT);
  assert_type (work, "kernel", QUBE_PROPERTY_TYPE_STR);
  assert_type (work, "kernelopts", QUBE_PROPERTY_TYPE_STR);
  assert_type (work, "virt_mode", QUBE_PROPERTY_TYPE_STR);
  assert_type (work, "backend", QUBE_PROPERTY_TYPE_STR);
}
END_TEST

START_TEST (test_defaults)
{
  assert_value (work, "label", "red", TRUE);
  assert_value (work, "template", "fedora", FALSE);
  assert_value (work, "netvm", "", TRUE);
  assert_value (work, "provides_network", "False", TRUE);
  assert_value (work, "default_dispvm", "", TRUE);
  assert_value (work, "template_for_dispvms", "False", TRUE);
  assert_value (work, "memory", "400", TRUE);
  assert_value (work, "maxmem", "4000", TRUE);
  assert_value (work, "vcpus", "2", TRUE);
  assert_value (work, "kernel", "", TRUE);
  assert_value (work, "kernelopts", "", TRUE);
  assert_value (work, "virt_mode", "pvh", TRUE);
  assert_value (work, "backend", "kvm", TRUE);
  assert_value (work, "autostart", "False", TRUE);
  assert_value (work, "include_in_backups", "True", TRUE);
}
END_TEST

START_TEST (test_admin_qube)
{
  g_autoptr(QubeVm) dom0 = qube_manager_lookup (fixture_manager, "dom0", NULL);
  g_autoptr(GError) error = NULL;

  /* the host's label is black, as in Qubes */
  assert_value (dom0, "label", "black", FALSE);
  ck_assert_ptr_null (qube_vm_get_property (dom0, "netvm", NULL, NULL, &error));
  fixture_assert_error (&error, QUBE_ERROR_NOT_FOUND,
                        "qube 'dom0' (AdminVM) has no property 'netvm'");
  fixture_assert_set_fails (dom0, "memory", "1000", QUBE_ERROR_NOT_FOUND,
                            "qube 'dom0' (AdminVM) has no property 'memory'");
}
END_TEST

START_TEST (test_unknown_property)
{
  g_autoptr(GError) error = NULL;

  ck_assert_ptr_null (qube_vm_get_property (work, "colour", NULL, NULL, &error));
  fixture_assert_error (&error, QUBE_ERROR_NOT_FOUND,
                        "qube 'work' (AppVM) has no property 'colour'");
  ck_assert (!qube_vm_reset_property (work, "colour", &error));
  fixture_assert_error (&error, QUBE_ERROR_NOT_FOUND,
                        "qube 'work' (AppVM) has no property 'colour'");
  fixture_assert_set_fails (fedora, "template", "fedora", QUBE_ERROR_NOT_FOUND,
                            "qube 'fedora' (TemplateVM) has no property 'template'");
  fixture_assert_set_fails (fedora, "template_for_dispvms", "True", QUBE_ERROR_NOT_FOUND,
                            "qube 'fedora' (TemplateVM) has no property 'template_for_dispvms'");
}
END_TEST

START_TEST (test_set_and_reset)
{
  g_autoptr(GError) error = NULL;

  fixture_set (work, "label", "blue");
  assert_value (work, "label", "blue", FALSE);
  fixture_set (work, "kernelopts", "console=hvc0 quiet");
  assert_value (work, "kernelopts", "console=hvc0 quiet", FALSE);
  ck_assert (qube_vm_reset_property (work, "label", &error));
  assert_value (work, "label", "red", TRUE);
  /* resetting a property that is not set is no error */
  ck_assert (qube_vm_reset_property (work, "label", &error));
  ck_assert_ptr_null (error);
  /* an explicit value equal to the default still counts as set */
  fixture_set (work, "vcpus", "2");
  assert_value (work, "vcpus", "2", FALSE);
}
END_TEST

START_TEST (test_canonical_values)
{
  fixture_set (work, "autostart", "true");
  assert_value (work, "autostart", "True", FALSE);
  fixture_set (work, "autostart", "0");
  assert_value (work, "autostart", "False", FALSE);
  fixture_set (work, "autostart", "1");
  assert_value (work, "autostart", "True", FALSE);
  fixture_set (work, "include_in_backups", "false");
  assert_value (work, "include_in_backups", "False", FALSE);
  fixture_set (work, "vcpus", "007");
  assert_value (work, "vcpus", "7", FALSE);
}
END_TEST

START_TEST (test_invalid_values)
{
  fixture_assert_set_fails (work, "memory", "abc", QUBE_ERROR_INVALID,
                            "cannot set memory of qube 'work' to 'abc': not an integer from 1 to 16777216");
  fixture_assert_set_fails (work, "memory", "0", QUBE_ERROR_INVALID,
                            "cannot set memory of qube 'work' to '0': not an integer from 1 to 16777216");
  fixture_assert_set_fails (work, "memory", "-400", QUBE_ERROR_INVALID,
                            "cannot set memory of qube 'work' to '-400': not an integer from 1 to 16777216");
  fixture_assert_set_fails (work, "vcpus", "0", QUBE_ERROR_INVALID,
                            "cannot set vcpus of qube 'work' to '0': not an integer from 1 to 256");
  fixture_assert_set_fails (work, "vcpus", "257", QUBE_ERROR_INVALID,
                            "cannot set vcpus of qube 'work' to '257': not an integer from 1 to 256");
  fixture_assert_set_fails (work, "vcpus", "2.5", QUBE_ERROR_INVALID,
                            "cannot set vcpus of qube 'work' to '2.5': not an integer from 1 to 256");
  fixture_set (work, "vcpus", "256");
  fixture_assert_set_fails (work, "autostart", "yes", QUBE_ERROR_INVALID,
                            "cannot set autostart of qube 'work' to 'yes': not a boolean (True or False)");
  fixture_assert_set_fails (work, "autostart", "", QUBE_ERROR_INVALID,
                            "cannot set autostart of qube 'work' to '': not a boolean (True or False)");
  fixture_assert_set_fails (work, "label", "pink", QUBE_ERROR_INVALID,
                            "cannot set label of qube 'work' to 'pink': not a label (one of red, "
                            "orange, yellow, green, gray, blue, purple, black)");
  fixture_assert_set_fails (work, "virt_mode", "kvm", QUBE_ERROR_INVALID,
                            "cannot set virt_mode of qube 'work' to 'kvm': not allowed (one of pvh, hvm, pv)");
  fixture_assert_set_fails (work, "kernel", "../../etc", QUBE_ERROR_INVALID_NAME,
                            "cannot set kernel of qube 'work' to '../../etc': kernel version '../../etc' "
                            "contains '/': only letters, digits, '_', '.' and '-' are allowed");
  fixture_assert_set_fails (work, "kernel", "..", QUBE_ERROR_INVALID,
                            "cannot set kernel of qube 'work' to '..': not a kernel version");
  fixture_assert_set_fails (work, "backend", "", QUBE_ERROR_INVALID_NAME,
                            "cannot set backend of qube 'work' to '': a plugin name must not be empty");
  fixture_assert_set_fails (work, "kernelopts", "quiet\nrm -rf /", QUBE_ERROR_INVALID,
                            "cannot set kernelopts of qube 'work' to 'quiet\\nrm -rf /': control "
                            "characters are not allowed");
  fixture_assert_set_fails (work, "kernelopts", "\xff", QUBE_ERROR_INVALID,
                            "cannot set kernelopts of qube 'work' to '\\377': not valid UTF-8");

  /* nothing of the refused values was stored */
  assert_value (work, "memory", "400", TRUE);
  assert_value (work, "autostart", "False", TRUE);
  assert_value (work, "label", "red", TRUE);
  assert_value (work, "kernelopts", "", TRUE);
}
END_TEST

START_TEST (test_memory_and_maxmem)
{
  fixture_set (work, "memory", "1000");
  fixture_set (work, "maxmem", "1000");
  fixture_assert_set_fails (work, "memory", "1001", QUBE_ERROR_INVALID,
                            "cannot set memory of qube 'work' to '1001': memory (1001 MiB) would "
                            "be more than maxmem (1000 MiB)");
  fixture_assert_set_fails (work, "maxmem", "999", QUBE_ERROR_INVALID,
                            "cannot set maxmem of qube 'work' to '999': memory (1000 MiB) would "
                            "be more than maxmem (999 MiB)");
  assert_value (work, "memory", "1000", FALSE);
  assert_value (work, "maxmem", "1000", FALSE);

  /* against the default maxmem too */
  fixture_assert_set_fails (fedora, "memory", "5000", QUBE_ERROR_INVALID,
                            "cannot set memory of qube 'fedora' to '5000': memory (5000 MiB) would "
                            "be more than maxmem (4000 MiB)");
}
END_TEST

START_TEST (test_inherit_from_template)
{
  g_autoptr(GError) error = NULL;
  const char *const inherited[][2] = {
    { "memory", "1024" },
    { "maxmem", "8000" },
    { "vcpus", "4" },
    { "kernel", "6.1.0-13" },
    { "kernelopts", "nopat" },
    { "virt_mode", "hvm" },
    { "backend", "xen" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (inherited); i++)
    {
      if (g_str_equal (inherited[i][0], "memory"))
        fixture_set (fedora, "maxmem", "8000");
      fixture_set (fedora, inherited[i][0], inherited[i][1]);
      /* the AppVM follows its template and still reports the default */
      assert_value (work, inherited[i][0], inherited[i][1], TRUE);
    }

  /* an explicit value wins; resetting it follows the template again */
  fixture_set (work, "vcpus", "1");
  assert_value (work, "vcpus", "1", FALSE);
  ck_assert (qube_vm_reset_property (work, "vcpus", &error));
  assert_value (work, "vcpus", "4", TRUE);

  /* not inherited: label, autostart */
  fixture_set (fedora, "label", "black");
  fixture_set (fedora, "autostart", "True");
  assert_value (work, "label", "red", TRUE);
  assert_value (work, "autostart", "False", TRUE);
}
END_TEST

START_TEST (test_inherit_through_disposable_template)
{
  g_autoptr(QubeVm) dvm = fixture_create (fixture_manager, "AppVM", "dvm", "fedora");
  g_autoptr(QubeVm) sys_net = fixture_create (fixture_manager, "AppVM", "sys-net", "fedora");
  g_autoptr(QubeVm) disp = NULL;

  fixture_set (dvm, "template_for_dispvms", "True");
  fixture_set (sys_net, "provides_network", "True");
  disp = fixture_create (fixture_manager, "DispVM", "disp1", "dvm");

  /* DispVM -> AppVM -> TemplateVM */
  fixture_set (fedora, "vcpus", "3");
  assert_value (disp, "vcpus", "3", TRUE);
  fixture_set (dvm, "vcpus", "5");
  assert_value (disp, "vcpus", "5", TRUE);

  /* a disposable takes its netvm from its disposable template */
  assert_value (disp, "netvm", "", TRUE);
  fixture_set (dvm, "netvm", "sys-net");
  assert_value (disp, "netvm", "sys-net", TRUE);
  fixture_set (dvm, "netvm", "");
  assert_value (disp, "netvm", "", TRUE);
}
END_TEST

START_TEST (test_global_defaults_followed)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QubeVm) sys_net = fixture_create (fixture_manager, "AppVM", "sys-net", "fedora");
  g_autoptr(QubeVm) dvm = fixture_create (fixture_manager, "AppVM", "dvm", "fedora");

  ck_assert (qube_manager_set_property (fixture_manager, "default_kernel", "6.1.0-13", &error));
  ck_assert (qube_manager_set_property (fixture_manager, "default_backend", "xen", &error));
  assert_value (work, "kernel", "6.1.0-13", TRUE);
  assert_value (work, "backend", "xen", TRUE);
  assert_value (fedora, "backend", "xen", TRUE);

  fixture_set (sys_net, "provides_network", "True");
  ck_assert (qube_manager_set_property (fixture_manager, "default_netvm", "sys-net", &error));
  assert_value (work, "netvm", "sys-net", TRUE);
  /* the default netvm itself does not follow the default (no loop) */
  assert_value (sys_net, "netvm", "", TRUE);
  /* a TemplateVM has no netvm unless given one */
  assert_value (fedora, "netvm", "", TRUE);

  fixture_set (dvm, "template_for_dispvms", "True");
  ck_assert (qube_manager_set_property (fixture_manager, "default_dispvm", "dvm", &error));
  assert_value (work, "default_dispvm", "dvm", TRUE);

  ck_assert (qube_manager_reset_property (fixture_manager, "default_backend", &error));
  assert_value (work, "backend", "kvm", TRUE);
  ck_assert_ptr_null (error);
}
END_TEST

START_TEST (test_template_rules)
{
  g_autoptr(QubeVm) other = fixture_create (fixture_manager, "TemplateVM", "debian", NULL);
  g_autoptr(QubeVm) standalone = fixture_create (fixture_manager, "StandaloneVM", "alone", NULL);
  g_autoptr(GError) error = NULL;

  fixture_set (work, "template", "debian");
  assert_value (work, "template", "debian", FALSE);
  fixture_assert_set_fails (work, "template", "alone", QUBE_ERROR_INVALID,
                            "cannot set template of qube 'work' to 'alone': qube 'alone' is a "
                            "StandaloneVM, not a TemplateVM");
  fixture_assert_set_fails (work, "template", "nosuch", QUBE_ERROR_NOT_FOUND,
                            "cannot set template of qube 'work' to 'nosuch': no such qube 'nosuch'");
  fixture_assert_set_fails (work, "template", "", QUBE_ERROR_INVALID,
                            "cannot set template of qube 'work' to '': a qube is needed, not none");
  ck_assert (!qube_vm_reset_property (work, "template", &error));
  fixture_assert_error (&error, QUBE_ERROR_INVALID,
                        "cannot reset template of qube 'work': it has no default value");
  assert_value (work, "template", "debian", FALSE);
}
END_TEST

START_TEST (test_global_properties)
{
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) names = qube_manager_list_properties (fixture_manager);
  const char *const expected[] = {
    "default_backend", "default_dispvm", "default_kernel", "default_netvm",
    "default_pool", "default_template", NULL,
  };
  gboolean is_default = FALSE;
  g_autofree char *backend = NULL;
  g_autofree char *pool = NULL;
  g_autofree char *tmpl = NULL;
  QubePropertyType type = 99;

  ck_assert (g_strv_equal ((const char *const *) names, expected));
  backend = qube_manager_get_property (fixture_manager, "default_backend", &is_default, &error);
  ck_assert_str_eq (backend, "kvm");
  ck_assert (is_default);
  pool = qube_manager_get_property (fixture_manager, "default_pool", NULL, &error);
  ck_assert_str_eq (pool, "default");
  ck_assert (qube_manager_get_property_type (fixture_manager, "default_netvm", &type, &error));
  ck_assert_int_eq (type, QUBE_PROPERTY_TYPE_VM);
  ck_assert (qube_manager_get_property_type (fixture_manager, "default_pool", &type, &error));
  ck_assert_int_eq (type, QUBE_PROPERTY_TYPE_STR);

  ck_assert (qube_manager_set_property (fixture_manager, "default_template", "fedora", &error));
  tmpl = qube_manager_get_property (fixture_manager, "default_template", &is_default, &error);
  ck_assert_str_eq (tmpl, "fedora");
  ck_assert (!is_default);

  ck_assert (!qube_manager_set_property (fixture_manager, "default_template", "work", &error));
  fixture_assert_error (&error, QUBE_ERROR_INVALID,
                        "cannot set global property default_template to 'work': qube 'work' "
                        "is an AppVM, not a TemplateVM");
  ck_assert (!qube_manager_set_property (fixture_manager, "default_template", "gone", &error));
  fixture_assert_error (&error, QUBE_ERROR_NOT_FOUND,
                        "cannot set global property default_template to 'gone': no such qube 'gone'");
  ck_assert (!qube_manager_set_property (fixture_manager, "default_netvm", "work", &error));
  fixture_assert_error (&error, QUBE_ERROR_INVALID,
                        "cannot set global property default_netvm to 'work': qube 'work' "
                        "does not have provides_network=True");
  ck_assert (!qube_manager_set_property (fixture_manager, "default_dispvm", "work", &error));
  fixture_assert_error (&error, QUBE_ERROR_INVALID,
                        "cannot set global property default_dispvm to 'work': qube 'work' "
                        "does not have template_for_dispvms=True");
  ck_assert (!qube_manager_set_property (fixture_manager, "default_pool", "a b", &error));
  fixture_assert_error (&error, QUBE_ERROR_INVALID_NAME,
                        "cannot set global property default_pool to 'a b': pool name 'a b' "
                        "contains ' ': only letters, digits, '_', '.' and '-' are allowed");
  ck_assert (!qube_manager_set_property (fixture_manager, "default_colour", "red", &error));
  fixture_assert_error (&error, QUBE_ERROR_NOT_FOUND, "no global property 'default_colour'");
  ck_assert_ptr_null (qube_manager_get_property (fixture_manager, "default_colour", NULL, &error));
  fixture_assert_error (&error, QUBE_ERROR_NOT_FOUND, "no global property 'default_colour'");

  /* "" is none, for the vm-typed ones */
  ck_assert (qube_manager_set_property (fixture_manager, "default_template", "", &error));
  g_clear_pointer (&tmpl, g_free);
  tmpl = qube_manager_get_property (fixture_manager, "default_template", &is_default, &error);
  ck_assert_str_eq (tmpl, "");
  ck_assert (!is_default);
  ck_assert (qube_manager_reset_property (fixture_manager, "default_template", &error));
  g_clear_pointer (&tmpl, g_free);
  tmpl = qube_manager_get_property (fixture_manager, "default_template", &is_default, &error);
  ck_assert_str_eq (tmpl, "");
  ck_assert (is_default);
}
END_TEST

int
main (void)
{
  Suite *suite = suite_create ("property");
  TCase *tc = tcase_create ("property");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_list);
  tcase_add_test (tc, test_types);
  tcase_add_test (tc, test_defaults);
  tcase_add_test (tc, test_admin_qube);
  tcase_add_test (tc, test_unknown_property);
  tcase_add_test (tc, test_set_and_reset);
  tcase_add_test (tc, test_canonical_values);
  tcase_add_test (tc, test_invalid_values);
  tcase_add_test (tc, test_memory_and_maxmem);
  tcase_add_test (tc, test_inherit_from_template);
  tcase_add_test (tc, test_inherit_through_disposable_template);
  tcase_add_test (tc, test_global_defaults_followed);
  tcase_add_test (tc, test_template_rules);
  tcase_add_test (tc, test_global_properties);
  suite_add_tcase (suite, tc);
  return fixture_run_suite (suite);
}
