/* state-fixture.h — temporary state directories for the unit tests of the
 * qube model and the state store. */
#pragma once

#include <glib.h>

#include "qube-manager.h"

#include <check.h>

/* The state directory and manager of fixture_setup_manager(). */
extern char *fixture_state_dir;
extern QubeManager *fixture_manager;
/* Checked fixture: a manager on a new temporary state directory. */
void fixture_setup_manager (void);
void fixture_teardown_manager (void);

/* Runs a suite; the exit status for the test driver. */
int fixture_run_suite (Suite *suite);

/* A new empty directory under the system temporary directory. */
char *fixture_make_state_dir (void);
/* Removes a directory made by fixture_make_state_dir() and all in it. */
void fixture_remove_state_dir (const char *dir);
/* A manager on `dir`; the test fails when it cannot be opened. */
QubeManager *fixture_open (const char *dir);
/* Creates a qube; the test fails when it cannot be created. */
QubeVm *fixture_create (QubeManager *manager, const char *klass,
                        const char *name, const char *template_name);
/* Sets a property; the test fails when it cannot be set. */
void fixture_set (QubeVm *vm, const char *name, const char *value);
/* The effective value of a property; the test fails on an error. */
char *fixture_get (QubeVm *vm, const char *name, gboolean *is_default);

/* Asserts that setting a property fails with `code` and `message`. */
#define fixture_assert_set_fails(vm, name, value, code, message) \
  fixture_assert_set_fails_at ((vm), (name), (value), (code), (message), __FILE__, __LINE__)
void fixture_assert_set_fails_at (QubeVm *vm, const char *name, const char *value,
                                  int code, const char *message, const char *file,
                                  int line);

/* Asserts that `error` is set, in QUBE_ERROR with `code`, and that its
 * message is exactly `message`; clears it. */
#define fixture_assert_error(error, code, message) \
  fixture_assert_error_at ((error), (code), (message), __FILE__, __LINE__)
void fixture_assert_error_at (GError **error, int code, const char *message,
                              const char *file, int line);
