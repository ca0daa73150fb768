/* kvm-qube-env.h — what the tests that boot real qubes through the
 * library share: the environment (the kvm and storage-file plugins and the
 * qrexec daemon of the build tree), a temporary state directory with the
 * template built by `qube template build`, and the clean-up of qubes that
 * a failed case left running. */
#pragma once

#include <glib.h>

/* Prepares it all; `dir_template` names the state directory for
 * g_dir_make_tmp().  Returns 0 when ready, 77 after printing why when
 * QEMU or root is missing (skip), 1 when the template cannot be built. */
int kvm_qube_env_setup (const char *dir_template, const char *template_name,
                        char **builddir, char **state_dir);

/* Kills every qube of `state_dir` that is not halted. */
void kvm_qube_env_kill_running (const char *state_dir);
