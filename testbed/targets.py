"""Switch targets, chosen by name from one registry: the bundled v1model target (always
available) and BMv2 (`simple_switch`, when it and `p4c` are installed). Both take the same P4
program and the same runtime-CLI commands; a target turns them into a running switch with a
`.cli(command)` control handle.

    target = target_named("bundled")
    artifact = target.prepare("p4apps/nat.p4", {"REDPLANE_NOFT": "1"}, workdir)
    switch = target.launch(artifact, ports={1: "s1-eth1"}, name="s1", thrift_port=9091, ...)
    switch.cli("table_add ...");  switch.kill();  switch.stop()
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from testbed.errors import ConfigError, TestbedError


class TargetError(TestbedError):
    """A target cannot prepare or start a switch; the message says which and why."""


@dataclass
class Artifact:
    """What a target runs: the program (source or compiled) and how it was made."""

    program: str
    path: str
    defines: dict
    options: list


class Target:
    name = ""

    def available(self) -> tuple[bool, str]:
        """(usable here, why not)."""
        raise NotImplementedError

    def prepare(self, program: str, defines: dict | None, workdir: str) -> Artifact:
        raise NotImplementedError

    def launch(self, artifact: Artifact, ports: dict, *, name: str, thrift_port: int, device_id: int,
               log_file: str, pcap_dir: str | None = None, trace: bool = False, seed: int = 0,
               timeout: float = 20.0):
        raise NotImplementedError

    def describe(self) -> dict:
        return {"name": self.name}


# ---- the bundled target ----------------------------------------------------------------------
class BundledTarget(Target):
    """testbed.v1model's switch process (python -m testbed.v1model switch)."""

    name = "bundled"

    def available(self):
        return True, ""

    def prepare(self, program, defines, workdir):
        if not os.path.isfile(program):
            raise TargetError(f"bundled target: program {program} does not exist")
        options = []
        for key, value in sorted((defines or {}).items()):
            options += ["-D", f"{key}={value}"]
        return Artifact(program, program, dict(defines or {}), options)

    def launch(self, artifact, ports, *, name, thrift_port, device_id, log_file, pcap_dir=None,
               trace=False, seed=0, timeout=20.0):
        from testbed.v1model.process import SwitchProcess
        proc = SwitchProcess(artifact.path, ports, thrift_port, pcap_dir, log_file, log_console=trace,
                             device_id=device_id, options=artifact.options + ["--seed", str(seed)], name=name)
        return proc.start(timeout)

    def describe(self):
        return {"name": self.name, "implementation": "testbed.v1model (Python interpreter of P4_16 source)",
                "python": sys.version.split()[0]}


# ---- BMv2 --------------------------------------------------------------------------------------
class Bmv2Target(Target):
    """BMv2's simple_switch, with programs compiled by p4c-bm2-ss and configured through one
    long-lived simple_switch_CLI session per switch."""

    name = "bmv2"
    TOOLS = ("simple_switch", "simple_switch_CLI", "p4c-bm2-ss")

    def available(self):
        missing = [t for t in self.TOOLS if shutil.which(t) is None]
        return (not missing), ("not on the PATH: " + ", ".join(missing)) if missing else ""

    def prepare(self, program, defines, workdir):
        ok, why = self.available()
        if not ok:
            raise TargetError(f"bmv2 target: {why}")
        base = os.path.splitext(os.path.basename(program))[0]
        tag = "_".join(f"{k}" for k in sorted(defines or {})) or "default"
        out = os.path.join(workdir, f"{base}.{tag}.json")
        cmd = ["p4c-bm2-ss", "--p4v", "16", "-o", out]
        for key, value in sorted((defines or {}).items()):
            cmd += ["-D", f"{key}={value}"]
        cmd.append(program)
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise TargetError(f"p4c-bm2-ss failed on {program}:\n{res.stderr.strip()}")
        return Artifact(program, out, dict(defines or {}), [])

    def launch(self, artifact, ports, *, name, thrift_port, device_id, log_file, pcap_dir=None,
               trace=False, seed=0, timeout=20.0):
        argv = ["simple_switch"]
        for port, intf in sorted(ports.items()):
            argv += ["-i", f"{port}@{intf}"]
        if pcap_dir:
            argv.append(f"--pcap={pcap_dir}")
        argv += ["--thrift-port", str(thrift_port), "--device-id", str(device_id)]
        if trace:
            argv.append("--log-console")
        argv.append(artifact.path)
        return Bmv2Switch(name, argv, thrift_port, log_file).start(timeout)

    def describe(self):
        version = subprocess.run(["simple_switch", "--version"], capture_output=True, text=True)
        return {"name": self.name, "simple_switch": version.stdout.strip() or version.stderr.strip()}


class Bmv2Switch:
    """A simple_switch process and a persistent simple_switch_CLI session to it."""

    PROMPT = "RuntimeCmd: "

    def __init__(self, name, argv, thrift_port, log_file):
        self.name, self.argv, self.thrift_port, self.log_path = name, argv, thrift_port, log_file
        self.proc = None
        self.session = None
        self.lock = threading.Lock()

    def start(self, timeout):
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not _port_open(self.thrift_port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise TargetError(f"switch {self.name} did not start (log: {self.log_path})")
            time.sleep(0.05)
        self.session = subprocess.Popen(["simple_switch_CLI", "--thrift-port", str(self.thrift_port)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, bufsize=1)
        self._read_reply()
        return self

    def _read_reply(self) -> str:
        out = ""
        while not out.endswith(self.PROMPT):
            ch = self.session.stdout.read(1)
            if not ch:
                raise TargetError(f"switch {self.name}: simple_switch_CLI ended")
            out += ch
        return out[: -len(self.PROMPT)]

    def cli(self, command: str) -> str:
        from testbed.v1model.errors import CommandError
        with self.lock:
            self.session.stdin.write(command + "\n")
            self.session.stdin.flush()
            out = self._read_reply().strip()
        if "Error" in out or "Invalid" in out:
            raise CommandError(f"{self.name}: {command}: {out}")
        return out

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def kill(self):
        if self.running:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._close_session()

    def stop(self, timeout: float = 5.0):
        if self.running:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._close_session()

    def _close_session(self):
        if self.session is not None:
            self.session.kill()
            self.session.wait()
            self.session = None


def _port_open(port: int) -> bool:
    import socket
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


TARGETS: dict[str, Target] = {t.name: t for t in (BundledTarget(), Bmv2Target())}


def target_named(name: str) -> Target:
    try:
        target = TARGETS[name]
    except KeyError:
        raise ConfigError(f"target: must be one of {', '.join(TARGETS)}, got {name!r}") from None
    ok, why = target.available()
    if not ok:
        raise ConfigError(f"target: {name} is not usable here ({why}); the bundled target always is")
    return target
