/* qube-property.c — the property table of qubes and of the manager, and
 * the one code path that reads, checks and writes every property.
 *
 * A row of the table is all there is to know about a property: its type,
 * the classes that have it, its default (a constant, a global property, or
 * for some classes the template's value), its allowed values, which qubes
 * a vm-typed value may name, and which chain must not loop.  Adding a
 * property is adding a row.
 *
 * Writers run inside the caller's store transaction.  Checks about the new
 * value alone run before the write; checks about the resulting state (a
 * netvm loop, memory above maxmem, qubes left without a network provider)
 * run after it, on the effective values, and make the caller roll back.
 */
#include "config.h"

#include <string.h>

#include "qube-error.h"
#include "qube-property.h"
#include "qube-vm-private.h"

/* Longest value accepted for any property (kernelopts is the long one). */
#define PROPERTY_VALUE_MAX 4096
/* Deepest template chain followed for inherited values: DispVM -> AppVM
 * -> TemplateVM is 2; more means a broken store, not a deeper rule. */
#define INHERIT_DEPTH_MAX 4

typedef enum {
  DEFAULT_NONE,   /* no default: always set (template) */
  DEFAULT_CONST,  /* default_value is the value */
  DEFAULT_GLOBAL, /* default_value names the global property to follow */
} DefaultKind;

/* A vm-typed value set on a qube of class `owners` must name a qube of
 * class `targets` whose bool property `requires` (if any) is True. */
typedef struct {
  QubeClass owners;
  QubeClass targets;
  const char *requires;
} VmTarget;

typedef struct PropSpec PropSpec;

struct PropSpec {
  const char *name;
  QubePropertyType type;
  QubeClass classes;         /* who has it; 0 in the global table */
  DefaultKind default_kind;
  const char *default_value;
  QubeClass inherit;         /* these classes follow their template when unset */
  QubeClass none_for;        /* vm: these classes default to none instead */
  gboolean not_self;         /* vm: a default naming the qube itself is none */
  gboolean halted_only;      /* cannot change while the qube runs */
  gint64 min, max;           /* int */
  const char *const *choices; /* str: the allowed values, when listed */
  gboolean (*check) (const char *value, GError **error); /* str: syntax */
  gboolean allow_none;       /* vm: "" means none */
  const VmTarget *targets;   /* vm: terminated by a row with owners 0 */
  const char *chain;         /* vm: property that must not form a loop */
  /* after a write: a rule between this and other properties of the qube */
  gboolean (*post_check) (QubeStore *store, const QubeStoreQube *qube,
                          GError **error);
};

static const char *const labels[] = {
  "red", "orange", "yellow", "green", "gray", "blue", "purple", "black", NULL,
};

static const char *const virt_modes[] = { "pvh", "hvm", "pv", NULL };

static const VmTarget template_targets[] = {
  { QUBE_CLASS_APP, QUBE_CLASS_TEMPLATE, NULL },
  { QUBE_CLASS_DISP, QUBE_CLASS_APP, "template_for_dispvms" },
  { 0 },
};

/* Any class: one without provides_network (the AdminVM) is refused by
 * the requirement, with a message that says why. */
static const VmTarget netvm_targets[] = {
  { QUBE_CLASS_ANY, QUBE_CLASS_ANY, "provides_network" },
  { 0 },
};

static const VmTarget dispvm_targets[] = {
  { QUBE_CLASS_ANY, QUBE_CLASS_APP, "template_for_dispvms" },
  { 0 },
};

static const VmTarget default_template_targets[] = {
  { QUBE_CLASS_ANY, QUBE_CLASS_TEMPLATE, NULL },
  { 0 },
};

static gboolean check_kernel (const char *value, GError **error);
static gboolean check_plugin_name (const char *value, GError **error);
static gboolean check_pool_name (const char *value, GError **error);
static gboolean check_memory (QubeStore *store, const QubeStoreQube *qube,
                              GError **error);

#define INHERITING (QUBE_CLASS_APP | QUBE_CLASS_DISP)
#define MEMORY_MAX (G_GINT64_CONSTANT (1) << 24) /* MiB: 16 TiB */

static const PropSpec qube_props[] = {
  { .name = "label", .type = QUBE_PROPERTY_TYPE_LABEL, .classes = QUBE_CLASS_ANY,
    .default_kind = DEFAULT_CONST, .default_value = "red", .choices = labels },
  { .name = "template", .type = QUBE_PROPERTY_TYPE_VM, .classes = QUBE_CLASS_APP | QUBE_CLASS_DISP,
    .default_kind = DEFAULT_NONE, .targets = template_targets, .halted_only = TRUE },
  { .name = "netvm", .type = QUBE_PROPERTY_TYPE_VM, .classes = QUBE_CLASS_DOMU,
    .default_kind = DEFAULT_GLOBAL, .default_value = "default_netvm",
    .inherit = QUBE_CLASS_DISP, .none_for = QUBE_CLASS_TEMPLATE, .not_self = TRUE,
    .allow_none = TRUE, .targets = netvm_targets,
    .chain = "netvm" },
  { .name = "provides_network", .type = QUBE_PROPERTY_TYPE_BOOL, .classes = QUBE_CLASS_DOMU,
    .default_kind = DEFAULT_CONST, .default_value = "False" },
  { .name = "default_dispvm", .type = QUBE_PROPERTY_TYPE_VM, .classes = QUBE_CLASS_ANY,
    .default_kind = DEFAULT_GLOBAL, .default_value = "default_dispvm",
    .allow_none = TRUE, .targets = dispvm_targets },
  { .name = "template_for_dispvms", .type = QUBE_PROPERTY_TYPE_BOOL, .classes = QUBE_CLASS_APP,
    .default_kind = DEFAULT_CONST, .default_value = "False" },
  { .name = "memory", .type = QUBE_PROPERTY_TYPE_INT, .classes = QUBE_CLASS_DOMU,
    .default_kind = DEFAULT_CONST, .default_value = "400", .inherit = INHERITING,
    .min = 1, .max = MEMORY_MAX, .post_check = check_memory },
  { .name = "maxmem", .type = QUBE_PROPERTY_TYPE_INT, .classes = QUBE_CLASS_DOMU,
    .default_kind = DEFAULT_CONST, .default_value = "4000", .inherit = INHERITING,
    .min = 1, .max = MEMORY_MAX, .post_check = check_memory },
  { .name = "vcpus", .type = QUBE_PROPERTY_TYPE_INT, .classes = QUBE_CLASS_DOMU,
    .default_kind = DEFAULT_CONST, .default_value = "2", .inherit = INHERITING,
    .min = 1, .max = 256 },
  { .name = "kernel", .type = QUBE_PROPERTY_TYPE_STR, .classes = QUBE_CLASS_DOMU,
    .default_kind = DEFAULT_GLOBAL, .default_value = "default_kernel",
    .inherit = INHERITING, .check = check_kernel },
  { .name = "kernelopts", .type = QUBE_PROPERTY_TYPE_STR, .classes = QUBE_CLASS_DOMU,
    .default_kind = DEFAULT_CONST, .default_value = "", .inherit = INHERITING },
  { .name = "virt_mode", .type = QUBE_PROPERTY_TYPE_STR, .classes = QUBE_CLASS_DOMU,
    .default_kind = DEFAULT_CONST, .default_value = "pvh", .inherit = INHERITING,
    .choices = virt_modes, .halted_only = TRUE },
  { .name = "backend", .type = QUBE_PROPERTY_TYPE_STR, .classes = QUBE_CLASS_DOMU,
    .default_kind = DEFAULT_GLOBAL, .default_value = "default_backend",
    .inherit = INHERITING, .check = check_plugin_name, .halted_only = TRUE },
  { .name = "autostart", .type = QUBE_PROPERTY_TYPE_BOOL, .classes = QUBE_CLASS_DOMU,
    .default_kind = DEFAULT_CONST, .default_value = "False" },
  { .name = "include_in_backups", .type = QUBE_PROPERTY_TYPE_BOOL, .classes = QUBE_CLASS_ANY,
    .default_kind = DEFAULT_CONST, .default_value = "True" },
  /* An unnamed disposable: removed, volumes and all, once it stops. */
  { .name = "auto_cleanup", .type = QUBE_PROPERTY_TYPE_BOOL, .classes = QUBE_CLASS_DISP,
    .default_kind = DEFAULT_CONST, .default_value = "False" },
};

static const PropSpec global_props[] = {
  { .name = "default_template", .type = QUBE_PROPERTY_TYPE_VM,
    .default_kind = DEFAULT_CONST, .default_value = "", .allow_none = TRUE,
    .targets = default_template_targets },
  { .name = "default_netvm", .type = QUBE_PROPERTY_TYPE_VM,
    .default_kind = DEFAULT_CONST, .default_value = "", .allow_none = TRUE,
    .targets = netvm_targets, .chain = "netvm" },
  { .name = "default_dispvm", .type = QUBE_PROPERTY_TYPE_VM,
    .default_kind = DEFAULT_CONST, .default_value = "", .allow_none = TRUE,
    .targets = dispvm_targets },
  { .name = "default_kernel", .type = QUBE_PROPERTY_TYPE_STR,
    .default_kind = DEFAULT_CONST, .default_value = "", .check = check_kernel },
  { .name = "default_backend", .type = QUBE_PROPERTY_TYPE_STR,
    .default_kind = DEFAULT_CONST, .default_value = "kvm", .check = check_plugin_name },
  { .name = "default_pool", .type = QUBE_PROPERTY_TYPE_STR,
    .default_kind = DEFAULT_CONST, .default_value = "default", .check = check_pool_name },
};

static const struct {
  QubeClass klass;
  const char *name;
} class_names[] = {
  { QUBE_CLASS_ADMIN, "AdminVM" },
  { QUBE_CLASS_TEMPLATE, "TemplateVM" },
  { QUBE_CLASS_APP, "AppVM" },
  { QUBE_CLASS_STANDALONE, "StandaloneVM" },
  { QUBE_CLASS_DISP, "DispVM" },
};

QubeClass
_qube_class_from_name (const char *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (class_names); i++)
    if (g_strcmp0 (name, class_names[i].name) == 0)
      return class_names[i].klass;
  return QUBE_CLASS_NONE;
}

const char *
_qube_class_to_name (QubeClass klass)
{
  for (gsize i = 0; i < G_N_ELEMENTS (class_names); i++)
    if (klass == class_names[i].klass)
      return class_names[i].name;
  return NULL;
}

char *
_qube_class_describe (QubeClass classes)
{
  GString *out = g_string_new (NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (class_names); i++)
    if (classes & class_names[i].klass)
      g_string_append_printf (out, "%s%s %s", out->len > 0 ? " or " : "",
                              class_names[i].name[0] == 'A' ? "an" : "a",
                              class_names[i].name);
  return g_string_free (out, FALSE);
}

const char *
_qube_property_type_to_name (QubePropertyType type)
{
  switch (type)
    {
    case QUBE_PROPERTY_TYPE_STR: return "str";
    case QUBE_PROPERTY_TYPE_INT: return "int";
    case QUBE_PROPERTY_TYPE_BOOL: return "bool";
    case QUBE_PROPERTY_TYPE_VM: return "vm";
    case QUBE_PROPERTY_TYPE_LABEL: return "label";
    default: return "unknown";
    }
}

/* ---- the table ---- */

static const PropSpec *
find_spec (const PropSpec *table, gsize n, const char *name)
{
  for (gsize i = 0; i < n; i++)
    if (g_strcmp0 (table[i].name, name) == 0)
      return &table[i];
  return NULL;
}

static const PropSpec *
qube_spec (QubeClass klass, const char *name)
{
  const PropSpec *spec = find_spec (qube_props, G_N_ELEMENTS (qube_props), name);
  return spec != NULL && (spec->classes & klass) ? spec : NULL;
}

static QubeClass
qube_class (const QubeStoreQube *qube)
{
  return _qube_class_from_name (qube->klass);
}

/* The qube's spec for `name`, or NOT_FOUND naming the qube. */
static const PropSpec *
qube_spec_or_error (const QubeStoreQube *qube, const char *name, GError **error)
{
  const PropSpec *spec = qube_spec (qube_class (qube), name);

  if (spec == NULL)
    {
      g_autofree char *shown = _qube_printable (name);
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND,
                   "qube '%s' (%s) has no property '%s'", qube->name, qube->klass, shown);
    }
  return spec;
}

static const PropSpec *
global_spec_or_error (const char *name, GError **error)
{
  const PropSpec *spec = find_spec (global_props, G_N_ELEMENTS (global_props), name);

  if (spec == NULL)
    {
      g_autofree char *shown = _qube_printable (name);
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_NOT_FOUND,
                   "no global property '%s'", shown);
    }
  return spec;
}

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

static char **
list_names (const PropSpec *table, gsize n, QubeClass klass)
{
  g_autoptr(GPtrArray) names = g_ptr_array_new ();

  for (gsize i = 0; i < n; i++)
    if (klass == QUBE_CLASS_NONE || (table[i].classes & klass))
      g_ptr_array_add (names, g_strdup (table[i].name));
  g_ptr_array_sort (names, compare_strings);
  g_ptr_array_add (names, NULL);
  return (char **) g_ptr_array_free (g_steal_pointer (&names), FALSE);
}

char **
_qube_property_list (QubeClass klass)
{
  return list_names (qube_props, G_N_ELEMENTS (qube_props), klass);
}

char **
_qube_global_list (void)
{
  return list_names (global_props, G_N_ELEMENTS (global_props), QUBE_CLASS_NONE);
}

/* ---- values ---- */

static gboolean
check_kernel (const char *value, GError **error)
{
  /* A kernel is a directory name under the kernels directory ("" = none). */
  if (*value == '\0')
    return TRUE;
  if (strcmp (value, ".") == 0 || strcmp (value, "..") == 0)
    {
      g_set_error_literal (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                           "not a kernel version");
      return FALSE;
    }
  return _qube_key_is_valid ("kernel version", value, error);
}

static gboolean
check_plugin_name (const char *value, GError **error)
{
  return _qube_key_is_valid ("plugin name", value, error);
}

static gboolean
check_pool_name (const char *value, GError **error)
{
  return _qube_key_is_valid ("pool name", value, error);
}

static gboolean
choice_is_listed (const char *const *choices, const char *value)
{
  for (gsize i = 0; choices[i] != NULL; i++)
    if (strcmp (choices[i], value) == 0)
      return TRUE;
  return FALSE;
}

/* The value as it is stored ("true" -> "True", "007" -> "7"), or an error
 * saying why it is not a value of the property's type. */
static char *
canonicalize (const PropSpec *spec, const char *value, GError **error)
{
  if (!g_utf8_validate (value, -1, NULL))
    {
      g_set_error_literal (error, QUBE_ERROR, QUBE_ERROR_INVALID, "not valid UTF-8");
      return NULL;
    }
  if (strlen (value) > PROPERTY_VALUE_MAX)
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                   "longer than %d bytes", PROPERTY_VALUE_MAX);
      return NULL;
    }
  for (const char *p = value; *p != '\0'; p++)
    if (g_ascii_iscntrl (*p))
      {
        g_set_error_literal (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                             "control characters are not allowed");
        return NULL;
      }

  switch (spec->type)
    {
    case QUBE_PROPERTY_TYPE_INT:
      {
        gint64 n;
        if (!g_ascii_string_to_signed (value, 10, spec->min, spec->max, &n, NULL))
          {
            g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                         "not an integer from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT,
                         spec->min, spec->max);
            return NULL;
          }
        return g_strdup_printf ("%" G_GINT64_FORMAT, n);
      }
    case QUBE_PROPERTY_TYPE_BOOL:
      if (strcmp (value, "True") == 0 || strcmp (value, "true") == 0 || strcmp (value, "1") == 0)
        return g_strdup ("True");
      if (strcmp (value, "False") == 0 || strcmp (value, "false") == 0 || strcmp (value, "0") == 0)
        return g_strdup ("False");
      g_set_error_literal (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                           "not a boolean (True or False)");
      return NULL;
    case QUBE_PROPERTY_TYPE_LABEL:
    case QUBE_PROPERTY_TYPE_STR:
      if (spec->choices != NULL && !choice_is_listed (spec->choices, value))
        {
          g_autofree char *allowed = g_strjoinv (", ", (char **) spec->choices);
          g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                       "not %s (one of %s)",
                       spec->type == QUBE_PROPERTY_TYPE_LABEL ? "a label" : "allowed",
                       allowed);
          return NULL;
        }
      if (spec->check != NULL && !spec->check (value, error))
        return NULL;
      return g_strdup (value);
    case QUBE_PROPERTY_TYPE_VM:
      if (*value == '\0' && !spec->allow_none)
        {
          g_set_error_literal (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                               "a qube is needed, not none");
          return NULL;
        }
      return g_strdup (value);
    default:
      g_assert_not_reached ();
    }
}

/* ---- reading ---- */

static gboolean resolve (QubeStore *store, const QubeStoreQube *qube,
                         const PropSpec *spec, char **value,
                         gboolean *is_default, int depth, GError **error);

static gboolean
resolve_global (QubeStore *store, const PropSpec *spec, char **value,
                gboolean *is_default, GError **error)
{
  g_autofree char *stored = NULL;

  if (!_qube_store_get_global (store, spec->name, &stored, error))
    return FALSE;
  *is_default = stored == NULL;
  *value = stored != NULL ? g_steal_pointer (&stored) : g_strdup (spec->default_value);
  return TRUE;
}

/* The value a qube gets when its property is not set. */
static gboolean
resolve_default (QubeStore *store, const QubeStoreQube *qube,
                 const PropSpec *spec, char **value, int depth, GError **error)
{
  gboolean unused;

  /* Some classes refer to no qube unless told (a template has no netvm). */
  if (spec->none_for & qube_class (qube))
    {
      *value = g_strdup ("");
      return TRUE;
    }
  if (spec->inherit & qube_class (qube))
    {
      g_autofree char *template_name = NULL;
      g_auto(QubeStoreQube) tmpl = { 0 };

      if (depth >= INHERIT_DEPTH_MAX)
        {
          g_set_error (error, QUBE_ERROR, QUBE_ERROR_STORE,
                       "cannot read %s of qube '%s': its template chain is too deep",
                       spec->name, qube->name);
          return FALSE;
        }
      if (!_qube_store_get_property (store, qube->id, "template", &template_name, error))
        return FALSE;
      if (template_name != NULL)
        {
          if (!_qube_store_get_qube (store, template_name, &tmpl, error))
            return FALSE;
          if (spec->classes & qube_class (&tmpl))
            return resolve (store, &tmpl, spec, value, &unused, depth + 1, error);
        }
    }

  switch (spec->default_kind)
    {
    case DEFAULT_CONST:
      *value = g_strdup (spec->default_value);
      return TRUE;
    case DEFAULT_GLOBAL:
      if (!resolve_global (store,
                           find_spec (global_props, G_N_ELEMENTS (global_props),
                                      spec->default_value),
                           value, &unused, error))
        return FALSE;
      /* The default netvm (sys-net, say) itself takes no netvm by default. */
      if (spec->not_self && strcmp (*value, qube->name) == 0)
        {
          g_free (*value);
          *value = g_strdup ("");
        }
      return TRUE;
    case DEFAULT_NONE:
    default:
      *value = g_strdup ("");
      return TRUE;
    }
}

static gboolean
resolve (QubeStore *store, const QubeStoreQube *qube, const PropSpec *spec,
         char **value, gboolean *is_default, int depth, GError **error)
{
  g_autofree char *stored = NULL;

  if (!_qube_store_get_property (store, qube->id, spec->name, &stored, error))
    return FALSE;
  *is_default = stored == NULL;
  if (stored != NULL)
    {
      *value = g_steal_pointer (&stored);
      return TRUE;
    }
  return resolve_default (store, qube, spec, value, depth, error);
}

gboolean
_qube_property_get (QubeStore *store, const QubeStoreQube *qube,
                    const char *name, char **value, gboolean *is_default,
                    QubePropertyType *type, GError **error)
{
  const PropSpec *spec = qube_spec_or_error (qube, name, error);
  gboolean dflt;

  if (spec == NULL || !resolve (store, qube, spec, value, &dflt, 0, error))
    return FALSE;
  if (is_default != NULL)
    *is_default = dflt;
  if (type != NULL)
    *type = spec->type;
  return TRUE;
}

gboolean
_qube_global_get (QubeStore *store, const char *name, char **value,
                  gboolean *is_default, QubePropertyType *type, GError **error)
{
  const PropSpec *spec = global_spec_or_error (name, error);
  gboolean dflt;

  if (spec == NULL || !resolve_global (store, spec, value, &dflt, error))
    return FALSE;
  if (is_default != NULL)
    *is_default = dflt;
  if (type != NULL)
    *type = spec->type;
  return TRUE;
}

/* Effective value of a named property of a qube, "" when the qube's class
 * does not have it. */
static gboolean
resolve_named (QubeStore *store, const QubeStoreQube *qube, const char *name,
               char **value, GError **error)
{
  const PropSpec *spec = qube_spec (qube_class (qube), name);
  gboolean unused;

  if (spec == NULL)
    {
      *value = g_strdup ("");
      return TRUE;
    }
  return resolve (store, qube, spec, value, &unused, 0, error);
}

/* ---- rules between qubes ---- */

/* Checks that `value` may be the value of vm-typed `spec` on a qube of
 * class `owner` (QUBE_CLASS_ANY for a global property). */
static gboolean
check_target (QubeStore *store, const PropSpec *spec, QubeClass owner,
              const char *value, GError **error)
{
  const VmTarget *target = NULL;
  g_auto(QubeStoreQube) referred = { 0 };
  g_autofree char *flag = NULL;
  QubeClass referred_class;

  if (*value == '\0')
    return TRUE;
  for (const VmTarget *t = spec->targets; t->owners != 0; t++)
    if (t->owners & owner)
      {
        target = t;
        break;
      }
  g_return_val_if_fail (target != NULL, FALSE);

  if (!_qube_store_get_qube (store, value, &referred, error))
    return FALSE;
  referred_class = qube_class (&referred);
  if (!(referred_class & target->targets))
    {
      g_autofree char *wanted = _qube_class_describe (target->targets);
      g_autofree char *is = _qube_class_describe (referred_class);
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                   "qube '%s' is %s, not %s", referred.name, is, wanted);
      return FALSE;
    }
  if (target->requires != NULL)
    {
      if (!resolve_named (store, &referred, target->requires, &flag, error))
        return FALSE;
      if (g_strcmp0 (flag, "True") != 0)
        {
          g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                       "qube '%s' does not have %s=True", referred.name, target->requires);
          return FALSE;
        }
    }
  return TRUE;
}

gboolean
_qube_property_check_template (QubeStore *store, QubeClass klass,
                               const char *value, GError **error)
{
  return check_target (store, find_spec (qube_props, G_N_ELEMENTS (qube_props), "template"),
                       klass, value, error);
}

/* Follows `spec->chain` (netvm) from the qube `start`; fails when it comes
 * back to `start`. */
static gboolean
check_chain (QubeStore *store, const PropSpec *spec, const char *start,
             GError **error)
{
  g_autoptr(GPtrArray) path = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *next = NULL;
  g_auto(QubeStoreQube) cur = { 0 };

  if (*start == '\0')
    return TRUE;
  g_ptr_array_add (path, g_strdup (start));
  if (!_qube_store_get_qube (store, start, &cur, error))
    return FALSE;

  for (;;)
    {
      g_clear_pointer (&next, g_free);
      if (!resolve_named (store, &cur, spec->chain, &next, error))
        return FALSE;
      if (*next == '\0')
        return TRUE;
      g_ptr_array_add (path, g_strdup (next));
      if (strcmp (next, start) == 0)
        {
          g_ptr_array_add (path, NULL);
          g_autofree char *shown = g_strjoinv (" -> ", (char **) path->pdata);
          g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                       "the %s chain would form a loop: %s", spec->chain, shown);
          return FALSE;
        }
      /* A loop that does not pass through `start` existed before this
       * change; it is not this change's to report. */
      for (guint i = 0; i + 1 < path->len; i++)
        if (strcmp (path->pdata[i], next) == 0)
          return TRUE;
      if (!_qube_store_get_qube (store, next, &cur, error))
        return FALSE;
    }
}

/* Appends "it is the <prop> of 'a', 'b'" for every vm-typed property that
 * names `qube_name`; only properties whose targets need `flag` when `flag`
 * is given. */
static gboolean
collect_users (QubeStore *store, const char *qube_name, const char *flag,
               GString *reasons, GError **error)
{
  const struct {
    const PropSpec *table;
    gsize n;
    gboolean global;
  } tables[] = {
    { qube_props, G_N_ELEMENTS (qube_props), FALSE },
    { global_props, G_N_ELEMENTS (global_props), TRUE },
  };

  for (gsize t = 0; t < G_N_ELEMENTS (tables); t++)
    for (gsize i = 0; i < tables[t].n; i++)
      {
        const PropSpec *spec = &tables[t].table[i];
        gboolean relevant = flag == NULL;

        if (spec->type != QUBE_PROPERTY_TYPE_VM)
          continue;
        for (const VmTarget *target = spec->targets; !relevant && target->owners != 0; target++)
          relevant = g_strcmp0 (target->requires, flag) == 0;
        if (!relevant)
          continue;

        if (tables[t].global)
          {
            g_autofree char *value = NULL;
            if (!_qube_store_get_global (store, spec->name, &value, error))
              return FALSE;
            if (g_strcmp0 (value, qube_name) == 0)
              g_string_append_printf (reasons, "%sit is the global %s",
                                      reasons->len > 0 ? "; " : "", spec->name);
          }
        else
          {
            g_autoptr(GPtrArray) users = _qube_store_find_property_users (store, spec->name,
                                                                          qube_name, error);
            if (users == NULL)
              return FALSE;
            if (users->len == 0)
              continue;
            g_string_append_printf (reasons, "%sit is the %s of ",
                                    reasons->len > 0 ? "; " : "", spec->name);
            for (guint u = 0; u < users->len; u++)
              g_string_append_printf (reasons, "%s'%s'", u > 0 ? ", " : "",
                                      (const char *) users->pdata[u]);
          }
      }
  return TRUE;
}

gboolean
_qube_property_find_users (QubeStore *store, const char *qube_name,
                           char **reasons, GError **error)
{
  g_autoptr(GString) out = g_string_new (NULL);

  if (!collect_users (store, qube_name, NULL, out, error))
    return FALSE;
  *reasons = out->len > 0 ? g_strdup (out->str) : NULL;
  return TRUE;
}

static gboolean
check_memory (QubeStore *store, const QubeStoreQube *qube, GError **error)
{
  g_autofree char *memory = NULL;
  g_autofree char *maxmem = NULL;

  if (!resolve_named (store, qube, "memory", &memory, error)
      || !resolve_named (store, qube, "maxmem", &maxmem, error))
    return FALSE;
  if (g_ascii_strtoll (memory, NULL, 10) > g_ascii_strtoll (maxmem, NULL, 10))
    {
      g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                   "memory (%s MiB) would be more than maxmem (%s MiB)", memory, maxmem);
      return FALSE;
    }
  return TRUE;
}

/* Checks made after a write, on the effective values. */
static gboolean
check_after_write (QubeStore *store, const QubeStoreQube *qube,
                   const PropSpec *spec, const char *value, GError **error)
{
  if (spec->type == QUBE_PROPERTY_TYPE_BOOL && strcmp (value, "False") == 0 && qube != NULL)
    {
      g_autoptr(GString) users = g_string_new (NULL);
      if (!collect_users (store, qube->name, spec->name, users, error))
        return FALSE;
      if (users->len > 0)
        {
          g_set_error (error, QUBE_ERROR, QUBE_ERROR_IN_USE, "%s", users->str);
          return FALSE;
        }
    }
  if (spec->chain != NULL
      && !check_chain (store, spec, qube != NULL ? qube->name : value, error))
    return FALSE;
  if (spec->post_check != NULL && qube != NULL && !spec->post_check (store, qube, error))
    return FALSE;
  return TRUE;
}

/* Sets (value != NULL) or resets a property of `qube`, or a global one
 * when `qube` is NULL. */
static gboolean
change (QubeStore *store, const QubeStoreQube *qube, const PropSpec *spec,
        const char *value, GError **error)
{
  g_autofree char *canonical = NULL;
  g_autofree char *effective = NULL;
  gboolean unused;
  gboolean ok;

  if (value != NULL)
    {
      canonical = canonicalize (spec, value, error);
      if (canonical == NULL)
        return FALSE;
      if (spec->type == QUBE_PROPERTY_TYPE_VM)
        {
          if (qube != NULL && spec->chain != NULL && strcmp (canonical, qube->name) == 0)
            {
              g_set_error (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                           "a qube cannot be its own %s", spec->name);
              return FALSE;
            }
          if (!check_target (store, spec, qube != NULL ? qube_class (qube) : QUBE_CLASS_ANY,
                             canonical, error))
            return FALSE;
        }
    }
  else if (spec->default_kind == DEFAULT_NONE)
    {
      g_set_error_literal (error, QUBE_ERROR, QUBE_ERROR_INVALID,
                           "it has no default value");
      return FALSE;
    }

  if (qube != NULL)
    ok = canonical != NULL
         ? _qube_store_set_property (store, qube->id, spec->name, canonical, error)
         : _qube_store_unset_property (store, qube->id, spec->name, error);
  else
    ok = canonical != NULL
         ? _qube_store_set_global (store, spec->name, canonical, error)
         : _qube_store_unset_global (store, spec->name, error);
  if (!ok)
    return FALSE;

  if (qube != NULL)
    ok = resolve (store, qube, spec, &effective, &unused, 0, error);
  else
    ok = resolve_global (store, spec, &effective, &unused, error);
  return ok && check_after_write (store, qube, spec, effective, error);
}

static void
prefix_set_error (GError **error, const char *subject, const char *value)
{
  g_autofree char *shown = _qube_printable (value);

  if (value != NULL)
    g_prefix_error (error, "cannot set %s to '%s': ", subject, shown);
  else
    g_prefix_error (error, "cannot reset %s: ", subject);
}

static gboolean
qube_change (QubeStore *store, const QubeStoreQube *qube, const char *name,
             const char *value, GError **error)
{
  const PropSpec *spec = qube_spec_or_error (qube, name, error);

  if (spec == NULL)
    return FALSE;
  if (!change (store, qube, spec, value, error))
    {
      g_autofree char *subject = g_strdup_printf ("%s of qube '%s'", name, qube->name);
      prefix_set_error (error, subject, value);
      return FALSE;
    }
  return TRUE;
}

gboolean
_qube_property_needs_halted (QubeClass klass, const char *name)
{
  const PropSpec *spec = qube_spec (klass, name);
  return spec != NULL && spec->halted_only;
}

gboolean
_qube_property_set (QubeStore *store, const QubeStoreQube *qube,
                    const char *name, const char *value, GError **error)
{
  g_return_val_if_fail (value != NULL, FALSE);
  return qube_change (store, qube, name, value, error);
}

gboolean
_qube_property_reset (QubeStore *store, const QubeStoreQube *qube,
                      const char *name, GError **error)
{
  return qube_change (store, qube, name, NULL, error);
}

static gboolean
global_change (QubeStore *store, const char *name, const char *value,
               GError **error)
{
  const PropSpec *spec = global_spec_or_error (name, error);

  if (spec == NULL)
    return FALSE;
  if (!change (store, NULL, spec, value, error))
    {
      g_autofree char *subject = g_strdup_printf ("global property %s", name);
      prefix_set_error (error, subject, value);
      return FALSE;
    }
  return TRUE;
}

gboolean
_qube_global_set (QubeStore *store, const char *name, const char *value,
                  GError **error)
{
  g_return_val_if_fail (value != NULL, FALSE);
  return global_change (store, name, value, error);
}

gboolean
_qube_global_reset (QubeStore *store, const char *name, GError **error)
{
  return global_change (store, name, NULL, error);
}
