"""What every traffic tool shares: stop signals, status lines, the CSV log, exit codes.

Standard library only, so tools start fast inside test hosts.

Log file format (one per tool process; ``-`` = stdout)::

    # testbed-log {"tool": ..., "mode": ..., "version": 1, "fields": {name: description},
    #              "args": {...}, "start_ns": ..., "host": ...}        <- one line of JSON
    name1,name2,...                                                    <- CSV header
    v1,v2,...                                                          <- one row per record
    # summary {...}                                                    <- one line of JSON, last

``pandas.read_csv(path, comment="#")`` reads the rows; `testbed.traffic.read_log` reads all
three parts. Timestamps ending in ``_ns`` are nanoseconds since the Unix epoch (CLOCK_REALTIME,
shared by all network namespaces of one kernel and comparable with pcap timestamps).

Status lines go to stderr, one JSON object each: ``ready {...}`` once the tool is set up (bound,
listening or connected) and ``summary {...}`` at exit. Harnesses wait for ``ready`` with a
timeout (`testbed.traffic.wait_ready`).

Exit codes: `EXIT_OK` 0 (everything measured went well), `EXIT_FAILED` 1 (the run completed but
what it measured failed: a connection reset, flows incomplete), `EXIT_USAGE` 2 (bad arguments,
from argparse), `EXIT_ERROR` 3 (the tool could not run, e.g. the address could not be bound).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import signal
import socket
import sys
import time
import traceback
from typing import Any, Callable, Mapping, Sequence, TextIO

LOG_MAGIC = "testbed-log"
LOG_VERSION = 1
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ERROR = 0, 1, 2, 3


class Stopped(Exception):
    """Raised in the main thread by the first SIGTERM or SIGINT (see `install_stop_handlers`)."""


class ToolError(Exception):
    """The tool cannot do its job (bad address, bind failure); reported with exit code 3."""


_stop_requested = False


def install_stop_handlers() -> None:
    """Make the first SIGTERM/SIGINT raise `Stopped`; later ones are ignored so that the
    tool can flush its log and write its summary undisturbed."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _on_stop_signal)


def _on_stop_signal(signum: int, _frame: Any) -> None:
    global _stop_requested
    if _stop_requested:
        return
    _stop_requested = True
    raise Stopped(signal.Signals(signum).name)


def status(kind: str, **fields: Any) -> None:
    """Write one status line ``<kind> <json>`` to stderr and flush it."""
    sys.stderr.write(f"{kind} {json.dumps(fields, sort_keys=True)}\n")
    sys.stderr.flush()


def run_main(body: Callable[[], int]) -> int:
    """Run a tool body with stop handlers installed; map `ToolError`/`OSError` during set-up
    to exit code 3 with an ``error`` status line."""
    install_stop_handlers()
    try:
        return body()
    except Stopped:
        status("summary", stopped=True, note="stopped before the log was opened")
        return EXIT_OK
    except ToolError as err:
        status("error", message=str(err))
        return EXIT_ERROR
    except Exception as err:  # an unexpected bug: show it, but keep the exit code contract
        traceback.print_exc()
        status("error", message=f"{type(err).__name__}: {err}")
        return EXIT_ERROR


def now_ns() -> int:
    """Wall-clock nanoseconds (CLOCK_REALTIME), the timestamp of every log record."""
    return time.time_ns()


def resolve_ipv4(where: str, host: str) -> str:
    """Resolve `host` to a dotted IPv4 address or raise ToolError naming `where`."""
    try:
        return socket.gethostbyname(host)
    except OSError as err:
        raise ToolError(f"{where}: cannot resolve {host!r}: {err}") from err


class CsvLog:
    """The tool's log file: metadata comment, CSV header, rows, and a summary comment.

    Rows are buffered and flushed every `flush_interval` seconds (when a row is written or the
    tool's loop calls `tick`) and on `close`.
    Use as a context manager; `close` is idempotent.
    """

    def __init__(self, path: str, tool: str, mode: str, fields: Mapping[str, str],
                 args: Mapping[str, Any], flush_interval: float = 1.0) -> None:
        self.fields = tuple(fields)
        self._file = self._open(path)
        self._own_file = path != "-"
        self._writer = csv.writer(self._file, lineterminator="\n")
        self._flush_interval_ns = int(flush_interval * 1e9)
        self._last_flush = time.monotonic_ns()
        self.rows_written = 0
        meta = {"tool": tool, "mode": mode, "version": LOG_VERSION, "fields": dict(fields),
                "args": dict(args), "start_ns": now_ns(), "host": socket.gethostname(),
                "pid": os.getpid()}
        self._file.write(f"# {LOG_MAGIC} {json.dumps(meta, sort_keys=True)}\n")
        self._writer.writerow(self.fields)
        self.flush()

    @staticmethod
    def _open(path: str) -> TextIO:
        if path == "-":
            return sys.stdout
        try:
            return open(path, "w", encoding="utf-8", buffering=io.DEFAULT_BUFFER_SIZE * 16)
        except OSError as err:
            raise ToolError(f"--log: cannot open {path!r}: {err}") from err

    def row(self, *values: Any) -> None:
        """Append one record (values in field order; None is written as an empty cell)."""
        self._writer.writerow(["" if v is None else v for v in values])
        self.rows_written += 1
        self.tick()

    def tick(self) -> None:
        """Flush if `flush_interval` has passed since the last flush (call from idle loops)."""
        if time.monotonic_ns() - self._last_flush >= self._flush_interval_ns:
            self.flush()

    def flush(self) -> None:
        """Push buffered rows to the file."""
        self._file.flush()
        self._last_flush = time.monotonic_ns()

    def summary(self, **fields: Any) -> None:
        """Write the ``# summary {...}`` line, flush, and echo it as a status line."""
        fields = {"end_ns": now_ns(), "rows": self.rows_written, **fields}
        self._file.write(f"# summary {json.dumps(fields, sort_keys=True)}\n")
        self.flush()
        status("summary", **fields)

    def close(self) -> None:
        """Flush and close (stdout is flushed, not closed)."""
        if self._file is None:
            return
        self.flush()
        if self._own_file:
            self._file.close()
        self._file = None

    def __enter__(self) -> "CsvLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# Argument helpers shared by the tools

def positive_float(text: str) -> float:
    """argparse type: a float > 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a float >= 0."""
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an int >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def uint32(text: str) -> int:
    """argparse type: an int in 0..2**32-1 (flow ids)."""
    value = int(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be in 0..{2**32 - 1}, got {text}")
    return value


def port_number(text: str) -> int:
    """argparse type: a UDP/TCP port, 0..65535 (0 = let the kernel choose)."""
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 0..65535, got {text}")
    return value


def add_log_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--log`` and ``--flush-interval``."""
    parser.add_argument("--log", default="-", metavar="PATH",
                        help="CSV log file (default: stdout)")
    parser.add_argument("--flush-interval", type=positive_float, default=1.0, metavar="S",
                        help="flush the log at least this often (default: 1 s)")


def args_for_log(args: argparse.Namespace, skip: Sequence[str] = ("func",)) -> dict[str, Any]:
    """The parsed arguments as a JSON-friendly dict, for the log's metadata line."""
    return {k: v for k, v in vars(args).items() if k not in skip}


class Deadline:
    """A monotonic deadline; `None` seconds means no deadline."""

    def __init__(self, seconds: float | None) -> None:
        self._end = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> float | None:
        """Seconds left (>= 0), or None without a deadline."""
        return None if self._end is None else max(0.0, self._end - time.monotonic())

    def expired(self) -> bool:
        """True once the deadline has passed."""
        return self._end is not None and time.monotonic() >= self._end

    def cap(self, timeout: float | None) -> float | None:
        """The smaller of `timeout` and the time remaining (None = unbounded)."""
        left = self.remaining()
        if left is None:
            return timeout
        return left if timeout is None else min(left, timeout)


def listen_tcp(bind: str, port: int, backlog: int) -> "socket.socket":
    """A non-blocking TCP listening socket; ToolError naming the address if it cannot listen."""
    import socket
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((bind, port))
        sock.listen(backlog)
    except OSError as err:
        sock.close()
        raise ToolError(f"cannot listen on TCP {bind or '0.0.0.0'}:{port}: {err}") from err
    sock.setblocking(False)
    return sock

