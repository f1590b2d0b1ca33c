"""Packet capture as a managed resource, and the command runners it (and `failures`) use.

A *target* says where a command runs. It is one of

- a Mininet node (anything with ``popen(argv, **kwargs) -> subprocess.Popen``; Mininet runs it
  through ``mnexec -da <pid>`` in the node's namespaces),
- a `NetnsExec` (``ip netns exec NAME argv``, in its own session), or
- a callable with the same signature as ``popen``.

`popen_in(target, argv)` starts a process there; `run_in(target, argv)` runs one to completion
and raises `CommandError` (with the exit status and stderr) if it fails; `stop_process` stops a
process we started: a signal to its pid, a bounded wait, then SIGTERM and SIGKILL to its process
group (only when the process leads its own group, so nothing else is hit).

`Capture` runs ``tcpdump -i <intf> -U --immediate-mode -w <dir>/<node>_<intf>.pcap -Z root -n``
in a target, waits (bounded) until tcpdump reports ``listening on`` (it is capturing from then
on), and on `stop` sends SIGINT and waits so the file is complete; tcpdump's counters
(captured / received by filter / dropped by kernel) are returned. `CaptureSet` starts and stops
many together. Both are context managers; a capture that fails to start leaves no process.
"""
from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import subprocess
import time
from contextlib import suppress
from pathlib import Path
from typing import Any, Sequence

from testbed.errors import ConfigError, TestbedError

__all__ = [
    "CommandError", "CaptureError", "NetnsExec", "popen_in", "run_in", "stop_process",
    "Capture", "CaptureSet", "capture_path",
]


class CommandError(TestbedError):
    """A command run in a target failed; carries argv, exit status and stderr."""

    def __init__(self, argv: Sequence[str], returncode: int | None, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        status = "timed out" if returncode is None else f"exited with {returncode}"
        super().__init__(f"{' '.join(self.argv)}: {status}: {stderr.strip()}")


class CaptureError(TestbedError):
    """tcpdump could not be started or stopped cleanly."""


# ---------------------------------------------------------------------------------------------
# Command runners

class NetnsExec:
    """A target running commands in network namespace `name` via ``ip netns exec``.

    `create` makes a new namespace that this object owns: `delete` (or leaving the ``with``
    block) removes it. An object made with the constructor only refers to an existing namespace
    and never deletes it.
    """

    def __init__(self, name: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name or ""):
            raise ConfigError(f"netns: invalid namespace name {name!r}")
        self.name = name
        self.owned = False

    @classmethod
    def create(cls, name: str) -> "NetnsExec":
        """Create namespace `name` (with loopback up) and own it."""
        ns = cls(name)
        _run_root(["ip", "netns", "add", name])
        ns.owned = True
        try:
            run_in(ns, ["ip", "link", "set", "lo", "up"])
        except TestbedError:
            ns.delete()
            raise
        return ns

    def delete(self) -> None:
        """Remove the namespace if this object created it (idempotent)."""
        if self.owned:
            self.owned = False
            _run_root(["ip", "netns", "delete", self.name])

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        """Start `argv` in the namespace (stdout/stderr piped, new session by default)."""
        if isinstance(argv, str):
            raise TypeError("NetnsExec.popen takes an argument list, not a string")
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("start_new_session", True)
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kwargs)

    def __enter__(self) -> "NetnsExec":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.delete()

    def __repr__(self) -> str:
        return f"NetnsExec({self.name!r}{', owned' if self.owned else ''})"


def _run_root(argv: Sequence[str], timeout: float = 10.0) -> str:
    """Run a namespace-management command (``ip netns add/delete``); raise CommandError."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise CommandError(argv, None, str(err)) from err
    if done.returncode != 0:
        raise CommandError(argv, done.returncode, done.stderr)
    return done.stdout


def popen_in(target: Any, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen:
    """Start `argv` in `target` (Mininet node, NetnsExec, or popen-like callable)."""
    popen = getattr(target, "popen", None)
    if popen is None and callable(target):
        popen = target
    if popen is None:
        raise ConfigError(f"target: {target!r} has no popen() and is not callable")
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return popen(list(argv), **kwargs)


def run_in(target: Any, argv: Sequence[str], timeout: float = 10.0) -> str:
    """Run `argv` in `target` to completion and return its stdout; raise CommandError on a
    non-zero exit or after `timeout` seconds (the process is then stopped)."""
    proc = popen_in(target, argv, stdin=subprocess.DEVNULL)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(proc, signal.SIGTERM, 1.0)
        raise CommandError(argv, None, f"no exit after {timeout} s") from None
    if proc.returncode != 0:
        raise CommandError(argv, proc.returncode, _text(err))
    return _text(out)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM,
                 timeout: float = 5.0) -> int | None:
    """Stop a process we started: `sig` to its pid, wait up to `timeout`, then SIGTERM and
    SIGKILL to its process group (if it leads one) with bounded waits. Returns the exit status."""
    for next_sig, group in ((sig, False), (signal.SIGTERM, True), (signal.SIGKILL, True)):
        if proc.poll() is not None:
            return proc.returncode
        _signal(proc, next_sig, group)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout if next_sig == sig else 2.0)
    return proc.poll()


def _signal(proc: subprocess.Popen, sig: int, group: bool) -> None:
    with suppress(ProcessLookupError):
        if group and _leads_group(proc.pid):
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)


def _leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


# ---------------------------------------------------------------------------------------------
# Capture

def capture_path(directory: str | os.PathLike, node: str, intf: str) -> Path:
    """The deterministic pcap path ``<directory>/<node>_<intf>.pcap``."""
    return Path(directory) / f"{node}_{intf}.pcap"


_STAT_RE = re.compile(r"(\d+) packets? (captured|received by filter|dropped by kernel)")
_STAT_KEYS = {"captured": "captured", "received by filter": "received",
              "dropped by kernel": "dropped"}


class Capture:
    """tcpdump on interface `intf` of `target`, writing ``<directory>/<node>_<intf>.pcap``.

    node: name used in the file name (default: ``target.name``). bpf: optional capture filter
    (a string). snaplen: bytes per packet (default: tcpdump's). ready_timeout / stop_timeout:
    bounds, in seconds, on waiting for ``listening on`` and for exit after SIGINT.
    """

    def __init__(self, target: Any, intf: str, directory: str | os.PathLike, *,
                 node: str | None = None, bpf: str | None = None, snaplen: int | None = None,
                 ready_timeout: float = 5.0, stop_timeout: float = 5.0) -> None:
        self.target = target
        self.intf = intf
        self.node = node or getattr(target, "name", None)
        if not self.node:
            raise ConfigError(f"capture: give node= for target {target!r} (it has no .name)")
        self.path = capture_path(directory, self.node, intf)
        self.bpf = bpf
        self.snaplen = snaplen
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen | None = None
        self.stderr = ""
        self.stats: dict[str, int] = {}
        self._interrupted = False

    def argv(self, tcpdump: str = "tcpdump") -> list[str]:
        """The tcpdump command line."""
        argv = [tcpdump, "-i", self.intf, "-U", "--immediate-mode", "-w", str(self.path),
                "-Z", "root", "-n"]
        if self.snaplen:
            argv += ["-s", str(self.snaplen)]
        return argv + ([self.bpf] if self.bpf else [])

    @property
    def running(self) -> bool:
        """True while tcpdump runs."""
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> "Capture":
        """Start tcpdump and wait until it captures; raise CaptureError (no process left)."""
        self._launch()
        self._await_listening()
        return self

    def _launch(self) -> None:
        if self.proc is not None:
            raise CaptureError(f"capture {self.path.name}: already started")
        tcpdump = shutil.which("tcpdump")
        if tcpdump is None:
            raise CaptureError("capture: tcpdump not found on PATH")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = popen_in(self.target, self.argv(tcpdump), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL)

    def _await_listening(self) -> None:
        try:
            self._read_until_listening()
        except BaseException:
            self._terminate()
            raise

    def _read_until_listening(self) -> None:
        fd = self.proc.stderr.fileno()
        deadline = time.monotonic() + self.ready_timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while "listening on" not in self.stderr:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CaptureError(f"capture {self.path.name}: tcpdump not listening after "
                                       f"{self.ready_timeout} s; stderr: {self.stderr!r}")
                if sel.select(timeout=min(left, 0.05)):
                    chunk = os.read(fd, 4096)
                    self.stderr += chunk.decode(errors="replace")
                    if not chunk:
                        self._raise_exited()
                elif self.proc.poll() is not None:
                    self._raise_exited()

    def _raise_exited(self) -> None:
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=1.0)
        raise CaptureError(f"capture {self.path.name}: tcpdump exited "
                           f"({self.proc.returncode}) before capturing: {self.stderr.strip()}")

    def _terminate(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, 1.0)
            self._collect_stderr()

    def stop(self) -> dict[str, int]:
        """SIGINT tcpdump, wait until it has written the file, and return its counters
        (``captured``, ``received``, ``dropped``). Idempotent."""
        self._send_stop()
        return self._finish_stop()

    def _send_stop(self) -> None:
        if self.running and not self._interrupted:
            self._interrupted = True
            _signal(self.proc, signal.SIGINT, group=False)

    def _finish_stop(self) -> dict[str, int]:
        if self.proc is None or self.stats:
            return self.stats
        # One SIGINT only (a second one could cut tcpdump's clean-up short), then a bounded wait.
        self._send_stop()
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=self.stop_timeout)
        returncode = stop_process(self.proc, signal.SIGTERM, 1.0)
        self._collect_stderr()
        self.stats = {_STAT_KEYS[kind]: int(n) for n, kind in _STAT_RE.findall(self.stderr)}
        if returncode not in (0, -signal.SIGINT) or "captured" not in self.stats:
            raise CaptureError(f"capture {self.path.name}: tcpdump did not stop cleanly "
                               f"(exit {returncode}); stderr: {self.stderr.strip()!r}")
        return self.stats

    def _collect_stderr(self) -> None:
        with suppress(ValueError, OSError, subprocess.TimeoutExpired):
            _out, err = self.proc.communicate(timeout=1.0)
            self.stderr += _text(err)

    def __enter__(self) -> "Capture":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Capture({self.path}, running={self.running})"


class CaptureSet:
    """Many captures into one directory, started and stopped together.

    `add` registers captures (they start on `start` or on entering the ``with`` block; a set
    that is already running starts each added capture at once). `stop` stops every capture,
    even if some fail, then raises the first failure.
    """

    def __init__(self, directory: str | os.PathLike, **defaults: Any) -> None:
        self.directory = Path(directory)
        self.defaults = defaults
        self.captures: list[Capture] = []
        self.started = False

    def add(self, target: Any, intf: str, **options: Any) -> Capture:
        """Add a capture of `intf` in `target` (options as for `Capture`)."""
        capture = Capture(target, intf, self.directory, **{**self.defaults, **options})
        if any(c.path == capture.path for c in self.captures):
            raise ConfigError(f"capture: {capture.path.name} is already in this set")
        self.captures.append(capture)
        if self.started:
            capture.start()
        return capture

    @property
    def paths(self) -> list[Path]:
        """The pcap files, in the order the captures were added."""
        return [c.path for c in self.captures]

    def start(self) -> "CaptureSet":
        """Launch every capture, then wait for each to listen; on failure stop them all."""
        self.started = True
        try:
            pending = [c for c in self.captures if c.proc is None]
            for capture in pending:
                capture._launch()
            for capture in pending:
                capture._await_listening()
        except BaseException:
            self._stop_quietly()
            raise
        return self

    def stop(self) -> dict[Path, dict[str, int]]:
        """Stop every capture (SIGINT to all first, then wait); returns counters per file."""
        self.started = False
        for capture in self.captures:
            capture._send_stop()
        results, first_error = {}, None
        for capture in self.captures:
            try:
                results[capture.path] = capture._finish_stop()
            except CaptureError as err:
                first_error = first_error or err
        if first_error is not None:
            raise first_error
        return results

    def _stop_quietly(self) -> None:
        with suppress(CaptureError):
            self.stop()

    def __enter__(self) -> "CaptureSet":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
