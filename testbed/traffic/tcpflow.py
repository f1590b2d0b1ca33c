"""Long-lived TCP flows whose survival is verified end to end.

Usage::

    python -m testbed.traffic.tcpflow server --port 5001 [--conns N] [--duration S] [--log PATH]
        [--reverse [--rate MBPS]]
    python -m testbed.traffic.tcpflow client --dst 10.0.2.2 --port 5001 --duration 10 \\
        [--flow 3] [--rate MBPS] [--sport PORT] [--interval 0.1] [--log PATH] [--reverse]

Protocol (all integers network byte order):

1. client -> server hello, 16 bytes, struct ``"!4sHHQ"``: magic b"TBTF", version 1, flags
   (bit 0 = reverse; 0 in the default direction), flow id.
2. client -> server the flow's byte stream for ``--duration`` seconds: byte ``n`` of flow ``f``
   is ``pattern(f)[n % 65521]``, where ``pattern(f) = random.Random(f).randbytes(65521)``
   (a prime length, so shifted or repeated data does not line up by accident). The server checks
   every byte.
3. client shuts down its sending side; the server, at EOF, replies with a 16-byte report,
   struct ``"!4sBBHQ"``: magic b"TBTR", status (0 = every byte matched, 1 = mismatch),
   reserved 0, reserved 0, bytes received; then closes.

With ``--reverse`` (given to both ends; the hello's flag lets the server refuse a client that
disagrees) the stream runs the other way:

2r. server -> client the flow's byte stream (same pattern), at the server's ``--rate``, until
    the client stops it; the client checks every byte.
3r. after ``--duration`` seconds the client shuts down its sending side (the stop request);
    the server, at EOF, stops the stream, sends the 16-byte report (status 0, bytes sent) right
    after the stream's last byte, and closes. The client reads to EOF and takes the last 16
    bytes as the report.

The client survived iff it saw no error or reset, received the report within
``--finish-timeout`` seconds, the report's status is 0 and its byte count equals the bytes the
client sent (reverse: the stream bytes the client received and verified, all of them correct).
Exit status: 0 survived, 1 not (see `testbed.traffic.runtime` for 2 and 3). The server exits 0
iff it finished at least one connection and every connection it accepted ended with a clean EOF
and a verified stream (reverse: a clean stop request and the report sent).

Log rows (both ends): ``time_ns, flow, event, interval_bytes, total_bytes, detail`` with events
``connected`` / ``accepted`` (detail = peer; the server's ``accepted`` row has no flow id
yet, it arrives with the hello), ``interval`` (every ``--interval`` seconds per
open connection: stream bytes sent or received since the previous row), ``eof``, ``report``
(client: detail = ``status=.. bytes=..``), ``reset`` and ``error`` (detail = errno name or
message), ``verify_failed`` (detail = first bad offset), ``incomplete`` (open when the tool
stopped), and ``done`` (detail = ``ok`` or the reason it failed). ``total_bytes`` counts the
stream bytes of the end's own role: sent by the sending end, received by the receiving end.
"""
from __future__ import annotations

import argparse
import errno
import random
import selectors
import socket
import struct
import sys
import time
from dataclasses import dataclass

from testbed.traffic.runtime import (
    CsvLog, Deadline, EXIT_FAILED, EXIT_OK, Stopped, add_log_args, args_for_log, listen_tcp,
    non_negative_float, now_ns, port_number, positive_float, positive_int, resolve_ipv4,
    run_main, status, uint32,
)

HELLO = struct.Struct("!4sHHQ")
HELLO_MAGIC = b"TBTF"
REPORT = struct.Struct("!4sBBHQ")
REPORT_MAGIC = b"TBTR"
VERSION = 1
FLAG_REVERSE = 0x0001       # hello flags: the server sends the stream
PATTERN_LEN = 65521
CHUNK = 65536
MIN_BURST = 4 * 1448        # rate-limited writes are at least four full segments
STATUS_OK, STATUS_MISMATCH = 0, 1

FIELDS = {
    "time_ns": "wall clock of the record (ns since epoch)",
    "flow": "flow id",
    "event": "connected|accepted|interval|eof|report|reset|error|verify_failed|incomplete|done",
    "interval_bytes": "stream bytes since the previous interval row (interval rows)",
    "total_bytes": "stream bytes sent (sending end) or received (receiving end) so far",
    "detail": "peer, errno name, report fields or failure reason",
}


class Pattern:
    """The deterministic byte stream of one flow, readable at any offset."""

    def __init__(self, flow: int) -> None:
        block = random.Random(flow).randbytes(PATTERN_LEN)
        self._data = block * 3  # covers any slice of up to 2 * PATTERN_LEN from any phase
        self._view = memoryview(self._data)

    def slice(self, offset: int, length: int) -> memoryview:
        """`length` (<= CHUNK) stream bytes starting at stream offset `offset`."""
        start = offset % PATTERN_LEN
        return self._view[start:start + length]

    def first_mismatch(self, offset: int, data: bytes) -> int | None:
        """Stream offset of the first byte of `data` (received at `offset`) that is wrong."""
        expected = self.slice(offset, len(data))
        if expected == data:
            return None
        return offset + next(i for i, (a, b) in enumerate(zip(expected, data)) if a != b)


def _errno_name(err: OSError) -> str:
    return errno.errorcode.get(err.errno, str(err)) if err.errno else str(err)


def _is_reset(err: OSError) -> bool:
    return isinstance(err, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError))


class IntervalClock:
    """Ticks every `interval` seconds on an absolute monotonic schedule."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next = time.monotonic() + interval

    def timeout(self) -> float:
        """Seconds to the next tick (>= 0)."""
        return max(0.0, self._next - time.monotonic())

    def due(self) -> bool:
        """True (once per tick) when a tick has passed; skips ticks missed entirely."""
        now = time.monotonic()
        if now < self._next:
            return False
        self._next += self.interval * (1 + int((now - self._next) // self.interval))
        return True


class Pacer:
    """The sending end's rate limit: how many stream bytes may go out now (`rate` in Mbit/s,
    0 = unlimited), in writes of whole segments rather than a trickle of tiny ones."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.start = time.monotonic()

    def budget(self, sent: int) -> int:
        """Bytes the rate limit allows now, given `sent` so far (CHUNK when unlimited)."""
        if not self.rate:
            return CHUNK
        allowed = int(self.rate * 1e6 / 8 * (time.monotonic() - self.start))
        return min(CHUNK, allowed - sent)

    @property
    def burst(self) -> int:
        """Smallest write: a few segments when rate limited, any size otherwise."""
        return MIN_BURST if self.rate else 1

    def delay(self, sent: int) -> float:
        """Seconds until a burst may be written (0 = now)."""
        missing = self.burst - self.budget(sent)
        if missing <= 0:
            return 0.0
        return max(0.0005, missing * 8 / (self.rate * 1e6))


# ---------------------------------------------------------------------------------------------
# Client

class Client:
    """Sends (or, reversed, receives) one flow's verified byte stream for a duration and checks
    the server's report."""

    def __init__(self, args: argparse.Namespace, log: CsvLog) -> None:
        self.args = args
        self.log = log
        self.pattern = Pattern(args.flow)
        self.sent = 0
        self.received = 0           # reverse: stream bytes received and checked
        self.held = b""             # reverse: the last bytes received, possibly the report
        self.bad_offset: int | None = None
        self.last_logged = 0
        self.failure: str | None = None
        self.report: tuple[int, int] | None = None
        self.dst = (resolve_ipv4("--dst", args.dst), args.port)
        self.sock: socket.socket | None = None

    @property
    def stream_bytes(self) -> int:
        """Stream bytes of this end's role: sent, or (reverse) received."""
        return self.received if self.args.reverse else self.sent

    def _connect(self) -> None:
        self.sock = self._socket()
        self.sock.settimeout(self.args.connect_timeout)
        self.sock.connect(self.dst)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        flags = FLAG_REVERSE if self.args.reverse else 0
        self.sock.sendall(HELLO.pack(HELLO_MAGIC, VERSION, flags, self.args.flow))
        self.sock.setblocking(False)
        self._event("connected", "%s:%d" % self.sock.getpeername())

    def _socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if self.args.sport:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.args.bind or self.args.sport:
                sock.bind((self.args.bind, self.args.sport))
        except OSError:
            sock.close()
            raise
        return sock

    def _event(self, event: str, detail: str | None = None, interval_bytes: int | None = None):
        self.log.row(now_ns(), self.args.flow, event, interval_bytes, self.stream_bytes, detail)

    def run(self) -> None:
        """Connect, send (or receive), finish, and record the outcome in `failure` (None =
        survived)."""
        try:
            self._connect()
        except OSError as err:
            self._fail("error", f"connect to {self.dst[0]}:{self.dst[1]}: {_errno_name(err)}")
            return
        try:
            if self.args.reverse:
                self._receive_phase()
            else:
                self._send_phase()
                self._finish_phase()
        except OSError as err:
            self._fail("reset" if _is_reset(err) else "error", _errno_name(err))
        self._log_interval()

    def _fail(self, event: str, detail: str) -> None:
        self.failure = self.failure or f"{event}: {detail}"
        self._event(event, detail)

    def _log_interval(self) -> None:
        self._event("interval", None, self.stream_bytes - self.last_logged)
        self.last_logged = self.stream_bytes

    # -- default direction: send -----------------------------------------------------------------
    def _send_phase(self) -> None:
        deadline = Deadline(self.args.duration)
        clock = IntervalClock(self.args.interval)
        pacer = Pacer(self.args.rate)
        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_WRITE)
            while not deadline.expired():
                if clock.due():
                    self._log_interval()
                wait = pacer.delay(self.sent)
                if wait:  # rate limited: wait for a few segments' worth
                    time.sleep(min(clock.timeout(), wait))
                    continue
                if sel.select(timeout=deadline.cap(clock.timeout())):
                    self._send_some(pacer.budget(self.sent))

    def _send_some(self, budget: int) -> None:
        try:
            self.sent += self.sock.send(self.pattern.slice(self.sent, budget))
        except (BlockingIOError, InterruptedError):
            pass

    def _finish_phase(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)
        self._log_interval()
        report = self._read_report(Deadline(self.args.finish_timeout))
        if report is None:
            self._fail("error", f"no report from the server within {self.args.finish_timeout} s")
            return
        self._check_report(report, self.sent, "sent")

    def _read_report(self, deadline: Deadline) -> bytes | None:
        data = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_READ)
            while len(data) < REPORT.size and not deadline.expired():
                if not sel.select(timeout=deadline.cap(0.5)):
                    continue
                chunk = self.sock.recv(REPORT.size - len(data))
                if not chunk:
                    break
                data += chunk
        return data if len(data) == REPORT.size else None

    def _check_report(self, report: bytes, expected: int, verb: str) -> None:
        magic, code, _r1, _r2, count = REPORT.unpack(report)
        self.report = (code, count)
        self._event("report", f"status={code} bytes={count}")
        if magic != REPORT_MAGIC or code != STATUS_OK or count != expected:
            self.failure = self.failure or f"server report status={code} bytes={count}, {verb} {expected}"

    # -- reverse direction: receive ----------------------------------------------------------------
    def _receive_phase(self) -> None:
        """Receive and check the stream for the duration, ask the server to stop, read the rest
        and the report up to EOF."""
        if not self._receive_until(Deadline(self.args.duration)):
            self._event("eof")
            self._fail("error", "the server closed the connection before the client stopped it")
            return
        self.sock.shutdown(socket.SHUT_WR)
        self._log_interval()
        if self._receive_until(Deadline(self.args.finish_timeout)):
            self._fail("error", f"no report from the server within {self.args.finish_timeout} s")
            return
        self._event("eof")
        if len(self.held) != REPORT.size:
            self._fail("error", f"the stream ended without a report ({len(self.held)} bytes left)")
            return
        self._check_report(self.held, self.received, "received")
        if self.bad_offset is not None:
            self.failure = self.failure or f"mismatch at byte {self.bad_offset}"

    def _receive_until(self, deadline: Deadline) -> bool:
        """Receive until `deadline`; False as soon as the server closed (EOF)."""
        clock = IntervalClock(self.args.interval)
        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_READ)
            while not deadline.expired():
                if clock.due():
                    self._log_interval()
                if sel.select(timeout=deadline.cap(clock.timeout())) and not self._receive_some():
                    return False
        return True

    def _receive_some(self) -> bool:
        """Read what is there; False at EOF."""
        try:
            data = self.sock.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return True
        if not data:
            return False
        self._accept(data)
        return True

    def _accept(self, data: bytes) -> None:
        """Check new bytes, holding back the last REPORT.size bytes: they may be the report."""
        data = self.held + data
        ready, self.held = data[:-REPORT.size], data[-REPORT.size:]
        if not ready:
            return
        if self.bad_offset is None:
            self.bad_offset = self.pattern.first_mismatch(self.received, ready)
            if self.bad_offset is not None:
                self._event("verify_failed", str(self.bad_offset))
        self.received += len(ready)

    def close(self, stopped: bool) -> dict:
        """Close the socket, log ``done`` and return the summary fields."""
        if self.sock is not None:
            self.sock.close()
        if stopped and self.failure is None:
            self.failure = "stopped before the flow finished"
        self._event("done", self.failure or "ok")
        return {"flow": self.args.flow, "reverse": self.args.reverse, "bytes_sent": self.sent,
                "bytes_received": self.received, "survived": self.failure is None,
                "failure": self.failure, "report": self.report, "stopped": stopped}


def run_client(args: argparse.Namespace) -> int:
    """The ``client`` mode."""
    with CsvLog(args.log, "tcpflow", "client", FIELDS, args_for_log(args),
                args.flush_interval) as log:
        client = Client(args, log)
        status("ready", tool="tcpflow", mode="client", flow=args.flow,
               dst=f"{client.dst[0]}:{client.dst[1]}")
        stopped = False
        try:
            client.run()
        except Stopped:
            stopped = True
        summary = client.close(stopped)
        log.summary(**summary)
    return EXIT_OK if summary["survived"] else EXIT_FAILED


# ---------------------------------------------------------------------------------------------
# Server

@dataclass
class Connection:
    """Server-side state of one accepted connection."""

    sock: socket.socket
    peer: str
    header: bytes = b""
    flow: int | None = None
    pattern: Pattern | None = None
    received: int = 0
    last_logged: int = 0
    bad_offset: int | None = None
    failure: str | None = None
    finished: bool = False
    reverse: bool = False
    pacer: Pacer | None = None       # reverse: the stream's rate limit
    sent: int = 0                    # reverse: stream bytes sent
    outbox: bytes = b""              # reverse: the report, once the client stopped the stream
    report_deadline: Deadline | None = None

    @property
    def stream_bytes(self) -> int:
        """Stream bytes of the server's role: received, or (reverse) sent."""
        return self.sent if self.reverse else self.received

    @property
    def streaming(self) -> bool:
        """Reverse: the stream is running (hello read, no stop request yet)."""
        return self.pacer is not None and self.report_deadline is None and not self.finished


class Server:
    """Accepts flows, verifies their byte streams (or, reversed, sends them) and reports the
    result to each client."""

    def __init__(self, args: argparse.Namespace, log: CsvLog) -> None:
        self.args = args
        self.log = log
        self.listener = self._listen()
        self.conns: list[Connection] = []
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.listener, selectors.EVENT_READ, None)

    def _listen(self) -> socket.socket:
        return listen_tcp(self.args.bind, self.args.port, 128)

    def _event(self, conn: Connection, event: str, detail: str | None = None,
               interval_bytes: int | None = None) -> None:
        self.log.row(now_ns(), conn.flow, event, interval_bytes, conn.stream_bytes, detail)

    def serve(self) -> None:
        """Serve until `--conns` connections finished, the duration passed, or a stop signal."""
        deadline = Deadline(self.args.duration)
        clock = IntervalClock(self.args.interval)
        while not deadline.expired() and not self._enough():
            wait = self._pace()
            for key, mask in self.sel.select(timeout=deadline.cap(min(clock.timeout(), wait))):
                self._on_ready(key.data, mask)
            self._check_report_deadlines()
            self.log.tick()
            if clock.due():
                self._log_intervals()

    def _enough(self) -> bool:
        finished = sum(c.finished for c in self.conns)
        return self.args.conns is not None and finished >= self.args.conns

    def _on_ready(self, conn: Connection | None, mask: int) -> None:
        if conn is None:
            self._accept()
            return
        if mask & selectors.EVENT_READ:
            self._read(conn)
        if mask & selectors.EVENT_WRITE and not conn.finished:
            self._write(conn)

    def _accept(self) -> None:
        try:
            sock, peer = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.setblocking(False)
        conn = Connection(sock, "%s:%d" % peer)
        self.conns.append(conn)
        self.sel.register(sock, selectors.EVENT_READ, conn)
        self._event(conn, "accepted", conn.peer)

    def _read(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            self._finish(conn, "reset" if _is_reset(err) else "error", _errno_name(err))
            return
        if not data:
            self._on_eof(conn)
        elif conn.pattern is None:
            self._read_hello(conn, data)
        elif conn.reverse:
            self._finish(conn, "error", "data from the client of a reversed flow")
        else:
            self._verify(conn, data)

    def _read_hello(self, conn: Connection, data: bytes) -> None:
        conn.header += data
        if len(conn.header) < HELLO.size:
            return
        magic, version, flags, flow = HELLO.unpack_from(conn.header)
        rest, conn.header = conn.header[HELLO.size:], b""
        if magic != HELLO_MAGIC or version != VERSION:
            self._finish(conn, "error", "bad hello")
            return
        conn.flow, conn.pattern = flow, Pattern(flow)
        if bool(flags & FLAG_REVERSE) != self.args.reverse:
            want = "--reverse" if self.args.reverse else "the default direction"
            self._finish(conn, "error", f"bad hello: the client does not use {want}")
            return
        if self.args.reverse:
            self._start_stream(conn, rest)
        elif rest:
            self._verify(conn, rest)

    def _verify(self, conn: Connection, data: bytes) -> None:
        if conn.bad_offset is None:
            conn.bad_offset = conn.pattern.first_mismatch(conn.received, data)
            if conn.bad_offset is not None:
                self._event(conn, "verify_failed", str(conn.bad_offset))
        conn.received += len(data)

    def _on_eof(self, conn: Connection) -> None:
        self._log_interval(conn)
        self._event(conn, "eof")
        if conn.pattern is None:
            self._finish(conn, "error", "EOF before the hello")
        elif conn.reverse:
            self._stop_stream(conn)
        else:
            self._send_report(conn)

    def _send_report(self, conn: Connection) -> None:
        code = STATUS_OK if conn.bad_offset is None else STATUS_MISMATCH
        try:
            conn.sock.setblocking(True)
            conn.sock.settimeout(self.args.report_timeout)
            conn.sock.sendall(REPORT.pack(REPORT_MAGIC, code, 0, 0, conn.received))
        except OSError as err:
            self._finish(conn, "reset" if _is_reset(err) else "error", _errno_name(err))
            return
        reason = None if code == STATUS_OK else f"mismatch at byte {conn.bad_offset}"
        self._finish(conn, None, reason)

    # -- reverse: the server sends ----------------------------------------------------------------
    def _start_stream(self, conn: Connection, rest: bytes) -> None:
        conn.reverse, conn.pacer = True, Pacer(self.args.rate)
        if rest:
            self._finish(conn, "error", "data from the client of a reversed flow")

    def _pace(self) -> float:
        """Ask for writability of the streams the rate limit lets write now (and of pending
        reports); returns the time until the next stream may write (1 s when none waits)."""
        wait = 1.0
        for conn in self.conns:
            if conn.finished or not conn.reverse:
                continue
            delay = conn.pacer.delay(conn.sent) if conn.streaming else 0.0
            self._want_write(conn, delay == 0.0)
            if delay:
                wait = min(wait, delay)
        return wait

    def _want_write(self, conn: Connection, write: bool) -> None:
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if write else 0)
        if self.sel.get_key(conn.sock).events != events:
            self.sel.modify(conn.sock, events, conn)

    def _write(self, conn: Connection) -> None:
        try:
            if conn.streaming:
                conn.sent += conn.sock.send(conn.pattern.slice(conn.sent, conn.pacer.budget(conn.sent)))
            elif conn.outbox:
                conn.outbox = conn.outbox[conn.sock.send(conn.outbox):]
                if not conn.outbox:
                    self._finish(conn, None, None)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as err:
            self._finish(conn, "reset" if _is_reset(err) else "error", _errno_name(err))

    def _stop_stream(self, conn: Connection) -> None:
        """The client's stop request: the report follows the stream's last byte."""
        conn.outbox = REPORT.pack(REPORT_MAGIC, STATUS_OK, 0, 0, conn.sent)
        conn.report_deadline = Deadline(self.args.report_timeout)

    def _check_report_deadlines(self) -> None:
        for conn in self.conns:
            if not conn.finished and conn.report_deadline is not None and conn.report_deadline.expired():
                self._finish(conn, "error", f"report not sent within {self.args.report_timeout} s")

    # -- the end of a connection ------------------------------------------------------------------
    def _finish(self, conn: Connection, event: str | None, detail: str | None) -> None:
        if event is not None:
            self._event(conn, event, detail)
            conn.failure = f"{event}: {detail}"
        else:
            conn.failure = detail
        conn.finished = True
        self._event(conn, "done", conn.failure or "ok")
        self.sel.unregister(conn.sock)
        conn.sock.close()

    def _log_interval(self, conn: Connection) -> None:
        self._event(conn, "interval", None, conn.stream_bytes - conn.last_logged)
        conn.last_logged = conn.stream_bytes

    def _log_intervals(self) -> None:
        for conn in self.conns:
            if not conn.finished:
                self._log_interval(conn)

    def close(self, stopped: bool) -> dict:
        """Close everything, log unfinished connections, return the summary fields."""
        for conn in self.conns:
            if not conn.finished:
                self._log_interval(conn)
                self._finish(conn, "incomplete", "still open when the server stopped")
        self.sel.close()
        self.listener.close()
        ok = [c for c in self.conns if c.failure is None]
        return {"connections": len(self.conns), "ok": len(ok), "reverse": self.args.reverse,
                "failed": {str(c.flow): c.failure for c in self.conns if c.failure},
                "bytes": {str(c.flow): c.stream_bytes for c in self.conns},
                "all_ok": bool(self.conns) and len(ok) == len(self.conns), "stopped": stopped}


def run_server(args: argparse.Namespace) -> int:
    """The ``server`` mode."""
    with CsvLog(args.log, "tcpflow", "server", FIELDS, args_for_log(args),
                args.flush_interval) as log:
        server = Server(args, log)
        addr, port = server.listener.getsockname()
        status("ready", tool="tcpflow", mode="server", addr=addr, port=port)
        stopped = False
        try:
            server.serve()
        except Stopped:
            stopped = True
        summary = server.close(stopped)
        log.summary(**summary)
    return EXIT_OK if summary["all_ok"] else EXIT_FAILED


# ---------------------------------------------------------------------------------------------
# Command line

def build_parser() -> argparse.ArgumentParser:
    """The ``tcpflow`` command line (modes ``server`` and ``client``)."""
    parser = argparse.ArgumentParser(
        prog="python -m testbed.traffic.tcpflow",
        description="Long-lived TCP flows with a verified byte stream and per-interval logs.")
    modes = parser.add_subparsers(dest="mode", required=True)
    _add_server_args(modes.add_parser("server", help="accept and verify flows"))
    _add_client_args(modes.add_parser("client", help="send one flow for a duration"))
    return parser


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reverse", action="store_true",
                   help="the server sends the stream and the client verifies it (give it to both ends)")
    p.add_argument("--interval", type=positive_float, default=0.1, metavar="S",
                   help="throughput logging interval (default 0.1 s)")
    add_log_args(p)


def _add_server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bind", default="", help="address to bind (default: any)")
    p.add_argument("--port", type=port_number, required=True, help="TCP port to listen on")
    p.add_argument("--conns", type=positive_int,
                   help="exit after this many connections have finished")
    p.add_argument("--duration", type=positive_float, default=3600.0,
                   help="exit after this many seconds (default 3600)")
    p.add_argument("--rate", type=non_negative_float, default=0.0, metavar="MBPS",
                   help="with --reverse: send rate limit per connection in Mbit/s (default 0 = unlimited)")
    p.add_argument("--report-timeout", type=positive_float, default=5.0, metavar="S",
                   help="time allowed to send the final report (default 5 s)")
    _add_common(p)
    p.set_defaults(func=run_server)


def _add_client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dst", required=True, help="server address")
    p.add_argument("--port", type=port_number, required=True, help="server TCP port")
    p.add_argument("--bind", default="", help="source address to bind (default: any)")
    p.add_argument("--sport", type=port_number, default=0,
                   help="source TCP port (default 0 = chosen by the kernel)")
    p.add_argument("--flow", type=uint32, default=1,
                   help="flow id (also seeds the byte stream)")
    p.add_argument("--duration", type=positive_float, default=10.0,
                   help="seconds of sending (with --reverse: of receiving) (default 10)")
    p.add_argument("--rate", type=non_negative_float, default=0.0, metavar="MBPS",
                   help="send rate limit in Mbit/s (default 0 = unlimited; with --reverse the "
                        "server's --rate applies)")
    p.add_argument("--connect-timeout", type=positive_float, default=5.0, metavar="S",
                   help="connection set-up timeout (default 5 s)")
    p.add_argument("--finish-timeout", type=positive_float, default=10.0, metavar="S",
                   help="after sending (or stopping the stream), wait this long for the server's "
                        "report (default 10 s)")
    _add_common(p)
    p.set_defaults(func=run_client)


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The sending end owns the rate limit."""
    if args.rate and args.reverse and args.mode == "client":
        parser.error("--rate: with --reverse the server sends; give --rate to the server")
    if args.rate and not args.reverse and args.mode == "server":
        parser.error("--rate: the server sends only with --reverse")


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse arguments and run the chosen mode; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    func = args.func
    return run_main(lambda: func(args))


if __name__ == "__main__":
    sys.exit(main())
