/* qube-admin.c — the Admin API: qubesd's calls answered from a QubeManager.
 *
 * One table lists every method with what it accepts (scope, argument,
 * payload) and its handler, so that argument checks happen in one place
 * and methods the library cannot serve yet answer with a clear exception.
 * Calls from a qube other than the admin qube are decided by the qrexec
 * policy first, as qrexec does before a call reaches qubesd; the admin
 * qube itself (local clients of qubed) is trusted, as by qubesd.
 * Reply contents and exception names follow qubesd byte for byte.
 */
#include "config.h"

#include <errno.h>
#include <sys/mman.h>
#include <string.h>
#include <unistd.h>

#include "qube-admin.h"
#include "qube-dispvm.h"
#include "qube-error.h"
#include "qube-lifecycle.h"
#include "qube-plugin-private.h"
#include "qube-pool.h"
#include "qube-volume.h"
#include "qube-policy.h"
#include "qube-policy-private.h"
#include "qube-property.h"
#include "qube-vm-private.h"

#define ADMIN_NAME "dom0"
#define CREATED_BY_PREFIX "created-by-"

struct _QubeAdmin {
  GObject parent_instance;

  QubeManager *manager;
  char *policy_dir;
};

enum {
  SIGNAL_EVENT,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (QubeAdmin, qube_admin, G_TYPE_OBJECT)

static void
qube_admin_finalize (GObject *object)
{
  QubeAdmin *self = QUBE_ADMIN (object);

  g_clear_object (&self->manager);
  g_clear_pointer (&self->policy_dir, g_free);
  G_OBJECT_CLASS (qube_admin_parent_class)->finalize (object);
}

static void
qube_admin_class_init (QubeAdminClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = qube_admin_finalize;

  /**
   * QubeAdmin::event:
   * @admin: the #QubeAdmin
   * @subject: the qube the event is about, or "" for the host itself
   * @event: the event, e.g. `property-set:netvm`, `domain-add`
   * @kwargs: (array zero-terminated=1): key, value, key, value...
   *
   * Emitted after every change made through this Admin API, for
   * admin.Events subscribers.
   */
  signals[SIGNAL_EVENT] =
    g_signal_new ("event", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 3,
                  G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRV);
}

static void
qube_admin_init (QubeAdmin *self)
{
}

/**
 * qube_admin_default_socket:
 *
 * Where qubed takes local clients' Admin API calls when no socket is
 * named: `/run/qubed.sock` for root, else `qubed.sock` in the user's
 * runtime directory.  qubed listens there and `qube` looks there, so both
 * follow this one rule.
 *
 * Returns: (transfer full) (type filename): a socket path
 */
char *
qube_admin_default_socket (void)
{
  if (geteuid () == 0)
    return g_strdup ("/run/qubed.sock");
  return g_build_filename (g_get_user_runtime_dir (), "qubed.sock", NULL);
}

/**
 * qube_admin_new:
 * @manager: the qubes to serve
 * @policy_dir: (nullable) (type filename): the qrexec policy directory
 *   deciding calls from qubes; %NULL for `$QUBE_POLICY_DIR`, else
 *   %QUBE_POLICY_DEFAULT_DIR
 *
 * Returns: (transfer full): a new #QubeAdmin
 */
QubeAdmin *
qube_admin_new (QubeManager *manager, const char *policy_dir)
{
  QubeAdmin *self;
  const char *env = g_getenv ("QUBE_POLICY_DIR");

  g_return_val_if_fail (QUBE_IS_MANAGER (manager), NULL);

  self = g_object_new (QUBE_TYPE_ADMIN, NULL);
  self->manager = g_object_ref (manager);
  if (policy_dir != NULL)
    self->policy_dir = g_strdup (policy_dir);
  else if (env != NULL && *env != '\0')
    self->policy_dir = g_strdup (env);
  else
    self->policy_dir = g_strdup (QUBE_POLICY_DEFAULT_DIR);
  return self;
}

/**
 * qube_admin_get_manager:
 * @self: a #QubeAdmin
 *
 * Returns: (transfer none): the manager this Admin API serves
 */
QubeManager *
qube_admin_get_manager (QubeAdmin *self)
{
  g_return_val_if_fail (QUBE_IS_ADMIN (self), NULL);
  return self->manager;
}

/* ---- replies ---- */

static GBytes *
reply_ok (GString *content)
{
  GByteArray *out = g_byte_array_sized_new (content->len + 2);

  g_byte_array_append (out, (const guint8 *) "0", 2);
  g_byte_array_append (out, (const guint8 *) content->str, content->len);
  return g_byte_array_free_to_bytes (out);
}

/**
 * qube_admin_encode_exception:
 * @type: the exception's type, e.g. `QubesVMNotFoundError`
 * @message: what went wrong, for a person
 *
 * Encodes an exception reply: `2\0TYPE\0\0MESSAGE\0` (the traceback
 * between is always empty).
 *
 * Returns: (transfer full): the reply
 */
GBytes *
qube_admin_encode_exception (const char *type, const char *message)
{
  GByteArray *out = g_byte_array_new ();

  g_return_val_if_fail (type != NULL && message != NULL, NULL);

  g_byte_array_append (out, (const guint8 *) "2", 2);
  g_byte_array_append (out, (const guint8 *) type, strlen (type) + 1);
  g_byte_array_append (out, (const guint8 *) "", 1);
  g_byte_array_append (out, (const guint8 *) message, strlen (message) + 1);
  return g_byte_array_free_to_bytes (out);
}

/**
 * qube_admin_encode_event:
 * @subject: the qube the event is about, or "" for the host itself
 * @event: the event name
 * @kwargs: (array zero-terminated=1) (nullable): key, value, key, value...
 *
 * Encodes one admin.Events message: `1\0subject\0event\0key\0value\0…\0`.
 *
 * Returns: (transfer full): the message
 */
GBytes *
qube_admin_encode_event (const char *subject, const char *event,
                         const char *const *kwargs)
{
  GByteArray *out = g_byte_array_new ();

  g_byte_array_append (out, (const guint8 *) "1", 2);
  g_byte_array_append (out, (const guint8 *) subject, strlen (subject) + 1);
  g_byte_array_append (out, (const guint8 *) event, strlen (event) + 1);
  for (guint i = 0; kwargs != NULL && kwargs[i] != NULL && kwargs[i + 1] != NULL; i += 2)
    {
      g_byte_array_append (out, (const guint8 *) kwargs[i], strlen (kwargs[i]) + 1);
      g_byte_array_append (out, (const guint8 *) kwargs[i + 1], strlen (kwargs[i + 1]) + 1);
    }
  g_byte_array_append (out, (const guint8 *) "", 1);
  return g_byte_array_free_to_bytes (out);
}

/**
 * qube_admin_reply_get_content:
 * @reply: a reply from qube_admin_call() or qubed
 * @exception_type: (out) (optional) (nullable): set to the exception's
 *   type for an exception reply, else %NULL
 * @message: (out) (optional) (nullable): set to the exception's message for
 *   an exception reply, else %NULL
 *
 * Splits a reply in the qubesd wire format.
 *
 * Returns: (transfer full) (nullable): the content of an OK reply, or %NULL
 *   for an exception (or a malformed reply: then the type is
 *   `ProtocolError`)
 */
GBytes *
qube_admin_reply_get_content (GBytes *reply, char **exception_type,
                              char **message)
{
  gsize len;
  const char *data = g_bytes_get_data (reply, &len);
  const char *type, *trace, *msg, *end;

  if (exception_type != NULL)
    *exception_type = NULL;
  if (message != NULL)
    *message = NULL;
  if (len >= 2 && data[0] == '0' && data[1] == '\0')
    return g_bytes_new_from_bytes (reply, 2, len - 2);

  /* '2', NUL, then type, traceback and message, each NUL-terminated. */
  end = data + len;
  type = len >= 2 && data[0] == '2' && data[1] == '\0' ? data + 2 : NULL;
  trace = type != NULL ? memchr (type, '\0', end - type) : NULL;
  msg = trace != NULL ? memchr (trace + 1, '\0', end - trace - 1) : NULL;
  if (msg == NULL || memchr (msg + 1, '\0', end - msg - 1) == NULL)
    {
      if (exception_type != NULL)
        *exception_type = g_strdup ("ProtocolError");
      if (message != NULL)
        *message = g_strdup ("malformed reply");
      return NULL;
    }
  if (exception_type != NULL)
    *exception_type = g_strdup (type);
  if (message != NULL)
    *message = g_strdup (msg + 1);
  return NULL;
}

/* ---- one call ---- */

typedef struct {
  QubeAdmin *self;
  const char *source;
  const char *method;
  const char *arg;
  const char *dest;
  GBytes *payload;
  gboolean from_admin;
  QubePolicy *policy;
  QubePolicySystem *system;
  QubeVm *vm;
  /* The exception type for this call's errors, when the code alone does
   * not say it (a missing feature is not a missing qube). */
  const char *exception;
  GString *out;
} AdminCall;

static void
admin_call_clear (AdminCall *call)
{
  g_clear_object (&call->policy);
  g_clear_object (&call->system);
  g_clear_object (&call->vm);
  if (call->out != NULL)
    g_string_free (call->out, TRUE);
}

typedef gboolean (*AdminHandler) (AdminCall *call, GError **error);

typedef enum {
  /* dest must be the admin qube */
  METHOD_GLOBAL = 1 << 0,
  /* dest is a qube, looked up before the handler runs */
  METHOD_LOCAL = 1 << 1,
  METHOD_NO_ARG = 1 << 2,
  METHOD_NEED_ARG = 1 << 3,
  METHOD_NO_PAYLOAD = 1 << 4,
  /* the name is a prefix: admin.vm.Create.<Class> */
  METHOD_PREFIX = 1 << 5,
} MethodFlags;

typedef struct {
  const char *name;
  MethodFlags flags;
  AdminHandler handler;
} AdminMethod;

static gboolean
fail (AdminCall *call, const char *type, GError **error, const char *format, ...)
  G_GNUC_PRINTF (4, 5);

static gboolean
fail (AdminCall *call, const char *type, GError **error, const char *format, ...)
{
  g_autofree char *message = NULL;
  va_list ap;

  call->exception = type;
  va_start (ap, format);
  message = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_set_error_literal (error, QUBE_ERROR, QUBE_ERROR_FAILED, message);
  return FALSE;
}

static const char *
exception_for (AdminCall *call, const GError *error)
{
  if (call->exception != NULL)
    return call->exception;
  if (error->domain != QUBE_ERROR)
    return "QubesException";
  switch (error->code)
    {
    case QUBE_ERROR_INVALID:
    case QUBE_ERROR_INVALID_NAME:
    case QUBE_ERROR_EXISTS:
      return "QubesValueError";
    case QUBE_ERROR_NOT_FOUND:
      return "QubesVMNotFoundError";
    case QUBE_ERROR_IN_USE:
      return "QubesVMInUseError";
    case QUBE_ERROR_RUNNING:
      return "QubesVMNotHaltedError";
    case QUBE_ERROR_NOT_RUNNING:
      return "QubesVMNotRunningError";
    case QUBE_ERROR_DENIED:
      return "PermissionDenied";
    case QUBE_ERROR_PROTOCOL:
      return "ProtocolError";
    default:
      return "QubesException";
    }
}

static void
emit (AdminCall *call, const char *subject, const char *event, ...)
  G_GNUC_NULL_TERMINATED;

static void
emit (AdminCall *call, const char *subject, const char *event, ...)
{
  g_autoptr(GPtrArray) kwargs = g_ptr_array_new ();
  const char *s;
  va_list ap;

  va_start (ap, event);
  while ((s = va_arg (ap, const char *)) != NULL)
    g_ptr_array_add (kwargs, (gpointer) s);
  va_end (ap);
  g_ptr_array_add (kwargs, NULL);
  qube_admin_emit_event (call->self, subject, event, (const char *const *) kwargs->pdata);
}

/**
 * qube_admin_emit_event:
 * @self: a #QubeAdmin
 * @subject: the qube the event is about, or "" for the host itself
 * @event: the event, e.g. `domain-start`
 * @kwargs: (array zero-terminated=1) (nullable): key, value, key, value...
 *
 * Sends an event that did not come from an Admin API call (a qube that
 * stopped by itself, a disposable made in the background) to the
 * admin.Events subscribers, through #QubeAdmin::event.
 */
void
qube_admin_emit_event (QubeAdmin *self, const char *subject, const char *event,
                       const char *const *kwargs)
{
  static const char *const none[] = { NULL };

  g_return_if_fail (QUBE_IS_ADMIN (self));
  g_return_if_fail (subject != NULL && event != NULL);
  g_signal_emit (self, signals[SIGNAL_EVENT], 0, subject, event, kwargs != NULL ? kwargs : none);
}

/* ---- the policy ---- */

static gboolean
policy_allows (AdminCall *call, const char *service, const char *target,
               const char *arg)
{
  g_autoptr(QubePolicyDecision) decision = NULL;

  if (call->from_admin)
    return TRUE;
  if (call->policy == NULL)
    call->policy = qube_policy_load (call->self->policy_dir);
  if (call->system == NULL)
    {
      const char *names[] = { ADMIN_NAME, call->source, target, NULL };

      call->system = qube_policy_system_new_for_manager (call->self->manager, names);
    }
  decision = qube_policy_evaluate (call->policy, call->system, call->source,
                                   target, service, arg);
  g_debug ("%s+%s from '%s' to '%s': %s (%s)", service, arg != NULL ? arg : "",
           call->source, target, qube_policy_action_to_string (
             qube_policy_decision_get_action (decision)),
           qube_policy_decision_get_reason (decision));
  /* A prompt cannot be shown from here: only an allow lets a call in. */
  return qube_policy_decision_get_action (decision) == QUBE_POLICY_ACTION_ALLOW;
}

/* What a qube gets for a call the policy refuses, and for one about a
 * qube that does not exist: the same, so that calls cannot probe names. */
static gboolean
fail_denied (AdminCall *call, GError **error)
{
  return fail (call, "PermissionDenied", error, "Request refused");
}

/* ---- properties, of a qube or global ---- */

static char **
prop_list (AdminCall *call)
{
  return call->vm != NULL ? qube_vm_list_properties (call->vm)
                          : qube_manager_list_properties (call->self->manager);
}

static gboolean
prop_exists (AdminCall *call, const char *name, GError **error)
{
  g_auto(GStrv) names = prop_list (call);

  if (g_strv_contains ((const char *const *) names, name))
    return TRUE;
  return fail (call, "QubesNoSuchPropertyError", error, "Invalid property '%s' of %s",
               name, call->vm != NULL ? qube_vm_get_name (call->vm) : ADMIN_NAME);
}

static char *
prop_serialize (AdminCall *call, const char *name, GError **error)
{
  gboolean is_default = FALSE;
  QubePropertyType type = QUBE_PROPERTY_TYPE_STR;
  g_autofree char *value = NULL;

  if (call->vm != NULL)
    value = qube_vm_get_property (call->vm, name, &is_default, &type, error);
  else if (qube_manager_get_property_type (call->self->manager, name, &type, error))
    value = qube_manager_get_property (call->self->manager, name, &is_default, error);
  if (value == NULL)
    return NULL;
  return g_strdup_printf ("default=%s type=%s %s", is_default ? "True" : "False",
                          _qube_property_type_to_name (type), value);
}

/* The lists' format: one item a line. Takes `items`. */
static gboolean
reply_lines (AdminCall *call, char **items)
{
  for (guint i = 0; items[i] != NULL; i++)
    g_string_append_printf (call->out, "%s\n", items[i]);
  g_strfreev (items);
  return TRUE;
}

static gboolean
handle_property_list (AdminCall *call, GError **error)
{
  return reply_lines (call, prop_list (call));
}

static gboolean
handle_property_get (AdminCall *call, GError **error)
{
  g_autofree char *line = NULL;

  if (!prop_exists (call, call->arg, error))
    return FALSE;
  line = prop_serialize (call, call->arg, error);
  if (line == NULL)
    return FALSE;
  g_string_append (call->out, line);
  return TRUE;
}

static gboolean
handle_property_get_all (AdminCall *call, GError **error)
{
  g_auto(GStrv) names = prop_list (call);

  for (guint i = 0; names[i] != NULL; i++)
    {
      g_autofree char *line = prop_serialize (call, names[i], error);

      if (line == NULL)
        return FALSE;
      g_string_append_printf (call->out, "%s ", names[i]);
      /* One line per property: escape what would break the line. */
      for (const char *p = line; *p != '\0'; p++)
        {
          if (*p == '\\')
            g_string_append (call->out, "\\\\");
          else if (*p == '\n')
            g_string_append (call->out, "\\n");
          else
            g_string_append_c (call->out, *p);
        }
      g_string_append_c (call->out, '\n');
    }
  return TRUE;
}

/* The payload as a string: no NUL inside, valid UTF-8. */
static char *
payload_string (AdminCall *call, GError **error)
{
  gsize len;
  const char *data = g_bytes_get_data (call->payload, &len);

  if (len == 0)
    return g_strdup ("");
  if (memchr (data, '\0', len) != NULL || !g_utf8_validate_len (data, len, NULL))
    {
      fail (call, "QubesValueError", error,
            "invalid value for %s: not a NUL-free UTF-8 string", call->method);
      return NULL;
    }
  return g_strndup (data, len);
}

static const char *
subject_of (AdminCall *call)
{
  return call->vm != NULL ? qube_vm_get_name (call->vm) : "";
}

static gboolean
handle_property_set (AdminCall *call, GError **error)
{
  g_autofree char *value = NULL;
  g_autofree char *old = NULL;
  g_autofree char *event = NULL;
  gboolean ok;

  if (!prop_exists (call, call->arg, error) || (value = payload_string (call, error)) == NULL)
    return FALSE;
  if (call->vm != NULL)
    {
      old = qube_vm_get_property (call->vm, call->arg, NULL, NULL, NULL);
      ok = qube_vm_set_property (call->vm, call->arg, value, error);
    }
  else
    {
      old = qube_manager_get_property (call->self->manager, call->arg, NULL, NULL);
      ok = qube_manager_set_property (call->self->manager, call->arg, value, error);
    }
  if (!ok)
    return FALSE;
  event = g_strconcat ("property-set:", call->arg, NULL);
  emit (call, subject_of (call), event, "name", call->arg, "newvalue", value,
        "oldvalue", old != NULL ? old : "", NULL);
  return TRUE;
}

static gboolean
handle_property_reset (AdminCall *call, GError **error)
{
  g_autofree char *event = NULL;
  gboolean ok;

  if (!prop_exists (call, call->arg, error))
    return FALSE;
  ok = call->vm != NULL ? qube_vm_reset_property (call->vm, call->arg, error)
                        : qube_manager_reset_property (call->self->manager, call->arg, error);
  if (!ok)
    return FALSE;
  event = g_strconcat ("property-reset:", call->arg, NULL);
  emit (call, subject_of (call), event, "name", call->arg, NULL);
  return TRUE;
}

/* ---- features ---- */

static gboolean
handle_feature_list (AdminCall *call, GError **error)
{
  return reply_lines (call, qube_vm_list_features (call->vm));
}

static gboolean
fail_no_feature (AdminCall *call, GError **error)
{
  g_autofree char *shown = _qube_printable (call->arg);

  return fail (call, "QubesFeatureNotFoundError", error, "qube '%s' has no feature '%s'",
               qube_vm_get_name (call->vm), shown);
}

static gboolean
handle_feature_get (AdminCall *call, GError **error)
{
  g_autofree char *value = NULL;

  if (!_qube_key_is_valid ("feature name", call->arg, error))
    return FALSE;
  value = qube_vm_get_feature (call->vm, call->arg);
  if (value == NULL)
    return fail_no_feature (call, error);
  g_string_append (call->out, value);
  return TRUE;
}

static gboolean
handle_feature_set (AdminCall *call, GError **error)
{
  g_autofree char *value = payload_string (call, error);
  g_autofree char *event = NULL;

  if (value == NULL || !qube_vm_set_feature (call->vm, call->arg, value, error))
    return FALSE;
  event = g_strconcat ("domain-feature-set:", call->arg, NULL);
  emit (call, subject_of (call), event, "feature", call->arg, "value", value, NULL);
  return TRUE;
}

typedef gboolean (*VmRemoveFunc) (QubeVm *vm, const char *key, GError **error);

/* Removes a feature or tag; one the qube does not have is the named
 * exception, as in qubesd. */
static gboolean
remove_key (AdminCall *call, VmRemoveFunc func, const char *missing_type,
            const char *event_prefix, const char *key_name, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autofree char *event = NULL;

  if (!func (call->vm, call->arg, &local_error))
    {
      if (g_error_matches (local_error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND))
        call->exception = missing_type;
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  event = g_strconcat (event_prefix, call->arg, NULL);
  emit (call, subject_of (call), event, key_name, call->arg, NULL);
  return TRUE;
}

static gboolean
handle_feature_remove (AdminCall *call, GError **error)
{
  return _qube_key_is_valid ("feature name", call->arg, error)
         && remove_key (call, qube_vm_remove_feature, "QubesFeatureNotFoundError",
                        "domain-feature-delete:", "feature", error);
}

/* ---- tags ---- */

static gboolean
handle_tag_list (AdminCall *call, GError **error)
{
  return reply_lines (call, qube_vm_list_tags (call->vm));
}

static gboolean
handle_tag_get (AdminCall *call, GError **error)
{
  if (!_qube_key_is_valid ("tag", call->arg, error))
    return FALSE;
  g_string_append (call->out, qube_vm_has_tag (call->vm, call->arg) ? "1" : "0");
  return TRUE;
}

/* A qube may not give or take the tags delegation rests on. */
static gboolean
check_tag_change (AdminCall *call, GError **error)
{
  if (!_qube_key_is_valid ("tag", call->arg, error))
    return FALSE;
  if (!call->from_admin && g_str_has_prefix (call->arg, CREATED_BY_PREFIX))
    return fail (call, "PermissionDenied", error,
                 "changing tag '%s' is reserved to the admin qube", call->arg);
  return TRUE;
}

static gboolean
handle_tag_set (AdminCall *call, GError **error)
{
  g_autofree char *event = NULL;

  if (!check_tag_change (call, error) || !qube_vm_add_tag (call->vm, call->arg, error))
    return FALSE;
  event = g_strconcat ("domain-tag-add:", call->arg, NULL);
  emit (call, subject_of (call), event, "tag", call->arg, NULL);
  return TRUE;
}

static gboolean
handle_tag_remove (AdminCall *call, GError **error)
{
  return check_tag_change (call, error)
         && remove_key (call, qube_vm_remove_tag, "QubesTagNotFoundError",
                        "domain-tag-delete:", "tag", error);
}

/* ---- qubes ---- */

static void
list_one (GString *out, QubeVm *vm)
{
  g_string_append_printf (out, "%s class=%s state=%s uuid=%s\n", qube_vm_get_name (vm),
                          qube_vm_get_klass (vm), qube_vm_get_state (vm),
                          qube_vm_get_uuid (vm));
}

static gboolean
handle_vm_list (AdminCall *call, GError **error)
{
  g_autoptr(GPtrArray) vms = NULL;

  if (call->vm != NULL && !g_str_equal (qube_vm_get_name (call->vm), ADMIN_NAME))
    {
      list_one (call->out, call->vm);
      return TRUE;
    }
  vms = qube_manager_list_vms (call->self->manager);
  if (!call->from_admin)
    {
      g_clear_object (&call->system);
      call->system = qube_policy_system_new_for_manager (call->self->manager, NULL);
    }
  for (guint i = 0; i < vms->len; i++)
    {
      QubeVm *vm = vms->pdata[i];

      /* Qubes lists to a qube only the qubes its policy lets it list. */
      if (policy_allows (call, call->method, qube_vm_get_name (vm), NULL))
        list_one (call->out, vm);
    }
  return TRUE;
}

static gboolean
handle_vmclass_list (AdminCall *call, GError **error)
{
  g_string_append (call->out, "AdminVM\nAppVM\nDispVM\nStandaloneVM\nTemplateVM\n");
  return TRUE;
}

static gboolean
handle_current_state (AdminCall *call, GError **error)
{
  /* Memory and CPU accounting come from the isolation backend; without
   * one running the qube they are 0, as qubesd reports for a halted qube. */
  g_string_append_printf (call->out, "mem=0 mem_static_max=0 cputime=0 power_state=%s",
                          qube_vm_get_state (call->vm));
  return TRUE;
}

/* The `name=NAME [label=LABEL]` payload of admin.vm.Create.<Class> and
 * admin.vm.Clone (label: NULL to refuse one); admin.vm.CreateInPool.<Class>
 * also takes `pool=POOL` and `pool:VOLUME=POOL` (pools: NULL to refuse
 * them), returned as "*=POOL" and "VOLUME=POOL". */
static gboolean
parse_create_payload (AdminCall *call, char **name, char **label, GPtrArray *pools,
                      GError **error)
{
  g_autofree char *text = payload_string (call, error);
  g_auto(GStrv) params = NULL;

  if (text == NULL)
    return FALSE;
  params = g_strsplit (text, " ", -1);
  for (guint i = 0; params[i] != NULL; i++)
    {
      char *eq = strchr (params[i], '=');
      char **slot;

      if (eq == NULL)
        return fail (call, "ProtocolError", error, "invalid parameter '%s' for %s",
                     params[i], call->method);
      *eq = '\0';
      if (pools != NULL && (g_str_equal (params[i], "pool")
                            || g_str_has_prefix (params[i], "pool:")))
        {
          const char *volume = params[i][4] == ':' ? params[i] + 5 : "*";
          g_autofree char *prefix = g_strconcat (volume, "=", NULL);

          if ((*volume != '*' && !_qube_key_is_valid ("volume name", volume, error))
              || !_qube_key_is_valid ("pool name", eq + 1, error))
            {
              call->exception = "ProtocolError";
              return FALSE;
            }
          for (guint j = 0; j < pools->len; j++)
            if (g_str_has_prefix (pools->pdata[j], prefix))
              return fail (call, "ProtocolError", error, "duplicated parameter '%s'", params[i]);
          g_ptr_array_add (pools, g_strconcat (prefix, eq + 1, NULL));
          continue;
        }
      if (g_str_equal (params[i], "name"))
        slot = name;
      else if (g_str_equal (params[i], "label") && label != NULL)
        slot = label;
      else
        return fail (call, "ProtocolError", error, "invalid parameter name '%s' for %s",
                     params[i], call->method);
      if (*slot != NULL)
        return fail (call, "ProtocolError", error, "duplicated parameter '%s'", params[i]);
      *slot = g_strdup (eq + 1);
    }
  /* qubesd insists on a label; the library has a default for it. */
  if (*name == NULL)
    return fail (call, "ProtocolError", error, "%s needs name=", call->method);
  if (!qube_name_is_valid (*name, error))
    {
      call->exception = "QubesValueError";
      return FALSE;
    }
  /* qubesd: either one pool for all, or pools per volume. */
  if (pools != NULL && pools->len > 1)
    for (guint j = 0; j < pools->len; j++)
      if (g_str_has_prefix (pools->pdata[j], "*="))
        return fail (call, "ProtocolError", error,
                     "pool= and pool:VOLUME= cannot be given together");
  return TRUE;
}

/* Delegation: a qube's new qube carries created-by-CALLER, so that policy
 * rules about @tag:created-by-CALLER let the caller manage it.  Without
 * the tag the new qube is removed again. */
static gboolean
tag_created_by (AdminCall *call, QubeVm *vm, GError **error)
{
  g_autofree char *tag = NULL;
  g_autoptr(GError) undo_error = NULL;

  if (call->from_admin)
    return TRUE;
  tag = g_strconcat (CREATED_BY_PREFIX, call->source, NULL);
  if (qube_vm_add_tag (vm, tag, error))
    return TRUE;
  if (!qube_manager_remove_vm (call->self->manager, qube_vm_get_name (vm), &undo_error))
    g_warning ("cannot undo the creation of qube '%s': %s", qube_vm_get_name (vm),
               undo_error->message);
  return FALSE;
}

/* admin.vm.Create.<Class> and admin.vm.CreateInPool.<Class>. */
static gboolean
handle_vm_create (AdminCall *call, GError **error)
{
  gboolean in_pool = g_str_has_prefix (call->method, "admin.vm.CreateInPool.");
  const char *klass = strrchr (call->method, '.') + 1;
  g_autoptr(GPtrArray) pools = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *name = NULL;
  g_autofree char *label = NULL;
  g_autoptr(QubeVm) vm = NULL;

  if (!parse_create_payload (call, &name, &label, in_pool ? pools : NULL, error))
    return FALSE;
  /* A missing pool is a bad value; a missing template a missing qube. */
  for (guint i = 0; i < pools->len; i++)
    {
      g_autoptr(QubeStoragePool) pool =
        qube_manager_lookup_pool (call->self->manager, strchr (pools->pdata[i], '=') + 1, error);

      if (pool == NULL)
        {
          call->exception = "QubesValueError";
          return FALSE;
        }
    }
  g_ptr_array_add (pools, NULL);
  /* A missing template is QubesVMNotFoundError, as in qubesd. */
  vm = _qube_manager_create_vm_in_pools (call->self->manager, klass, name,
                                         *call->arg != '\0' ? call->arg : NULL, label,
                                         (const char *const *) pools->pdata, error);
  if (vm == NULL)
    return FALSE;
  if (!tag_created_by (call, vm, error))
    return FALSE;
  emit (call, "", "domain-add", "vm", name, NULL);
  return TRUE;
}

/* admin.vm.Clone (from the Admin API's first design): dest is the qube to
 * copy, the payload `name=NEW`. */
static gboolean
handle_vm_clone (AdminCall *call, GError **error)
{
  g_autofree char *name = NULL;
  g_autoptr(QubeVm) vm = NULL;

  if (!parse_create_payload (call, &name, NULL, NULL, error))
    return FALSE;
  vm = qube_manager_clone_vm (call->self->manager, qube_vm_get_name (call->vm), name, error);
  if (vm == NULL || !tag_created_by (call, vm, error))
    return FALSE;
  emit (call, "", "domain-add", "vm", name, NULL);
  return TRUE;
}

/* admin.vm.CreateDisposable: dest is a disposable template, or a qube
 * whose default_dispvm says which one.  The reply is the name of a new
 * running unnamed disposable (a preloaded one when one is ready), which
 * is destroyed, volumes and all, once it stops (auto_cleanup). */
static gboolean
handle_vm_create_disposable (AdminCall *call, GError **error)
{
  QubeManager *manager = call->self->manager;
  g_autofree char *dvm = qube_dispvm_template_for (manager, qube_vm_get_name (call->vm), error);
  g_autoptr(QubeVm) vm = NULL;

  if (dvm == NULL)
    return FALSE;
  vm = qube_dispvm_new (manager, dvm, TRUE, NULL, error);
  if (vm == NULL || !tag_created_by (call, vm, error))
    return FALSE;
  g_string_append (call->out, qube_vm_get_name (vm));
  emit (call, "", "domain-add", "vm", qube_vm_get_name (vm), NULL);
  return TRUE;
}

static gboolean
handle_vm_remove (AdminCall *call, GError **error)
{
  g_autofree char *name = g_strdup (qube_vm_get_name (call->vm));

  if (g_str_equal (name, ADMIN_NAME))
    return fail (call, "QubesVMInUseError", error, "'dom0' cannot be removed");
  if (!qube_manager_remove_vm (call->self->manager, name, error))
    return FALSE;
  emit (call, "", "domain-delete", "vm", name, NULL);
  return TRUE;
}

/* ---- lifecycle ---- */

typedef gboolean (*VmPowerFunc) (QubeVm *vm, GError **error);

/* Runs one lifecycle step, with Qubes' events before (when `pre`) and
 * after it; a failed start is `domain-start-failed` with the reason. */
static gboolean
power_step (AdminCall *call, VmPowerFunc func, const char *pre, const char *done,
            const char *failed, GError **error)
{
  const char *name = qube_vm_get_name (call->vm);
  g_autoptr(GError) local_error = NULL;

  if (pre != NULL)
    emit (call, name, pre, NULL);
  if (!func (call->vm, &local_error))
    {
      /* What is missing for a start (a kernel, a template's volume) is not
       * a missing qube. */
      if (g_error_matches (local_error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND))
        call->exception = "QubesException";
      if (failed != NULL)
        emit (call, name, failed, "reason", local_error->message, NULL);
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  if (done != NULL)
    emit (call, name, done, NULL);
  return TRUE;
}

static gboolean
handle_vm_start (AdminCall *call, GError **error)
{
  return power_step (call, qube_vm_start, "domain-pre-start", "domain-start",
                     "domain-start-failed", error);
}

static gboolean
shutdown_wait (QubeVm *vm, GError **error)
{
  return qube_vm_shutdown (vm, TRUE, error);
}

static gboolean
shutdown_nowait (QubeVm *vm, GError **error)
{
  return qube_vm_shutdown (vm, FALSE, error);
}

/* admin.vm.Shutdown[+force][+wait]: without wait the qube stops later,
 * and domain-shutdown is sent when that is noticed. */
static gboolean
handle_vm_shutdown (AdminCall *call, GError **error)
{
  g_auto(GStrv) words = g_strsplit (call->arg, "+", -1);
  gboolean wait = FALSE;

  for (guint i = 0; *call->arg != '\0' && words[i] != NULL; i++)
    {
      if (g_str_equal (words[i], "wait"))
        wait = TRUE;
      /* Nothing holds a shutdown back here, so force changes nothing. */
      else if (!g_str_equal (words[i], "force"))
        return fail (call, "ProtocolError", error,
                     "invalid argument for %s: expected force, wait or force+wait",
                     call->method);
    }
  if (wait)
    return power_step (call, shutdown_wait, "domain-pre-shutdown", "domain-shutdown", NULL,
                       error);
  return power_step (call, shutdown_nowait, "domain-pre-shutdown", NULL, NULL, error);
}

static gboolean
handle_vm_kill (AdminCall *call, GError **error)
{
  return power_step (call, qube_vm_kill, NULL, "domain-shutdown", NULL, error);
}

static gboolean
handle_vm_pause (AdminCall *call, GError **error)
{
  return power_step (call, qube_vm_pause, NULL, "domain-paused", NULL, error);
}

static gboolean
handle_vm_unpause (AdminCall *call, GError **error)
{
  return power_step (call, qube_vm_unpause, NULL, "domain-unpaused", NULL, error);
}

/* ---- volumes ---- */

static gboolean
handle_volume_list (AdminCall *call, GError **error)
{
  g_autoptr(GPtrArray) volumes = qube_vm_list_volumes (call->vm, error);

  if (volumes == NULL)
    return FALSE;
  for (guint i = 0; i < volumes->len; i++)
    g_string_append_printf (call->out, "%s\n", qube_volume_get_name (volumes->pdata[i]));
  return TRUE;
}

/* The volume the argument names; a missing one is a value error, as
 * in qubesd. */
static QubeVolume *
arg_volume (AdminCall *call, GError **error)
{
  QubeVolume *volume;

  if (!_qube_key_is_valid ("volume name", call->arg, error))
    return NULL;
  volume = qube_vm_get_volume (call->vm, call->arg, error);
  if (volume == NULL)
    call->exception = "QubesValueError";
  return volume;
}

static const char *
py_bool (gboolean value)
{
  return value ? "True" : "False";
}

static gboolean
handle_volume_info (AdminCall *call, GError **error)
{
  g_autoptr(QubeVolume) volume = arg_volume (call, error);
  g_autoptr(GPtrArray) revisions = NULL;
  guint64 usage = 0;
  gboolean outdated = FALSE, started = FALSE;
  gint64 created = 0;

  if (volume == NULL)
    return FALSE;
  /* A volume without storage (kernel) uses nothing, is never outdated and
   * keeps no revisions. */
  if (qube_volume_has_storage (volume)
      && (!qube_volume_query (volume, &usage, &started, &outdated, &created, error)
          || (revisions = qube_volume_list_revisions (volume, error)) == NULL))
    return FALSE;
  g_string_append_printf (call->out,
                          "pool=%s\nvid=%s\nsize=%" G_GUINT64_FORMAT "\nusage=%" G_GUINT64_FORMAT
                          "\nrw=%s\nsource=%s\nsave_on_stop=%s\nsnap_on_start=%s\n"
                          "revisions_to_keep=%u\nephemeral=False\nis_outdated=%s\n",
                          qube_volume_get_pool (volume), qube_volume_get_vid (volume),
                          qube_volume_get_size (volume), usage,
                          py_bool (qube_volume_get_rw (volume)),
                          qube_volume_get_source (volume) != NULL
                            ? qube_volume_get_source (volume) : "",
                          py_bool (qube_volume_get_save_on_stop (volume)),
                          py_bool (qube_volume_get_snap_on_start (volume)),
                          qube_volume_get_revisions_to_keep (volume), py_bool (outdated));
  /* Beyond qubesd's keys (its clients skip unknown ones): whether the
   * volume has storage, whether its qube runs on it, when its current
   * revision was made, and when each kept revision was (newest first, as
   * ListSnapshots lists them), all times in Unix seconds, 0 unknown. */
  g_string_append_printf (call->out, "storage=%s\nstarted=%s\ncreated=%" G_GINT64_FORMAT "\n",
                          py_bool (qube_volume_has_storage (volume)), py_bool (started), created);
  for (guint i = 0; revisions != NULL && i < revisions->len; i++)
    {
      QubeVolumeRevision *revision = revisions->pdata[i];

      g_string_append_printf (call->out, "revision.%s=%" G_GINT64_FORMAT "\n", revision->name,
                              revision->created);
    }
  return TRUE;
}

static gboolean
handle_volume_list_snapshots (AdminCall *call, GError **error)
{
  g_autoptr(QubeVolume) volume = arg_volume (call, error);
  g_autoptr(GPtrArray) revisions = NULL;

  if (volume == NULL)
    return FALSE;
  if (!qube_volume_has_storage (volume))
    return TRUE;
  revisions = qube_volume_list_revisions (volume, error);
  if (revisions == NULL)
    return FALSE;
  for (guint i = 0; i < revisions->len; i++)
    g_string_append_printf (call->out, "%s\n",
                            ((QubeVolumeRevision *) revisions->pdata[i])->name);
  return TRUE;
}

static gboolean
handle_volume_revert (AdminCall *call, GError **error)
{
  g_autoptr(QubeVolume) volume = arg_volume (call, error);
  g_autofree char *revision = NULL;

  if (volume == NULL || (revision = payload_string (call, error)) == NULL)
    return FALSE;
  /* No such revision is a bad value, not a missing qube. */
  call->exception = "QubesValueError";
  if (!_qube_key_is_valid ("revision", revision, error)
      || !qube_volume_revert (volume, revision, error))
    {
      if (error != NULL && !g_error_matches (*error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND)
          && !g_error_matches (*error, QUBE_ERROR, QUBE_ERROR_INVALID))
        call->exception = NULL;
      return FALSE;
    }
  return TRUE;
}

static gboolean
handle_volume_resize (AdminCall *call, GError **error)
{
  g_autoptr(QubeVolume) volume = arg_volume (call, error);
  g_autofree char *text = NULL;
  guint64 size;

  if (volume == NULL || (text = payload_string (call, error)) == NULL)
    return FALSE;
  if (!g_ascii_string_to_unsigned (text, 10, 1, G_MAXINT64, &size, NULL))
    return fail (call, "QubesValueError", error,
                 "invalid size for %s of qube '%s': expected a number of bytes",
                 call->arg, qube_vm_get_name (call->vm));
  return qube_volume_resize (volume, size, error);
}

/* admin.vm.volume.Import: the payload is the volume's new data. */
static gboolean
handle_volume_import (AdminCall *call, GError **error)
{
  g_autoptr(QubeVolume) volume = arg_volume (call, error);
  gsize len;
  const guint8 *data = g_bytes_get_data (call->payload, &len);
  gsize off = 0;
  gboolean ok;
  int fd;

  if (volume == NULL)
    return FALSE;
  /* The library reads a file descriptor: an anonymous file holds the
   * data (at most QUBE_ADMIN_REQUEST_MAX). */
  fd = memfd_create ("qube-admin-import", MFD_CLOEXEC);
  if (fd < 0)
    return fail (call, "QubesException", error, "cannot import into volume %s of qube '%s': %s",
                 call->arg, qube_vm_get_name (call->vm), g_strerror (errno));
  while (off < len)
    {
      ssize_t n = write (fd, data + off, len - off);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          int saved_errno = errno;

          close (fd);
          return fail (call, "QubesException", error,
                       "cannot import into volume %s of qube '%s': %s", call->arg,
                       qube_vm_get_name (call->vm), g_strerror (saved_errno));
        }
      off += (gsize) n;
    }
  ok = lseek (fd, 0, SEEK_SET) == 0
       && qube_volume_import_fd (volume, fd, len, NULL, NULL, error);
  close (fd);
  return ok;
}

/* ---- pools ---- */

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

static gboolean
handle_pool_list (AdminCall *call, GError **error)
{
  g_autoptr(GPtrArray) pools = qube_manager_list_pools (call->self->manager, error);

  if (pools == NULL)
    return FALSE;
  for (guint i = 0; i < pools->len; i++)
    g_string_append_printf (call->out, "%s\n", qube_storage_pool_get_name (pools->pdata[i]));
  return TRUE;
}

/* One line per driver; its parameters are the driver's own business (the
 * plugin ABI does not declare them), so none are listed. */
static gboolean
handle_pool_list_drivers (AdminCall *call, GError **error)
{
  QubePluginRegistry *plugins = qube_manager_get_plugins (call->self->manager);
  g_autoptr(GPtrArray) infos = NULL;
  g_autoptr(GPtrArray) drivers = g_ptr_array_new ();

  qube_plugin_registry_load (plugins);
  infos = qube_plugin_registry_list (plugins);
  for (guint i = 0; i < infos->len; i++)
    {
      QubePluginInfo *info = infos->pdata[i];
      const QubePluginDesc *desc;

      if (qube_plugin_info_get_status (info) != QUBE_PLUGIN_LOADED
          || !(qube_plugin_info_get_kinds (info) & QUBE_PLUGIN_KIND_STORAGE))
        continue;
      desc = _qube_plugin_info_get_desc (info);
      g_ptr_array_add (drivers, (gpointer) desc->storage->driver);
    }
  g_ptr_array_sort (drivers, compare_strings);
  for (guint i = 0; i < drivers->len; i++)
    if (i == 0 || !g_str_equal (drivers->pdata[i], drivers->pdata[i - 1]))
      g_string_append_printf (call->out, "%s\n", (const char *) drivers->pdata[i]);
  return TRUE;
}

/* A missing pool is QubesValueError, as in qubesd. */
static QubeStoragePool *
arg_pool (AdminCall *call, GError **error)
{
  QubeStoragePool *pool;

  if (!_qube_key_is_valid ("pool name", call->arg, error))
    return NULL;
  pool = qube_manager_lookup_pool (call->self->manager, call->arg, error);
  if (pool == NULL)
    call->exception = "QubesValueError";
  return pool;
}

static gboolean
handle_pool_info (AdminCall *call, GError **error)
{
  g_autoptr(QubeStoragePool) pool = arg_pool (call, error);
  g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func (g_free);
  g_auto(GStrv) options = NULL;
  g_auto(GStrv) formats = NULL;
  g_auto(GStrv) volumes = NULL;
  g_autofree char *mode = NULL;
  g_autofree char *location = NULL;
  g_autofree char *joined = NULL;
  guint64 size = 0, usage = 0;

  if (pool == NULL)
    return FALSE;
  /* The pool's configuration sorted by key, then its figures when the
   * driver gives them. */
  options = qube_storage_pool_get_options (pool);
  g_ptr_array_add (lines, g_strconcat ("driver=", qube_storage_pool_get_driver (pool), NULL));
  g_ptr_array_add (lines, g_strconcat ("name=", qube_storage_pool_get_name (pool), NULL));
  for (guint i = 0; options[i] != NULL; i++)
    g_ptr_array_add (lines, g_strdup (options[i]));
  g_ptr_array_sort (lines, compare_strings);
  for (guint i = 0; i < lines->len; i++)
    g_string_append_printf (call->out, "%s\n", (const char *) lines->pdata[i]);
  if (qube_storage_pool_query (pool, &size, &usage, &mode, &location, &formats, NULL))
    {
      g_autofree char *formats_s = g_strjoinv (" ", formats);

      g_string_append_printf (call->out, "size=%" G_GUINT64_FORMAT "\nusage=%" G_GUINT64_FORMAT "\n",
                              size, usage);
      /* Beyond qubesd's keys (its clients skip unknown ones): how the
       * driver works, where, the formats it makes. */
      g_string_append_printf (call->out, "mode=%s\nlocation=%s\nformats=%s\n",
                              mode != NULL ? mode : "", location != NULL ? location : "",
                              formats_s);
    }
  /* And the volumes it holds (QUBE:VOLUME, space-separated). */
  volumes = qube_storage_pool_list_volumes (pool, error);
  if (volumes == NULL)
    return FALSE;
  joined = g_strjoinv (" ", volumes);
  g_string_append_printf (call->out, "volumes=%s\n", joined);
  return TRUE;
}

/* admin.pool.Add+DRIVER, payload `name=NAME\nkey=value\n...`. */
static gboolean
handle_pool_add (AdminCall *call, GError **error)
{
  g_autofree char *text = payload_string (call, error);
  g_auto(GStrv) lines = NULL;
  g_autoptr(GPtrArray) options = g_ptr_array_new ();
  g_autoptr(QubeStoragePool) pool = NULL;
  g_autoptr(GError) local_error = NULL;
  const char *name = NULL;

  if (text == NULL)
    return FALSE;
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      const char *eq = strchr (lines[i], '=');

      if (*lines[i] == '\0')
        continue;
      if (eq == NULL || eq == lines[i])
        return fail (call, "ProtocolError", error, "invalid pool parameter line for %s",
                     call->method);
      if (g_str_has_prefix (lines[i], "name="))
        {
          if (name != NULL)
            return fail (call, "ProtocolError", error, "duplicated parameter 'name'");
          name = eq + 1;
        }
      else
        g_ptr_array_add (options, lines[i]);
    }
  if (name == NULL)
    return fail (call, "ProtocolError", error, "%s needs name=", call->method);
  g_ptr_array_add (options, NULL);
  pool = qube_manager_add_pool (call->self->manager, name, call->arg,
                                (const char *const *) options->pdata, &local_error);
  if (pool == NULL)
    {
      /* A driver no plugin provides is not a missing qube. */
      if (g_error_matches (local_error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND))
        call->exception = "QubesException";
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  emit (call, "", "pool-add", "pool", name, NULL);
  return TRUE;
}

static gboolean
handle_pool_remove (AdminCall *call, GError **error)
{
  g_autoptr(GError) local_error = NULL;

  if (!_qube_key_is_valid ("pool name", call->arg, error))
    return FALSE;
  if (!qube_manager_remove_pool (call->self->manager, call->arg, &local_error))
    {
      if (g_error_matches (local_error, QUBE_ERROR, QUBE_ERROR_IN_USE))
        call->exception = "QubesPoolInUseError";
      else if (g_error_matches (local_error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND))
        call->exception = "QubesValueError";
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  emit (call, "", "pool-delete", "pool", call->arg, NULL);
  return TRUE;
}

/* The checks (policy, dest) are the call's; an OK says the caller may
 * subscribe, and streaming the events is the caller's job. */
static gboolean
handle_events (AdminCall *call, GError **error)
{
  return TRUE;
}

static const AdminMethod methods[] = {
  { "admin.vmclass.List", METHOD_GLOBAL | METHOD_NO_ARG | METHOD_NO_PAYLOAD, handle_vmclass_list },
  { "admin.vm.List", METHOD_LOCAL | METHOD_NO_ARG | METHOD_NO_PAYLOAD, handle_vm_list },
  { "admin.vm.Create.", METHOD_GLOBAL | METHOD_PREFIX, handle_vm_create },
  { "admin.vm.CreateInPool.", METHOD_GLOBAL | METHOD_PREFIX, handle_vm_create },
  { "admin.vm.CreateDisposable", METHOD_LOCAL | METHOD_NO_ARG | METHOD_NO_PAYLOAD, handle_vm_create_disposable },
  { "admin.vm.Clone", METHOD_LOCAL | METHOD_NO_ARG, handle_vm_clone },
  { "admin.vm.Remove", METHOD_LOCAL | METHOD_NO_ARG | METHOD_NO_PAYLOAD, handle_vm_remove },
  { "admin.vm.CurrentState", METHOD_LOCAL | METHOD_NO_ARG | METHOD_NO_PAYLOAD, handle_current_state },
  { "admin.vm.Start", METHOD_LOCAL | METHOD_NO_ARG | METHOD_NO_PAYLOAD, handle_vm_start },
  { "admin.vm.Shutdown", METHOD_LOCAL | METHOD_NO_PAYLOAD, handle_vm_shutdown },
  { "admin.vm.Pause", METHOD_LOCAL | METHOD_NO_ARG | METHOD_NO_PAYLOAD, handle_vm_pause },
  { "admin.vm.Unpause", METHOD_LOCAL | METHOD_NO_ARG | METHOD_NO_PAYLOAD, handle_vm_unpause },
  { "admin.vm.Kill", METHOD_LOCAL | METHOD_NO_ARG | METHOD_NO_PAYLOAD, handle_vm_kill },
  { "admin.vm.property.List", METHOD_LOCAL | METHOD_NO_ARG | METHOD_NO_PAYLOAD, handle_property_list },
  { "admin.vm.property.Get", METHOD_LOCAL | METHOD_NEED_ARG | METHOD_NO_PAYLOAD, handle_property_get },
  { "admin.vm.property.GetAll", METHOD_LOCAL | METHOD_NO_ARG | METHOD_NO_PAYLOAD, handle_property_get_all },
  { "admin.vm.property.Set", METHOD_LOCAL | METHOD_NEED_ARG, handle_property_set },
  { "admin.vm.property.Reset", METHOD_LOCAL | METHOD_NEED_ARG | METHOD_NO_PAYLOAD, handle_property_reset },
  { "admin.property.List", METHOD_GLOBAL | METHOD_NO_ARG | METHOD_NO_PAYLOAD, handle_property_list },
  { "admin.property.Get", METHOD_GLOBAL | METHOD_NEED_ARG | METHOD_NO_PAYLOAD, handle_property_get },
  { "admin.property.GetAll", METHOD_GLOBAL | METHOD_NO_ARG | METHOD_NO_PAYLOAD, handle_property_get_all },
  { "admin.property.Set", METHOD_GLOBAL | METHOD_NEED_ARG, handle_property_set },
  { "admin.property.Reset", METHOD_GLOBAL | METHOD_NEED_ARG | METHOD_NO_PAYLOAD, handle_property_reset },
  { "admin.vm.feature.List", METHOD_LOCAL | METHOD_NO_ARG | METHOD_NO_PAYLOAD, handle_feature_list },
  { "admin.vm.feature.Get", METHOD_LOCAL | METHOD_NEED_ARG | METHOD_NO_PAYLOAD, handle_feature_get },
  { "admin.vm.feature.Set", METHOD_LOCAL | METHOD_NEED_ARG, handle_feature_set },
  { "admin.vm.feature.Remove", METHOD_LOCAL | METHOD_NEED_ARG | METHOD_NO_PAYLOAD, handle_feature_remove },
  { "admin.vm.tag.List", METHOD_LOCAL | METHOD_NO_ARG | METHOD_NO_PAYLOAD, handle_tag_list },
  { "admin.vm.tag.Get", METHOD_LOCAL | METHOD_NEED_ARG | METHOD_NO_PAYLOAD, handle_tag_get },
  { "admin.vm.tag.Set", METHOD_LOCAL | METHOD_NEED_ARG | METHOD_NO_PAYLOAD, handle_tag_set },
  { "admin.vm.tag.Remove", METHOD_LOCAL | METHOD_NEED_ARG | METHOD_NO_PAYLOAD, handle_tag_remove },
  { "admin.vm.volume.List", METHOD_LOCAL | METHOD_NO_ARG | METHOD_NO_PAYLOAD, handle_volume_list },
  { "admin.vm.volume.Info", METHOD_LOCAL | METHOD_NEED_ARG | METHOD_NO_PAYLOAD, handle_volume_info },
  { "admin.vm.volume.ListSnapshots", METHOD_LOCAL | METHOD_NEED_ARG | METHOD_NO_PAYLOAD, handle_volume_list_snapshots },
  { "admin.vm.volume.Revert", METHOD_LOCAL | METHOD_NEED_ARG, handle_volume_revert },
  { "admin.vm.volume.Resize", METHOD_LOCAL | METHOD_NEED_ARG, handle_volume_resize },
  { "admin.vm.volume.Import", METHOD_LOCAL | METHOD_NEED_ARG, handle_volume_import },
  { "admin.pool.List", METHOD_GLOBAL | METHOD_NO_ARG | METHOD_NO_PAYLOAD, handle_pool_list },
  { "admin.pool.ListDrivers", METHOD_GLOBAL | METHOD_NO_ARG | METHOD_NO_PAYLOAD, handle_pool_list_drivers },
  { "admin.pool.Info", METHOD_GLOBAL | METHOD_NEED_ARG | METHOD_NO_PAYLOAD, handle_pool_info },
  { "admin.pool.Add", METHOD_GLOBAL | METHOD_NEED_ARG, handle_pool_add },
  { "admin.pool.Remove", METHOD_GLOBAL | METHOD_NEED_ARG | METHOD_NO_PAYLOAD, handle_pool_remove },
  { "admin.Events", METHOD_LOCAL | METHOD_NO_ARG | METHOD_NO_PAYLOAD, handle_events },
};

static const AdminMethod *
find_method (const char *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (methods); i++)
    {
      const AdminMethod *m = &methods[i];

      if (m->flags & METHOD_PREFIX
          ? g_str_has_prefix (name, m->name) && name[strlen (m->name)] != '\0'
          : g_str_equal (name, m->name))
        return m;
    }
  return NULL;
}

/* Everything up to the handler: names, policy, method, argument counts,
 * the dest qube. */
static gboolean
admin_call_prepare (AdminCall *call, const AdminMethod **method, GError **error)
{
  const AdminMethod *m;
  g_autofree char *plus_arg = NULL;
  g_autoptr(GError) local_error = NULL;

  if (!_qube_policy_valid_service (call->method))
    return fail (call, "ProtocolError", error, "invalid method name");
  if (!call->from_admin && !_qube_policy_valid_qube_name (call->source))
    return fail (call, "ProtocolError", error, "invalid source qube name");
  plus_arg = g_strconcat ("+", call->arg, NULL);
  if (!_qube_policy_valid_argument (plus_arg))
    {
      g_autofree char *shown = _qube_printable (call->arg);
      return fail (call, "ProtocolError", error, "invalid argument '%s' for %s", shown,
                   call->method);
    }
  if (!g_str_equal (call->dest, ADMIN_NAME) && !qube_name_is_valid (call->dest, error))
    {
      call->exception = "ProtocolError";
      return FALSE;
    }

  /* A qube's call is the policy's to decide before anything else, as
   * qrexec decides it before the call reaches qubesd. */
  if (!policy_allows (call, call->method, call->dest, call->arg))
    return fail_denied (call, error);

  m = find_method (call->method);
  if (m == NULL)
    return fail (call, "ProtocolError", error, "unknown method '%s'", call->method);
  if ((m->flags & METHOD_NO_ARG) && *call->arg != '\0')
    return fail (call, "ProtocolError", error, "%s takes no argument", call->method);
  if ((m->flags & METHOD_NEED_ARG) && *call->arg == '\0')
    return fail (call, "ProtocolError", error, "%s needs an argument", call->method);
  if ((m->flags & METHOD_NO_PAYLOAD) && g_bytes_get_size (call->payload) > 0)
    return fail (call, "ProtocolError", error, "%s takes no payload", call->method);
  if ((m->flags & METHOD_GLOBAL) && !g_str_equal (call->dest, ADMIN_NAME))
    return fail (call, "ProtocolError", error, "%s is called on dom0 only", call->method);
  if (m->flags & METHOD_LOCAL)
    {
      call->vm = qube_manager_lookup (call->self->manager, call->dest, &local_error);
      if (call->vm == NULL)
        {
          if (!call->from_admin)
            return fail_denied (call, error);
          g_propagate_error (error, g_steal_pointer (&local_error));
          return FALSE;
        }
    }
  *method = m;
  return TRUE;
}

/**
 * qube_admin_call:
 * @self: a #QubeAdmin
 * @source: the calling qube: "dom0" for the admin qube (trusted), else a
 *   qube whose calls the qrexec policy decides
 * @method: the method, e.g. `admin.vm.property.Get`
 * @arg: (nullable): the argument, %NULL or "" for none
 * @dest: the qube the call is about, "dom0" for the host itself
 * @payload: (nullable): the payload, %NULL for none
 *
 * Answers one Admin API call.  Never fails: every problem (denied, unknown
 * method, wrong arguments, a refused value) is an exception reply.
 * admin.Events answers an empty OK when the subscription is allowed: the
 * caller then streams #QubeAdmin::event emissions that
 * qube_admin_event_visible() lets through.
 *
 * Returns: (transfer full): the reply in the qubesd wire format: `0\0`
 *   and the content, or `2\0TYPE\0\0MESSAGE\0`
 */
GBytes *
qube_admin_call (QubeAdmin *self, const char *source, const char *method,
                 const char *arg, const char *dest, GBytes *payload)
{
  g_autoptr(GBytes) empty = g_bytes_new_static ("", 0);
  g_autoptr(GError) error = NULL;
  const AdminMethod *m = NULL;
  AdminCall call = { 0 };
  GBytes *reply;

  g_return_val_if_fail (QUBE_IS_ADMIN (self), NULL);
  g_return_val_if_fail (source != NULL && method != NULL && dest != NULL, NULL);

  call.self = self;
  call.source = source;
  call.method = method;
  call.arg = arg != NULL ? arg : "";
  call.dest = dest;
  call.payload = payload != NULL ? payload : empty;
  call.from_admin = g_str_equal (source, ADMIN_NAME);
  call.out = g_string_new (NULL);

  if (admin_call_prepare (&call, &m, &error) && m->handler (&call, &error))
    reply = reply_ok (call.out);
  else
    {
      const char *type = exception_for (&call, error);

      g_debug ("%s+%s from '%s' on '%s': %s: %s", method, call.arg, source, dest, type,
               error->message);
      reply = qube_admin_encode_exception (type, error->message);
    }
  admin_call_clear (&call);
  return reply;
}

/**
 * qube_admin_parse_request:
 * @request: a request in the qubesd wire format: `method+arg source
 *   dest_type dest`, a NUL byte, the payload
 * @method: (out) (optional): the method
 * @arg: (out) (optional): the argument, "" for none
 * @source: (out) (optional): the source the request names
 * @dest: (out) (optional): the dest qube, "dom0" for `keyword adminvm`
 * @payload: (out) (optional): the payload
 * @error: return location for a #GError, or %NULL
 *
 * Returns: %TRUE when the request is well formed
 */
gboolean
qube_admin_parse_request (GBytes *request, char **method, char **arg,
                          char **source, char **dest, GBytes **payload,
                          GError **error)
{
  gsize len;
  const char *data = g_bytes_get_data (request, &len);
  /* An empty GBytes may have no data pointer at all. */
  const char *nul = len > 0 ? memchr (data, '\0', MIN (len, (gsize) QUBE_ADMIN_HEADER_MAX + 1))
                            : NULL;
  g_autofree char *header = NULL;
  g_auto(GStrv) fields = NULL;
  char *plus;

  if (len > QUBE_ADMIN_REQUEST_MAX)
    return g_set_error (error, QUBE_ERROR, QUBE_ERROR_PROTOCOL,
                        "request of %" G_GSIZE_FORMAT " bytes is over the limit of %d",
                        len, QUBE_ADMIN_REQUEST_MAX), FALSE;
  if (nul == NULL)
    return g_set_error_literal (error, QUBE_ERROR, QUBE_ERROR_PROTOCOL,
                                "request header not terminated by a NUL byte "
                                "within its size limit"), FALSE;
  header = g_strndup (data, nul - data);
  fields = g_strsplit (header, " ", -1);
  if (g_strv_length (fields) != 4)
    return g_set_error_literal (error, QUBE_ERROR, QUBE_ERROR_PROTOCOL,
                                "request header is not 'method+arg source dest_type dest'"),
           FALSE;
  if (g_str_equal (fields[2], "keyword"))
    {
      if (!g_str_equal (fields[3], "adminvm"))
        return g_set_error_literal (error, QUBE_ERROR, QUBE_ERROR_PROTOCOL,
                                    "unknown dest keyword"), FALSE;
      g_free (fields[3]);
      fields[3] = g_strdup (ADMIN_NAME);
    }
  else if (!g_str_equal (fields[2], "name"))
    return g_set_error_literal (error, QUBE_ERROR, QUBE_ERROR_PROTOCOL,
                                "dest_type is neither 'name' nor 'keyword'"), FALSE;

  plus = strchr (fields[0], '+');
  if (arg != NULL)
    *arg = g_strdup (plus != NULL ? plus + 1 : "");
  if (plus != NULL)
    *plus = '\0';
  if (method != NULL)
    *method = g_strdup (fields[0]);
  if (source != NULL)
    *source = g_strdup (fields[1]);
  if (dest != NULL)
    *dest = g_strdup (fields[3]);
  if (payload != NULL)
    *payload = g_bytes_new_from_bytes (request, nul + 1 - data, len - (nul + 1 - data));
  return TRUE;
}

/**
 * qube_admin_handle_request:
 * @self: a #QubeAdmin
 * @request: a whole request in the qubesd wire format
 * @trust_source: whether the source the request names is believed; when
 *   %FALSE (local clients) it must be "dom0"
 *
 * Parses and answers one request.
 *
 * Returns: (transfer full): the reply
 */
GBytes *
qube_admin_handle_request (QubeAdmin *self, GBytes *request, gboolean trust_source)
{
  g_autofree char *method = NULL, *arg = NULL, *source = NULL, *dest = NULL;
  g_autoptr(GBytes) payload = NULL;
  g_autoptr(GError) error = NULL;

  g_return_val_if_fail (QUBE_IS_ADMIN (self), NULL);

  if (!qube_admin_parse_request (request, &method, &arg, &source, &dest, &payload, &error))
    return qube_admin_encode_exception ("ProtocolError", error->message);
  if (!trust_source && !g_str_equal (source, ADMIN_NAME))
    return qube_admin_encode_exception ("PermissionDenied",
                            "a local client calls as dom0; qubes call through qrexec");
  return qube_admin_call (self, source, method, arg, dest, payload);
}

/**
 * qube_admin_handle_qrexec_call:
 * @self: a #QubeAdmin
 * @source: the calling qube, as the qrexec daemon knows it (never taken
 *   from the call's data)
 * @service: the service and argument as called, e.g.
 *   `admin.vm.property.Get+netvm`
 * @target: the target the caller named ("dom0" or `@adminvm` for the host)
 * @input: (nullable): what the caller wrote to the service's stdin: the
 *   payload
 *
 * The entry point for Admin API calls that arrive through qrexec: what the
 * qrexec daemon runs for an `admin.*` service.  The reply is what the
 * service writes back to the caller's stdout.
 *
 * Returns: (transfer full): the reply
 */
GBytes *
qube_admin_handle_qrexec_call (QubeAdmin *self, const char *source,
                               const char *service, const char *target,
                               GBytes *input)
{
  g_autofree char *method = NULL;
  const char *plus;
  const char *dest;

  g_return_val_if_fail (QUBE_IS_ADMIN (self), NULL);
  g_return_val_if_fail (source != NULL && service != NULL, NULL);

  if (input != NULL && g_bytes_get_size (input) > QUBE_ADMIN_REQUEST_MAX)
    return qube_admin_encode_exception ("ProtocolError", "payload over the size limit");
  plus = strchr (service, '+');
  method = plus != NULL ? g_strndup (service, plus - service) : g_strdup (service);
  dest = target == NULL || *target == '\0' || g_str_equal (target, "@adminvm")
         ? ADMIN_NAME : target;
  return qube_admin_call (self, source, method, plus != NULL ? plus + 1 : "", dest, input);
}

/**
 * qube_admin_event_visible:
 * @self: a #QubeAdmin
 * @source: the subscribing qube
 * @subject: the event's subject, "" for the host itself
 *
 * Whether an admin.Events subscriber @source sees events about @subject:
 * the admin qube sees all, a qube those about qubes its policy lets it
 * call admin.Events on.
 *
 * Returns: %TRUE when the event may be sent
 */
gboolean
qube_admin_event_visible (QubeAdmin *self, const char *source, const char *subject)
{
  AdminCall call = { .self = self, .source = source,
                     .from_admin = g_str_equal (source, ADMIN_NAME) };
  gboolean visible;

  g_return_val_if_fail (QUBE_IS_ADMIN (self), FALSE);
  visible = policy_allows (&call, "admin.Events", *subject != '\0' ? subject : ADMIN_NAME,
                           NULL);
  admin_call_clear (&call);
  return visible;
}
