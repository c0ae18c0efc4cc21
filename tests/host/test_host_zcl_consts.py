"""The pager's frame layout and limits are private const()s (inlined by mpy-cross, no
module globals on the device), declared again in each module that uses them: the pager,
its request ring (agent.zcl.inflight) and its native loop (agent.zcl.streamn). Each name
must mean the same wherever it is declared."""
import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONST = re.compile(r"^(_[A-Z][A-Z0-9_]*) = const\((.+?)\)", re.M)


def _declared():
    out = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "agent", "zcl", "*.py"))):
        with open(path) as f:
            for name, value in CONST.findall(f.read()):
                out.setdefault(name, {})[os.path.basename(path)] = eval(value, {})
    return out


def test_private_consts_agree_across_the_pager_modules():
    shared = {n: v for n, v in _declared().items() if len(v) > 1}
    # the layout of a block response and the ring's size are among them
    assert {"_SEQ", "_OFF", "_LEN", "_GAPS", "_SLOTS", "_LOW"} <= set(shared), sorted(shared)
    for name, where in shared.items():
        assert len(set(where.values())) == 1, (name, where)
