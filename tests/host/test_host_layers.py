"""Each layer of the device code imports only the layers below it (docs/architecture.md).

The agent itself depends on no hal or board module: a board hands it objects with hal's
interfaces. hal's drivers may use the agent's self-contained libraries (the reason codes,
the journal's power-safe records, P-256), never its update logic. The emulation (hal/sim)
and the boards sit on top."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# group: the groups it may import (besides itself), lowest layer first
ALLOWED = {
    "agent.errors": ("agent.errtext",),  # the texts, where a build carries them
    "agent.errtext": (),
    "agent.crypto": ("agent.errors",),
    "agent.image": ("agent.errors", "agent.crypto"),
    "agent.store": ("agent.errors", "agent.crypto", "agent.image"),
    "agent.alerts": ("agent.errors", "agent.store"),
    "agent.activation": ("agent.errors", "agent.store", "agent.alerts"),
    "agent.update": ("agent.errors", "agent.crypto", "agent.image", "agent.store",
                     "agent.alerts", "agent.activation"),
    "agent.zcl": ("agent.errors", "agent.image", "agent.store", "agent.alerts",
                  "agent.activation", "agent.update"),
    "hal": ("agent.errors", "agent.store.journal", "agent.crypto.p256"),
}
HIGHER = ("hal.sim", "boards")  # may use anything below; nothing below may use them


def group(mod):
    parts = mod.split(".")
    if parts[0] == "hal":
        return "hal.sim" if parts[1:2] == ["sim"] else "hal"
    if parts[0] == "boards":
        return "boards"
    return ".".join(parts[:2])


def imports():
    """(importing module, imported module) for every device module, lazy imports included."""
    out = []
    for top in ("agent", "hal", "boards"):
        for base, _dirs, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if not f.endswith(".py") or f.startswith("manifest"):
                    continue
                path = os.path.join(base, f)
                mod = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                mod = mod[:-len(".__init__")] if mod.endswith(".__init__") else mod
                with open(path) as fh:
                    tree = ast.parse(fh.read())
                for n in ast.walk(tree):
                    if isinstance(n, ast.ImportFrom) and n.module:
                        for a in n.names:  # `from agent.zcl import device` names a module
                            sub = n.module + "." + a.name
                            out.append((mod, sub if _is_package(sub) or _is_module(sub)
                                        else n.module))
                    elif isinstance(n, ast.Import):
                        out.extend((mod, a.name) for a in n.names)
    return [(a, b) for a, b in out if b.split(".")[0] in ("agent", "hal", "boards")]


def _is_module(mod):
    return os.path.exists(os.path.join(ROOT, *mod.split(".")) + ".py")


def _is_package(mod):
    return os.path.isdir(os.path.join(ROOT, *mod.split(".")))


def allowed(src, dst):
    gs, gd = group(src), group(dst)
    if gs == gd or gs in HIGHER:
        return gd != "boards" or gs == "boards"
    if gd in HIGHER:
        return False
    return any(dst == a or dst.startswith(a + ".") or gd == a for a in ALLOWED[gs])


def test_every_device_module_has_a_layer():
    groups = set(group(a) for a, _b in imports())
    assert groups <= set(ALLOWED) | set(HIGHER), groups - set(ALLOWED) - set(HIGHER)
    assert {"agent.update", "agent.zcl", "hal", "hal.sim"} <= groups


def test_layers_import_only_downwards():
    wrong = sorted("%s imports %s" % (a, b) for a, b in imports()
                   if group(a) != "agent" and not allowed(a, b))
    assert not wrong, "\n".join(wrong)


def test_no_agent_module_imports_hal_or_boards():
    wrong = sorted("%s imports %s" % (a, b) for a, b in imports()
                   if a.startswith("agent.") and b.split(".")[0] in ("hal", "boards"))
    assert not wrong, wrong


@pytest.mark.parametrize("src,dst,ok", [
    ("agent.image.parser", "agent.crypto.cose", True),
    ("agent.crypto.trust", "agent.image.fmt", False),
    ("agent.activation", "agent.zcl.frames", False),
    ("hal.bootrec", "agent.store.journal", True),
    ("hal.flash", "agent.update", False),
    ("agent.update", "hal.sim.nor", False),
    ("hal.sim.board", "agent.update", True),
    ("hal.sim.board", "boards.qemu.board", False),
])
def test_the_rule_itself(src, dst, ok):
    assert allowed(src, dst) == ok
