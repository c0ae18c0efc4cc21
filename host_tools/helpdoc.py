"""The README's command reference, made from otatool's own help texts.

    python -m host_tools.helpdoc            rewrite the reference in README.md
    python -m host_tools.helpdoc --check    exit 1 when README.md's reference is stale

The reference sits between the BEGIN and END marker lines; everything else in the README is
left as it is. Help is rendered 100 columns wide, so the text does not depend on the
terminal it is made in.
"""
import argparse
import contextlib
import io
import os
import sys

BEGIN = "<!-- command reference: made by python -m host_tools.helpdoc; do not edit -->"
END = "<!-- end of command reference -->"
WIDTH = "100"
README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def _help(parser):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        parser.print_help()
    # defaults under this checkout are shown relative to it, so the text is the same in any
    text = buf.getvalue().replace(os.path.dirname(README) + os.sep, "")
    return text.rstrip() + "\n"


def reference():
    """The reference as Markdown: otatool's help, then each command's."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        from host_tools import cli
        ap = cli.build_parser()
        parts = ["### otatool\n\n```\n" + _help(ap) + "```\n"]
        for action in ap._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    parts.append("### otatool %s\n\n```\n%s```\n" % (name, _help(sub)))
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
    return "\n".join(parts)


def splice(text, ref):
    """text with the part between the markers replaced by ref; ValueError without them."""
    try:
        a = text.index(BEGIN) + len(BEGIN)
        b = text.index(END, a)
    except ValueError:
        raise ValueError("the README has no %r ... %r markers" % (BEGIN, END))
    return text[:a] + "\n\n" + ref + "\n" + text[b:]


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m host_tools.helpdoc",
                                 description="Make or check the README's command reference.")
    ap.add_argument("--check", action="store_true",
                    help="only check: exit 1 when the reference differs from the help texts")
    ap.add_argument("readme", nargs="?", default=README, help="the README to update")
    a = ap.parse_args(argv)
    with open(a.readme, encoding="utf-8") as f:
        text = f.read()
    try:
        new = splice(text, reference())
    except ValueError as e:
        sys.stderr.write("helpdoc: %s\n" % e)
        return 1
    if a.check:
        if new != text:
            sys.stderr.write("helpdoc: %s: the command reference is stale (run python -m "
                             "host_tools.helpdoc)\n" % a.readme)
            return 1
        return 0
    if new != text:
        with open(a.readme, "w", encoding="utf-8") as f:
            f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
