"""Many short TCP flows: empirical flow sizes, Poisson arrivals, one log row per flow.

Usage::

    python -m testbed.traffic.shortflows server --port 6001 [--duration S] [--log PATH]
    python -m testbed.traffic.shortflows client --dst 10.0.2.2 --port 6001 --rate 50 \\
        --dist websearch [--scale 0.01] [--max-bytes N] (--count N | --duration S) [--seed 1]

Flow sizes (``--dist``): ``websearch`` and ``datamining`` are the empirical CDFs below,
``fixed:N`` is always N bytes. The CDFs are the web-search workload of the DCTCP paper
(Alizadeh et al., SIGCOMM 2010) and the data-mining workload of the VL2 paper (Greenberg et
al., SIGCOMM 2009), as tabulated (in 1460-byte packets) for the pFabric and HPCC simulations.
Sampling inverts the CDF with linear interpolation between points. ``--scale`` multiplies every
sampled size and ``--max-bytes`` caps it (data mining reaches ~1 GB; emulated links need less);
sizes are at least 1 byte.

Arrivals: exponential inter-arrival times with mean 1/``--rate`` (a Poisson process) on an
absolute schedule, from a generator seeded with ``--seed``; flow ``n`` has id ``n`` (0, 1, ...).
The client stops starting flows after ``--count`` flows or ``--duration`` seconds (whichever
first; 10 s if neither is given), then waits for the flows in flight, each bounded by
``--flow-timeout``. Flows beyond ``--max-concurrent`` in flight are not started and are logged
with error ``max_concurrent``.

Protocol per flow (one TCP connection): client -> server request, 20 bytes, struct
``"!4sBBHIQ"``: magic b"TBSF", version 1, direction (0 = download: the server sends ``size``
bytes then closes; 1 = upload: the client sends ``size`` bytes and the server answers with the
byte count as ``"!Q"`` then closes), reserved 0, flow id, size.

Log rows (both ends): ``flow, size, direction, start_ns, end_ns, completed, bytes, error``;
``start_ns`` is when the client began connecting (server: accepted), ``end_ns`` when the flow
completed or failed, ``completed`` is 1 or 0, ``bytes`` the payload bytes moved, ``error`` an
errno name, ``timeout``, ``max_concurrent``, ``eof`` (closed early) or ``stopped``. The flow
completion time is ``end_ns - start_ns``. Client exit status: 0 if every flow completed, else 1.
"""
from __future__ import annotations

import argparse
import bisect
import errno
import random
import selectors
import socket
import struct
import sys
import time
from dataclasses import dataclass
from typing import Sequence

from testbed.traffic.runtime import (
    CsvLog, Deadline, EXIT_FAILED, EXIT_OK, Stopped, add_log_args, args_for_log, listen_tcp,
    now_ns, port_number, positive_float, positive_int, resolve_ipv4, run_main, status,
)

MSS = 1460
# (size in 1460-byte packets, cumulative probability)
WEBSEARCH_CDF = (
    (6, 0.0), (6, 0.15), (13, 0.2), (19, 0.3), (33, 0.4), (53, 0.53), (133, 0.6),
    (667, 0.7), (1333, 0.8), (3333, 0.9), (6667, 0.97), (20000, 1.0),
)
DATAMINING_CDF = (
    (1, 0.0), (1, 0.5), (2, 0.6), (3, 0.7), (7, 0.8), (267, 0.9), (2107, 0.95),
    (66667, 0.99), (666667, 1.0),
)
DISTRIBUTIONS = {"websearch": WEBSEARCH_CDF, "datamining": DATAMINING_CDF}

REQUEST = struct.Struct("!4sBBHIQ")
REQUEST_MAGIC = b"TBSF"
VERSION = 1
DOWNLOAD, UPLOAD = 0, 1
DIRECTIONS = {"download": DOWNLOAD, "upload": UPLOAD}
ACK = struct.Struct("!Q")
CHUNK = 65536
ZEROS = memoryview(bytes(CHUNK))

FIELDS = {
    "flow": "flow id",
    "size": "flow size in bytes",
    "direction": "download (server sends) or upload (client sends)",
    "start_ns": "connect start (client) / accept time (server), ns since epoch",
    "end_ns": "completion or failure time, ns since epoch",
    "completed": "1 if all bytes were delivered, else 0",
    "bytes": "payload bytes moved",
    "error": "why the flow failed (errno name, timeout, eof, max_concurrent, stopped)",
}


# ---------------------------------------------------------------------------------------------
# Flow sizes

class FlowSizes:
    """Samples flow sizes in bytes from a named distribution (see `parse_distribution`)."""

    def __init__(self, points: Sequence[tuple[float, float]], unit: int = MSS,
                 scale: float = 1.0, max_bytes: int | None = None) -> None:
        self.sizes = [float(size) * unit for size, _p in points]
        self.probs = [float(p) for _size, p in points]
        self.scale = scale
        self.max_bytes = max_bytes

    def sample(self, rng: random.Random) -> int:
        """One flow size in bytes (>= 1)."""
        return self._finish(self.quantile(rng.random()))

    def quantile(self, u: float) -> float:
        """Size (bytes, before scale and cap) at cumulative probability `u`."""
        i = bisect.bisect_left(self.probs, u)
        if i <= 0:
            return self.sizes[0]
        if i >= len(self.probs):
            return self.sizes[-1]
        p0, p1 = self.probs[i - 1], self.probs[i]
        s0, s1 = self.sizes[i - 1], self.sizes[i]
        return s1 if p1 == p0 else s0 + (s1 - s0) * (u - p0) / (p1 - p0)

    def mean(self) -> float:
        """Mean size in bytes before scale and cap (piecewise-linear CDF)."""
        return sum((p1 - p0) * (s0 + s1) / 2 for (s0, p0), (s1, p1)
                   in zip(zip(self.sizes, self.probs), zip(self.sizes[1:], self.probs[1:])))

    def _finish(self, size: float) -> int:
        size = max(1, round(size * self.scale))
        return min(size, self.max_bytes) if self.max_bytes else size


def parse_distribution(text: str, scale: float = 1.0, max_bytes: int | None = None) -> FlowSizes:
    """``websearch``, ``datamining`` or ``fixed:N`` (N bytes) as a `FlowSizes`."""
    if text in DISTRIBUTIONS:
        return FlowSizes(DISTRIBUTIONS[text], MSS, scale, max_bytes)
    kind, _, value = text.partition(":")
    if kind == "fixed" and value.isdigit() and int(value) > 0:
        return FlowSizes(((int(value), 0.0), (int(value), 1.0)), 1, scale, max_bytes)
    raise ValueError(f"unknown flow-size distribution {text!r} "
                     f"(known: {', '.join(DISTRIBUTIONS)}, fixed:N)")


def poisson_arrivals(rate: float, rng: random.Random):
    """Yield arrival offsets in seconds (0 excluded) of a Poisson process of `rate` per s."""
    t = 0.0
    while True:
        t += rng.expovariate(rate)
        yield t


# ---------------------------------------------------------------------------------------------
# Client

@dataclass
class ClientFlow:
    """One client flow in flight."""

    flow: int
    size: int
    direction: int
    sock: socket.socket
    start_ns: int
    deadline: float
    to_send: bytes = b""
    moved: int = 0
    reply: bytes = b""
    connected: bool = False


class FlowGenerator:
    """Starts flows on a Poisson schedule and drives them with one selector."""

    def __init__(self, args: argparse.Namespace, log: CsvLog) -> None:
        self.args = args
        self.log = log
        self.dst = (resolve_ipv4("--dst", args.dst), args.port)
        self.sizes = parse_distribution(args.dist, args.scale, args.max_bytes)
        self.rng = random.Random(args.seed)
        self.direction = DIRECTIONS[args.direction]
        self.sel = selectors.DefaultSelector()
        self.active: dict[int, ClientFlow] = {}
        self.started = self.completed = self.failed = 0

    def run(self) -> None:
        """Start flows until count/duration, then wait for those in flight."""
        arrivals = poisson_arrivals(self.args.rate, self.rng)
        start = time.monotonic()
        window = Deadline(self.args.duration)
        next_at = start + next(arrivals)
        while not self._generation_over(window):
            if time.monotonic() >= next_at:
                self._start_flow()
                next_at = start + next(arrivals)
                continue
            self._poll(min(next_at - time.monotonic(), window.cap(self.args.flush_interval)))
            self.log.tick()
        while self.active:
            self._poll(0.05)

    def _generation_over(self, window: Deadline) -> bool:
        return window.expired() or (self.args.count is not None
                                    and self.started >= self.args.count)

    def _start_flow(self) -> None:
        flow_id, size = self.started, self.sizes.sample(self.rng)
        self.started += 1
        start_ns = now_ns()
        if len(self.active) >= self.args.max_concurrent:
            self._record(flow_id, size, start_ns, 0, "max_concurrent")
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        flow = ClientFlow(flow_id, size, self.direction, sock, start_ns,
                          time.monotonic() + self.args.flow_timeout)
        flow.to_send = REQUEST.pack(REQUEST_MAGIC, VERSION, self.direction, 0, flow_id, size)
        self.active[flow_id] = flow
        err = sock.connect_ex(self.dst)
        if err not in (0, errno.EINPROGRESS):
            self._end(flow, errno.errorcode.get(err, str(err)))
            return
        self.sel.register(sock, selectors.EVENT_WRITE, flow)

    def _poll(self, timeout: float) -> None:
        for key, mask in self.sel.select(timeout=max(0.0, timeout)):
            if key.data.flow in self.active:
                self._step(key.data, mask)
        self._expire()

    def _expire(self) -> None:
        now = time.monotonic()
        for flow in [f for f in self.active.values() if now >= f.deadline]:
            self._end(flow, "timeout")

    def _step(self, flow: ClientFlow, mask: int) -> None:
        try:
            if mask & selectors.EVENT_WRITE:
                self._on_writable(flow)
            if mask & selectors.EVENT_READ:
                self._on_readable(flow)
        except OSError as err:
            self._end(flow, errno.errorcode.get(err.errno, str(err)))

    def _on_writable(self, flow: ClientFlow) -> None:
        if not flow.connected:
            err = flow.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, errno.errorcode.get(err, str(err)))
            flow.connected = True
        if flow.to_send:
            flow.to_send = flow.to_send[flow.sock.send(flow.to_send):]
        if not flow.to_send and flow.direction == UPLOAD and flow.moved < flow.size:
            flow.moved += flow.sock.send(ZEROS[:min(CHUNK, flow.size - flow.moved)])
        if not flow.to_send and (flow.direction == DOWNLOAD or flow.moved >= flow.size):
            self.sel.modify(flow.sock, selectors.EVENT_READ, flow)

    def _on_readable(self, flow: ClientFlow) -> None:
        data = flow.sock.recv(CHUNK)
        if flow.direction == DOWNLOAD:
            flow.moved += len(data)
            done = flow.moved >= flow.size
        else:
            flow.reply += data
            done = len(flow.reply) >= ACK.size
        if done:
            self._end(flow, None)
        elif not data:
            self._end(flow, "eof")

    def _end(self, flow: ClientFlow, error: str | None) -> None:
        del self.active[flow.flow]
        if flow.sock.fileno() >= 0 and self._registered(flow.sock):
            self.sel.unregister(flow.sock)
        flow.sock.close()
        self._record(flow.flow, flow.size, flow.start_ns, flow.moved, error)

    def _registered(self, sock: socket.socket) -> bool:
        try:
            self.sel.get_key(sock)
        except KeyError:
            return False
        return True

    def _record(self, flow: int, size: int, start_ns: int, moved: int, error: str | None):
        completed = error is None
        self.completed += completed
        self.failed += not completed
        direction = "download" if self.direction == DOWNLOAD else "upload"
        self.log.row(flow, size, direction, start_ns, now_ns(), int(completed), moved, error)

    def stop(self) -> None:
        """Log every flow still in flight as ``stopped``."""
        for flow in list(self.active.values()):
            self._end(flow, "stopped")
        self.sel.close()

    def summary(self, stopped: bool) -> dict:
        """Counts for the summary line."""
        return {"started": self.started, "completed": self.completed, "failed": self.failed,
                "dist": self.args.dist, "mean_size_unscaled": round(self.sizes.mean()),
                "stopped": stopped}


def run_client(args: argparse.Namespace) -> int:
    """The ``client`` mode."""
    if args.count is None and args.duration is None:
        args.duration = 10.0
    with CsvLog(args.log, "shortflows", "client", FIELDS, args_for_log(args),
                args.flush_interval) as log:
        gen = FlowGenerator(args, log)
        status("ready", tool="shortflows", mode="client", dst=f"{gen.dst[0]}:{gen.dst[1]}")
        stopped = False
        try:
            gen.run()
        except Stopped:
            stopped = True
        gen.stop()
        log.summary(**gen.summary(stopped))
    return EXIT_OK if gen.failed == 0 else EXIT_FAILED


# ---------------------------------------------------------------------------------------------
# Server

@dataclass
class ServerFlow:
    """One accepted connection."""

    sock: socket.socket
    start_ns: int
    header: bytes = b""
    flow: int | None = None
    size: int = 0
    direction: int = DOWNLOAD
    moved: int = 0


class Sink:
    """Serves flow requests: sends downloads, absorbs uploads."""

    def __init__(self, args: argparse.Namespace, log: CsvLog) -> None:
        self.args = args
        self.log = log
        self.listener = self._listen()
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.listener, selectors.EVENT_READ, None)
        self.served = self.completed = self.failed = 0

    def _listen(self) -> socket.socket:
        return listen_tcp(self.args.bind, self.args.port, 1024)

    def serve(self) -> None:
        """Serve until `--count` flows ended, the duration passed, or a stop signal."""
        deadline = Deadline(self.args.duration)
        while not deadline.expired() and not (self.args.count and self.served >= self.args.count):
            for key, mask in self.sel.select(timeout=deadline.cap(self.args.flush_interval)):
                if key.data is None:
                    self._accept()
                else:
                    self._step(key.data, mask)
            self.log.tick()

    def _accept(self) -> None:
        try:
            sock, _peer = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.setblocking(False)
        self.sel.register(sock, selectors.EVENT_READ, ServerFlow(sock, now_ns()))

    def _step(self, flow: ServerFlow, mask: int) -> None:
        try:
            if mask & selectors.EVENT_READ:
                self._on_readable(flow)
            elif mask & selectors.EVENT_WRITE:
                self._on_writable(flow)
        except OSError as err:
            self._end(flow, errno.errorcode.get(err.errno, str(err)))

    def _on_readable(self, flow: ServerFlow) -> None:
        data = flow.sock.recv(CHUNK)
        if not data:
            self._end(flow, "eof")
        elif flow.flow is None:
            self._read_request(flow, data)
        else:
            self._absorb(flow, data)

    def _read_request(self, flow: ServerFlow, data: bytes) -> None:
        flow.header += data
        if len(flow.header) < REQUEST.size:
            return
        magic, version, direction, _res, flow_id, size = REQUEST.unpack_from(flow.header)
        rest = flow.header[REQUEST.size:]
        if magic != REQUEST_MAGIC or version != VERSION or direction not in (DOWNLOAD, UPLOAD):
            self._end(flow, "bad_request")
            return
        flow.flow, flow.size, flow.direction = flow_id, size, direction
        if direction == DOWNLOAD:
            self.sel.modify(flow.sock, selectors.EVENT_WRITE, flow)
        elif rest:
            self._absorb(flow, rest)

    def _absorb(self, flow: ServerFlow, data: bytes) -> None:
        flow.moved += len(data)
        if flow.moved >= flow.size:
            flow.sock.setblocking(True)
            flow.sock.settimeout(5.0)
            flow.sock.sendall(ACK.pack(flow.moved))
            self._end(flow, None)

    def _on_writable(self, flow: ServerFlow) -> None:
        flow.moved += flow.sock.send(ZEROS[:min(CHUNK, flow.size - flow.moved)])
        if flow.moved >= flow.size:
            self._end(flow, None)

    def _end(self, flow: ServerFlow, error: str | None) -> None:
        self.sel.unregister(flow.sock)
        flow.sock.close()
        if flow.flow is None and error == "eof":
            return  # a connection that never sent a request (e.g. a readiness probe)
        self.served += 1
        self.completed += error is None
        self.failed += error is not None
        direction = "download" if flow.direction == DOWNLOAD else "upload"
        self.log.row(flow.flow, flow.size, direction, flow.start_ns, now_ns(),
                     int(error is None), flow.moved, error)

    def stop(self) -> None:
        """Log every open flow as ``stopped`` and close the listener."""
        for key in list(self.sel.get_map().values()):
            if key.data is not None:
                self._end(key.data, "stopped")
        self.sel.close()
        self.listener.close()

    def summary(self, stopped: bool) -> dict:
        """Counts for the summary line."""
        return {"served": self.served, "completed": self.completed, "failed": self.failed,
                "stopped": stopped}


def run_server(args: argparse.Namespace) -> int:
    """The ``server`` mode."""
    with CsvLog(args.log, "shortflows", "server", FIELDS, args_for_log(args),
                args.flush_interval) as log:
        sink = Sink(args, log)
        addr, port = sink.listener.getsockname()
        status("ready", tool="shortflows", mode="server", addr=addr, port=port)
        stopped = False
        try:
            sink.serve()
        except Stopped:
            stopped = True
        sink.stop()
        log.summary(**sink.summary(stopped))
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# Command line

def _distribution(text: str) -> str:
    try:
        parse_distribution(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    """The ``shortflows`` command line (modes ``server`` and ``client``)."""
    parser = argparse.ArgumentParser(
        prog="python -m testbed.traffic.shortflows",
        description="Short TCP flows with empirical sizes and Poisson arrivals.")
    modes = parser.add_subparsers(dest="mode", required=True)
    _add_server_args(modes.add_parser("server", help="serve flow requests"))
    _add_client_args(modes.add_parser("client", help="generate flows"))
    return parser


def _add_server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bind", default="", help="address to bind (default: any)")
    p.add_argument("--port", type=port_number, required=True, help="TCP port to listen on")
    p.add_argument("--count", type=positive_int, help="exit after serving this many flows")
    p.add_argument("--duration", type=positive_float, default=3600.0,
                   help="exit after this many seconds (default 3600)")
    add_log_args(p)
    p.set_defaults(func=run_server)


def _add_client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dst", required=True, help="server address")
    p.add_argument("--port", type=port_number, required=True, help="server TCP port")
    p.add_argument("--rate", type=positive_float, required=True, help="new flows per second")
    p.add_argument("--dist", type=_distribution, default="websearch",
                   help="websearch | datamining | fixed:N (default websearch)")
    p.add_argument("--scale", type=positive_float, default=1.0,
                   help="multiply every sampled size (default 1)")
    p.add_argument("--max-bytes", type=positive_int, help="cap every flow at N bytes")
    p.add_argument("--direction", choices=sorted(DIRECTIONS), default="download",
                   help="download: the server sends the flow (default); upload: the client")
    p.add_argument("--count", type=positive_int, help="start at most this many flows")
    p.add_argument("--duration", type=positive_float, help="start flows for at most S seconds")
    p.add_argument("--seed", type=int, default=1, help="random seed for sizes and arrivals")
    p.add_argument("--flow-timeout", type=positive_float, default=10.0, metavar="S",
                   help="a flow not done after S seconds fails with 'timeout' (default 10)")
    p.add_argument("--max-concurrent", type=positive_int, default=256,
                   help="flows in flight at most (default 256)")
    add_log_args(p)
    p.set_defaults(func=run_client)


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse arguments and run the chosen mode; returns the exit code."""
    args = build_parser().parse_args(argv)
    func = args.func
    return run_main(lambda: func(args))


if __name__ == "__main__":
    sys.exit(main())
