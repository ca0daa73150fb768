#!/usr/bin/python3
"""Pools and volumes through GObject introspection (Qube-1.0), as a Python
admin daemon would use them: the layout of a new AppVM, pools and their
figures, starting and stopping a qube's volumes, import with a progress
callback, revisions, and the library's refusals as GLib.Error.  Needs the
storage-file plugin (QUBE_PLUGIN_PATH, set by the test environment)."""
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


state = tempfile.mkdtemp(prefix="qube-gi-volume-")
try:
    m = Qube.Manager.new(state)
    m.create_vm("TemplateVM", "debian", None, None)
    work = m.create_vm("AppVM", "work", "debian", None)

    volumes = {v.get_name(): v for v in work.list_volumes()}
    check("an AppVM has Qubes' volumes",
          sorted(volumes) == ["kernel", "private", "root", "volatile"])
    check("root is a snapshot of the template's root",
          volumes["root"].get_snap_on_start()
          and volumes["root"].get_source() == "debian/root")
    check("private is kept", volumes["private"].get_save_on_stop())
    check("kernel has no storage", not volumes["kernel"].has_storage())

    pools = [p.get_name() for p in m.list_pools()]
    check("pool default made on first use", pools == ["default"])
    ok, size, usage, mode, location, formats = m.lookup_pool("default").query()
    check("pool figures", ok and size > 0 and mode in ("qcow2", "reflink")
          and location.endswith(os.path.join("pools", "default")))

    devices = work.start_volumes()
    check("started in order with device names",
          [(d.volume, d.devname) for d in devices]
          == [("root", "xvda"), ("private", "xvdb"), ("volatile", "xvdc")])
    check("device paths exist", all(os.path.exists(d.path) for d in devices))
    work.stop_volumes()

    image = os.path.join(state, "in.img")
    with open(image, "wb") as f:
        f.write(b"\x5a" * 65536)
    seen = []
    private = work.get_volume("private")
    private.import_file(image, lambda done, total: seen.append((done, total)))
    check("import reports progress", seen and seen[-1] == (65536, 65536))
    revisions = private.list_revisions()
    check("the replaced data is a kept revision",
          len(revisions) == 1 and revisions[0].name and revisions[0].created > 0)

    try:
        private.resize(1 << 20)
        check("shrinking fails", False)
    except GLib.Error as e:
        check("shrinking is INVALID",
              e.matches(Qube.error_quark(), Qube.Error.INVALID)
              and "shrinking" in e.message)
    try:
        m.remove_pool("default")
        check("removing a pool in use fails", False)
    except GLib.Error as e:
        check("a pool in use is IN_USE and names the volumes",
              e.matches(Qube.error_quark(), Qube.Error.IN_USE)
              and "work:private" in e.message)
finally:
    shutil.rmtree(state, ignore_errors=True)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
