"""The owner of one bundled-switch process: start it, wait until it is ready, configure it, stop it.

    with SwitchProcess("prog.p4", {1: "s1-eth1", 2: "s1-eth2"}, thrift_port=9090,
                       pcap_dir="pcaps", log_file="logs/s1.log") as sw:
        sw.run_script(open("s1-commands.txt").read())
        ...

The process is started with the simple_switch-shaped command line of `switchd` (see `argv()`),
its stdout and stderr going to `log_file` (a temporary file when None; with `log_console=True`
the per-packet trace goes there too, as with simple_switch `--log-console > log`). `start()`
waits, polling with a timeout, until the process has printed its READY line AND answers
`switch_info` on its control port AND is alive; otherwise it stops what it started and raises
SwitchStartError naming the log file and quoting its end.

Namespaces: give `popen=` a popen-like callable (Mininet's `node.popen`, `NetnsExec(...).popen`)
or `netns="name"` (runs under `ip netns exec name`). The control port listens on 127.0.0.1 of
the switch's own namespace, so the client connects through /proc/<pid>/ns/net of the switch
(root needed when that is not this process's namespace).

`stop()` sends SIGTERM (the switch flushes its pcaps and exits 0), waits, then SIGKILLs the
switch's own process group (only if it leads one, never this process's group).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping

from testbed.errors import ConfigError, TestbedError

from .client import SwitchClient, SwitchConnectionError
from .errors import CommandError

POLL_INTERVAL = 0.02
TAIL_LINES = 15


class SwitchStartError(TestbedError):
    """The switch did not become ready; the message names it and its log file."""

    def __init__(self, name: str, log_path: str, reason: str, tail: str = ""):
        self.name, self.log_path, self.reason = name, log_path, reason
        text = f"switch {name} did not start: {reason} (log: {log_path})"
        if tail:
            text += "\n--- last lines of the log ---\n" + tail
        super().__init__(text)


def port_map(ports) -> dict:
    """{port: ifname} from a mapping, (port, ifname) pairs or 'N@ifname' strings."""
    if isinstance(ports, Mapping):
        items = ports.items()
    else:
        items = [tuple(p.split("@", 1)) if isinstance(p, str) else tuple(p) for p in ports]
    out = {}
    for num, ifname in items:
        num = int(num)
        if num in out:
            raise ConfigError(f"ports: port {num} given twice ({out[num]}, {ifname})")
        out[num] = str(ifname)
    return out


def switch_command() -> list[str]:
    """The command that starts the bundled switch with this Python."""
    return [sys.executable, "-m", "testbed.v1model", "switch"]


class SwitchProcess:
    """One bundled switch process and its control connection."""

    def __init__(self, program, ports, thrift_port: int = 9090, pcap_dir=None, log_file=None, *,
                 log_console: bool = False, trace_file=None, device_id: int = 0, cpu_port: int | None = None,
                 options=(), target_options=(), popen=None, netns: str | None = None,
                 name: str | None = None, command=None):
        if popen is not None and netns is not None:
            raise ConfigError("SwitchProcess: give popen= or netns=, not both")
        self.program = str(program)
        self.ports = port_map(ports)
        self.requested_port = int(thrift_port)
        self.pcap_dir = None if pcap_dir is None else str(pcap_dir)
        self.log_console, self.trace_file = log_console, None if trace_file is None else str(trace_file)
        self.device_id, self.cpu_port = device_id, cpu_port
        self.options, self.target_options = list(options), list(target_options)
        self.popen_fn, self.netns = popen, netns
        self.name = name or f"device{device_id}"
        self.command = list(command) if command is not None else switch_command()
        self._own_log = log_file is None
        self.log_path = str(log_file) if log_file is not None else None
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None           # the switch itself (may differ from proc.pid)
        self.info: dict = {}
        self.client: SwitchClient | None = None
        self.returncode: int | None = None

    # -- the command line ---------------------------------------------------------------------
    def argv(self) -> list[str]:
        """The full command line, as simple_switch would get it."""
        args = list(self.command)
        for num, ifname in sorted(self.ports.items()):
            args += ["-i", f"{num}@{ifname}"]
        if self.pcap_dir is not None:
            args.append(f"--pcap={self.pcap_dir}")
        args += ["--thrift-port", str(self.requested_port), "--device-id", str(self.device_id)]
        if self.log_console:
            args.append("--log-console")
        if self.trace_file is not None:
            args += ["--log-file", self.trace_file]
        if self.cpu_port is not None:
            args += ["--cpu-port", str(self.cpu_port)]
        args += self.options + [self.program]
        if self.target_options:
            args += ["--", *self.target_options]
        return args

    @property
    def thrift_port(self) -> int:
        """The control port (the real one once started, even when 0 was asked for)."""
        return self.info.get("thrift_port", self.requested_port)

    @property
    def trace_path(self) -> str | None:
        """Where `trace_file` really goes (`--log-file F` writes F.txt, as BMv2)."""
        return None if self.trace_file is None else self.trace_file + ".txt"

    # -- life cycle -----------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> "SwitchProcess":
        """Start the process and wait until it is ready; raise SwitchStartError otherwise."""
        if self.proc is not None:
            raise ConfigError(f"switch {self.name}: already started")
        log = self._open_log()
        try:
            self.proc = self._spawn(log)
        except OSError as e:
            log.close()
            raise SwitchStartError(self.name, self.log_path, f"cannot run {self.command[0]}: {e.strerror}") from None
        log.close()
        try:
            self._wait_ready(time.monotonic() + timeout, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _open_log(self):
        if self.log_path is None:
            fd, self.log_path = tempfile.mkstemp(prefix=f"p4sim-{self.name}-", suffix=".log")
            return os.fdopen(fd, "wb")
        try:
            return open(self.log_path, "wb")
        except OSError as e:
            raise SwitchStartError(self.name, self.log_path, f"cannot write the log file: {e.strerror}") from None

    def _spawn(self, log) -> subprocess.Popen:
        kwargs = dict(stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        if self.popen_fn is not None:
            return self.popen_fn(self.argv(), **kwargs)
        prefix = ["ip", "netns", "exec", self.netns] if self.netns is not None else []
        return subprocess.Popen(prefix + self.argv(), start_new_session=True, **kwargs)

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        while self.pid is None:
            self.pid = self._ready_pid()
            if self.pid is not None:
                break
            code = self.proc.poll()
            if code not in (None, 0):      # 0: a launcher that forked the switch (mnexec -d) and left
                self.returncode = code
                raise self._failure(f"the process exited with status {code}")
            if time.monotonic() > deadline:
                raise self._failure(f"no READY line within {timeout} s")
            time.sleep(POLL_INTERVAL)
        self._connect(deadline, timeout)

    def _ready_pid(self) -> int | None:
        with open(self.log_path, "rb") as f:
            for raw in f:
                if raw.startswith(b"READY {"):
                    try:
                        self.info = json.loads(raw[6:])
                    except ValueError:
                        continue
                    return int(self.info["pid"])
        return None

    def _connect(self, deadline: float, timeout: float) -> None:
        """Ask switch_info until it answers with our switch's pid (the port must answer)."""
        while True:
            if not self.running:
                raise self._failure(f"the switch (pid {self.pid}) exited after READY")
            client = SwitchClient(self.thrift_port, timeout=max(1.0, timeout), netns=self.pid)
            try:
                info = client.connect().switch_info()
            except (SwitchConnectionError, CommandError) as e:
                client.close()
                if time.monotonic() > deadline:
                    raise self._failure(f"control port {self.thrift_port} does not answer: {e}") from None
                time.sleep(POLL_INTERVAL)
                continue
            if info.get("pid") != self.pid:
                client.close()
                raise self._failure(f"port {self.thrift_port} is answered by another switch (pid {info.get('pid')})")
            self.client, self.info = client, info
            return

    def _failure(self, reason: str) -> SwitchStartError:
        return SwitchStartError(self.name, self.log_path, reason, self.log_tail())

    def log_tail(self, lines: int = TAIL_LINES) -> str:
        """The last lines of the log file."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 16384))
                text = f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""
        return "\n".join(text.splitlines()[-lines:])

    @property
    def running(self) -> bool:
        """True while the switch process is alive."""
        if self.proc is None:
            return False
        if self.pid is None or self.pid == self.proc.pid:
            return self.proc.poll() is None
        return _alive(self.pid)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL the switch's group; return the exit status
        (None when the switch was not this process's child). Idempotent."""
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.proc is None:
            return self.returncode
        pid = self.pid or self.proc.pid
        if self.running:
            _signal(pid, signal.SIGTERM)
            if not self._wait_gone(pid, timeout):
                _kill_group(pid)
                self._wait_gone(pid, 2.0)
        if self.proc.poll() is None and pid != self.proc.pid:
            _signal(self.proc.pid, signal.SIGKILL)       # a launcher still around
        try:
            self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            pass
        if pid == self.proc.pid:
            self.returncode = self.proc.returncode
        self.proc = None
        if self._own_log and self.returncode in (0, None) and self.log_path and os.path.exists(self.log_path):
            os.remove(self.log_path)
        return self.returncode

    def kill(self) -> int | None:
        """SIGKILL the switch's group at once, as a crash would (pcaps keep only what was flushed,
        at most a second old); reap it and return the exit status."""
        if self.proc is not None and self.running:
            _kill_group(self.pid or self.proc.pid)
        return self.stop(timeout=2.0)

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        if pid == self.proc.pid:
            try:
                self.proc.wait(timeout=timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_INTERVAL)
        return True

    def __enter__(self) -> "SwitchProcess":
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- control --------------------------------------------------------------------------------
    def _client(self) -> SwitchClient:
        if self.client is None:
            raise ConfigError(f"switch {self.name}: not started")
        return self.client

    def cli(self, command: str) -> str:
        """Run one simple_switch_CLI command; raise CommandError when it fails."""
        return self._client().cli(command)

    def run_script(self, text: str) -> list[str]:
        """Run a command file's text, stopping at the first failing line (CommandError 'line N: ...')."""
        return self._client().run_script(text)

    def stats(self) -> dict:
        """Counters: received, sent, program_drops, parser_errors, failures, ports {...}, ..."""
        return self._client().stats()

    def request(self, command: str) -> dict:
        """The switch's whole reply object ({ok, output, error[, data]}); never raises CommandError."""
        return self._client().request(command)

    def __repr__(self) -> str:
        return f"SwitchProcess({self.name!r}, pid={self.pid}, thrift_port={self.thrift_port})"


def _alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:stat.rindex(b")") + 3] != b"Z"


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _kill_group(pid: int) -> None:
    """SIGKILL the process group `pid` leads; just `pid` if it leads none (never our own group)."""
    try:
        leads = os.getpgid(pid) == pid and pid != os.getpgrp()
    except ProcessLookupError:
        return
    try:
        if leads:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
