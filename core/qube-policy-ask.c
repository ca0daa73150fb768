/* qube-policy-ask.c — turns an `ask` decision into allow or deny.
 *
 * The question goes to a prompt agent: a program the administrator
 * configures.  It is run as
 *
 *   AGENT SOURCE SERVICE ARGUMENT DEFAULT_TARGET TARGET...
 *
 * (ARGUMENT starts with "+", DEFAULT_TARGET is "" when there is none) with
 * stdin and stderr inherited, so that it may talk to a terminal.  It
 * answers one line on stdout, "allow TARGET" with one of the offered
 * targets, or "deny"; it exits 0.  Anything else denies.  With no agent
 * configured, `ask` denies and says so.
 */
#include "config.h"

#undef G_LOG_DOMAIN
#define G_LOG_DOMAIN "qube-policy"

#include <string.h>

#include "qube-policy-private.h"

#define MAX_ANSWER 4096

static QubePolicyDecision *
answer_from (QubePolicyDecision *ask, QubePolicyAction action, const char *target)
{
  QubePolicyDecision *d = _qube_policy_decision_new (action, ask->source, ask->service,
                                                     ask->argument, ask->requested_target);

  d->file = g_strdup (ask->file);
  d->line = ask->line;
  if (action == QUBE_POLICY_ACTION_ALLOW)
    {
      d->target = g_strdup (target);
      d->user = g_strdup (ask->user);
      d->notify = ask->notify;
      d->autostart = ask->autostart;
    }
  return d;
}

static QubePolicyDecision *
ask_denied (QubePolicyDecision *ask, const char *format, ...) G_GNUC_PRINTF (2, 3);

static QubePolicyDecision *
ask_denied (QubePolicyDecision *ask, const char *format, ...)
{
  QubePolicyDecision *d = answer_from (ask, QUBE_POLICY_ACTION_DENY, NULL);
  g_autofree char *why = NULL;
  va_list ap;

  va_start (ap, format);
  why = g_strdup_vprintf (format, ap);
  va_end (ap);
  _qube_policy_decision_set_reason (d, "%s (ask at %s:%u)", why,
                                    ask->file ? ask->file : "?", ask->line);
  return d;
}

/**
 * qube_policy_decision_resolve_ask:
 * @self: a #QubePolicyDecision
 * @agent: (nullable) (type filename): the prompt agent program; %NULL or
 *   "" when none is configured
 * @cancellable: (nullable): a #GCancellable
 *
 * Asks the prompt agent to choose for an `ask` decision.  The agent is run
 * as `AGENT SOURCE SERVICE ARGUMENT DEFAULT_TARGET TARGET...` (ARGUMENT
 * starts with "+"; DEFAULT_TARGET is "" when there is none), with stdin and
 * stderr inherited.  It prints one line, `allow TARGET` naming one of the
 * offered targets, or `deny`, and exits with status 0.
 *
 * The result allows the chosen target (keeping the rule's user, notify,
 * autostart and file:line), or denies when the agent refuses, chooses
 * something that was not offered, answers anything else, fails, or when
 * no agent is configured.  A decision that is not `ask` is returned as it
 * is.  This blocks until the agent exits; cancel @cancellable to give up
 * (the agent is then killed and the call denied).
 *
 * Returns: (transfer full): the final decision
 */
QubePolicyDecision *
qube_policy_decision_resolve_ask (QubePolicyDecision *self, const char *agent,
                                  GCancellable *cancellable)
{
  g_autoptr(GPtrArray) argv = NULL;
  g_autoptr(GSubprocess) proc = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  g_autofree char *line = NULL;
  char *nl;

  g_return_val_if_fail (QUBE_IS_POLICY_DECISION (self), NULL);

  if (self->action != QUBE_POLICY_ACTION_ASK)
    return g_object_ref (self);
  if (agent == NULL || *agent == '\0')
    return ask_denied (self, "no prompt agent is configured to answer 'ask'");

  argv = g_ptr_array_new ();
  g_ptr_array_add (argv, (char *) agent);
  g_ptr_array_add (argv, self->source);
  g_ptr_array_add (argv, self->service);
  g_ptr_array_add (argv, self->argument);
  g_ptr_array_add (argv, self->default_target ? self->default_target : "");
  for (guint i = 0; self->targets && self->targets[i]; i++)
    g_ptr_array_add (argv, self->targets[i]);
  g_ptr_array_add (argv, NULL);

  proc = g_subprocess_newv ((const char *const *) argv->pdata,
                            G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDIN_INHERIT,
                            &error);
  if (proc == NULL)
    return ask_denied (self, "cannot run prompt agent '%s': %s", agent, error->message);
  if (!g_subprocess_communicate_utf8 (proc, NULL, cancellable, &out, NULL, &error))
    {
      g_subprocess_force_exit (proc);
      return ask_denied (self, "prompt agent '%s' failed: %s", agent, error->message);
    }
  if (!g_subprocess_get_if_exited (proc) || g_subprocess_get_exit_status (proc) != 0)
    return ask_denied (self, "prompt agent '%s' did not exit with status 0", agent);
  if (out == NULL || strlen (out) > MAX_ANSWER)
    return ask_denied (self, "prompt agent '%s' gave no usable answer", agent);

  line = g_strdup (out);
  if ((nl = strchr (line, '\n')) != NULL)
    *nl = '\0';
  g_strstrip (line);
  if (g_str_equal (line, "deny"))
    {
      /* A person's refusal is the rule's to announce, as its allow
       * would be (Qubes: notify= of the ask, default no); a prompt that
       * failed is announced as any other denial. */
      QubePolicyDecision *d = ask_denied (self, "denied by the prompt agent");

      d->notify = self->notify;
      return d;
    }
  if (g_str_has_prefix (line, "allow "))
    {
      const char *choice = line + strlen ("allow ");

      if (self->targets && g_strv_contains ((const char *const *) self->targets, choice))
        {
          QubePolicyDecision *d = answer_from (self, QUBE_POLICY_ACTION_ALLOW, choice);

          _qube_policy_decision_set_reason (d, "allowed by the prompt agent (ask at %s:%u)",
                                            self->file, self->line);
          return d;
        }
      return ask_denied (self, "the prompt agent chose '%s', which was not offered", choice);
    }
  return ask_denied (self, "the prompt agent answered neither 'allow TARGET' nor 'deny'");
}
