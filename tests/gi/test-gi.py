#!/usr/bin/python3
"""Uses libqube through GObject introspection (Qube-1.0), as a Python admin
daemon would: creates qubes, lists them, reads and changes properties, and
sees the library's errors as GLib.Error."""
import os
import shutil
import sys
import tempfile

import gi
gi.require_version("Qube", "1.0")
from gi.repository import GLib, Qube  # noqa: E402

passed = failed = 0


def check(what, cond):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}", file=sys.stderr)


state = tempfile.mkdtemp(prefix="qube-gi-")
try:
    m = Qube.Manager.new(state)
    check("state dir is the one given", m.get_state_dir() == state)

    t = m.create_vm("TemplateVM", "debian", None, "black")
    a = m.create_vm("AppVM", "work", "debian", "blue")
    check("create returns a Qube.Vm", isinstance(a, Qube.Vm))
    check("class", a.get_klass() == "AppVM")
    check("uuid is a UUID", len(a.get_uuid()) == 36)

    names = [vm.get_name() for vm in m.list_vms()]
    check("list_vms has dom0 and the new qubes, sorted",
          names == ["debian", "dom0", "work"])

    value, is_default, ptype = a.get_property("template")
    check("template property", (value, is_default, ptype)
          == ("debian", False, Qube.PropertyType.VM))

    t.set_property("memory", "800")
    value, is_default, ptype = a.get_property("memory")
    check("memory inherited from the template", (value, is_default) == ("800", True))

    a.set_feature("service.cups", "1")
    check("feature round trip", a.get_feature("service.cups") == "1")
    a.add_tag("created-by-mgmt")
    check("tags", "created-by-mgmt" in a.list_tags())

    # A second manager on the same directory sees the same state.
    m2 = Qube.Manager.new(state)
    check("state persists", m2.lookup("work").get_feature("service.cups") == "1")

    try:
        m.remove_vm("debian")
        check("removing a template in use fails", False)
    except GLib.Error as e:
        check("removing a template in use is IN_USE",
              e.matches(Qube.error_quark(), Qube.Error.IN_USE))
        check("the error names the qube that uses it", "'work'" in e.message)

    try:
        m.create_vm("AppVM", "1bad", "debian", None)
        check("an invalid name fails", False)
    except GLib.Error as e:
        check("an invalid name is INVALID_NAME",
              e.matches(Qube.error_quark(), Qube.Error.INVALID_NAME))

    m.remove_vm("work")
    check("removed", [vm.get_name() for vm in m.list_vms()] == ["debian", "dom0"])
finally:
    shutil.rmtree(state, ignore_errors=True)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
