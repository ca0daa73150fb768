/* qube-error.c — the QUBE_ERROR quark. */
#include "config.h"

#include "qube-error.h"

G_DEFINE_QUARK (qube-error-quark, qube_error)
