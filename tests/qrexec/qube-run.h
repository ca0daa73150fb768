/* qube-run.h — what a run of the built `qube` command left, for the
 * tests that run it. */
#pragma once

#include <glib.h>

typedef struct {
  int status;    /* exit status */
  char *out;     /* standard output, when captured */
  gsize out_len;
  char *err;     /* standard error */
} Run;

static inline void
run_free (Run *run)
{
  g_free (run->out);
  g_free (run->err);
  g_free (run);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Run, run_free)
