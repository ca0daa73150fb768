/* qube-policy.h — the qrexec policy: which qube may call which service where.
 *
 * Reads the Qubes `policy.d` format (the same files Qubes uses) and decides
 * service calls against a snapshot of the system (QubePolicySystem) that the
 * caller builds.  A policy that has any error denies every call; lint lists
 * each problem with its file and line.  Evaluation never starts qubes or runs
 * services: the caller acts on the QubePolicyDecision.  A loaded QubePolicy
 * does not change, so threads may evaluate with it at the same time (each
 * with a QubePolicySystem nobody is changing meanwhile).
 */
#pragma once

#include <gio/gio.h>

#include "qube-manager.h"

G_BEGIN_DECLS

/**
 * QUBE_POLICY_DEFAULT_DIR:
 *
 * The policy directory used when neither an explicit path nor the
 * `QUBE_POLICY_DIR` environment variable names one.
 */
#define QUBE_POLICY_DEFAULT_DIR "/etc/qubes/policy.d"

/**
 * QubePolicyAction:
 * @QUBE_POLICY_ACTION_DENY: the call is refused
 * @QUBE_POLICY_ACTION_ALLOW: the call goes to the decision's target
 * @QUBE_POLICY_ACTION_ASK: a person must choose one of the decision's
 *   targets, or refuse (see qube_policy_decision_resolve_ask())
 *
 * What the policy decided for a call.
 */
typedef enum {
  QUBE_POLICY_ACTION_DENY,
  QUBE_POLICY_ACTION_ALLOW,
  QUBE_POLICY_ACTION_ASK,
} QubePolicyAction;

const char *qube_policy_action_to_string (QubePolicyAction action);

#define QUBE_TYPE_POLICY_SYSTEM (qube_policy_system_get_type ())
G_DECLARE_FINAL_TYPE (QubePolicySystem, qube_policy_system, QUBE, POLICY_SYSTEM, GObject)

QubePolicySystem *qube_policy_system_new (void);
QubePolicySystem *qube_policy_system_new_for_manager (QubeManager *manager,
                                                     const char *const *names);
gboolean qube_policy_system_add_qube (QubePolicySystem *self,
                                      const char *name,
                                      const char *klass,
                                      const char *const *tags,
                                      gboolean template_for_dispvms,
                                      const char *default_dispvm,
                                      GError **error);
gboolean qube_policy_system_set_running (QubePolicySystem *self,
                                         const char *name,
                                         gboolean running,
                                         GError **error);
gboolean qube_policy_system_set_dispvm_template (QubePolicySystem *self,
                                                 const char *name,
                                                 const char *dispvm_template,
                                                 GError **error);
gboolean qube_policy_system_has_qube (QubePolicySystem *self, const char *name);

#define QUBE_TYPE_POLICY_PROBLEM (qube_policy_problem_get_type ())
G_DECLARE_FINAL_TYPE (QubePolicyProblem, qube_policy_problem, QUBE, POLICY_PROBLEM, GObject)

const char *qube_policy_problem_get_file (QubePolicyProblem *self);
guint qube_policy_problem_get_line (QubePolicyProblem *self);
const char *qube_policy_problem_get_message (QubePolicyProblem *self);
gboolean qube_policy_problem_is_error (QubePolicyProblem *self);
char *qube_policy_problem_to_string (QubePolicyProblem *self);

#define QUBE_TYPE_POLICY_DECISION (qube_policy_decision_get_type ())
G_DECLARE_FINAL_TYPE (QubePolicyDecision, qube_policy_decision, QUBE, POLICY_DECISION, GObject)

QubePolicyAction qube_policy_decision_get_action (QubePolicyDecision *self);
const char *qube_policy_decision_get_source (QubePolicyDecision *self);
const char *qube_policy_decision_get_service (QubePolicyDecision *self);
const char *qube_policy_decision_get_argument (QubePolicyDecision *self);
const char *qube_policy_decision_get_requested_target (QubePolicyDecision *self);
const char *qube_policy_decision_get_target (QubePolicyDecision *self);
const char *const *qube_policy_decision_get_targets (QubePolicyDecision *self);
const char *qube_policy_decision_get_default_target (QubePolicyDecision *self);
const char *qube_policy_decision_get_user (QubePolicyDecision *self);
gboolean qube_policy_decision_get_notify (QubePolicyDecision *self);
gboolean qube_policy_decision_get_autostart (QubePolicyDecision *self);
const char *qube_policy_decision_get_file (QubePolicyDecision *self);
guint qube_policy_decision_get_line (QubePolicyDecision *self);
const char *qube_policy_decision_get_reason (QubePolicyDecision *self);
gboolean qube_policy_decision_is_dispvm (QubePolicyDecision *self);
QubePolicyDecision *qube_policy_decision_resolve_ask (QubePolicyDecision *self,
                                                      const char *agent,
                                                      GCancellable *cancellable);

#define QUBE_TYPE_POLICY (qube_policy_get_type ())
G_DECLARE_FINAL_TYPE (QubePolicy, qube_policy, QUBE, POLICY, GObject)

QubePolicy *qube_policy_load (const char *policy_dir);
const char *qube_policy_get_dir (QubePolicy *self);
gboolean qube_policy_is_valid (QubePolicy *self);
GPtrArray *qube_policy_lint (QubePolicy *self);
guint qube_policy_get_n_rules (QubePolicy *self);
QubePolicyDecision *qube_policy_evaluate (QubePolicy *self,
                                          QubePolicySystem *system,
                                          const char *source,
                                          const char *target,
                                          const char *service,
                                          const char *argument);
gboolean qube_policy_split_call (const char *call,
                                 char **service,
                                 char **argument,
                                 GError **error);

G_END_DECLS
