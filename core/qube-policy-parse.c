/* qube-policy-parse.c — reads the Qubes policy.d format into rules.
 *
 * One rule a line: `service +argument source target action [key=value ...]`,
 * `#` comments, blank lines, and the directives !include, !include-dir,
 * !include-service (whose file is in the old one-service format) and
 * !compat-4.0.  Parsing goes on after an error so that lint can list every
 * problem; any error makes the whole policy deny every call.  This file
 * only reads: it never evaluates a call.
 */
#include "config.h"

#undef G_LOG_DOMAIN
#define G_LOG_DOMAIN "qube-policy"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qube-policy-private.h"
#include "qube-vm-private.h"

#define POLICY_SUFFIX ".policy"

typedef struct {
  QubePolicyData *data;
  const char *include_base; /* NULL: includes are refused */
  GPtrArray *stack;         /* real paths of the files being read, for loops */
  guint n_files;            /* files read so far */
  guint64 n_bytes;          /* bytes read so far */
  gboolean stopped;         /* a limit was reached: no more files are read */
} Parser;

static void parse_contents (Parser *p, const char *file, const char *buffer,
                            gsize length, const char *service_mode,
                            const char *argument_mode);

void
_qube_policy_data_init (QubePolicyData *data)
{
  data->rules = g_ptr_array_new_with_free_func ((GDestroyNotify) _qube_policy_rule_free);
  data->problems = g_ptr_array_new_with_free_func (g_object_unref);
  data->n_errors = 0;
  data->n_unlisted = 0;
  data->n_unlisted_errors = 0;
}

void
_qube_policy_data_clear (QubePolicyData *data)
{
  g_clear_pointer (&data->rules, g_ptr_array_unref);
  g_clear_pointer (&data->problems, g_ptr_array_unref);
}

void
_qube_policy_data_problem (QubePolicyData *data, const char *file, guint line,
                           gboolean is_error, const char *format, ...)
{
  va_list ap;
  g_autofree char *message = NULL;

  if (is_error)
    data->n_errors++;
  if (data->problems->len >= QUBE_POLICY_MAX_PROBLEMS)
    {
      data->n_unlisted++;
      if (is_error)
        data->n_unlisted_errors++;
      return;
    }
  va_start (ap, format);
  message = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_ptr_array_add (data->problems,
                   _qube_policy_problem_new (file, line, is_error, message));
}

/* Ends the list of problems with one that counts those not listed; it is
 * an error when any of them is, so that an invalid policy always lists an
 * error. */
static void
data_finish (QubePolicyData *data, const char *where)
{
  g_autofree char *message = NULL;

  if (data->n_unlisted == 0)
    return;
  message = g_strdup_printf ("%u more problems not listed (%u errors); "
                             "only the first %d are kept",
                             data->n_unlisted, data->n_unlisted_errors,
                             QUBE_POLICY_MAX_PROBLEMS);
  g_ptr_array_add (data->problems,
                   _qube_policy_problem_new (where, 0, data->n_unlisted_errors > 0, message));
}

void
_qube_policy_token_clear (QubePolicyToken *token)
{
  g_clear_pointer (&token->value, g_free);
}

void
_qube_policy_rule_free (QubePolicyRule *rule)
{
  if (rule == NULL)
    return;
  g_free (rule->service);
  g_free (rule->argument);
  _qube_policy_token_clear (&rule->source);
  _qube_policy_token_clear (&rule->target);
  _qube_policy_token_clear (&rule->redirect);
  _qube_policy_token_clear (&rule->default_target);
  g_free (rule->user);
  g_free (rule->file);
  g_free (rule);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (QubePolicyRule, _qube_policy_rule_free)

static gboolean
all_chars_in (const char *s, const char *extra)
{
  for (; *s; s++)
    if (!g_ascii_isalnum (*s) && strchr (extra, *s) == NULL)
      return FALSE;
  return TRUE;
}

/* A qube name as the qube store accepts it (a letter, then letters,
 * digits, _ . -; at most 31 characters).  Reserved words are not refused:
 * a rule naming one simply never matches. */
gboolean
_qube_policy_valid_qube_name (const char *name)
{
  return _qube_name_form_is_valid (name, NULL);
}

/* qrexec service names: letters, digits, - . _ (no '+', which starts the
 * argument). */
gboolean
_qube_policy_valid_service (const char *service)
{
  return *service != '\0' && all_chars_in (service, "-._");
}

gboolean
_qube_policy_valid_argument (const char *argument)
{
  return argument[0] == '+' && all_chars_in (argument, "-._+");
}

/* A tag as the tag store accepts it: letters, digits, _ . -; at most 255
 * bytes (so `created-by-NAME` for any qube NAME). */
static gboolean
valid_tag (const char *tag)
{
  return _qube_key_is_valid ("tag", tag, NULL);
}

static gboolean
valid_class (const char *klass)
{
  return *klass != '\0' && strlen (klass) <= 64 && all_chars_in (klass, "_");
}

static guint
kind_contexts (QubePolicyTokenKind kind)
{
  const guint S = QUBE_POLICY_CONTEXT_SOURCE, T = QUBE_POLICY_CONTEXT_TARGET,
              R = QUBE_POLICY_CONTEXT_REDIRECT, I = QUBE_POLICY_CONTEXT_INTENDED;

  switch (kind)
    {
    case QUBE_POLICY_TOKEN_NAME:
    case QUBE_POLICY_TOKEN_ADMINVM:
    case QUBE_POLICY_TOKEN_DISPVM_TEMPLATE:
      return S | T | R | I;
    case QUBE_POLICY_TOKEN_ANYVM:
    case QUBE_POLICY_TOKEN_WILDCARD:
    case QUBE_POLICY_TOKEN_TAG:
    case QUBE_POLICY_TOKEN_TYPE:
    case QUBE_POLICY_TOKEN_DISPVM_TAG:
      return S | T;
    case QUBE_POLICY_TOKEN_DEFAULT:
      return T | I;
    case QUBE_POLICY_TOKEN_DISPVM:
      return T | R | I;
    default:
      return 0;
    }
}

static const char *
context_name (guint contexts)
{
  if (contexts & QUBE_POLICY_CONTEXT_SOURCE)
    return "source";
  if (contexts & QUBE_POLICY_CONTEXT_TARGET)
    return "target";
  if (contexts & QUBE_POLICY_CONTEXT_REDIRECT)
    return "redirect target";
  return "requested target";
}

/* Parses one source/target token.  `contexts` says where it stands; a
 * token valid elsewhere but not there is refused, as Qubes does (e.g.
 * @default as a source, @anyvm in target=). */
gboolean
_qube_policy_token_parse (const char *text, guint contexts,
                          QubePolicyToken *out, char **why)
{
  QubePolicyTokenKind kind;
  const char *value = NULL;
  gboolean (*check) (const char *) = NULL;

  memset (out, 0, sizeof *out);
  if (g_str_equal (text, "dom0") || g_str_equal (text, "@adminvm"))
    kind = QUBE_POLICY_TOKEN_ADMINVM;
  else if (g_str_equal (text, "@anyvm"))
    kind = QUBE_POLICY_TOKEN_ANYVM;
  else if (g_str_equal (text, "*"))
    kind = QUBE_POLICY_TOKEN_WILDCARD;
  else if (g_str_equal (text, "@default"))
    kind = QUBE_POLICY_TOKEN_DEFAULT;
  else if (g_str_equal (text, "@dispvm"))
    kind = QUBE_POLICY_TOKEN_DISPVM;
  else if (g_str_has_prefix (text, "@dispvm:@tag:"))
    kind = QUBE_POLICY_TOKEN_DISPVM_TAG, value = text + 13, check = valid_tag;
  else if (g_str_has_prefix (text, "@dispvm:"))
    kind = QUBE_POLICY_TOKEN_DISPVM_TEMPLATE, value = text + 8,
    check = _qube_policy_valid_qube_name;
  else if (g_str_has_prefix (text, "@tag:"))
    kind = QUBE_POLICY_TOKEN_TAG, value = text + 5, check = valid_tag;
  else if (g_str_has_prefix (text, "@type:"))
    kind = QUBE_POLICY_TOKEN_TYPE, value = text + 6, check = valid_class;
  else if (text[0] == '@')
    {
      *why = g_strdup_printf ("invalid %s token: '%s'", context_name (contexts), text);
      return FALSE;
    }
  else
    kind = QUBE_POLICY_TOKEN_NAME, value = text, check = _qube_policy_valid_qube_name;

  if (value != NULL && *value == '\0')
    {
      *why = g_strdup_printf ("invalid empty %s token: '%s'", context_name (contexts), text);
      return FALSE;
    }
  if (check != NULL && !check (value))
    {
      *why = g_strdup_printf ("invalid %s token: '%s' (not a valid %s)",
                              context_name (contexts), text,
                              check == valid_tag ? "tag"
                              : check == valid_class ? "class" : "qube name");
      return FALSE;
    }
  if ((kind_contexts (kind) & contexts) == 0)
    {
      *why = g_strdup_printf ("'%s' cannot be used as a %s", text, context_name (contexts));
      return FALSE;
    }
  out->kind = kind;
  out->value = g_strdup (value);
  return TRUE;
}

/* ASCII white space as Python's str.split() and str.strip() see it (Qubes
 * splits and strips lines with them): space, \t, \v, \f and the separators
 * \x1c-\x1f; \n and \r end lines before this is asked.  Non-ASCII white
 * space (U+00A0, U+2000...), which Python also splits on, stays in the
 * field here, where it makes the line invalid: such a policy denies
 * every call rather than being read differently. */
static gboolean
is_blank (char c)
{
  return c == ' ' || c == '\t' || c == '\v' || c == '\f' || (c >= '\x1c' && c <= '\x1f');
}

/* Splits a line on that white space. */
static GPtrArray *
split_fields (const char *line)
{
  GPtrArray *fields = g_ptr_array_new_with_free_func (g_free);

  while (*line)
    {
      const char *start;

      while (is_blank (*line))
        line++;
      if (*line == '\0')
        break;
      start = line;
      while (*line && !is_blank (*line))
        line++;
      g_ptr_array_add (fields, g_strndup (start, line - start));
    }
  return fields;
}

static gboolean
parse_service_argument (Parser *p, const char *file, guint line,
                        const char *service, const char *argument,
                        char **service_out, char **argument_out)
{
  gboolean any_service = g_str_equal (service, "*");

  if (!any_service && !_qube_policy_valid_service (service))
    {
      _qube_policy_data_problem (p->data, file, line, TRUE,
                                 "service '%s' contains invalid characters "
                                 "(allowed: letters, digits, - . _)", service);
      return FALSE;
    }
  if (!g_str_equal (argument, "*"))
    {
      if (argument[0] != '+')
        {
          _qube_policy_data_problem (p->data, file, line, TRUE,
                                     "argument '%s' does not start with +", argument);
          return FALSE;
        }
      if (!_qube_policy_valid_argument (argument))
        {
          _qube_policy_data_problem (p->data, file, line, TRUE,
                                     "argument '%s' contains invalid characters "
                                     "(allowed: letters, digits, - . _ +)", argument);
          return FALSE;
        }
      if (any_service)
        {
          _qube_policy_data_problem (p->data, file, line, TRUE,
                                     "only * argument allowed for * service");
          return FALSE;
        }
    }
  *service_out = any_service ? NULL : g_strdup (service);
  *argument_out = g_str_equal (argument, "*") ? NULL : g_strdup (argument);
  return TRUE;
}

static gboolean
parse_yes_no (Parser *p, const char *file, guint line, const char *key,
              const char *value, gboolean *out)
{
  if (g_str_equal (value, "yes"))
    *out = TRUE;
  else if (g_str_equal (value, "no"))
    *out = FALSE;
  else
    {
      _qube_policy_data_problem (p->data, file, line, TRUE,
                                 "'%s' is '%s', but can be only 'yes' or 'no'", key, value);
      return FALSE;
    }
  return TRUE;
}

/* Parameters each action takes, as in Qubes. */
static gboolean
param_allowed (QubePolicyAction action, const char *key)
{
  if (g_str_equal (key, "notify"))
    return TRUE;
  if (action == QUBE_POLICY_ACTION_DENY)
    return FALSE;
  if (g_str_equal (key, "target") || g_str_equal (key, "user")
      || g_str_equal (key, "autostart"))
    return TRUE;
  return action == QUBE_POLICY_ACTION_ASK && g_str_equal (key, "default_target");
}

static gboolean
parse_params (Parser *p, const char *file, guint line, QubePolicyRule *rule,
              char **params, guint n_params)
{
  g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  for (guint i = 0; i < n_params; i++)
    {
      g_autofree char *key = NULL;
      const char *eq = strchr (params[i], '=');
      const char *value;
      g_autofree char *why = NULL;

      if (eq == NULL)
        {
          _qube_policy_data_problem (p->data, file, line, TRUE,
                                     "invalid action parameter syntax: '%s' (expected key=value)",
                                     params[i]);
          return FALSE;
        }
      key = g_strndup (params[i], eq - params[i]);
      value = eq + 1;
      if (g_hash_table_contains (seen, key))
        {
          _qube_policy_data_problem (p->data, file, line, TRUE,
                                     "parameter given twice: '%s'", key);
          return FALSE;
        }
      if (!param_allowed (rule->action, key))
        {
          _qube_policy_data_problem (p->data, file, line, TRUE,
                                     "invalid parameter for action %s: '%s'",
                                     qube_policy_action_to_string (rule->action), params[i]);
          return FALSE;
        }
      g_hash_table_add (seen, g_strdup (key));

      if (g_str_equal (key, "notify"))
        {
          if (!parse_yes_no (p, file, line, key, value, &rule->notify))
            return FALSE;
        }
      else if (g_str_equal (key, "autostart"))
        {
          if (!parse_yes_no (p, file, line, key, value, &rule->autostart))
            return FALSE;
        }
      else if (g_str_equal (key, "user"))
        {
          /* The user goes into "user:command" on the wire: no ':' there.
           * An empty `user=` is the target's default user, as in Qubes
           * (which runs `self.user or 'DEFAULT'`). */
          if (strlen (value) > 64 || !all_chars_in (value, "_.-"))
            {
              _qube_policy_data_problem (p->data, file, line, TRUE,
                                         "invalid user '%s' (allowed: letters, digits, _ . -)",
                                         value);
              return FALSE;
            }
          rule->user = *value != '\0' ? g_strdup (value) : NULL;
        }
      else
        {
          gboolean is_target = g_str_equal (key, "target");
          QubePolicyToken *token = is_target ? &rule->redirect : &rule->default_target;

          if (!_qube_policy_token_parse (value, QUBE_POLICY_CONTEXT_REDIRECT, token, &why))
            {
              _qube_policy_data_problem (p->data, file, line, TRUE, "%s=: %s", key, why);
              return FALSE;
            }
          if (is_target)
            rule->has_redirect = TRUE;
          else
            rule->has_default_target = TRUE;
        }
    }
  return TRUE;
}

/* fields: service argument source target action params... */
static void
parse_rule (Parser *p, const char *file, guint line, char **fields, guint n)
{
  g_autoptr(QubePolicyRule) rule = NULL;
  g_autofree char *why = NULL;
  const char *action;

  if (n < 5)
    {
      _qube_policy_data_problem (p->data, file, line, TRUE,
                                 "wrong number of fields: expected "
                                 "'service +argument source target action [params]'");
      return;
    }
  rule = g_new0 (QubePolicyRule, 1);
  rule->file = g_strdup (file);
  rule->line = line;
  if (!parse_service_argument (p, file, line, fields[0], fields[1],
                               &rule->service, &rule->argument))
    return;
  if (!_qube_policy_token_parse (fields[2], QUBE_POLICY_CONTEXT_SOURCE, &rule->source, &why)
      || !_qube_policy_token_parse (fields[3], QUBE_POLICY_CONTEXT_TARGET, &rule->target, &why))
    {
      _qube_policy_data_problem (p->data, file, line, TRUE, "%s", why);
      return;
    }
  action = fields[4];
  if (g_str_equal (action, "allow"))
    rule->action = QUBE_POLICY_ACTION_ALLOW;
  else if (g_str_equal (action, "deny"))
    rule->action = QUBE_POLICY_ACTION_DENY;
  else if (g_str_equal (action, "ask"))
    rule->action = QUBE_POLICY_ACTION_ASK;
  else
    {
      _qube_policy_data_problem (p->data, file, line, TRUE,
                                 "invalid action: '%s' (expected allow, deny or ask)", action);
      return;
    }
  /* Qubes' defaults: a denial is notified, an allowed call is not. */
  rule->notify = rule->action == QUBE_POLICY_ACTION_DENY;
  rule->autostart = TRUE;
  if (!parse_params (p, file, line, rule, fields + 5, n - 5))
    return;
  if (rule->target.kind == QUBE_POLICY_TOKEN_DEFAULT
      && rule->action == QUBE_POLICY_ACTION_ALLOW && !rule->has_redirect)
    {
      _qube_policy_data_problem (p->data, file, line, TRUE,
                                 "allow action for @default rule must specify target= option");
      return;
    }
  g_ptr_array_add (p->data->rules, g_steal_pointer (&rule));
}

/* Includes resolve against the policy directory, as in Qubes; an absolute
 * path stays as it is. */
static char *
resolve_include (Parser *p, const char *file, guint line, const char *path)
{
  g_autofree char *joined = NULL;

  if (p->include_base == NULL)
    {
      _qube_policy_data_problem (p->data, file, line, TRUE,
                                 "include directives are not allowed here");
      return NULL;
    }
  joined = g_path_is_absolute (path) ? g_strdup (path)
                                     : g_build_filename (p->include_base, path, NULL);
  return g_canonicalize_filename (joined, NULL);
}

/* Where a problem with the file `path` itself is reported: the line that
 * included it, or (for a file of the policy directory, `file` NULL and
 * `line` 0) the file itself. */
static const char *
origin (const char *file, const char *path)
{
  return file != NULL ? file : path;
}

static gboolean
push_file (Parser *p, const char *file, guint line, const char *path)
{
  char real[PATH_MAX];

  if (realpath (path, real) == NULL)
    {
      _qube_policy_data_problem (p->data, origin (file, path), line, TRUE,
                                 "cannot read '%s': %s", path, g_strerror (errno));
      return FALSE;
    }
  if (p->stack->len >= QUBE_POLICY_MAX_INCLUDE_DEPTH)
    {
      _qube_policy_data_problem (p->data, origin (file, path), line, TRUE,
                                 "includes nested more than %d deep at '%s'",
                                 QUBE_POLICY_MAX_INCLUDE_DEPTH, path);
      return FALSE;
    }
  for (guint i = 0; i < p->stack->len; i++)
    if (g_str_equal (p->stack->pdata[i], real))
      {
        _qube_policy_data_problem (p->data, origin (file, path), line, TRUE,
                                   "include loop: '%s' includes itself", path);
        return FALSE;
      }
  g_ptr_array_add (p->stack, g_strdup (real));
  return TRUE;
}

/* Counts a file of `size` bytes against the limits of one policy load.
 * The first file past a limit is an error; no file is read after it. */
static gboolean
within_limits (Parser *p, const char *file, guint line, const char *path, goffset size)
{
  if (p->stopped)
    return FALSE;
  if (p->n_files >= QUBE_POLICY_MAX_FILES)
    _qube_policy_data_problem (p->data, origin (file, path), line, TRUE,
                               "not read: '%s': the policy reads at most %d files "
                               "(a file included twice counts twice); no more files are read",
                               path, QUBE_POLICY_MAX_FILES);
  else if (p->n_bytes + size > QUBE_POLICY_MAX_TOTAL)
    _qube_policy_data_problem (p->data, origin (file, path), line, TRUE,
                               "not read: '%s': the policy reads at most %d bytes in all "
                               "files; no more files are read",
                               path, QUBE_POLICY_MAX_TOTAL);
  else
    {
      p->n_files++;
      return TRUE;
    }
  p->stopped = TRUE;
  return FALSE;
}

static void
pop_file (Parser *p)
{
  g_ptr_array_remove_index (p->stack, p->stack->len - 1);
}

/* Reads one file and parses it; `from_file`/`from_line` name where it was
 * included from (NULL/0 for a file of the policy directory), for problems. */
static void
load_file (Parser *p, const char *from_file, guint from_line, const char *path,
           const char *service_mode, const char *argument_mode)
{
  g_autofree char *contents = NULL;
  gsize length = 0;
  g_autoptr(GError) error = NULL;
  struct stat st;

  if (stat (path, &st) != 0 || !S_ISREG (st.st_mode))
    {
      _qube_policy_data_problem (p->data, origin (from_file, path), from_line, TRUE,
                                 "not a file: %s", path);
      return;
    }
  if (st.st_size > QUBE_POLICY_MAX_FILE)
    {
      _qube_policy_data_problem (p->data, path, 0, TRUE,
                                 "file is larger than %d bytes", QUBE_POLICY_MAX_FILE);
      return;
    }
  if (!push_file (p, from_file, from_line, path))
    return;
  if (within_limits (p, from_file, from_line, path, st.st_size))
    {
      if (!g_file_get_contents (path, &contents, &length, &error))
        _qube_policy_data_problem (p->data, origin (from_file, path), from_line, TRUE,
                                   "cannot read policy file: %s", error->message);
      else if (length > QUBE_POLICY_MAX_FILE)
        _qube_policy_data_problem (p->data, path, 0, TRUE,
                                   "file is larger than %d bytes", QUBE_POLICY_MAX_FILE);
      else
        parse_contents (p, path, contents, length, service_mode, argument_mode);
      p->n_bytes += length;
    }
  pop_file (p);
}

static int
compare_paths (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* The files of a policy directory that Qubes reads: regular files named
 * *.policy that do not start with a dot, in C-locale order.  Other names
 * are ignored; a *.policy name with characters outside [0-9a-z_.-] is an
 * error (Qubes then denies everything), never silently skipped. */
static GPtrArray *
list_policy_files (Parser *p, const char *from_file, guint from_line, const char *dir)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GDir) gdir = g_dir_open (dir, 0, &error);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  if (gdir == NULL)
    {
      _qube_policy_data_problem (p->data, origin (from_file, dir), from_line, TRUE,
                                 "cannot read policy directory: %s", error->message);
      return NULL;
    }
  while ((name = g_dir_read_name (gdir)) != NULL)
    {
      g_autofree char *path = NULL;

      if (name[0] == '.' || !g_str_has_suffix (name, POLICY_SUFFIX))
        continue;
      path = g_build_filename (dir, name, NULL);
      if (!g_file_test (path, G_FILE_TEST_IS_REGULAR))
        continue;
      if (!all_chars_in (name, "_.-") || strpbrk (name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
        {
          _qube_policy_data_problem (p->data, path, 0, TRUE,
                                     "invalid file name: only 0-9 a-z _ . - are allowed");
          continue;
        }
      g_ptr_array_add (names, g_steal_pointer (&path));
    }
  g_ptr_array_sort (names, compare_paths);
  return g_steal_pointer (&names);
}

static void
load_dir (Parser *p, const char *from_file, guint from_line, const char *dir)
{
  g_autoptr(GPtrArray) files = list_policy_files (p, from_file, from_line, dir);

  for (guint i = 0; files != NULL && i < files->len; i++)
    load_file (p, from_file, from_line, files->pdata[i], NULL, NULL);
}

static gboolean
want_params (Parser *p, const char *file, guint line, guint n, guint wanted)
{
  if (n == wanted)
    return TRUE;
  _qube_policy_data_problem (p->data, file, line, TRUE,
                             "invalid number of params: expected %u, got %u", wanted, n);
  return FALSE;
}

static void
handle_directive (Parser *p, const char *file, guint line, char **fields, guint n,
                  const char *service_mode, const char *argument_mode)
{
  const char *directive = fields[0];
  guint n_params = n - 1;
  g_autofree char *path = NULL;

  if (g_str_equal (directive, "!include"))
    {
      if (!want_params (p, file, line, n_params, 1)
          || (path = resolve_include (p, file, line, fields[1])) == NULL)
        return;
      load_file (p, file, line, path, service_mode, argument_mode);
    }
  else if (service_mode != NULL)
    _qube_policy_data_problem (p->data, file, line, TRUE,
                               "invalid directive '%s' in a !include-service file", directive);
  else if (g_str_equal (directive, "!include-dir"))
    {
      if (!want_params (p, file, line, n_params, 1)
          || (path = resolve_include (p, file, line, fields[1])) == NULL)
        return;
      if (!g_file_test (path, G_FILE_TEST_IS_DIR))
        {
          _qube_policy_data_problem (p->data, file, line, TRUE, "not a directory: %s", path);
          return;
        }
      load_dir (p, file, line, path);
    }
  else if (g_str_equal (directive, "!include-service"))
    {
      g_autofree char *service = NULL;
      g_autofree char *argument = NULL;

      if (!want_params (p, file, line, n_params, 3)
          || !parse_service_argument (p, file, line, fields[1], fields[2], &service, &argument)
          || (path = resolve_include (p, file, line, fields[3])) == NULL)
        return;
      /* "*" is kept as "*" so that the included rules see it as such. */
      load_file (p, file, line, path, fields[1], fields[2]);
    }
  else if (g_str_equal (directive, "!compat-4.0"))
    {
      if (want_params (p, file, line, n_params, 0))
        _qube_policy_data_problem (p->data, file, line, FALSE,
                                   "!compat-4.0 is ignored: legacy /etc/qubes-rpc/policy "
                                   "files are not read");
    }
  else
    _qube_policy_data_problem (p->data, file, line, TRUE, "invalid directive '%s'", directive);
}

/* The old one-service format of !include-service files: `source target
 * action[,param...]`, with $ for @ and $include: for !include. */
static char *
translate_service_line (const char *line)
{
  GString *s = g_string_new (line);

  g_string_replace (s, "$include:", "!include ", 0);
  g_string_replace (s, "$", "@", 0);
  g_string_replace (s, ",", " ", 0);
  return g_string_free (s, FALSE);
}

static void
parse_line (Parser *p, const char *file, guint line, const char *text,
            const char *service_mode, const char *argument_mode)
{
  g_autofree char *translated = NULL;
  g_autoptr(GPtrArray) fields = NULL;

  while (is_blank (*text))
    text++;
  if (*text == '\0' || *text == '#')
    return;
  if (service_mode != NULL)
    text = translated = translate_service_line (text);
  fields = split_fields (text);
  if (fields->len == 0)
    return;
  if (text[0] == '!')
    {
      g_ptr_array_add (fields, NULL);
      handle_directive (p, file, line, (char **) fields->pdata, fields->len - 1,
                        service_mode, argument_mode);
      return;
    }
  if (service_mode != NULL)
    {
      /* Put service and argument in front and parse as a full rule. */
      if (fields->len < 3)
        {
          _qube_policy_data_problem (p->data, file, line, TRUE,
                                     "wrong number of fields: expected "
                                     "'source target action[,params]'");
          return;
        }
      g_ptr_array_insert (fields, 0, g_strdup (argument_mode));
      g_ptr_array_insert (fields, 0, g_strdup (service_mode));
    }
  parse_rule (p, file, line, (char **) fields->pdata, fields->len);
}

/* The end of the line starting at `cur`.  Qubes reads policy files in
 * Python's text mode, where "\n", "\r\n" and a lone "\r" each end a line. */
static const char *
line_end (const char *cur, const char *end)
{
  while (cur < end && *cur != '\n' && *cur != '\r')
    cur++;
  return cur;
}

static void
parse_contents (Parser *p, const char *file, const char *buffer, gsize length,
                const char *service_mode, const char *argument_mode)
{
  const char *end = buffer + length;
  const char *cur = buffer;
  guint line = 0;

  while (cur < end)
    {
      const char *eol = line_end (cur, end);
      gsize len = eol - cur;
      g_autofree char *text = NULL;

      line++;
      if (len > QUBE_POLICY_MAX_LINE)
        _qube_policy_data_problem (p->data, file, line, TRUE,
                                   "line is longer than %d bytes", QUBE_POLICY_MAX_LINE);
      else if (memchr (cur, '\0', len) != NULL)
        _qube_policy_data_problem (p->data, file, line, TRUE, "line contains a NUL byte");
      else if (!g_utf8_validate_len (cur, len, NULL))
        _qube_policy_data_problem (p->data, file, line, TRUE, "line is not valid UTF-8");
      else
        {
          text = g_strndup (cur, len);
          parse_line (p, file, line, text, service_mode, argument_mode);
        }
      if (eol < end && *eol == '\r' && eol + 1 < end && eol[1] == '\n')
        eol++;
      cur = eol + 1;
    }
}

void
_qube_policy_parse_buffer (QubePolicyData *data, const char *file,
                           const char *buffer, gsize length,
                           const char *include_base)
{
  Parser p = { data, include_base, g_ptr_array_new_with_free_func (g_free), 0, 0, FALSE };

  parse_contents (&p, file, buffer, length, NULL, NULL);
  data_finish (data, file);
  g_ptr_array_unref (p.stack);
}

void
_qube_policy_parse_dir (QubePolicyData *data, const char *dir)
{
  Parser p = { data, dir, g_ptr_array_new_with_free_func (g_free), 0, 0, FALSE };

  load_dir (&p, NULL, 0, dir);
  data_finish (data, dir);
  g_ptr_array_unref (p.stack);
}
