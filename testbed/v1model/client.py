"""Client of the bundled switch's control port, in the simple_switch_CLI language.

Command line (a stand-in for `simple_switch_CLI`):

    python -m testbed.v1model cli [--thrift-port 9090] [--thrift-ip 127.0.0.1] [FILE]
    p4sim-cli --thrift-port 9090 < s1-commands.txt

Reads commands from FILE, or from stdin (with a `RuntimeCmd: ` prompt when stdin is a terminal).
Blank lines and lines starting with `#` or `//` are skipped; `EOF`, `exit` and `quit` end the
input. Each command's output is printed to stdout as simple_switch_CLI prints it; a failed command
prints `FILE:LINE: error: MESSAGE` to stderr and the later commands still run. Exit status: 0 all
commands succeeded, 1 at least one failed (simple_switch_CLI would exit 0 there), 2 the switch
cannot be reached or the connection was lost (the message names host:port), 64 bad usage.
`--netns NAME|PATH` connects from inside a network namespace (e.g. a switch started with
`ip netns exec`); `--json`/`--pre` are accepted and ignored (the switch knows its program).

From Python:

    with SwitchClient(9090) as c:
        c.cli("table_add ipv4_lpm ipv4_forward 10.0.1.1/32 => 00:00:0a:00:01:01 1")
        c.run_script(open("s1-commands.txt").read())
        c.switch_info()["ports"]

The wire protocol is described in `testbed.v1model.switchd`.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import socket
import sys
import threading

from testbed.errors import TestbedError

from .errors import CommandError

EXIT_OK, EXIT_FAILED, EXIT_CONNECT, EXIT_USAGE = 0, 1, 2, 64
CLONE_NEWNET = 0x40000000
END_COMMANDS = {"EOF", "exit", "quit"}


class SwitchConnectionError(TestbedError):
    """The control port cannot be reached, or the connection broke; names host:port."""


class SwitchClient:
    """A connection to one switch's control port (TCP, one JSON reply line per command)."""

    def __init__(self, port: int = 9090, host: str = "127.0.0.1", timeout: float = 10.0, netns=None):
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port, self.timeout, self.netns = port, timeout, netns
        self.address = f"{self.host}:{self.port}"
        self._sock = None
        self._pending = b""

    # -- connection -------------------------------------------------------------------------
    def connect(self) -> "SwitchClient":
        """Open the connection (done by the first command if not called)."""
        if self._sock is None:
            try:
                self._sock = _connect((self.host, self.port), self.timeout, self.netns)
            except OSError as e:
                where = f" in network namespace {self.netns}" if self.netns is not None else ""
                raise SwitchConnectionError(f"cannot connect to the switch at {self.address}{where}: "
                                            f"{e.strerror or e}") from None
        return self

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self._pending = b""

    def __enter__(self) -> "SwitchClient":
        return self.connect()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- commands -----------------------------------------------------------------------------
    def request(self, command: str) -> dict:
        """Send one command line; return the switch's reply object ({ok, output, error, ...})."""
        if "\n" in command or "\r" in command:
            raise CommandError(f"one command per request, got several lines: {command!r}")
        self.connect()
        try:
            self._sock.sendall(command.encode() + b"\n")
            line = self._read_line()
        except socket.timeout:
            self.close()
            raise SwitchConnectionError(f"no reply from the switch at {self.address} within {self.timeout} s "
                                        f"to {command!r}") from None
        except OSError as e:
            self.close()
            raise SwitchConnectionError(f"lost the connection to the switch at {self.address}: "
                                        f"{e.strerror or e}") from None
        try:
            reply = json.loads(line)
        except ValueError:
            self.close()
            raise SwitchConnectionError(f"{self.address} does not speak the bundled switch's control "
                                        f"protocol (is it a BMv2 Thrift server?)") from None
        return reply

    def _read_line(self) -> bytes:
        while b"\n" not in self._pending:
            chunk = self._sock.recv(1 << 16)
            if not chunk:
                raise ConnectionResetError(0, "the switch closed the connection")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line

    def cli(self, command: str) -> str:
        """Run one command; return what simple_switch_CLI would print; raise CommandError."""
        reply = self.request(command)
        if not reply.get("ok"):
            raise CommandError(reply.get("error") or f"{command}: failed")
        return reply.get("output") or ""

    def run_script(self, text: str, stop_on_error: bool = True) -> list:
        """Run a command file's text. With stop_on_error, raise CommandError('line N: ...') at the
        first failure and return the outputs otherwise; without, return one reply object per
        command line (skipped lines are left out) and never raise CommandError."""
        results = []
        for number, command in commands_of(text):
            if command.split()[0] in END_COMMANDS:
                break
            if stop_on_error:
                try:
                    results.append(self.cli(command))
                except CommandError as e:
                    raise CommandError(f"line {number}: {e}") from None
            else:
                results.append(dict(self.request(command), line=number, command=command))
        return results

    def switch_info(self) -> dict:
        """pid, thrift_port, device_id, ports {"N": ifname}, cpu_port, program, ..."""
        return self._data("switch_info")

    def stats(self) -> dict:
        """received, sent, program_drops, parser_errors, failures, unknown_port_drops, ports {...}."""
        return self._data("stats")

    def _data(self, command: str) -> dict:
        reply = self.request(command)
        if not reply.get("ok") or "data" not in reply:
            raise CommandError(reply.get("error") or f"{command}: the switch gave no data")
        return reply["data"]


def commands_of(text: str):
    """(line number, command) for every line that is not blank or a comment."""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "//")):
            yield number, stripped


# ---------------------------------------------------------------------------------------------
# Connecting from inside another network namespace


def netns_path(netns) -> str:
    """A namespace file for `netns`: a pid (its /proc/PID/ns/net), a path, or a name of `ip netns`."""
    if isinstance(netns, int):
        return f"/proc/{netns}/ns/net"
    if str(netns).startswith("/"):
        return str(netns)
    return f"/run/netns/{netns}"


def same_netns(path: str) -> bool:
    """True when `path` is the network namespace this process is in."""
    try:
        a, b = os.stat(path), os.stat("/proc/self/ns/net")
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _connect(address, timeout: float, netns) -> socket.socket:
    if netns is None or same_netns(netns_path(netns)):
        return socket.create_connection(address, timeout)
    return _connect_in_netns(netns_path(netns), address, timeout)


def _connect_in_netns(path: str, address, timeout: float) -> socket.socket:
    """Connect from a helper thread that has joined namespace `path`: the socket stays in that
    namespace, the rest of this process does not move (setns affects the calling thread only)."""
    result: dict = {}

    def work():
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({path}): {os.strerror(err)}")
            finally:
                os.close(fd)
            result["sock"] = socket.create_connection(address, timeout)
        except OSError as e:
            result["error"] = e

    thread = threading.Thread(target=work, name="netns-connect", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["sock"]


# ---------------------------------------------------------------------------------------------
# The simple_switch_CLI stand-in


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="p4sim-cli", description="simple_switch_CLI for the bundled switch: "
                                "runs commands from FILE or stdin against the switch's control port.")
    p.add_argument("file", nargs="?", metavar="FILE", help="command file (default: stdin)")
    p.add_argument("--thrift-port", type=int, default=9090, metavar="P", help="control port (default 9090)")
    p.add_argument("--thrift-ip", default="127.0.0.1", metavar="IP", help="switch address (default 127.0.0.1)")
    p.add_argument("--netns", metavar="NAME|PATH", help="connect from inside this network namespace")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds to wait for each reply")
    p.add_argument("--json", metavar="FILE", help="ignored: the switch reads its own program")
    p.add_argument("--pre", metavar="TYPE", help="ignored: the switch has one packet replication engine")
    return p


class _UsageError(Exception):
    pass


def main(argv=None) -> int:
    """Run a command file against a switch; return the exit status described in the docstring."""
    parser = build_parser()
    parser.error = _raise_usage
    try:
        args = parser.parse_args(argv)
        source, lines = _input(args.file)
    except _UsageError as e:
        print(f"p4sim-cli: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    for option, value in (("--json", args.json), ("--pre", args.pre)):
        if value is not None:
            print(f"p4sim-cli: warning: {option} ignored: the switch reads its own program", file=sys.stderr)
    client = SwitchClient(args.thrift_port, args.thrift_ip, args.timeout, args.netns)
    try:
        client.connect()
        return _run(client, source, lines)
    except SwitchConnectionError as e:
        print(f"p4sim-cli: error: {e}", file=sys.stderr)
        return EXIT_CONNECT
    finally:
        client.close()


def _raise_usage(message):
    raise _UsageError(message)


def _input(path):
    if path is None or path == "-":
        if sys.stdin.isatty():
            return "<stdin>", _prompted()
        return "<stdin>", sys.stdin
    try:
        with open(path, encoding="utf-8") as f:
            return path, f.read().splitlines()
    except OSError as e:
        raise _UsageError(f"cannot read {path}: {e.strerror}") from None


def _prompted():
    while True:
        try:
            yield input("RuntimeCmd: ")
        except EOFError:
            return


def _run(client: SwitchClient, source: str, lines) -> int:
    failed = False
    for number, line in enumerate(lines, 1):
        command = line.strip()
        if not command or command.startswith(("#", "//")):
            continue
        if command.split()[0] in END_COMMANDS:
            break
        if command.split()[0] == "shell":
            print(f"{source}:{number}: error: shell: not supported by this client", file=sys.stderr)
            failed = True
            continue
        reply = client.request(command)
        if reply.get("ok"):
            if reply.get("output"):
                print(reply["output"], flush=True)
        else:
            print(f"{source}:{number}: error: {reply.get('error')}", file=sys.stderr, flush=True)
            failed = True
    return EXIT_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
