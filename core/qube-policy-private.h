/* qube-policy-private.h — the policy engine's internal contract.
 *
 * Shared by the parser (qube-policy-parse.c), the evaluator and public
 * objects (qube-policy.c) and the prompt agent (qube-policy-ask.c).
 * Nothing here is exported from libqube-1.
 */
#pragma once

#include "qube-policy.h"

G_BEGIN_DECLS

/* Limits on input: policy files are root-owned, but a mistake (a binary
 * copied into policy.d, includes that multiply) must give a clear problem,
 * not a long stall or a large allocation; the qrexec daemon reads the
 * policy again for every call. */
#define QUBE_POLICY_MAX_LINE 8192
#define QUBE_POLICY_MAX_FILE (16 * 1024 * 1024)
#define QUBE_POLICY_MAX_INCLUDE_DEPTH 32
/* Files read in one policy load, a file included twice counting twice. */
#define QUBE_POLICY_MAX_FILES 1024
/* Bytes read in one policy load, all files together. */
#define QUBE_POLICY_MAX_TOTAL (32 * 1024 * 1024)
/* Problems kept for lint; past them only a count is kept. */
#define QUBE_POLICY_MAX_PROBLEMS 100
#define QUBE_POLICY_ADMIN_NAME "dom0"

typedef enum {
  QUBE_POLICY_TOKEN_NAME,            /* a qube name, in value */
  QUBE_POLICY_TOKEN_ADMINVM,         /* @adminvm, or dom0 */
  QUBE_POLICY_TOKEN_ANYVM,           /* @anyvm: any qube but the admin qube */
  QUBE_POLICY_TOKEN_WILDCARD,        /* *: anything, the admin qube too */
  QUBE_POLICY_TOKEN_DEFAULT,         /* @default: the caller named no target */
  QUBE_POLICY_TOKEN_TAG,             /* @tag:value */
  QUBE_POLICY_TOKEN_TYPE,            /* @type:value */
  QUBE_POLICY_TOKEN_DISPVM,          /* @dispvm: the caller's default disposable */
  QUBE_POLICY_TOKEN_DISPVM_TEMPLATE, /* @dispvm:value */
  QUBE_POLICY_TOKEN_DISPVM_TAG,      /* @dispvm:@tag:value */
} QubePolicyTokenKind;

/* Where a token appears; each kind is valid only in some places. */
typedef enum {
  QUBE_POLICY_CONTEXT_SOURCE = 1 << 0,   /* third column */
  QUBE_POLICY_CONTEXT_TARGET = 1 << 1,   /* fourth column */
  QUBE_POLICY_CONTEXT_REDIRECT = 1 << 2, /* target= and default_target= */
  QUBE_POLICY_CONTEXT_INTENDED = 1 << 3, /* what the caller asked for */
} QubePolicyContext;

typedef struct {
  QubePolicyTokenKind kind;
  char *value; /* the name, tag or class; NULL for bare keywords */
} QubePolicyToken;

typedef struct {
  char *service;  /* NULL: any service */
  char *argument; /* NULL: any argument; else starts with '+' */
  QubePolicyToken source;
  QubePolicyToken target;
  QubePolicyAction action;
  gboolean has_redirect;
  QubePolicyToken redirect; /* target= */
  gboolean has_default_target;
  QubePolicyToken default_target;
  char *user;
  gboolean notify;
  gboolean autostart;
  char *file;
  guint line;
} QubePolicyRule;

/* What parsing collects: the rules in evaluation order and the first
 * QUBE_POLICY_MAX_PROBLEMS problems, then one that counts the others. */
typedef struct {
  GPtrArray *rules;    /* (element-type QubePolicyRule) */
  GPtrArray *problems; /* (element-type QubePolicyProblem) */
  guint n_errors;      /* all of them, listed or not */
  guint n_unlisted;    /* problems past the limit */
  guint n_unlisted_errors;
} QubePolicyData;

void _qube_policy_token_clear (QubePolicyToken *token);
gboolean _qube_policy_token_parse (const char *text, guint contexts,
                                   QubePolicyToken *out, char **why);
gboolean _qube_policy_valid_qube_name (const char *name);
gboolean _qube_policy_valid_service (const char *service);
gboolean _qube_policy_valid_argument (const char *argument);
void _qube_policy_rule_free (QubePolicyRule *rule);

void _qube_policy_data_init (QubePolicyData *data);
void _qube_policy_data_clear (QubePolicyData *data);
void _qube_policy_data_problem (QubePolicyData *data, const char *file,
                                guint line, gboolean is_error,
                                const char *format, ...) G_GNUC_PRINTF (5, 6);

/* Reads every *.policy file of `dir` into `data`. */
void _qube_policy_parse_dir (QubePolicyData *data, const char *dir);
/* Parses one file's contents.  Include directives are resolved against
 * `include_base`; with NULL they are problems (used for untrusted buffers). */
void _qube_policy_parse_buffer (QubePolicyData *data, const char *file,
                                const char *buffer, gsize length,
                                const char *include_base);

QubePolicyProblem *_qube_policy_problem_new (const char *file, guint line,
                                             gboolean is_error,
                                             const char *message);

/* A QubePolicy from one buffer, for validating a file before it is
 * installed and for the fuzzer. */
QubePolicy *_qube_policy_new_from_buffer (const char *file,
                                          const char *buffer, gsize length);

struct _QubePolicyDecision {
  GObject parent_instance;
  QubePolicyAction action;
  char *source;
  char *service;
  char *argument;
  char *requested_target;
  char *target;
  GStrv targets;
  char *default_target;
  char *user;
  gboolean notify;
  gboolean autostart;
  char *file;
  guint line;
  char *reason;
};

QubePolicyDecision *_qube_policy_decision_new (QubePolicyAction action,
                                               const char *source,
                                               const char *service,
                                               const char *argument,
                                               const char *requested_target);
void _qube_policy_decision_set_reason (QubePolicyDecision *self,
                                       const char *format, ...) G_GNUC_PRINTF (2, 3);

G_END_DECLS
