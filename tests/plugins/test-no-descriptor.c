/* test-no-descriptor.c — a shared object that is not a plugin: it exports
 * no descriptor. */
int qube_test_not_a_plugin (void);

int
qube_test_not_a_plugin (void)
{
  return 42;
}
