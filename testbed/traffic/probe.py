"""UDP probe streams: a paced sender and a sink/reflector receiver, for loss, latency and gaps.

Usage::

    python -m testbed.traffic.probe recv --port 9000 [--echo] [--duration S] [--log PATH]
    python -m testbed.traffic.probe send --dst 10.0.2.2 --dport 9000 --rate 1000 --size 64 \\
        (--count N | --duration S) [--flow 7] [--sport 4321] [--echo] [--log PATH]

Payload layout (the first 32 bytes of the UDP payload; network byte order; struct format
`PROBE_HEADER` = ``"!4sBBHIIQQ"``)::

    offset size field     meaning
    0      4    magic     b"TBPR"
    4      1    version   1
    5      1    flags     bit 0 (FLAG_ECHO): set in replies from a reflector
    6      2    reserved  0
    8      4    flow      flow id (--flow), uint32
    12     4    seq       sequence number, uint32, 0, 1, 2, ... per sender run
    16     8    send_ns   sender's wall clock (ns since the Unix epoch) just before sendto
    24     8    echo_ns   reflector's receive time (ns since the epoch) in replies, else 0

Bytes 32..size-1 are zero padding (``--size`` is the UDP payload length, >= 32). A reply is the
request with FLAG_ECHO set and echo_ns filled in, sent back to the request's source address.
`decode_probe` reads the header from any payload (e.g. from a pcap) and returns None for
payloads that are not probes.

Logs (see `testbed.traffic.runtime` for the file format):

- receiver, one row per probe received: ``flow, seq, send_ns, recv_ns, src, len``
  (``src`` = ``ip:port``; ``recv_ns`` is the kernel receive timestamp when available, see the
  ``recv_clock`` summary key). Non-probe datagrams are counted, not logged.
- sender, one row per event: ``event, flow, seq, send_ns, echo_ns, recv_ns, error`` with event
  ``sent`` (send_ns), ``send_error`` (error = errno name; the sender keeps going), ``reply``
  (an echoed probe: send_ns, echo_ns, recv_ns; RTT = recv_ns - send_ns).

Pacing follows an absolute schedule (probe n is due at start + n/rate); a late sender sends at
once and catches up. Senders stop after ``--count`` probes or ``--duration`` seconds
(whichever first; 10 s if neither is given); with ``--echo`` they then wait up to
``--echo-wait`` seconds for outstanding replies. Receivers stop after ``--count`` probes,
``--duration`` seconds (default 3600), ``--idle-timeout`` seconds without probes after the
first one, or on SIGTERM/SIGINT.
"""
from __future__ import annotations

import argparse
import errno
import platform
import selectors
import socket
import struct
import sys
import time
from typing import NamedTuple

from testbed.traffic.runtime import (
    CsvLog, Deadline, EXIT_OK, Stopped, ToolError, add_log_args, args_for_log, now_ns,
    non_negative_float, port_number, positive_float, positive_int, resolve_ipv4, run_main,
    status, uint32,
)

PROBE_HEADER = "!4sBBHIIQQ"
PROBE_STRUCT = struct.Struct(PROBE_HEADER)
PROBE_HEADER_LEN = PROBE_STRUCT.size  # 32
PROBE_MAGIC = b"TBPR"
PROBE_VERSION = 1
FLAG_ECHO = 0x01

RECV_FIELDS = {
    "flow": "flow id from the probe header",
    "seq": "sequence number from the probe header",
    "send_ns": "sender wall clock at send (ns since epoch), from the header",
    "recv_ns": "receive time (ns since epoch; kernel timestamp if recv_clock=kernel)",
    "src": "source ip:port",
    "len": "UDP payload length",
}
SEND_FIELDS = {
    "event": "sent | send_error | reply",
    "flow": "flow id",
    "seq": "sequence number",
    "send_ns": "send time (ns since epoch)",
    "echo_ns": "reflector receive time (reply rows)",
    "recv_ns": "time the reply was received (reply rows)",
    "error": "errno name (send_error rows)",
}

# Linux SO_TIMESTAMPNS (== SCM_TIMESTAMPNS) on the common architectures; Python does not export it.
_SO_TIMESTAMPNS = 35
_TIMESTAMP_ARCHES = ("x86_64", "i386", "i686", "aarch64", "armv7l", "armv6l", "riscv64")
_TIMESPEC = struct.Struct("@qq")
_RECV_BUF = 65536


class Probe(NamedTuple):
    """A decoded probe header."""

    flow: int
    seq: int
    send_ns: int
    echo_ns: int
    flags: int

    @property
    def is_echo(self) -> bool:
        """True for a reply from a reflector."""
        return bool(self.flags & FLAG_ECHO)


def encode_probe(flow: int, seq: int, send_ns: int, size: int = PROBE_HEADER_LEN,
                 echo_ns: int = 0, flags: int = 0) -> bytes:
    """A probe payload of `size` bytes (header plus zero padding)."""
    buf = bytearray(max(size, PROBE_HEADER_LEN))
    PROBE_STRUCT.pack_into(buf, 0, PROBE_MAGIC, PROBE_VERSION, flags, 0, flow, seq, send_ns,
                           echo_ns)
    return bytes(buf)


def decode_probe(payload: bytes) -> Probe | None:
    """The probe header at the start of a UDP payload, or None if it is not a probe."""
    if len(payload) < PROBE_HEADER_LEN:
        return None
    magic, version, flags, _res, flow, seq, send_ns, echo_ns = \
        PROBE_STRUCT.unpack_from(payload, 0)
    if magic != PROBE_MAGIC or version != PROBE_VERSION:
        return None
    return Probe(flow, seq, send_ns, echo_ns, flags)


# ---------------------------------------------------------------------------------------------
# Sockets

def _udp_socket(bind_addr: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((bind_addr, port))
    except OSError as err:
        sock.close()
        raise ToolError(f"cannot bind UDP {bind_addr or '0.0.0.0'}:{port}: {err}") from err
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return sock


def _enable_kernel_timestamps(sock: socket.socket) -> bool:
    """Ask for SO_TIMESTAMPNS receive timestamps; False where unsupported."""
    if sys.platform != "linux" or platform.machine() not in _TIMESTAMP_ARCHES:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


class DatagramReader:
    """Nonblocking reads returning (payload, source, receive time in ns)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.kernel_clock = _enable_kernel_timestamps(sock)
        self._ancbuf = socket.CMSG_SPACE(_TIMESPEC.size)

    @property
    def clock(self) -> str:
        """``kernel`` (SO_TIMESTAMPNS) or ``user`` (time_ns after recv)."""
        return "kernel" if self.kernel_clock else "user"

    def read(self) -> tuple[bytes, tuple[str, int], int] | None:
        """One datagram, or None if none is waiting."""
        try:
            if not self.kernel_clock:
                data, src = self.sock.recvfrom(_RECV_BUF)
                return data, src, now_ns()
            data, ancdata, _flags, src = self.sock.recvmsg(_RECV_BUF, self._ancbuf)
        except (BlockingIOError, InterruptedError):
            return None
        except ConnectionRefusedError:  # an ICMP error queued on the socket; not data
            return None
        return data, src, self._timestamp(ancdata)

    @staticmethod
    def _timestamp(ancdata: list) -> int:
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                sec, nsec = _TIMESPEC.unpack(payload[:_TIMESPEC.size])
                return sec * 1_000_000_000 + nsec
        return now_ns()


# ---------------------------------------------------------------------------------------------
# Receiver

class Receiver:
    """Sink (and, with echo, reflector) of probe streams."""

    def __init__(self, args: argparse.Namespace, log: CsvLog) -> None:
        self.args = args
        self.log = log
        self.sock = _udp_socket(args.bind, args.port)
        self.reader = DatagramReader(self.sock)
        self.received = 0
        self.ignored = 0
        self.echo_errors = 0
        self.flows: dict[int, dict] = {}

    def serve(self) -> None:
        """Receive until count, duration, idle timeout or a stop signal."""
        deadline = Deadline(self.args.duration)
        idle: Deadline | None = None
        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_READ)
            while not self._done(deadline, idle):
                timeout = min(idle.remaining() if idle else 0.5, self.args.flush_interval)
                if sel.select(timeout=deadline.cap(timeout)) and self._drain():
                    idle = Deadline(self.args.idle_timeout) if self.args.idle_timeout else None
                self.log.tick()

    def _done(self, deadline: Deadline, idle: Deadline | None) -> bool:
        count_reached = self.args.count is not None and self.received >= self.args.count
        return count_reached or deadline.expired() or (idle is not None and idle.expired())

    def _drain(self) -> int:
        handled = 0
        while (item := self.reader.read()) is not None:
            handled += self._handle(*item)
            if self.args.count is not None and self.received >= self.args.count:
                break
        return handled

    def _handle(self, data: bytes, src: tuple[str, int], recv_ns: int) -> int:
        probe = decode_probe(data)
        if probe is None or probe.is_echo:
            self.ignored += 1
            return 0
        self.received += 1
        self.log.row(probe.flow, probe.seq, probe.send_ns, recv_ns, f"{src[0]}:{src[1]}",
                     len(data))
        self._account(probe)
        if self.args.echo:
            self._echo(data, src, recv_ns)
        return 1

    def _account(self, probe: Probe) -> None:
        flow = self.flows.setdefault(probe.flow, {"received": 0, "max_seq": -1})
        flow["received"] += 1
        flow["max_seq"] = max(flow["max_seq"], probe.seq)

    def _echo(self, data: bytes, src: tuple[str, int], recv_ns: int) -> None:
        reply = bytearray(data)
        struct.pack_into("!B", reply, 5, data[5] | FLAG_ECHO)
        struct.pack_into("!Q", reply, 24, recv_ns)
        try:
            self.sock.sendto(reply, src)
        except OSError:
            self.echo_errors += 1

    def summary(self, stopped: bool) -> dict:
        """Counts for the summary line."""
        return {"received": self.received, "ignored": self.ignored,
                "echo_errors": self.echo_errors, "recv_clock": self.reader.clock,
                "flows": {str(k): v for k, v in sorted(self.flows.items())},
                "stopped": stopped}


def run_receiver(args: argparse.Namespace) -> int:
    """The ``recv`` mode."""
    with CsvLog(args.log, "probe", "recv", RECV_FIELDS, args_for_log(args),
                args.flush_interval) as log:
        receiver = Receiver(args, log)
        try:
            addr, port = receiver.sock.getsockname()
            status("ready", tool="probe", mode="recv", addr=addr, port=port,
                   echo=args.echo, recv_clock=receiver.reader.clock)
            stopped = False
            try:
                receiver.serve()
            except Stopped:
                stopped = True
            log.summary(**receiver.summary(stopped))
        finally:
            receiver.sock.close()
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# Sender

class Sender:
    """A paced probe stream, optionally collecting echoed replies."""

    def __init__(self, args: argparse.Namespace, log: CsvLog) -> None:
        self.args = args
        self.log = log
        self.dst = (resolve_ipv4("--dst", args.dst), args.dport)
        self.sock = _udp_socket(args.bind, args.sport)
        self.reader = DatagramReader(self.sock)
        self.buf = bytearray(encode_probe(args.flow, 0, 0, args.size))
        self.sent = 0
        self.send_errors = 0
        self.replies = 0
        self.foreign = 0

    def run(self) -> None:
        """Send the stream, then (with echo) wait for the remaining replies."""
        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_READ)
            self._send_all(sel)
            if self.args.echo:
                self._await_replies(sel, Deadline(self.args.echo_wait))

    def _send_all(self, sel: selectors.BaseSelector) -> None:
        interval_ns = int(1e9 / self.args.rate)
        start = time.perf_counter_ns()
        deadline = Deadline(self.args.duration)
        seq = 0
        while (self.args.count is None or seq < self.args.count) and not deadline.expired():
            wait_ns = start + seq * interval_ns - time.perf_counter_ns()
            if wait_ns > 0:
                self._pause(sel, wait_ns / 1e9)
                continue
            self._send_one(seq)
            seq += 1

    def _pause(self, sel: selectors.BaseSelector, seconds: float) -> None:
        if not self.args.echo:
            time.sleep(seconds)
        elif sel.select(timeout=seconds):
            self._drain_replies()

    def _send_one(self, seq: int) -> None:
        send_ns = now_ns()
        struct.pack_into("!IQ", self.buf, 12, seq, send_ns)
        try:
            self.sock.sendto(self.buf, self.dst)
        except OSError as err:
            self.send_errors += 1
            self.log.row("send_error", self.args.flow, seq, send_ns, None, None,
                         errno.errorcode.get(err.errno, str(err.errno)))
            return
        self.sent += 1
        self.log.row("sent", self.args.flow, seq, send_ns, None, None, None)

    def _await_replies(self, sel: selectors.BaseSelector, deadline: Deadline) -> None:
        while self.replies < self.sent and not deadline.expired():
            if sel.select(timeout=deadline.cap(0.5)):
                self._drain_replies()

    def _drain_replies(self) -> None:
        while (item := self.reader.read()) is not None:
            data, _src, recv_ns = item
            probe = decode_probe(data)
            if probe is None or not probe.is_echo or probe.flow != self.args.flow:
                self.foreign += 1
                continue
            self.replies += 1
            self.log.row("reply", probe.flow, probe.seq, probe.send_ns, probe.echo_ns,
                         recv_ns, None)

    def summary(self, stopped: bool, elapsed_s: float) -> dict:
        """Counts for the summary line."""
        return {"sent": self.sent, "send_errors": self.send_errors, "replies": self.replies,
                "ignored": self.foreign, "elapsed_s": round(elapsed_s, 6),
                "flow": self.args.flow, "stopped": stopped, "recv_clock": self.reader.clock}


def run_sender(args: argparse.Namespace) -> int:
    """The ``send`` mode."""
    if args.count is None and args.duration is None:
        args.duration = 10.0
    with CsvLog(args.log, "probe", "send", SEND_FIELDS, args_for_log(args),
                args.flush_interval) as log:
        sender = Sender(args, log)
        try:
            addr, port = sender.sock.getsockname()
            status("ready", tool="probe", mode="send", addr=addr, port=port,
                   dst=f"{sender.dst[0]}:{sender.dst[1]}")
            started = time.monotonic()
            stopped = False
            try:
                sender.run()
            except Stopped:
                stopped = True
            log.summary(**sender.summary(stopped, time.monotonic() - started))
        finally:
            sender.sock.close()
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# Command line

def _probe_size(text: str) -> int:
    value = int(text)
    if not PROBE_HEADER_LEN <= value <= 65507:
        raise argparse.ArgumentTypeError(f"must be in {PROBE_HEADER_LEN}..65507, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``probe`` command line (modes ``send`` and ``recv``)."""
    parser = argparse.ArgumentParser(
        prog="python -m testbed.traffic.probe",
        description="UDP probe streams with sequence numbers and send timestamps.")
    modes = parser.add_subparsers(dest="mode", required=True)
    _add_send_args(modes.add_parser("send", help="send a paced probe stream"))
    _add_recv_args(modes.add_parser("recv", help="receive (and optionally echo) probes"))
    return parser


def _add_send_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dst", required=True, help="destination address")
    p.add_argument("--dport", type=port_number, required=True, help="destination UDP port")
    p.add_argument("--sport", type=port_number, default=0, help="source UDP port (0 = any)")
    p.add_argument("--bind", default="", help="source address to bind (default: any)")
    p.add_argument("--rate", type=positive_float, default=100.0, help="probes per second")
    p.add_argument("--size", type=_probe_size, default=64,
                   help=f"UDP payload bytes, >= {PROBE_HEADER_LEN} (default 64)")
    p.add_argument("--count", type=positive_int, help="stop after this many probes")
    p.add_argument("--duration", type=positive_float, help="stop after this many seconds")
    p.add_argument("--flow", type=uint32, default=1, help="flow id written into every probe")
    p.add_argument("--echo", action="store_true", help="expect replies from a reflector")
    p.add_argument("--echo-wait", type=non_negative_float, default=1.0, metavar="S",
                   help="after the last probe, wait this long for replies (default 1 s)")
    add_log_args(p)
    p.set_defaults(func=run_sender)


def _add_recv_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bind", default="", help="address to bind (default: any)")
    p.add_argument("--port", type=port_number, required=True, help="UDP port to listen on")
    p.add_argument("--echo", action="store_true", help="reflect every probe to its sender")
    p.add_argument("--count", type=positive_int, help="stop after this many probes")
    p.add_argument("--duration", type=positive_float, default=3600.0,
                   help="stop after this many seconds (default 3600)")
    p.add_argument("--idle-timeout", type=positive_float, metavar="S",
                   help="stop after S seconds without probes (counted from the first probe)")
    add_log_args(p)
    p.set_defaults(func=run_receiver)


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse arguments and run the chosen mode; returns the exit code."""
    args = build_parser().parse_args(argv)
    func = args.func
    return run_main(lambda: func(args))


if __name__ == "__main__":
    sys.exit(main())
