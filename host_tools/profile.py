"""Product profiles: one TOML file that says what a product is, so sign and verify need no
long list of options each time. Options given on the command line override it.

    manufacturer = 0x1234          # manufacturer code (u16)
    image_type = 0x0001            # image type (u16)
    hw_min = 2                     # hardware versions the images support (u16 each)
    hw_max = 5
    hw = 3                         # the hardware version verify plays (default hw_min)
    sector_size = 4096             # flash sector / image sector (power of two, 256..65536)
    slot_size = 0x84000            # bytes of one firmware slot, meta area included
    meta_size = 0x4000             # the slot's meta area (default: room for its table)
    key = "keys/release.pem"       # signing key (sign)
    public = ["keys/release.pub"]  # trusted signing keys (verify): a path or a list
    supplier_key = "keys/sup.pem"  # GBCS supplier key (sign)
    supplier_public = "keys/sup.pub"  # supplier key a device requires (verify)

Relative paths are relative to the profile's directory. Unknown keys are refused, so a typo
is not silently ignored. Without a profile, verify plays the default device: the unix
board's layout (boards/unix/layout.py).
"""
import os
import sys

from agent.image import fmt
from host_tools.cli import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

U16 = 0xFFFF
SLOT_MAX = 64 << 20   # largest slot verify emulates (the flash is held in RAM)
SLOT_MIN = 2 * fmt.MIN_SECTOR

# key: (kind, description); kinds: u16, sector, slot, path, paths
KEYS = {
    "manufacturer": ("u16", "manufacturer code"),
    "image_type": ("u16", "image type"),
    "hw_min": ("u16", "lowest hardware version the images support"),
    "hw_max": ("u16", "highest hardware version the images support"),
    "hw": ("u16", "hardware version of the device verify plays (default hw_min)"),
    "sector_size": ("sector", "flash sector and image sector size in bytes"),
    "slot_size": ("slot", "bytes of one firmware slot, its meta area included"),
    "meta_size": ("slot", "bytes of the slot's meta area (default: room for its table)"),
    "key": ("path", "signing key (PEM), used by sign"),
    "public": ("paths", "trusted public keys, used by verify"),
    "supplier_key": ("path", "GBCS supplier signing key, used by sign"),
    "supplier_public": ("path", "supplier public key a device requires, used by verify"),
}


class Profile:
    """The values of a profile file (missing keys are None) and its path."""

    def __init__(self, values=None, path=None):
        self.path = path
        self.values = dict(values or {})

    def get(self, key, default=None):
        v = self.values.get(key)
        return default if v is None else v


def _check(key, v, where):
    kind = KEYS[key][0]
    if kind in ("u16", "sector", "slot"):
        if isinstance(v, bool) or not isinstance(v, int):
            raise InputError("%s: %s must be an integer, not %r" % (where, key, v))
        top = {"u16": U16, "sector": fmt.MAX_SECTOR, "slot": SLOT_MAX}[kind]
        lo = {"u16": 0, "sector": fmt.MIN_SECTOR, "slot": fmt.MIN_SECTOR}[kind]
        if not lo <= v <= top:
            raise InputError("%s: %s %d out of range %d..%d" % (where, key, v, lo, top))
        if kind == "sector" and v & (v - 1):
            raise InputError("%s: sector_size %d is not a power of two" % (where, v))
        return v
    base = os.path.dirname(os.path.abspath(where))
    items = v if kind == "paths" and isinstance(v, list) else [v]
    out = []
    for p in items:
        if not isinstance(p, str) or not p:
            raise InputError("%s: %s must be a file path, not %r" % (where, key, p))
        out.append(os.path.join(base, os.path.expanduser(p)))
    return out if kind == "paths" else out[0]


def load(path):
    """Read and check a profile file; InputError with a one-line reason otherwise."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise InputError("%s: not a TOML profile: %s" % (path, e))
    except UnicodeDecodeError:
        raise InputError("%s: not a TOML profile: not UTF-8 text" % path)
    values = {}
    for k, v in raw.items():
        if k not in KEYS:
            raise InputError("%s: unknown key %r (known: %s)" % (path, k, ", ".join(KEYS)))
        values[k] = _check(k, v, path)
    hmin, hmax = values.get("hw_min"), values.get("hw_max")
    if hmin is not None and hmax is not None and hmin > hmax:
        raise InputError("%s: hw_min %d is above hw_max %d" % (path, hmin, hmax))
    return Profile(values, path)


def add_option(p):
    """The --profile option of a command."""
    p.add_argument("--profile", metavar="PRODUCT.toml",
                   help="product profile: manufacturer, image type, hardware range, sector "
                        "and slot size, key paths (options given here override it)")


def of(args):
    """The profile named by args.profile, or an empty one."""
    path = getattr(args, "profile", None)
    return load(path) if path else Profile()


def fill(args, prof, names):
    """Give each attribute of args in names that is None the profile's value for it (the
    attribute name is the profile key unless names maps attribute -> key)."""
    pairs = names.items() if isinstance(names, dict) else [(n, n) for n in names]
    for attr, key in pairs:
        if getattr(args, attr, None) is None and prof.get(key) is not None:
            setattr(args, attr, prof.get(key))
    return args


def require(args, names, parser_error):
    """Usage error naming the options still missing after flags and profile."""
    missing = ["--" + n.replace("_", "-") for n in names if getattr(args, n, None) is None]
    if missing:
        parser_error("the following arguments are required (as options or in --profile): "
                     + ", ".join(missing))


def default_layout_values():
    """(sector, slot, meta) of the default device: the unix board."""
    from boards.unix import layout as L
    lay = L.layout()
    return lay.sector_size, lay.slot_size, lay.meta_size


def meta_for(sector, slot):
    """Meta area room for a slot: the slot's meta record and the sector table of a deflate
    image filling it, in whole sectors."""
    from agent.store.slot import TABLE_OFF
    entries = slot // sector
    need = TABLE_OFF + entries * fmt.table_entry_size(fmt.ENC_DEFLATE)
    return (need + sector - 1) // sector * sector


def device_layout(sector=None, slot=None, meta=None):
    """The hal.sim.board.Layout verify plays: sector, slot and meta sizes given (profile or flags)
    or those of the default device. InputError when they do not make a slot."""
    from hal.sim.board import Layout
    d_sector, d_slot, d_meta = default_layout_values()
    if sector is None and slot is None and meta is None:
        return Layout(d_sector, d_slot, d_meta)
    sector = d_sector if sector is None else sector
    slot = d_slot if slot is None else slot
    if slot % sector:
        raise InputError("slot size %d is not a multiple of the sector size %d"
                         % (slot, sector))
    if meta is None:
        meta = meta_for(sector, slot)
    if meta % sector or meta < sector:
        raise InputError("meta size %d is not a whole number of %d-byte sectors"
                         % (meta, sector))
    if meta >= slot:
        raise InputError("slot size %d leaves no room beside its %d-byte meta area"
                         % (slot, meta))
    return Layout(sector, slot, meta)


DEFAULT_SECTOR = 4096
SIGN_KEYS = {"manufacturer": "manufacturer", "image_type": "image_type", "hw_min": "hw_min",
             "hw_max": "hw_max", "sector_size": "sector_size", "supplier_key": "supplier_key"}


def apply_sign(args):
    """Fill sign's options from --profile (options given win); the signing key only when
    no --public (an external signer) was given. Sector size: 4096 when neither says."""
    names = dict(SIGN_KEYS)
    if getattr(args, "public", None) is None:
        names["key"] = "key"
    fill(args, of(args), names)
    if args.sector_size is None:
        args.sector_size = DEFAULT_SECTOR
    return args
