# Freeze manifest of the agent (MicroPython manifest.py syntax): the files agent/package.json
# installs, and nothing else (tests/host/test_host_deploy.py keeps the two equal): the
# agent package less the server side of the ZCL codec, the hal interfaces every board uses
# and the board-independent adapters. A board's manifest (boards/<name>/manifest.py)
# includes this file and adds its own package.
package("agent", files=("__init__.py", "activation.py", "alerts.py", "errors.py",
                        "update.py",
                        "crypto/__init__.py", "crypto/cbor.py", "crypto/cose.py",
                        "crypto/p256.py", "crypto/p256v.py", "crypto/sha256r.py",
                        "crypto/sha256v.py", "crypto/trust.py",
                        "image/__init__.py", "image/delta.py", "image/deltav.py",
                        "image/fmt.py", "image/inflate.py",
                        "image/manifest.py", "image/parser.py",
                        "store/__init__.py", "store/check.py", "store/chunks.py",
                        "store/journal.py",
                        "store/slot.py", "store/state.py", "store/writer.py",
                        "zcl/__init__.py", "zcl/client.py", "zcl/commands.py",
                        "zcl/frames.py", "zcl/inflight.py",
                        "zcl/pager.py", "zcl/session.py", "zcl/streamn.py"),
        base_path="..", opt=3)
package("hal", files=("__init__.py", "flash.py", "boot.py", "clock.py", "bootrec.py"),
        base_path="..", opt=3)
package("boards", files=("__init__.py", "bdev.py", "trust.py"), base_path="..", opt=3)
