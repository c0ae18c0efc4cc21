"""otatool inspect: show what any ZigBee OTA file holds. The file is read by
host_tools/imageinfo.py; this module prints its report, as text or JSON."""
import json

from host_tools.imageinfo import ENCODING_NAMES, inspect_bytes, plain_int
# host_tools/verify.py reads vendor wrappers and names tags through this module


def _hex(v, digits):
    return ("0x%0" + str(digits) + "X") % v if plain_int(v) is not None else _text(v)


def _text(v):
    """A JSON-ready value as one short line of text."""
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True)


def format_text(info, verbose=False, data=None):
    """A human-readable report of inspect_bytes(). verbose (with the file's bytes in
    data): the first bytes of each element too."""
    out = []
    add = out.append
    if "file" in info:
        add("file                %s (%d bytes)" % (info["file"], info["file_size"]))
    w = info.get("wrapper")
    if w is not None:
        add("wrapper             %s: OTA file at offset %d, %d bytes; %d bytes after it"
            % (w["description"], w["offset"], w["length"], w["suffix_length"]))
    _header_lines(info["header"], add)
    _image_lines(info, add, verbose, data)
    if info["manifest"] is not None:
        _manifest_lines(info["manifest"], add)
    if info.get("delta") is not None:
        _delta_lines(info["delta"], add, verbose)
    t = info["trailer"]
    if t is not None:
        add("GBCS trailer        offset %d, force-replace %d" % (t["offset"], t["force_replace"]))
        add("  signature         %s" % t["signature"])
    else:
        add("GBCS trailer        none")
    for w in info["errors"]:
        add("error: %s" % w)
    for w in info["warnings"]:
        add("warning: %s" % w)
    return "\n".join(out)


def _header_lines(hd, add):
    add("OTA header          version 0x%04X, %d bytes, field control 0x%04X"
        % (hd["header_version"], hd["header_length"], hd["field_control"]))
    add("  manufacturer      %s" % _hex(hd["manufacturer_code"], 4))
    add("  image type        %s" % _hex(hd["image_type"], 4))
    add("  file version      %s" % _hex(hd["file_version"], 8))
    add("  stack version     %d" % hd["stack_version"])
    add("  header string     %r" % hd["header_string"])
    add("  total image size  %d" % hd["total_image_size"])
    if hd["hw_min"] is not None:
        add("  hardware          %s..%s" % (_hex(hd["hw_min"], 4), _hex(hd["hw_max"], 4)))
    if hd["security_credential_version"] is not None:
        add("  security cred.    %d" % hd["security_credential_version"])
    if hd["upgrade_file_destination"] is not None:
        add("  destination       %s" % hd["upgrade_file_destination"])


def _image_lines(info, add, verbose, data):
    mi = info["manufacturer_image"]
    add("manufacturer image  offset %d, %d bytes" % (mi["offset"], mi["length"]))
    add("  sha256            %s" % info["manufacturer_image_sha256"])
    for e in info["elements"]:
        tag = "------" if e["tag"] is None else "0x%04X" % e["tag"]
        name = e["name"]
        if e.get("known_as"):
            name += " (%s)" % e["known_as"]
        add("  %s %-22s offset %d, %d bytes" % (tag, name, e["offset"], e["length"]))
        if verbose and data is not None:
            first = data[e["data_offset"]:e["data_offset"] + min(e["length"], 16)]
            add("         first bytes %s" % bytes(first).hex())


def _manifest_lines(m, add):
    c = m["cose"]
    add("manifest            %d bytes, COSE_Sign1 alg %s, key id %s"
        % (c["length"], c["alg_name"] or _text(c["alg"]), _text(c["kid"])))
    for k, v in m.items():
        if k == "cose":
            continue
        if k == "encoding" and plain_int(v) is not None:
            v = "%s (%s)" % (v, ENCODING_NAMES.get(v, "unknown"))
        elif k in ("version", "crc32", "base_version"):
            v = _hex(v, 8)
        elif k in ("manufacturer", "image_type", "hw_min", "hw_max"):
            v = _hex(v, 4)
        add("  %-17s %s" % (k, _text(v)))


_RUNS_SHOWN = 48   # sector runs shown without -v
_RUNS_PER_LINE = 6


def _delta_lines(d, add, verbose):
    from host_tools.deltaimage import runs
    b = d["base"]
    add("delta               needs the old image version %s: %d bytes, sha256 %s"
        % (_hex(b["version"], 8), b["size"], b["sha256"]))
    add("  sectors           %d of %d bytes: %s"
        % (len(d["sectors"]), d["sector_size"],
           ", ".join("%s %d" % kv for kv in d["counts"].items())))
    add("  chunk bytes       %s" % ", ".join("%s %d" % (k, v) for k, v in d["bytes"].items()
                                             if k != "copy"))
    add("  on air            %d bytes (payload and table); raw image %d: %d saved (%.1f %%)"
        % (d["sent"], d["raw"], d["saved_vs_raw"],
           100.0 * d["saved_vs_raw"] / d["raw"] if d["raw"] else 0.0))
    items = runs(d["sectors"])
    shown = items if verbose else items[:_RUNS_SHOWN]
    for i in range(0, len(shown), _RUNS_PER_LINE):
        add("  %-17s %s" % ("modes" if i == 0 else "", ", ".join(shown[i:i + _RUNS_PER_LINE])))
    if len(shown) < len(items):
        add("  %-17s ... %d more runs (-v or --json: every sector)" % ("", len(items) - len(shown)))


EXAMPLES = """examples:
  otatool inspect fw-v2.ota
  otatool inspect --json fw-v2.ota | jq .manifest.seq
  otatool inspect ikea-bulb.ota.signed      # shows the IKEA wrapper and the file inside
  otatool inspect --json fw-v2-from-v1.ota | jq .delta.counts

exit status: 0 a readable ZigBee OTA file; 1 an unreadable, truncated or malformed one
(the report is still printed; the reason is on stderr)."""


def register(sub):
    p = sub.add_parser("inspect", help="show the contents of a ZigBee OTA file",
                       description="Show the header, sub-elements, GBCS trailer, manifest and "
                                   "Manufacturer Image SHA-256\nof any ZigBee OTA file, and "
                                   "the vendor wrapper around it (IKEA, Legrand,\nThird "
                                   "Reality) when there is one. For a delta image: the old "
                                   "image it needs,\nthe mode of each sector (runs of copies; "
                                   "-v: all) and the bytes against a raw image.",
                       epilog=EXAMPLES)
    p.add_argument("file", metavar="FILE", help="the file to inspect")
    p.add_argument("--json", action="store_true",
                   help="print JSON (on a rejected file: {\"ok\": false, \"code\", "
                        "\"reason\"})")
    p.set_defaults(func=run_inspect)


def run_inspect(args):
    from host_tools import cli
    with open(args.file, "rb") as f:
        data = f.read()
    try:
        info = inspect_bytes(data)
    except ValueError as e:  # a cut vendor wrapper
        return cli.reject(args, str(e))
    info["file"] = args.file
    info["ok"] = not info["errors"]
    if args.json:
        cli.out(json.dumps(info, indent=2))
    else:
        cli.out(format_text(info, cli.verbosity() > 0, data))
    if info["errors"]:
        return cli.fail(info["errors"][0])
    return 0
