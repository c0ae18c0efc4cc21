"""Every reason code in agent/errors.py is used by the device or host code, so a code that
nothing raises cannot stay (nor come back); and the README names only codes that exist, with
their texts.

A code counts as used in a module of agent/, hal/, boards/ or host_tools/ that imports it
from agent.errors and then reads the name (to raise it, report it or print its text):
importing it alone does not count, nor a comment, a docstring or a test."""
import ast
import os
import re

from agent import errors

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CODE_DIRS = ("agent", "hal", "boards", "host_tools")


def declared():
    """{name: code} of the reason codes, read from agent.errors' table (CODES)."""
    t = errors.CODES.split()
    return dict((t[i], int(t[i + 1])) for i in range(0, len(t), 2))


def _reads(tree):
    """Names a module imports from agent.errors and the names it reads (also as
    errors.NAME after `from agent import errors` or `import agent.errors as E`)."""
    imported = {}  # local name -> name in agent.errors
    modules = set()  # local names bound to the module agent.errors
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "agent.errors":
            for a in node.names:
                imported[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module == "agent":
            modules.update(a.asname or a.name for a in node.names if a.name == "errors")
        elif isinstance(node, ast.Import):
            modules.update(a.asname for a in node.names if a.name == "agent.errors" and a.asname)
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in imported:
            used.add(imported[node.id])
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id in modules):
            used.add(node.attr)
    return used


def uses(root=ROOT, dirs=CODE_DIRS):
    """{name: [files that use it]} over the device and host code, agent/errors.py left out."""
    out = {}
    skip = os.path.join(root, "agent", "errors.py")
    for d in dirs:
        for base, _dirs, files in os.walk(os.path.join(root, d)):
            for f in sorted(files):
                path = os.path.join(base, f)
                if not f.endswith(".py") or path == skip:
                    continue
                with open(path, encoding="utf-8") as fh:
                    tree = ast.parse(fh.read(), path)
                for name in _reads(tree):
                    out.setdefault(name, []).append(os.path.relpath(path, root))
    return out


def test_declared_matches_the_module():
    d = declared()
    assert d["BAD_MAGIC"] == 1 and len(d) > 50
    for name, code in d.items():
        assert getattr(errors, name) == code, name


def test_every_code_is_used():
    u = uses()
    dead = sorted("%s (%d)" % (n, c) for n, c in declared().items() if n not in u)
    assert not dead, "reason codes nothing raises or reports: " + ", ".join(dead)


def test_scan_sees_a_use_and_ignores_an_import_alone(tmp_path):
    pkg = tmp_path / "agent"
    pkg.mkdir()
    (pkg / "a.py").write_text("from agent.errors import OtaError, BAD_MAGIC, BAD_COSE\n"
                              "# BAD_CBOR in a comment\n"
                              "def f():\n    raise OtaError(BAD_MAGIC)\n")
    (pkg / "b.py").write_text("from agent import errors as E\n'''TRUNCATED'''\n"
                              "x = E.BAD_TRAILER\n")
    (pkg / "c.py").write_text("import agent.errors as K\nx = K.ROLLBACK\n"
                              "BAD_KEY = 3\ny = BAD_KEY\n")
    u = uses(str(tmp_path), ("agent",))
    assert sorted(u) == ["BAD_MAGIC", "BAD_TRAILER", "OtaError", "ROLLBACK"]
    assert u["BAD_MAGIC"] == [os.path.join("agent", "a.py")]


def test_readme_names_only_codes_that_exist():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    codes = set(declared().values())
    named = [int(m) for m in re.findall(r"\bE(\d+)\b", text)]
    assert named, "the README names reason codes"
    assert sorted(set(named) - codes) == []
    # quoted refusals read as the device prints them
    quoted = re.findall(r"`E(\d+) ([^`:]+)", text)
    assert quoted
    for code, said in quoted:
        assert " ".join(said.split()) == errors.message(int(code)), code
