/* fuzz-admin.c — libFuzzer harness of the Admin API's request handling:
 * any bytes as a qubed request (source trusted, as on the qrexec socket,
 * so the policy path is fuzzed too) against a real store in a temporary
 * directory.  Every input must give a well-formed '0' or '2' reply. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qube.h"

static QubeAdmin *admin;

static void
setup (void)
{
  g_autoptr(GError) error = NULL;
  char *dir = g_dir_make_tmp ("fuzz-admin-XXXXXX", &error);
  g_autofree char *state = NULL, *policy = NULL, *rules = NULL;
  g_autoptr(QubeManager) manager = NULL;
  g_autoptr(QubeVm) template = NULL, work = NULL;

  if (dir == NULL)
    abort ();
  state = g_build_filename (dir, "state", NULL);
  policy = g_build_filename (dir, "policy", NULL);
  rules = g_build_filename (policy, "30-admin.policy", NULL);
  g_mkdir_with_parents (policy, 0700);
  g_file_set_contents (rules,
                       "admin.vm.Create.AppVM * mgmt dom0 allow\n"
                       "admin.vm.List * mgmt dom0 allow target=dom0\n"
                       "admin.vm.List * mgmt @tag:created-by-mgmt allow target=dom0\n"
                       "admin.vm.property.Get * mgmt @tag:created-by-mgmt allow target=dom0\n"
                       "admin.vm.tag.Set * mgmt @tag:created-by-mgmt allow target=dom0\n",
                       -1, NULL);
  manager = qube_manager_new (state, &error);
  if (manager == NULL)
    abort ();
  template = qube_manager_create_vm (manager, "TemplateVM", "fedora", NULL, NULL, NULL);
  work = qube_manager_create_vm (manager, "AppVM", "work", "fedora", NULL, NULL);
  admin = qube_admin_new (manager, policy);
  g_free (dir);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr(GBytes) request = g_bytes_new (data, size);
  g_autoptr(GBytes) reply = NULL;
  g_autoptr(GBytes) content = NULL;
  g_autofree char *type = NULL;
  g_autofree char *message = NULL;
  gsize len;
  const char *r;

  if (admin == NULL)
    setup ();
  reply = qube_admin_handle_request (admin, request, TRUE);
  r = g_bytes_get_data (reply, &len);
  if (len < 2 || r[1] != '\0' || (r[0] != '0' && r[0] != '2'))
    abort ();
  content = qube_admin_reply_get_content (reply, &type, &message);
  if (content == NULL && (type == NULL || message == NULL))
    abort ();
  return 0;
}
