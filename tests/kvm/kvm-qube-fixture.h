/* kvm-qube-fixture.h — what the suites that boot real kvm qubes share:
 * the environment (the build tree's plugins and qrexec daemon), a
 * temporary state directory holding the template, built once, and a
 * policy directory; at the end, no qube left running.
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

#include "qube.h"

#define KVM_QUBE_TEMPLATE "debian-minimal"

int kvm_qube_fixture_setup (const char *name, const char *policy, char **state_dir,
                            char **builddir);
void kvm_qube_fixture_teardown (const char *state_dir, gboolean passed);
QubeManager *kvm_qube_fixture_open_manager (const char *state_dir);
guint kvm_qube_fixture_qemu_count (const char *state_dir, const char *name, pid_t *pid);
