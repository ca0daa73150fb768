/* qube-policy.c — the qrexec policy objects and the evaluator.
 *
 * QubePolicySystem is the caller's snapshot of the qubes; QubePolicy holds
 * the parsed rules and their problems; qube_policy_evaluate() applies the
 * Qubes rules (first match wins, no match denies, @default/@dispvm/target=
 * resolution, ask candidates) and returns a QubePolicyDecision.  Nothing
 * here starts a qube or runs a program: the prompt agent lives in
 * qube-policy-ask.c, parsing in qube-policy-parse.c.
 */
#include "config.h"

#undef G_LOG_DOMAIN
#define G_LOG_DOMAIN "qube-policy"

#include <string.h>

#include "qube-error.h"
#include "qube-policy-private.h"

/* ---- QubePolicySystem ---------------------------------------------- */

typedef struct {
  char *name;
  char *klass;
  GStrv tags;
  gboolean template_for_dispvms;
  char *default_dispvm;
  char *dispvm_template; /* for a disposable: the template it was made from */
  gboolean running;
} SystemQube;

static void
system_qube_free (SystemQube *q)
{
  g_free (q->name);
  g_free (q->klass);
  g_strfreev (q->tags);
  g_free (q->default_dispvm);
  g_free (q->dispvm_template);
  g_free (q);
}

struct _QubePolicySystem {
  GObject parent_instance;
  GHashTable *qubes; /* name -> SystemQube */
};

G_DEFINE_FINAL_TYPE (QubePolicySystem, qube_policy_system, G_TYPE_OBJECT)

static void
qube_policy_system_finalize (GObject *object)
{
  QubePolicySystem *self = QUBE_POLICY_SYSTEM (object);

  g_hash_table_unref (self->qubes);
  G_OBJECT_CLASS (qube_policy_system_parent_class)->finalize (object);
}

static void
qube_policy_system_class_init (QubePolicySystemClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = qube_policy_system_finalize;
}

static void
qube_policy_system_init (QubePolicySystem *self)
{
  self->qubes = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                       (GDestroyNotify) system_qube_free);
}

/**
 * qube_policy_system_new:
 *
 * Creates an empty snapshot of the system for policy evaluation.  Add the
 * admin qube ("dom0", class "AdminVM") and every other qube with
 * qube_policy_system_add_qube().
 *
 * Returns: (transfer full): a new #QubePolicySystem
 */
QubePolicySystem *
qube_policy_system_new (void)
{
  return g_object_new (QUBE_TYPE_POLICY_SYSTEM, NULL);
}

static SystemQube *
system_lookup (QubePolicySystem *self, const char *name)
{
  return name != NULL ? g_hash_table_lookup (self->qubes, name) : NULL;
}

static SystemQube *
system_require (QubePolicySystem *self, const char *name, GError **error)
{
  SystemQube *q = system_lookup (self, name);

  if (q == NULL)
    g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND,
                 "cannot update qube '%s' in the policy system snapshot: no such qube",
                 name);
  return q;
}

/**
 * qube_policy_system_add_qube:
 * @self: a #QubePolicySystem
 * @name: the qube's name ("dom0" for the admin qube)
 * @klass: its class: "AdminVM", "AppVM", "TemplateVM", "DispVM", ...
 * @tags: (array zero-terminated=1) (nullable): its tags
 * @template_for_dispvms: whether disposables can be made from it
 * @default_dispvm: (nullable): the disposable template its @dispvm calls use
 * @error: return location for a #GError
 *
 * Adds one qube to the snapshot.  The qube counts as halted until
 * qube_policy_system_set_running() says otherwise.
 *
 * Returns: %TRUE, or %FALSE if the name is invalid or already present
 */
gboolean
qube_policy_system_add_qube (QubePolicySystem *self, const char *name,
                             const char *klass, const char *const *tags,
                             gboolean template_for_dispvms,
                             const char *default_dispvm, GError **error)
{
  SystemQube *q;

  g_return_val_if_fail (QUBE_IS_POLICY_SYSTEM (self), FALSE);
  g_return_val_if_fail (name != NULL && klass != NULL, FALSE);

  if (!_qube_policy_valid_qube_name (name))
    return g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID_NAME,
                        "cannot add qube '%s' to the policy system snapshot: invalid name",
                        name), FALSE;
  if (g_hash_table_contains (self->qubes, name))
    return g_set_error (error, QUBE_ERROR, QUBE_ERROR_EXISTS,
                        "cannot add qube '%s' to the policy system snapshot: already there",
                        name), FALSE;
  q = g_new0 (SystemQube, 1);
  q->name = g_strdup (name);
  q->klass = g_strdup (klass);
  q->tags = g_strdupv ((char **) (tags ? tags : (const char *const[]) { NULL }));
  q->template_for_dispvms = template_for_dispvms;
  q->default_dispvm = default_dispvm && *default_dispvm ? g_strdup (default_dispvm) : NULL;
  g_hash_table_insert (self->qubes, q->name, q);
  return TRUE;
}

/**
 * qube_policy_system_set_running:
 * @self: a #QubePolicySystem
 * @name: a qube added before
 * @running: whether it runs
 * @error: return location for a #GError
 *
 * Records whether a qube runs; rules with `autostart=no` only reach
 * running qubes.
 *
 * Returns: %TRUE, or %FALSE if there is no such qube
 */
gboolean
qube_policy_system_set_running (QubePolicySystem *self, const char *name,
                                gboolean running, GError **error)
{
  SystemQube *q;

  g_return_val_if_fail (QUBE_IS_POLICY_SYSTEM (self), FALSE);
  if ((q = system_require (self, name, error)) == NULL)
    return FALSE;
  q->running = running;
  return TRUE;
}

/**
 * qube_policy_system_set_dispvm_template:
 * @self: a #QubePolicySystem
 * @name: a disposable added before
 * @dispvm_template: (nullable): the disposable template it was made from
 * @error: return location for a #GError
 *
 * Records which disposable template a disposable came from.  No decision
 * depends on it: as in Qubes, `@dispvm:NAME` and `@dispvm:@tag:TAG` in the
 * source column match no caller (a disposable is matched by its name, its
 * tags, or `@type:DispVM`).
 *
 * Returns: %TRUE, or %FALSE if there is no such qube
 *
 * Deprecated: 1.0: no decision uses it
 */
gboolean
qube_policy_system_set_dispvm_template (QubePolicySystem *self, const char *name,
                                        const char *dispvm_template, GError **error)
{
  SystemQube *q;

  g_return_val_if_fail (QUBE_IS_POLICY_SYSTEM (self), FALSE);
  if ((q = system_require (self, name, error)) == NULL)
    return FALSE;
  g_free (q->dispvm_template);
  q->dispvm_template = g_strdup (dispvm_template);
  return TRUE;
}

/**
 * qube_policy_system_has_qube:
 * @self: a #QubePolicySystem
 * @name: a qube name
 *
 * Returns: whether the snapshot holds a qube of that name
 */
gboolean
qube_policy_system_has_qube (QubePolicySystem *self, const char *name)
{
  g_return_val_if_fail (QUBE_IS_POLICY_SYSTEM (self), FALSE);
  return system_lookup (self, name) != NULL;
}

static gboolean
qube_has_tag (SystemQube *q, const char *tag)
{
  return q != NULL && g_strv_contains ((const char *const *) q->tags, tag);
}

/* A disposable template usable for @dispvm:NAME. */
static SystemQube *
system_dispvm_template (QubePolicySystem *self, const char *name)
{
  SystemQube *q = system_lookup (self, name);

  return q != NULL && q->template_for_dispvms ? q : NULL;
}

/* ---- QubePolicyProblem ---------------------------------------------- */

struct _QubePolicyProblem {
  GObject parent_instance;
  char *file;
  guint line;
  gboolean is_error;
  char *message;
};

G_DEFINE_FINAL_TYPE (QubePolicyProblem, qube_policy_problem, G_TYPE_OBJECT)

static void
qube_policy_problem_finalize (GObject *object)
{
  QubePolicyProblem *self = QUBE_POLICY_PROBLEM (object);

  g_free (self->file);
  g_free (self->message);
  G_OBJECT_CLASS (qube_policy_problem_parent_class)->finalize (object);
}

static void
qube_policy_problem_class_init (QubePolicyProblemClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = qube_policy_problem_finalize;
}

static void
qube_policy_problem_init (QubePolicyProblem *self)
{
}

QubePolicyProblem *
_qube_policy_problem_new (const char *file, guint line, gboolean is_error,
                          const char *message)
{
  QubePolicyProblem *self = g_object_new (QUBE_TYPE_POLICY_PROBLEM, NULL);

  self->file = g_strdup (file);
  self->line = line;
  self->is_error = is_error;
  self->message = g_strdup (message);
  return self;
}

/**
 * qube_policy_problem_get_file:
 * @self: a #QubePolicyProblem
 *
 * Returns: the path of the policy file (or directory) the problem is in
 */
const char *
qube_policy_problem_get_file (QubePolicyProblem *self)
{
  g_return_val_if_fail (QUBE_IS_POLICY_PROBLEM (self), NULL);
  return self->file;
}

/**
 * qube_policy_problem_get_line:
 * @self: a #QubePolicyProblem
 *
 * Returns: the line number, counted from 1; 0 when it is about the whole file
 */
guint
qube_policy_problem_get_line (QubePolicyProblem *self)
{
  g_return_val_if_fail (QUBE_IS_POLICY_PROBLEM (self), 0);
  return self->line;
}

/**
 * qube_policy_problem_get_message:
 * @self: a #QubePolicyProblem
 *
 * Returns: what is wrong
 */
const char *
qube_policy_problem_get_message (QubePolicyProblem *self)
{
  g_return_val_if_fail (QUBE_IS_POLICY_PROBLEM (self), NULL);
  return self->message;
}

/**
 * qube_policy_problem_is_error:
 * @self: a #QubePolicyProblem
 *
 * Returns: %TRUE for an error (the policy then denies every call), %FALSE
 *   for a warning
 */
gboolean
qube_policy_problem_is_error (QubePolicyProblem *self)
{
  g_return_val_if_fail (QUBE_IS_POLICY_PROBLEM (self), FALSE);
  return self->is_error;
}

/**
 * qube_policy_problem_to_string:
 * @self: a #QubePolicyProblem
 *
 * Returns: (transfer full): "FILE:LINE: error: MESSAGE" (or "warning:")
 */
char *
qube_policy_problem_to_string (QubePolicyProblem *self)
{
  g_return_val_if_fail (QUBE_IS_POLICY_PROBLEM (self), NULL);
  return g_strdup_printf ("%s:%u: %s: %s", self->file, self->line,
                          self->is_error ? "error" : "warning", self->message);
}

/* ---- QubePolicyDecision --------------------------------------------- */

G_DEFINE_FINAL_TYPE (QubePolicyDecision, qube_policy_decision, G_TYPE_OBJECT)

static void
qube_policy_decision_finalize (GObject *object)
{
  QubePolicyDecision *self = QUBE_POLICY_DECISION (object);

  g_free (self->source);
  g_free (self->service);
  g_free (self->argument);
  g_free (self->requested_target);
  g_free (self->target);
  g_strfreev (self->targets);
  g_free (self->default_target);
  g_free (self->user);
  g_free (self->file);
  g_free (self->reason);
  G_OBJECT_CLASS (qube_policy_decision_parent_class)->finalize (object);
}

static void
qube_policy_decision_class_init (QubePolicyDecisionClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = qube_policy_decision_finalize;
}

static void
qube_policy_decision_init (QubePolicyDecision *self)
{
}

QubePolicyDecision *
_qube_policy_decision_new (QubePolicyAction action, const char *source,
                           const char *service, const char *argument,
                           const char *requested_target)
{
  QubePolicyDecision *self = g_object_new (QUBE_TYPE_POLICY_DECISION, NULL);

  self->action = action;
  self->source = g_strdup (source);
  self->service = g_strdup (service);
  self->argument = g_strdup (argument);
  self->requested_target = g_strdup (requested_target);
  self->notify = action == QUBE_POLICY_ACTION_DENY;
  self->autostart = TRUE;
  return self;
}

void
_qube_policy_decision_set_reason (QubePolicyDecision *self, const char *format, ...)
{
  va_list ap;

  va_start (ap, format);
  g_free (self->reason);
  self->reason = g_strdup_vprintf (format, ap);
  va_end (ap);
}

/**
 * qube_policy_action_to_string:
 * @action: a #QubePolicyAction
 *
 * Returns: "allow", "deny" or "ask", as written in policy files
 */
const char *
qube_policy_action_to_string (QubePolicyAction action)
{
  switch (action)
    {
    case QUBE_POLICY_ACTION_ALLOW:
      return "allow";
    case QUBE_POLICY_ACTION_ASK:
      return "ask";
    case QUBE_POLICY_ACTION_DENY:
    default:
      return "deny";
    }
}

/**
 * qube_policy_decision_get_action:
 * @self: a #QubePolicyDecision
 *
 * Returns: what was decided
 */
QubePolicyAction
qube_policy_decision_get_action (QubePolicyDecision *self)
{
  g_return_val_if_fail (QUBE_IS_POLICY_DECISION (self), QUBE_POLICY_ACTION_DENY);
  return self->action;
}

/**
 * qube_policy_decision_get_source:
 * @self: a #QubePolicyDecision
 *
 * Returns: the calling qube
 */
const char *
qube_policy_decision_get_source (QubePolicyDecision *self)
{
  g_return_val_if_fail (QUBE_IS_POLICY_DECISION (self), NULL);
  return self->source;
}

/**
 * qube_policy_decision_get_service:
 * @self: a #QubePolicyDecision
 *
 * Returns: the service called, without its argument
 */
const char *
qube_policy_decision_get_service (QubePolicyDecision *self)
{
  g_return_val_if_fail (QUBE_IS_POLICY_DECISION (self), NULL);
  return self->service;
}

/**
 * qube_policy_decision_get_argument:
 * @self: a #QubePolicyDecision
 *
 * Returns: the argument, starting with "+" ("+" alone when empty)
 */
const char *
qube_policy_decision_get_argument (QubePolicyDecision *self)
{
  g_return_val_if_fail (QUBE_IS_POLICY_DECISION (self), NULL);
  return self->argument;
}

/**
 * qube_policy_decision_get_requested_target:
 * @self: a #QubePolicyDecision
 *
 * Returns: (nullable): the target as the caller asked for it, normalised
 *   ("@adminvm" for dom0, "@default" for none or a qube that does not
 *   exist); %NULL if the request itself was invalid
 */
const char *
qube_policy_decision_get_requested_target (QubePolicyDecision *self)
{
  g_return_val_if_fail (QUBE_IS_POLICY_DECISION (self), NULL);
  return self->requested_target;
}

/**
 * qube_policy_decision_get_target:
 * @self: a #QubePolicyDecision
 *
 * For %QUBE_POLICY_ACTION_ALLOW, where the call goes: a qube name, "dom0",
 * or "@dispvm:TEMPLATE" meaning the caller must create a new disposable
 * from TEMPLATE (see qube_policy_decision_is_dispvm()).
 *
 * Returns: (nullable): the resolved target; %NULL unless allowed
 */
const char *
qube_policy_decision_get_target (QubePolicyDecision *self)
{
  g_return_val_if_fail (QUBE_IS_POLICY_DECISION (self), NULL);
  return self->target;
}

/**
 * qube_policy_decision_get_targets:
 * @self: a #QubePolicyDecision
 *
 * Returns: (array zero-terminated=1) (transfer none) (nullable): for
 *   %QUBE_POLICY_ACTION_ASK, the targets a person may choose from, sorted
 */
const char *const *
qube_policy_decision_get_targets (QubePolicyDecision *self)
{
  g_return_val_if_fail (QUBE_IS_POLICY_DECISION (self), NULL);
  return (const char *const *) self->targets;
}

/**
 * qube_policy_decision_get_default_target:
 * @self: a #QubePolicyDecision
 *
 * Returns: (nullable): for %QUBE_POLICY_ACTION_ASK, the preselected target
 */
const char *
qube_policy_decision_get_default_target (QubePolicyDecision *self)
{
  g_return_val_if_fail (QUBE_IS_POLICY_DECISION (self), NULL);
  return self->default_target;
}

/**
 * qube_policy_decision_get_user:
 * @self: a #QubePolicyDecision
 *
 * Returns: (nullable): the user to run the service as; %NULL for the
 *   target's default user
 */
const char *
qube_policy_decision_get_user (QubePolicyDecision *self)
{
  g_return_val_if_fail (QUBE_IS_POLICY_DECISION (self), NULL);
  return self->user;
}

/**
 * qube_policy_decision_get_notify:
 * @self: a #QubePolicyDecision
 *
 * Returns: whether the person should be told of this decision (`notify=`;
 *   by default yes for denials, no otherwise; a refusal at an `ask`
 *   prompt follows the ask rule's `notify=`)
 */
gboolean
qube_policy_decision_get_notify (QubePolicyDecision *self)
{
  g_return_val_if_fail (QUBE_IS_POLICY_DECISION (self), TRUE);
  return self->notify;
}

/**
 * qube_policy_decision_get_autostart:
 * @self: a #QubePolicyDecision
 *
 * Returns: whether the target may be started for the call (`autostart=`)
 */
gboolean
qube_policy_decision_get_autostart (QubePolicyDecision *self)
{
  g_return_val_if_fail (QUBE_IS_POLICY_DECISION (self), FALSE);
  return self->autostart;
}

/**
 * qube_policy_decision_get_file:
 * @self: a #QubePolicyDecision
 *
 * Returns: (nullable): the policy file of the rule (or problem) that
 *   decided; %NULL when no rule matched
 */
const char *
qube_policy_decision_get_file (QubePolicyDecision *self)
{
  g_return_val_if_fail (QUBE_IS_POLICY_DECISION (self), NULL);
  return self->file;
}

/**
 * qube_policy_decision_get_line:
 * @self: a #QubePolicyDecision
 *
 * Returns: the line of that rule, or 0
 */
guint
qube_policy_decision_get_line (QubePolicyDecision *self)
{
  g_return_val_if_fail (QUBE_IS_POLICY_DECISION (self), 0);
  return self->line;
}

/**
 * qube_policy_decision_get_reason:
 * @self: a #QubePolicyDecision
 *
 * Returns: why, in words for a person (e.g. "denied by policy FILE:LINE")
 */
const char *
qube_policy_decision_get_reason (QubePolicyDecision *self)
{
  g_return_val_if_fail (QUBE_IS_POLICY_DECISION (self), NULL);
  return self->reason;
}

/**
 * qube_policy_decision_is_dispvm:
 * @self: a #QubePolicyDecision
 *
 * Returns: whether an allowed call goes to a new disposable made from the
 *   template named after "@dispvm:" in the target
 */
gboolean
qube_policy_decision_is_dispvm (QubePolicyDecision *self)
{
  g_return_val_if_fail (QUBE_IS_POLICY_DECISION (self), FALSE);
  return self->target != NULL && g_str_has_prefix (self->target, "@dispvm:");
}

/* ---- QubePolicy ------------------------------------------------------ */

struct _QubePolicy {
  GObject parent_instance;
  char *dir;
  QubePolicyData data;
};

G_DEFINE_FINAL_TYPE (QubePolicy, qube_policy, G_TYPE_OBJECT)

static void
qube_policy_finalize (GObject *object)
{
  QubePolicy *self = QUBE_POLICY (object);

  g_free (self->dir);
  _qube_policy_data_clear (&self->data);
  G_OBJECT_CLASS (qube_policy_parent_class)->finalize (object);
}

static void
qube_policy_class_init (QubePolicyClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = qube_policy_finalize;
}

static void
qube_policy_init (QubePolicy *self)
{
  _qube_policy_data_init (&self->data);
}

/**
 * qube_policy_load:
 * @policy_dir: (nullable) (type filename): the policy directory; %NULL for
 *   `$QUBE_POLICY_DIR`, or %QUBE_POLICY_DEFAULT_DIR when that is unset
 *
 * Reads every `*.policy` file of the directory in C-locale order, with
 * their includes.  Loading never fails: problems (an unreadable directory,
 * a syntax error, an include loop, a bad file name) are collected for
 * qube_policy_lint(), and a policy with any error denies every call.
 * One load reads at most 1024 files (an included file counting each time
 * it is included) and 32 MiB in all; the file that would pass either
 * limit is an error, and no file is read after it.
 *
 * Returns: (transfer full): the policy
 */
QubePolicy *
qube_policy_load (const char *policy_dir)
{
  QubePolicy *self = g_object_new (QUBE_TYPE_POLICY, NULL);

  if (policy_dir == NULL || *policy_dir == '\0')
    policy_dir = g_getenv ("QUBE_POLICY_DIR");
  if (policy_dir == NULL || *policy_dir == '\0')
    policy_dir = QUBE_POLICY_DEFAULT_DIR;
  self->dir = g_canonicalize_filename (policy_dir, NULL);
  _qube_policy_parse_dir (&self->data, self->dir);
  g_debug ("policy %s: %u rules, %u errors", self->dir,
           self->data.rules->len, self->data.n_errors);
  return self;
}

QubePolicy *
_qube_policy_new_from_buffer (const char *file, const char *buffer, gsize length)
{
  QubePolicy *self = g_object_new (QUBE_TYPE_POLICY, NULL);

  _qube_policy_parse_buffer (&self->data, file, buffer, length, NULL);
  return self;
}

/**
 * qube_policy_get_dir:
 * @self: a #QubePolicy
 *
 * Returns: (nullable) (type filename): the directory the policy was read from
 */
const char *
qube_policy_get_dir (QubePolicy *self)
{
  g_return_val_if_fail (QUBE_IS_POLICY (self), NULL);
  return self->dir;
}

/**
 * qube_policy_is_valid:
 * @self: a #QubePolicy
 *
 * Returns: %FALSE when the policy has an error (and so denies every call)
 */
gboolean
qube_policy_is_valid (QubePolicy *self)
{
  g_return_val_if_fail (QUBE_IS_POLICY (self), FALSE);
  return self->data.n_errors == 0;
}

/**
 * qube_policy_lint:
 * @self: a #QubePolicy
 *
 * Returns: (transfer full) (element-type QubePolicyProblem): the
 *   problems found while loading, in the order the files were read: the
 *   first 100, then, if there were more, one (at line 0 of the policy
 *   directory) that counts the others; empty for a clean policy
 */
GPtrArray *
qube_policy_lint (QubePolicy *self)
{
  GPtrArray *out;

  g_return_val_if_fail (QUBE_IS_POLICY (self), NULL);
  out = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; i < self->data.problems->len; i++)
    g_ptr_array_add (out, g_object_ref (self->data.problems->pdata[i]));
  return out;
}

/**
 * qube_policy_get_n_rules:
 * @self: a #QubePolicy
 *
 * Returns: the number of valid rules read
 */
guint
qube_policy_get_n_rules (QubePolicy *self)
{
  g_return_val_if_fail (QUBE_IS_POLICY (self), 0);
  return self->data.rules->len;
}

/**
 * qube_policy_split_call:
 * @call: "SERVICE" or "SERVICE+ARGUMENT"
 * @service: (out) (transfer full): the service
 * @argument: (out) (transfer full): the argument with its "+" ("+" when
 *   there is none)
 * @error: return location for a #GError
 *
 * Splits a call as qrexec writes it.
 *
 * Returns: %TRUE, or %FALSE if the service or argument has invalid
 *   characters
 */
gboolean
qube_policy_split_call (const char *call, char **service, char **argument,
                        GError **error)
{
  const char *plus;
  g_autofree char *svc = NULL;
  g_autofree char *arg = NULL;

  g_return_val_if_fail (call != NULL, FALSE);
  plus = strchr (call, '+');
  svc = plus ? g_strndup (call, plus - call) : g_strdup (call);
  arg = g_strdup (plus ? plus : "+");
  if (!_qube_policy_valid_service (svc) || !_qube_policy_valid_argument (arg))
    return g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                        "invalid service call '%s': expected SERVICE[+ARGUMENT] with "
                        "letters, digits, - . _", call), FALSE;
  *service = g_steal_pointer (&svc);
  *argument = g_steal_pointer (&arg);
  return TRUE;
}

/* ---- evaluation ------------------------------------------------------ */

typedef struct {
  QubePolicySystem *system;
  const char *source;
  gboolean source_is_admin;
  const char *service;
  const char *argument;
  QubePolicyToken target; /* verified: NAME (existing), ADMINVM, DEFAULT,
                           * DISPVM or DISPVM_TEMPLATE */
} Request;

/* The disposable template @dispvm means for this caller, if usable. */
static const char *
source_default_dispvm (const Request *r)
{
  SystemQube *src = system_lookup (r->system, r->source);

  if (src == NULL || src->default_dispvm == NULL
      || system_dispvm_template (r->system, src->default_dispvm) == NULL)
    return NULL;
  return src->default_dispvm;
}

static gboolean
match_source (const QubePolicyToken *t, const Request *r)
{
  SystemQube *src = system_lookup (r->system, r->source);

  switch (t->kind)
    {
    case QUBE_POLICY_TOKEN_NAME:
      return !r->source_is_admin && g_str_equal (t->value, r->source);
    case QUBE_POLICY_TOKEN_ADMINVM:
      return r->source_is_admin;
    case QUBE_POLICY_TOKEN_ANYVM:
      return !r->source_is_admin;
    case QUBE_POLICY_TOKEN_WILDCARD:
      return TRUE;
    case QUBE_POLICY_TOKEN_TAG:
      return qube_has_tag (src, t->value);
    case QUBE_POLICY_TOKEN_TYPE:
      return src != NULL && g_str_equal (src->klass, t->value);
    case QUBE_POLICY_TOKEN_DISPVM_TEMPLATE:
    case QUBE_POLICY_TOKEN_DISPVM_TAG:
      /* Accepted as a source, as Qubes accepts them, and matching no
       * caller, as in Qubes: they name a disposable to be made for a
       * call, and a caller is a qube that exists (match a disposable by
       * its name, its tags or @type:DispVM). */
    case QUBE_POLICY_TOKEN_DEFAULT:
    case QUBE_POLICY_TOKEN_DISPVM:
    default:
      return FALSE;
    }
}

static gboolean
match_target (const QubePolicyToken *t, const Request *r)
{
  const QubePolicyToken *it = &r->target;
  const char *tmpl_name = NULL;

  switch (t->kind)
    {
    case QUBE_POLICY_TOKEN_NAME:
      return it->kind == QUBE_POLICY_TOKEN_NAME && g_str_equal (it->value, t->value);
    case QUBE_POLICY_TOKEN_ADMINVM:
    case QUBE_POLICY_TOKEN_DEFAULT:
    case QUBE_POLICY_TOKEN_DISPVM:
      return it->kind == t->kind;
    case QUBE_POLICY_TOKEN_ANYVM:
      return it->kind != QUBE_POLICY_TOKEN_ADMINVM;
    case QUBE_POLICY_TOKEN_WILDCARD:
      return TRUE;
    case QUBE_POLICY_TOKEN_TAG:
      return it->kind == QUBE_POLICY_TOKEN_NAME
             && qube_has_tag (system_lookup (r->system, it->value), t->value);
    case QUBE_POLICY_TOKEN_TYPE:
      {
        SystemQube *q = it->kind == QUBE_POLICY_TOKEN_NAME
                          ? system_lookup (r->system, it->value) : NULL;
        return q != NULL && g_str_equal (q->klass, t->value);
      }
    case QUBE_POLICY_TOKEN_DISPVM_TEMPLATE:
      if (it->kind == QUBE_POLICY_TOKEN_DISPVM)
        tmpl_name = source_default_dispvm (r);
      else if (it->kind == QUBE_POLICY_TOKEN_DISPVM_TEMPLATE)
        tmpl_name = it->value;
      return tmpl_name != NULL && g_str_equal (tmpl_name, t->value);
    case QUBE_POLICY_TOKEN_DISPVM_TAG:
      if (it->kind == QUBE_POLICY_TOKEN_DISPVM)
        tmpl_name = source_default_dispvm (r);
      else if (it->kind == QUBE_POLICY_TOKEN_DISPVM_TEMPLATE)
        tmpl_name = it->value;
      return qube_has_tag (system_dispvm_template (r->system, tmpl_name), t->value);
    default:
      return FALSE;
    }
}

static gboolean
rule_matches_but_target (const QubePolicyRule *rule, const Request *r)
{
  return (rule->service == NULL || g_str_equal (rule->service, r->service))
         && (rule->argument == NULL || g_str_equal (rule->argument, r->argument))
         && match_source (&rule->source, r);
}

/* A call target as a string: the admin qube is "dom0", a disposable
 * request "@dispvm:TEMPLATE" (with @dispvm resolved for this caller);
 * NULL when it names nothing callable. */
static char *
concrete_target (const QubePolicyToken *t, const Request *r)
{
  const char *tmpl;

  switch (t->kind)
    {
    case QUBE_POLICY_TOKEN_NAME:
      return system_lookup (r->system, t->value) ? g_strdup (t->value) : NULL;
    case QUBE_POLICY_TOKEN_ADMINVM:
      return g_strdup (QUBE_POLICY_ADMIN_NAME);
    case QUBE_POLICY_TOKEN_DISPVM:
      tmpl = source_default_dispvm (r);
      return tmpl ? g_strconcat ("@dispvm:", tmpl, NULL) : NULL;
    case QUBE_POLICY_TOKEN_DISPVM_TEMPLATE:
      return system_dispvm_template (r->system, t->value)
               ? g_strconcat ("@dispvm:", t->value, NULL) : NULL;
    default:
      return NULL;
    }
}

#define DISPVM_KEYWORD "@dispvm"

/* What a rule's target (or target=) offers to an ask prompt.  As in
 * Qubes, @dispvm stays a keyword of its own here (so that a deny of
 * @dispvm does not take away @dispvm:NAME, nor the reverse) and is
 * resolved once all rules are seen. */
static void
expand_target (const QubePolicyToken *t, const Request *r, GHashTable *out)
{
  GHashTableIter iter;
  SystemQube *q;
  char *one;

  switch (t->kind)
    {
    case QUBE_POLICY_TOKEN_ANYVM:
    case QUBE_POLICY_TOKEN_WILDCARD:
    case QUBE_POLICY_TOKEN_TAG:
    case QUBE_POLICY_TOKEN_TYPE:
    case QUBE_POLICY_TOKEN_DISPVM_TAG:
      g_hash_table_iter_init (&iter, r->system->qubes);
      while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &q))
        {
          gboolean admin = g_str_equal (q->klass, "AdminVM")
                           || g_str_equal (q->name, QUBE_POLICY_ADMIN_NAME);
          gboolean name_ok = FALSE, dispvm_ok = FALSE;

          if (t->kind == QUBE_POLICY_TOKEN_ANYVM)
            name_ok = !admin, dispvm_ok = q->template_for_dispvms;
          else if (t->kind == QUBE_POLICY_TOKEN_WILDCARD)
            name_ok = TRUE, dispvm_ok = q->template_for_dispvms;
          else if (t->kind == QUBE_POLICY_TOKEN_TAG)
            name_ok = qube_has_tag (q, t->value);
          else if (t->kind == QUBE_POLICY_TOKEN_TYPE)
            name_ok = g_str_equal (q->klass, t->value);
          else
            dispvm_ok = q->template_for_dispvms && qube_has_tag (q, t->value);
          if (name_ok)
            g_hash_table_add (out, g_strdup (admin ? QUBE_POLICY_ADMIN_NAME : q->name));
          if (dispvm_ok)
            g_hash_table_add (out, g_strconcat ("@dispvm:", q->name, NULL));
        }
      if (t->kind == QUBE_POLICY_TOKEN_ANYVM || t->kind == QUBE_POLICY_TOKEN_WILDCARD)
        g_hash_table_add (out, g_strdup (DISPVM_KEYWORD));
      break;
    case QUBE_POLICY_TOKEN_DISPVM:
      g_hash_table_add (out, g_strdup (DISPVM_KEYWORD));
      break;
    default:
      if ((one = concrete_target (t, r)) != NULL)
        g_hash_table_add (out, one);
      break;
    }
}

static void
remove_expansion (GHashTable *set, const QubePolicyToken *t, const Request *r)
{
  g_autoptr(GHashTable) drop = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  GHashTableIter iter;
  const char *name;

  expand_target (t, r, drop);
  g_hash_table_iter_init (&iter, drop);
  while (g_hash_table_iter_next (&iter, (gpointer *) &name, NULL))
    g_hash_table_remove (set, name);
}

static gboolean
may_skip_autostart (const char *target, const Request *r)
{
  SystemQube *q;

  if (g_str_equal (target, QUBE_POLICY_ADMIN_NAME))
    return TRUE;
  if (g_str_has_prefix (target, "@dispvm"))
    return FALSE;
  q = system_lookup (r->system, target);
  return q != NULL && q->running;
}

/* The targets an ask rule offers, as Qubes collects them: every rule for
 * this service, argument and source, from the last to the first, adds
 * what its target (or target=) covers, and deny rules take it away; then
 * @dispvm becomes the caller's @dispvm:TEMPLATE. */
static GHashTable *
collect_ask_targets (QubePolicy *self, const Request *r)
{
  GHashTable *set = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  for (guint i = self->data.rules->len; i-- > 0;)
    {
      const QubePolicyRule *rule = self->data.rules->pdata[i];
      const QubePolicyToken *t = rule->has_redirect ? &rule->redirect : &rule->target;

      if (!rule_matches_but_target (rule, r))
        continue;
      if (rule->action == QUBE_POLICY_ACTION_DENY)
        remove_expansion (set, t, r);
      else
        expand_target (t, r, set);
    }
  if (g_hash_table_remove (set, DISPVM_KEYWORD))
    {
      char *dispvm = concrete_target (&(QubePolicyToken) { QUBE_POLICY_TOKEN_DISPVM, NULL }, r);

      if (dispvm != NULL)
        g_hash_table_add (set, dispvm);
    }
  return set;
}

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* Makes `d` a denial by `rule` (NULL: by no rule), saying why. */
static QubePolicyDecision *
deny (QubePolicyDecision *d, const QubePolicyRule *rule, const char *format, ...)
  G_GNUC_PRINTF (3, 4);

static QubePolicyDecision *
deny (QubePolicyDecision *d, const QubePolicyRule *rule, const char *format, ...)
{
  va_list ap;

  va_start (ap, format);
  g_free (d->reason);
  d->reason = g_strdup_vprintf (format, ap);
  va_end (ap);
  d->action = QUBE_POLICY_ACTION_DENY;
  g_clear_pointer (&d->target, g_free);
  g_clear_pointer (&d->targets, g_strfreev);
  g_clear_pointer (&d->default_target, g_free);
  g_clear_pointer (&d->user, g_free);
  d->notify = rule != NULL && rule->action == QUBE_POLICY_ACTION_DENY ? rule->notify : TRUE;
  return d;
}

static QubePolicyDecision *
evaluate_allow (QubePolicyDecision *d, const QubePolicyRule *rule, const Request *r)
{
  const QubePolicyToken *t = rule->has_redirect ? &rule->redirect : &r->target;

  /* A redirect to a qube that does not exist is no target at all. */
  if (t->kind == QUBE_POLICY_TOKEN_DEFAULT
      || (t->kind == QUBE_POLICY_TOKEN_NAME && !system_lookup (r->system, t->value)))
    {
      return deny (d, rule, "policy defines 'allow' action at %s:%u but no "
                   "target is specified by caller or policy",
                   rule->file, rule->line);
    }
  d->target = concrete_target (t, r);
  if (d->target == NULL && t->kind == QUBE_POLICY_TOKEN_DISPVM)
    {
      return deny (d, rule, "policy defines 'allow' action to @dispvm at "
                   "%s:%u but no disposable template is set for '%s'",
                   rule->file, rule->line, r->source);
    }
  if (d->target == NULL)
    {
      return deny (d, rule, "not a template for disposables: '%s' (%s:%u)",
                   t->value, rule->file, rule->line);
    }
  if (!rule->autostart && !may_skip_autostart (d->target, r))
    {
      return deny (d, rule, "target '%s' is denied because it would require "
                   "autostart (%s:%u)", d->target, rule->file, rule->line);
    }
  if (g_str_equal (d->target, r->source_is_admin ? QUBE_POLICY_ADMIN_NAME : r->source))
    {
      return deny (d, rule, "a qube cannot call a service in itself (%s:%u)",
                   rule->file, rule->line);
    }
  d->action = QUBE_POLICY_ACTION_ALLOW;
  _qube_policy_decision_set_reason (d, "allowed by policy %s:%u", rule->file, rule->line);
  return d;
}

static QubePolicyDecision *
evaluate_ask (QubePolicy *self, QubePolicyDecision *d, const QubePolicyRule *rule,
              const Request *r)
{
  g_autoptr(GHashTable) set = NULL;
  g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter iter;
  char *name;

  if (rule->has_redirect)
    {
      set = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
      if ((name = concrete_target (&rule->redirect, r)) != NULL)
        g_hash_table_add (set, name);
    }
  else
    set = collect_ask_targets (self, r);
  g_hash_table_remove (set, r->source_is_admin ? QUBE_POLICY_ADMIN_NAME : r->source);

  g_hash_table_iter_init (&iter, set);
  while (g_hash_table_iter_next (&iter, (gpointer *) &name, NULL))
    if (rule->autostart || may_skip_autostart (name, r))
      g_ptr_array_add (list, g_strdup (name));
  if (list->len == 0)
    {
      return deny (d, rule, "policy defines 'ask' action at %s:%u but no "
                   "target is available to choose from",
                   rule->file, rule->line);
    }
  g_ptr_array_sort (list, compare_strings);
  if (rule->has_default_target)
    {
      g_autofree char *def = concrete_target (&rule->default_target, r);

      /* A default that is not among the choices is dropped, not offered. */
      for (guint i = 0; def != NULL && i < list->len; i++)
        if (g_str_equal (list->pdata[i], def))
          d->default_target = g_steal_pointer (&def);
    }
  g_ptr_array_add (list, NULL);
  d->targets = (GStrv) g_ptr_array_free (g_steal_pointer (&list), FALSE);
  d->action = QUBE_POLICY_ACTION_ASK;
  _qube_policy_decision_set_reason (d, "policy %s:%u asks which target to use, if any",
                                    rule->file, rule->line);
  return d;
}

/* Turns what the caller asked for into a verified target token, as Qubes
 * does: "" is @default, dom0 is @adminvm, a qube that does not exist is
 * @default (so that a call cannot probe which qubes exist), and
 * @dispvm:NAME needs NAME to be a disposable template. */
static gboolean
verify_intended_target (const char *target, Request *r, char **why)
{
  if (target == NULL || *target == '\0')
    target = "@default";
  if (!_qube_policy_token_parse (target, QUBE_POLICY_CONTEXT_INTENDED, &r->target, why))
    return FALSE;
  if (r->target.kind == QUBE_POLICY_TOKEN_NAME && !system_lookup (r->system, target))
    {
      g_debug ("target '%s' does not exist, using @default instead", target);
      _qube_policy_token_clear (&r->target);
      r->target.kind = QUBE_POLICY_TOKEN_DEFAULT;
    }
  if (r->target.kind == QUBE_POLICY_TOKEN_DISPVM_TEMPLATE
      && !system_dispvm_template (r->system, r->target.value))
    {
      *why = g_strdup_printf ("not a template for disposables: '%s'", r->target.value);
      return FALSE;
    }
  return TRUE;
}

static const char *
token_to_string (const QubePolicyToken *t, char **storage)
{
  switch (t->kind)
    {
    case QUBE_POLICY_TOKEN_NAME:
      return t->value;
    case QUBE_POLICY_TOKEN_ADMINVM:
      return "@adminvm";
    case QUBE_POLICY_TOKEN_DEFAULT:
      return "@default";
    case QUBE_POLICY_TOKEN_DISPVM:
      return "@dispvm";
    case QUBE_POLICY_TOKEN_DISPVM_TEMPLATE:
      return *storage = g_strconcat ("@dispvm:", t->value, NULL);
    default:
      return NULL;
    }
}

/**
 * qube_policy_evaluate:
 * @self: a #QubePolicy
 * @system: the qubes as they are now
 * @source: the calling qube ("dom0" for the admin qube)
 * @target: (nullable): the target the caller named: a qube, "dom0",
 *   "@adminvm", "@dispvm", "@dispvm:TEMPLATE", "@default"; %NULL or "" for
 *   "@default"
 * @service: the service name, without argument
 * @argument: (nullable): the argument, with or without its leading "+";
 *   %NULL or "" for the empty argument
 *
 * Decides one call.  The first rule that matches service, argument, source
 * and target decides; no match denies.  An allow resolves the target
 * (target= redirection, @dispvm to the source's default disposable
 * template, @adminvm to "dom0"); an ask lists the targets to choose from
 * (see qube_policy_decision_resolve_ask()).  An invalid policy or request
 * denies.
 *
 * Returns: (transfer full): the decision
 */
QubePolicyDecision *
qube_policy_evaluate (QubePolicy *self, QubePolicySystem *system,
                      const char *source, const char *target,
                      const char *service, const char *argument)
{
  g_autofree char *arg = NULL;
  g_autofree char *why = NULL;
  g_autofree char *requested_storage = NULL;
  Request r = { 0 };
  QubePolicyDecision *d;

  g_return_val_if_fail (QUBE_IS_POLICY (self), NULL);
  g_return_val_if_fail (QUBE_IS_POLICY_SYSTEM (system), NULL);
  g_return_val_if_fail (source != NULL && service != NULL, NULL);

  arg = argument == NULL || *argument == '\0' ? g_strdup ("+")
        : argument[0] == '+'                  ? g_strdup (argument)
                                              : g_strconcat ("+", argument, NULL);
  r.system = system;
  r.source = source;
  r.source_is_admin = g_str_equal (source, QUBE_POLICY_ADMIN_NAME)
                      || g_str_equal (source, "@adminvm");
  r.service = service;
  r.argument = arg;

  d = _qube_policy_decision_new (QUBE_POLICY_ACTION_DENY, source, service, arg, NULL);
  if (!qube_policy_is_valid (self))
    {
      QubePolicyProblem *first = NULL;

      for (guint i = 0; first == NULL && i < self->data.problems->len; i++)
        if (qube_policy_problem_is_error (self->data.problems->pdata[i]))
          first = self->data.problems->pdata[i];
      d->file = g_strdup (first->file);
      d->line = first->line;
      _qube_policy_decision_set_reason (d, "the policy is invalid, every call is denied: "
                                        "%s:%u: %s", first->file, first->line, first->message);
      return d;
    }
  if (!r.source_is_admin && !_qube_policy_valid_qube_name (source))
    {
      _qube_policy_decision_set_reason (d, "invalid source qube name: '%s'", source);
      return d;
    }
  if (!_qube_policy_valid_service (service) || !_qube_policy_valid_argument (arg))
    {
      _qube_policy_decision_set_reason (d, "invalid service call '%s%s'", service, arg);
      return d;
    }
  if (!verify_intended_target (target, &r, &why))
    {
      _qube_policy_decision_set_reason (d, "invalid target: %s", why);
      _qube_policy_token_clear (&r.target);
      return d;
    }
  d->requested_target = g_strdup (token_to_string (&r.target, &requested_storage));

  for (guint i = 0; i < self->data.rules->len; i++)
    {
      const QubePolicyRule *rule = self->data.rules->pdata[i];

      if (!rule_matches_but_target (rule, &r) || !match_target (&rule->target, &r))
        continue;
      d->file = g_strdup (rule->file);
      d->line = rule->line;
      d->user = g_strdup (rule->user);
      d->notify = rule->notify;
      d->autostart = rule->autostart;
      if (rule->action == QUBE_POLICY_ACTION_DENY)
        {
          deny (d, rule, "denied by policy %s:%u", rule->file, rule->line);
        }
      else if (rule->action == QUBE_POLICY_ACTION_ALLOW)
        evaluate_allow (d, rule, &r);
      else
        evaluate_ask (self, d, rule, &r);
      _qube_policy_token_clear (&r.target);
      return d;
    }
  _qube_policy_decision_set_reason (d, "no matching rule found for %s%s from '%s' to '%s'",
                                    service, arg, source, d->requested_target);
  _qube_policy_token_clear (&r.target);
  return d;
}
