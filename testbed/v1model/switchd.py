"""The bundled switch as a process, shaped like BMv2's `simple_switch`.

    python -m testbed.v1model switch [options] PROGRAM.p4 [-- target options]
    p4sim-switch -i 1@s1-eth1 -i 2@s1-eth2 --thrift-port 9090 --pcap pcaps prog.p4

The command line is simple_switch's (`-i N@ifname`, `--pcap [DIR]`, `--thrift-port`, `--device-id`,
`--log-console`, `--log-file`, `-L`, ...; target options after `--`: `--drop-port`,
`--priority-queues`, `--cpu-port`), so topology code written for BMv2 starts this target by
changing only the binary name. The program is P4_16 source (this target has no JSON loader).
Options that make no sense here are accepted with a warning on stderr; see `parse_command_line`.

Exit status: 0 after SIGTERM/SIGINT (pcaps and logs flushed); 64 bad command line (the message
names the option); 65 the program does not load (the P4 error, file:line:col); 70 an I/O failure
(interface missing, control port taken, pcap or log file not writable; the message names it);
134 an `assert()`/`assume()` in the program failed (simple_switch abort()s there).

Readiness: after every interface is bound and the control port listens, one line
`READY {"pid": .., "thrift_port": .., "device_id": .., "ports": {"1": "s1-eth1", ..}, ..}` goes to
stdout (flushed) and the `switch_info` command answers.

Control protocol (the `--thrift-port` stand-in; TCP on 127.0.0.1 only, several clients at once):
the client sends one command per line, UTF-8, in the simple_switch_CLI language; for each line
the switch sends back one JSON object on one line:
    {"ok": true,  "output": "<what simple_switch_CLI prints>", "error": null}
    {"ok": false, "output": "",                               "error": "<message>"}
Commands `switch_info` and `stats` also carry `"data": {...}` (machine-readable). Besides every
command of `testbed.v1model.commands.ControlPlane`, the server itself answers `switch_info`,
`show_ports`, `stats` (rx/tx per port, parser errors, drops, failures), `reset_stats`,
`port_add <ifname> <port>`, `port_remove <port>` and `help`.

Port impairment (a bundled-target extension, not in BMv2; the netem stand-in for kernels without
sch_netem): `port_impair <port> <in|out> [loss <pct>] [delay <ms>] [jitter <ms>] [reorder <pct>]
[limit <n>]`, `port_impair_clear <port> [in|out]`, `port_impair_show [<port>]`. `out` impairs the
frames the switch transmits on the port, `in` the frames it receives there, before the pipeline;
semantics (netem's) in `testbed.v1model.impair`. Impaired frames never reach the port's counters,
pcaps or trace (those show the wire); `stats` counts them per port and direction (`impair_in`,
`impair_out`: lost, overflow, delayed, reordered, discarded, queued) and in total
(`impaired_drops`, `impaired_delayed`). Held frames wait in a time-ordered queue per port
direction; the epoll timeout is cut to the next due time, and frames still held at exit are
dropped (counted as discarded). Without any impairment set the packet path is the one below,
unchanged: a port takes the impaired path only while it impairs its input or some port impairs
its output.

Concurrency and I/O: one thread. Each port is an AF_PACKET socket bound to its interface
(promiscuous, PACKET_IGNORE_OUTGOING so that frames the switch sends are never read back) with a
receive and a transmit ring shared with the kernel (TPACKET_V2). An epoll loop waits on the
ports, the control sockets and a signal wake-up socket; a readable port is drained (up to BATCH
frames read straight from its ring, no system call per frame), each frame goes through
`SimpleSwitch.process`, the results are copied into the output ports' transmit rings, and each
ring used is flushed with one send() at the end of the batch; a port whose ring still holds
frames after a batch is drained again on the next turn of the loop, without waiting for epoll
(which may never report it: see SwitchDaemon._note_backlog). Control commands run between
batches, so they never race with packet processing. Frames the kernel drops because a receive
ring is full are counted (`kernel_drops` in `stats`). 802.1Q tags that the kernel strips on
receive are put back before the program sees the frame. pcaps and the log are flushed at least
once a second and at exit.

Logging: `--log-console` writes the log to stdout, `--log-file F` to `F.txt` (the name BMv2
writes, as p4c's STF runner expects: `--log-file switch.log` gives `switch.log.txt`; rotated at
`--log-file-max-size` bytes into `F.1.txt` ... keeping `--log-file-max-files`). At level trace or
debug (`-L`, default trace) every packet is traced: parser states, tables hit or missed, actions,
drop/clone/multicast/egress decisions and transmissions, each line prefixed with a timestamp and
`[pkt N]`. Without a log option the interpreter is built without any trace code.
"""
from __future__ import annotations

import argparse
import fcntl
import gc
import json
import mmap
import os
import select
import signal
import socket
import struct
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime

from testbed.errors import TestbedError

from .errors import CommandError, P4Error
from .impair import USAGE as IMPAIR_USAGE, Impairer, Impairment, parse_direction
from .runtime import AssertFailure as _AssertFailure

EXIT_OK, EXIT_USAGE, EXIT_PROGRAM, EXIT_IO, EXIT_ASSERT = 0, 64, 65, 70, 134
PROG = "p4sim-switch"
VERSION = "0.1.0"

BATCH = 32                      # frames drained from one port before looking at the others
FLUSH_INTERVAL = 1.0            # pcaps and log are flushed at least this often (s)
RX_RING_FRAMES = 1024           # receive ring per port, in frames (BMv2's input buffer: 1024)
TX_RING_BYTES = 1 << 19         # transmit ring per port: 256 slots of 2 KB
RING_BLOCK = 1 << 16
SOCKET_SNDBUF = 1 << 21
MAX_COMMAND = 1 << 20           # longest control line accepted (bytes)
GC_THRESHOLD = 10000            # allocations between young-generation collections
FAILURES_LOGGED = 10            # frames whose processing failed that are logged with a traceback

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC = 1, 1
PACKET_RX_RING, PACKET_STATISTICS, PACKET_VERSION = 5, 6, 10
PACKET_TX_RING, PACKET_LOSS = 13, 14
PACKET_IGNORE_OUTGOING = 23                 # Linux >= 4.20
TPACKET_V2 = 1
TP_STATUS_USER, TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 0x1, 0x10, 0x40
TP_STATUS_SEND_REQUEST = 0x1
TX_DATA_OFFSET = 32                         # TPACKET2_HDRLEN - sizeof(struct sockaddr_ll)
_RX_HEADER = struct.Struct("IIIH")          # tpacket2_hdr: status, len, snaplen, mac
_RX_TIME = struct.Struct("II")              # tpacket2_hdr at offset 16: sec, nsec
_RX_VLAN = struct.Struct("HH")              # tpacket2_hdr at offset 24: vlan_tci, vlan_tpid
_TX_HEADER = struct.Struct("II")            # tpacket2_hdr: status, len
_RELEASE = struct.Struct("I")               # writing a slot's status word hands it over
SO_SNDBUFFORCE = 32
SIOCGIFFLAGS, SIOCGIFMTU = 0x8913, 0x8921
IFF_UP, IFF_RUNNING = 0x1, 0x40

LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "critical", "off")


class SwitchUsageError(TestbedError):
    """The command line is wrong; the message names the option."""


class SwitchIOError(TestbedError):
    """An interface, file or socket the switch needs cannot be used; the message names it."""


# ---------------------------------------------------------------------------------------------
# Command line


@dataclass
class SwitchOptions:
    """A validated simple_switch-style command line."""

    program: str = ""
    interfaces: dict = field(default_factory=dict)    # port number -> interface name
    pcap_dir: str | None = None
    thrift_port: int = 9090
    device_id: int = 0
    log_console: bool = False
    log_file: str | None = None
    log_level: str = "trace"
    log_flush: bool = False
    log_max_size: int = 5 * 1024 * 1024
    log_max_files: int = 3
    dump_packet_data: int = 0
    max_port_count: int = 512
    cpu_port: int | None = None
    seed: int = 0
    include: list = field(default_factory=list)
    defines: dict = field(default_factory=dict)
    drop_port: int = 511
    priority_queues: int = 1
    rx_ring_frames: int = RX_RING_FRAMES
    warnings: list = field(default_factory=list)
    action: str = "run"                               # run, help, version

    @property
    def log_path(self) -> str | None:
        """The file the log really goes to (`--log-file F` writes `F.txt`, as BMv2)."""
        return None if self.log_file is None else self.log_file + ".txt"

    @property
    def tracing(self) -> bool:
        return (self.log_console or self.log_file is not None) and self.log_level in ("trace", "debug")


class _Parser(argparse.ArgumentParser):
    """argparse that raises SwitchUsageError instead of exiting."""

    def error(self, message):
        raise SwitchUsageError(message)


IGNORED = {   # option -> why it has no effect here (accepted with a warning)
    "nanolog": "this target has no nanomsg event logger (use --log-console/--log-file)",
    "notifications_addr": "digests and ageing notifications are not published (digests are kept in memory)",
    "debugger": "this target has no BMv2 debugger",
    "debugger_addr": "this target has no BMv2 debugger",
    "restore_state": "BMv2 state dumps cannot be restored; replay the CLI command file instead",
}


def _generic_parser() -> _Parser:
    p = _Parser(prog=PROG, add_help=False, allow_abbrev=False,
                usage=f"{PROG} [options] PROGRAM.p4 [-- target options]")
    p.add_argument("program", nargs="?", help="P4_16 source of a v1model program")
    p.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    p.add_argument("-v", "--version", action="store_true", help="print the version and exit")
    p.add_argument("--json-version", action="store_true", help="explain which program format is read, and exit")
    p.add_argument("-i", "--interface", action="append", default=[], metavar="N@IFNAME",
                   help="attach interface IFNAME as port N (repeatable)")
    p.add_argument("--pcap", nargs="?", const=".", metavar="DIR",
                   help="write <DIR>/<ifname>_in.pcap and _out.pcap (DIR defaults to .; must exist)")
    p.add_argument("--thrift-port", type=int, default=9090, metavar="P",
                   help="control port on 127.0.0.1 (default 9090; 0 picks a free port)")
    p.add_argument("--device-id", type=int, default=0, metavar="N", help="device id (default 0)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--log-console", action="store_true", help="log (and trace packets) to stdout")
    g.add_argument("--log-file", metavar="F", help="log (and trace packets) to F.txt")
    p.add_argument("-L", "--log-level", default="trace", metavar="LEVEL",
                   help="trace, debug, info, warn, error, critical or off (default trace)")
    p.add_argument("--log-flush", action="store_true", help="flush the log after every line")
    p.add_argument("--log-file-max-size", type=int, default=5 * 1024 * 1024, metavar="BYTES")
    p.add_argument("--log-file-max-files", type=int, default=3, metavar="N")
    p.add_argument("--dump-packet-data", type=int, default=0, metavar="N",
                   help="log the first N bytes of every packet received and sent (level info)")
    p.add_argument("--max-port-count", type=int, default=512, metavar="N")
    p.add_argument("--nanolog", metavar="ADDR")
    p.add_argument("--notifications-addr", metavar="ADDR")
    p.add_argument("--debugger", action="store_true")
    p.add_argument("--debugger-addr", metavar="ADDR")
    p.add_argument("--restore-state", metavar="FILE")
    p.add_argument("--use-files", metavar="N")
    p.add_argument("--packet-in", metavar="ADDR")
    p.add_argument("--no-p4", action="store_true")
    # bundled-target extras
    p.add_argument("--cpu-port", type=int, metavar="N", help="port number whose interface is the CPU port")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of random() and hash random")
    p.add_argument("-I", dest="include", action="append", default=[], metavar="DIR",
                   help="add DIR to the #include search path")
    p.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME[=VALUE]",
                   help="define a preprocessor macro")
    return p


GRPC_OPTIONS = ("--grpc-server-addr", "--grpc-server-ssl", "--grpc-server-cacert", "--grpc-server-cert",
                "--grpc-server-key", "--grpc-server-with-client-auth", "--dp-grpc-server-addr", "--disable-swap")


def _target_parser() -> _Parser:
    p = _Parser(prog=f"{PROG} ... --", add_help=False, allow_abbrev=False)
    p.add_argument("--drop-port", type=int, default=None, metavar="N")
    p.add_argument("--priority-queues", type=int, default=1, metavar="N")
    p.add_argument("--cpu-port", type=int, metavar="N")
    p.add_argument("--rx-ring-frames", type=int, default=RX_RING_FRAMES, metavar="N")
    p.add_argument("--enable-swap", action="store_true")
    for name in ("--max-mc-groups", "--max-l1-entries", "--max-l2-entries"):
        p.add_argument(name, type=int, metavar="N")
    p.add_argument("--load-modules", metavar="LIST")
    for name in GRPC_OPTIONS:
        if name in ("--grpc-server-ssl", "--grpc-server-with-client-auth", "--disable-swap"):
            p.add_argument(name, action="store_true")
        else:
            p.add_argument(name, metavar="VALUE")
    return p


def usage_text() -> str:
    """The help of the command (generic options, then target options)."""
    return (_generic_parser().format_help()
            + "\ntarget options (after --):\n"
            "  --drop-port N          egress_spec value that drops (default 511)\n"
            "  --priority-queues N    egress queues per port; priority >= N drops (default 1)\n"
            "  --cpu-port N           as simple_switch_grpc: the port whose interface is the CPU port\n"
            "  --rx-ring-frames N     receive ring of each port, in frames (default 1024; 32-65536)\n"
            "  --enable-swap, --max-mc-groups, --max-l1-entries, --max-l2-entries, --grpc-*: accepted, no effect\n"
            "\nexit status: 0 stopped by SIGTERM/SIGINT, 64 bad option, 65 bad program, 70 I/O failure, "
            "134 assert() failed\n")


def parse_command_line(argv: list[str]) -> SwitchOptions:
    """Parse and validate a simple_switch command line; raise SwitchUsageError."""
    argv = list(argv)
    target = []
    if "--" in argv:
        cut = argv.index("--")
        argv, target = argv[:cut], argv[cut + 1:]
    args = _generic_parser().parse_args(argv)
    targs = _target_parser().parse_args(target)
    opts = SwitchOptions()
    if args.help or args.version or args.json_version:
        opts.action = "help" if args.help else "version"
        return opts
    _reject(args)
    _fix_implicit_pcap(args)
    opts.program = _program(args.program)
    opts.interfaces = _interfaces(args.interface, args.max_port_count)
    opts.pcap_dir = _pcap_dir(args.pcap)
    opts.thrift_port = _in_range("--thrift-port", args.thrift_port, 0, 65535)
    opts.device_id = _in_range("--device-id", args.device_id, 0, 2 ** 63 - 1)
    opts.log_console, opts.log_file, opts.log_flush = args.log_console, args.log_file, args.log_flush
    opts.log_level = _log_level(args.log_level)
    opts.log_max_size = _in_range("--log-file-max-size", args.log_file_max_size, 1, 2 ** 63 - 1)
    opts.log_max_files = _in_range("--log-file-max-files", args.log_file_max_files, 1, 1000)
    opts.dump_packet_data = _in_range("--dump-packet-data", args.dump_packet_data, 0, 2 ** 31)
    opts.max_port_count = args.max_port_count
    opts.seed, opts.include = args.seed, args.include
    opts.defines = dict(_define(d) for d in args.defines)
    _target_options(opts, targs)
    opts.cpu_port = _cpu_port(args.cpu_port, targs.cpu_port, opts)
    opts.warnings += [f"--{k.replace('_', '-')} ignored: {why}" for k, why in IGNORED.items()
                      if getattr(args, k) not in (None, False)]
    if opts.log_level != "trace" and not (opts.log_console or opts.log_file):
        opts.warnings.append("--log-level has no effect without --log-console or --log-file")
    return opts


def _reject(args) -> None:
    if args.use_files is not None:
        raise SwitchUsageError("--use-files is not supported: this target reads interfaces only "
                               "(to run packets from files use `python -m testbed.v1model stf`)")
    if args.packet_in is not None:
        raise SwitchUsageError("--packet-in is not supported: this target has no nanomsg packet socket; "
                               "attach interfaces with -i N@IFNAME")
    if args.no_p4:
        raise SwitchUsageError("--no-p4 is not supported: give the P4 program on the command line "
                               "(this target cannot load one later)")


def _fix_implicit_pcap(args) -> None:
    """`--pcap prog.p4` means `--pcap .` then the program (as BMv2's implicit value reads)."""
    if args.program is None and args.pcap and args.pcap.endswith((".p4", ".json")) and not os.path.isdir(args.pcap):
        args.program, args.pcap = args.pcap, "."


def _program(path: str | None) -> str:
    if not path:
        raise SwitchUsageError("no program given: the last argument must be a P4_16 source file (PROGRAM.p4)")
    if path.endswith(".json"):
        sibling = path[:-5] + ".p4"
        hint = f" (did you mean {sibling}?)" if os.path.exists(sibling) else ""
        raise SwitchUsageError(f"{path}: this target runs P4_16 source, not BMv2 JSON: give the .p4 program{hint}")
    return path


def _interfaces(items: list[str], max_ports: int) -> dict:
    out: dict[int, str] = {}
    for item in items:
        num, at, name = item.partition("@")
        try:
            port = int(num, 10)
        except ValueError:
            port = None
        if not at or not name or port is None:
            raise SwitchUsageError(f"-i {item}: expected N@IFNAME, e.g. -i 1@s1-eth1")
        if not 0 <= port < max_ports:
            raise SwitchUsageError(f"-i {item}: port {port} out of range 0..{max_ports - 1} (--max-port-count)")
        if port in out:
            raise SwitchUsageError(f"-i {item}: port {port} is already attached to {out[port]}")
        if name in out.values():
            raise SwitchUsageError(f"-i {item}: interface {name} is attached twice")
        out[port] = name
    return out


def _pcap_dir(path: str | None) -> str | None:
    if path is None:
        return None
    if not os.path.isdir(path):
        raise SwitchUsageError(f"--pcap {path}: directory does not exist")
    return path


def _in_range(option: str, value: int, lo: int, hi: int) -> int:
    if not lo <= value <= hi:
        raise SwitchUsageError(f"{option} {value}: must be in {lo}..{hi}")
    return value


def _log_level(level: str) -> str:
    level = {"warning": "warn", "err": "error"}.get(level.lower(), level.lower())
    if level not in LOG_LEVELS:
        raise SwitchUsageError(f"--log-level {level}: must be one of {', '.join(LOG_LEVELS)}")
    return level


def _define(item: str) -> tuple:
    name, _, value = item.partition("=")
    if not name.isidentifier():
        raise SwitchUsageError(f"-D {item}: {name!r} is not a macro name")
    return name, value or "1"


def _target_options(opts: SwitchOptions, t) -> None:
    if t.drop_port is not None:
        opts.drop_port = _in_range("--drop-port", t.drop_port, 0, 511)
    opts.priority_queues = _in_range("--priority-queues", t.priority_queues, 1, 8)
    opts.rx_ring_frames = _in_range("--rx-ring-frames", t.rx_ring_frames, 32, 65536)
    if t.load_modules:
        raise SwitchUsageError("--load-modules is not supported: this target cannot load BMv2 extern modules")
    for name in ("enable_swap", "max_mc_groups", "max_l1_entries", "max_l2_entries"):
        if getattr(t, name) not in (None, False):
            opts.warnings.append(f"--{name.replace('_', '-')} ignored: this target has no such limit or mode")
    grpc = [n for n in GRPC_OPTIONS if getattr(t, n[2:].replace("-", "_")) not in (None, False)]
    if grpc:
        opts.warnings.append(f"{', '.join(grpc)} ignored: this target has no P4Runtime server; "
                             "configure it through the control port (p4sim-cli)")
    for port in opts.interfaces:
        if port == opts.drop_port:
            raise SwitchUsageError(f"-i {port}@{opts.interfaces[port]}: port {port} is the drop port (--drop-port)")


def _cpu_port(generic: int | None, target: int | None, opts: SwitchOptions) -> int | None:
    if generic is not None and target is not None and generic != target:
        raise SwitchUsageError(f"--cpu-port given twice with different values ({generic}, {target})")
    port = generic if generic is not None else target
    if port is None:
        return None
    if not 1 <= port < min(512, opts.max_port_count) or port == opts.drop_port:
        raise SwitchUsageError(f"--cpu-port {port}: must be a non-zero 9-bit port number other than the drop port")
    if port not in opts.interfaces:
        opts.warnings.append(f"--cpu-port {port}: no interface is attached as port {port} (-i {port}@IFNAME); "
                             "packets sent to the CPU port are dropped")
    return port


# ---------------------------------------------------------------------------------------------
# Log and per-packet trace


class SwitchLog:
    """The switch log: stdout (`--log-console`) or a rotating file; None sink = no log."""

    RANK = {name: i for i, name in enumerate(LOG_LEVELS)}
    TAG = {"trace": "T", "debug": "D", "info": "I", "warn": "W", "error": "E", "critical": "C"}

    def __init__(self, opts: SwitchOptions):
        self.level = self.RANK[opts.log_level]
        self.flush_each = opts.log_flush
        self.path, self.max_size, self.max_files = opts.log_path, opts.log_max_size, opts.log_max_files
        self.size = 0
        self.sink = None
        if opts.log_console and self.level < self.RANK["off"]:
            self.sink = sys.stdout
        elif self.path and self.level < self.RANK["off"]:
            self.sink = self._open()

    def _open(self):
        try:
            return open(self.path, "w", buffering=1 << 16, encoding="utf-8")
        except OSError as e:
            raise SwitchIOError(f"--log-file: cannot write {self.path}: {e.strerror}") from None

    def enabled(self, level: str) -> bool:
        return self.sink is not None and self.RANK[level] >= self.level

    def line(self, text: str) -> None:
        """Write one already formatted line (a log that cannot be written is switched off)."""
        if self.sink is None:
            return
        try:
            self.sink.write(text + "\n")
            if self.path:
                self.size += len(text) + 1
                if self.size >= self.max_size:
                    self._rotate()
            if self.flush_each:
                self.sink.flush()
        except OSError as e:
            self.sink = None
            print(f"{PROG}: warning: logging stopped: {e.strerror or e}", file=sys.stderr, flush=True)

    def log(self, level: str, message: str) -> None:
        if self.enabled(level):
            for part in message.splitlines() or [""]:
                self.line(f"[{_now()}] [bmv2] [{self.TAG[level]}] {part}")

    def info(self, message: str) -> None:
        self.log("info", message)

    def warn(self, message: str) -> None:
        """Warnings also go to stderr (unless the log already is the console)."""
        self.log("warn", message)
        print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True)

    def error(self, message: str) -> None:
        self.log("error", message)
        print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)

    def _rotate(self) -> None:
        self.sink.close()
        self._shift_rotated(self.path[:-4])
        self.sink, self.size = self._open(), 0

    def _shift_rotated(self, stem: str) -> None:
        """F.txt -> F.1.txt -> F.2.txt ...; the oldest beyond max_files - 1 is removed."""
        names = [self.path] + [f"{stem}.{i}.txt" for i in range(1, self.max_files)]
        if os.path.exists(names[-1]) and len(names) > 1:
            os.remove(names[-1])
        for newer, older in zip(reversed(names[:-1]), reversed(names[1:])):
            if os.path.exists(newer):
                os.replace(newer, older)

    def flush(self) -> None:
        if self.sink is not None:
            try:
                self.sink.flush()
            except OSError:
                self.sink = None

    def close(self) -> None:
        if self.sink is not None and self.sink is not sys.stdout:
            self.sink.close()
        else:
            self.flush()
        self.sink = None


def _now() -> str:
    return datetime.now().strftime("%H:%M:%S.%f")


class PacketTracer:
    """The `trace` callable of SimpleSwitch: prefixes each line with a timestamp and packet id."""

    def __init__(self, log: SwitchLog):
        self.log = log
        self.packet = 0
        self.prefix = "[bmv2] [T] "

    def begin(self) -> None:
        """A new frame arrived: the following lines belong to it."""
        self.packet += 1
        self.prefix = f"[{_now()}] [bmv2] [T] [pkt {self.packet}] "

    def __call__(self, message: str) -> None:
        self.log.line(self.prefix + message)


# ---------------------------------------------------------------------------------------------
# Ports: raw sockets bound to interfaces


class Rings:
    """PACKET_RX_RING and PACKET_TX_RING (TPACKET_V2) of one socket, in one shared mapping.

    Receive: slots hold a tpacket2_hdr (status, len, snaplen, mac, net, sec, nsec, vlan_tci,
    vlan_tpid) and the frame at offset `mac`; a slot is ours while its status has TP_STATUS_USER,
    writing 0 gives it back. No system call per frame.
    Transmit: `put()` copies a frame into the next free slot (status TP_STATUS_AVAILABLE) and marks
    it TP_STATUS_SEND_REQUEST; `flush()` makes one send() for every queued frame.
    """

    __slots__ = ("mm", "off", "frame_size", "size", "sock", "tx_base", "tx_off", "tx_end", "tx_pending",
                 "max_frame")

    def __init__(self, sock: socket.socket, mtu: int, rx_frames: int = RX_RING_FRAMES):
        self.sock = sock
        self.frame_size = size = _frame_size(mtu)
        self.max_frame = mtu + 18                  # Ethernet header + 802.1Q tag + MTU
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
        sock.setsockopt(SOL_PACKET, PACKET_LOSS, 1)     # the kernel skips a frame it cannot send
        self.size = _ring(sock, PACKET_RX_RING, size, rx_frames * size)
        tx_size = _ring(sock, PACKET_TX_RING, size, TX_RING_BYTES)
        self.mm = mmap.mmap(sock.fileno(), self.size + tx_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.off = 0
        self.tx_base = self.tx_off = self.size
        self.tx_end = self.size + tx_size
        self.tx_pending = 0

    def put(self, frame: bytes) -> bool:
        """Queue `frame` for transmission; False when the transmit ring is full.
        (SwitchDaemon._drain inlines this.)"""
        mm, slot = self.mm, self.tx_off
        if mm[slot] and not self.make_room():
            return False
        mm[slot + TX_DATA_OFFSET:slot + TX_DATA_OFFSET + len(frame)] = frame
        _TX_HEADER.pack_into(mm, slot, TP_STATUS_SEND_REQUEST, len(frame))
        slot += self.frame_size
        self.tx_off = self.tx_base if slot == self.tx_end else slot
        self.tx_pending += 1
        return True

    def make_room(self) -> bool:
        """The next transmit slot is still in use: flush (even with nothing newly queued, as
        frames may wait from an earlier failed send), and tell whether it is free now."""
        self.tx_pending = max(self.tx_pending, 1)
        self.flush()
        return not self.mm[self.tx_off]

    def flush(self) -> int:
        """Hand every queued frame to the kernel; return how many were lost (e.g. link down)."""
        pending, self.tx_pending = self.tx_pending, 0
        if not pending:
            return 0
        try:
            self.sock.send(b"", socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            return self._discard_queued()
        return 0

    def _discard_queued(self) -> int:
        """After a failed send: give back the slots still waiting to be sent (the run just
        before tx_off, where the kernel stopped) and move tx_off back to the start of that run,
        so that it stays in step with the kernel's position. Returns how many were dropped."""
        mm, size = self.mm, self.frame_size
        slot, dropped = self.tx_off, 0
        for _ in range((self.tx_end - self.tx_base) // size):
            prev = (slot if slot > self.tx_base else self.tx_end) - size
            if _TX_HEADER.unpack_from(mm, prev)[0] != TP_STATUS_SEND_REQUEST:
                break
            _TX_HEADER.pack_into(mm, prev, 0, 0)
            slot, dropped = prev, dropped + 1
        self.tx_off = slot
        return dropped

    def close(self) -> None:
        self.mm.close()


def _with_vlan_tag(frame: bytes, mm, slot: int, status: int) -> bytes:
    """Put back the 802.1Q tag the kernel moved out of the frame (as libpcap does for BMv2)."""
    tci, tpid = _RX_VLAN.unpack_from(mm, slot + 24)
    if not status & TP_STATUS_VLAN_TPID_VALID:
        tpid = 0x8100
    return frame[:12] + struct.pack("!HH", tpid, tci) + frame[12:]


def _rx_time(mm, slot: int) -> int:
    """The kernel's receive timestamp of a ring slot, in ns since the epoch."""
    sec, nsec = _RX_TIME.unpack_from(mm, slot + 16)
    return sec * 1_000_000_000 + nsec


def _ring(sock: socket.socket, option: int, frame_size: int, total: int) -> int:
    block = max(RING_BLOCK, frame_size)
    blocks = max(1, -(-total // block))             # rounded up to whole blocks
    sock.setsockopt(SOL_PACKET, option, struct.pack("IIII", block, blocks, frame_size,
                                                    blocks * (block // frame_size)))
    return block * blocks


def _frame_size(mtu: int) -> int:
    """Smallest power of two holding the slot header, a VLAN-tagged frame of `mtu` and slack."""
    need, size = 128 + mtu + 18, 2048
    while size < need:
        size *= 2
    return size


class Port:
    """One switch port: an AF_PACKET socket bound to `ifname` with its rings, counters and pcaps."""

    __slots__ = ("num", "ifname", "sock", "fd", "ring", "rx", "rx_bytes", "tx", "tx_bytes", "tx_errors",
                 "rx_errors", "truncated", "kernel_drops", "pcap_in", "pcap_out", "imp_in", "imp_out",
                 "impaired")

    def __init__(self, num: int, ifname: str, seed: int = 0, rx_frames: int = RX_RING_FRAMES):
        self.num, self.ifname = num, ifname
        self.rx = self.rx_bytes = self.tx = self.tx_bytes = self.tx_errors = self.rx_errors = 0
        self.truncated = self.kernel_drops = 0
        self.pcap_in = self.pcap_out = None
        self.imp_in, self.imp_out = Impairer.seeded(seed, num, "in"), Impairer.seeded(seed, num, "out")
        self.impaired = False           # frames from this port take SwitchDaemon._drain_impaired
        self.sock, self.ring = open_raw_socket(ifname, rx_frames)
        self.fd = self.sock.fileno()

    def is_up(self) -> bool:
        try:
            ifreq = fcntl.ioctl(self.fd, SIOCGIFFLAGS, struct.pack("16sH14x", self.ifname.encode(), 0))
        except OSError:
            return False
        flags = struct.unpack_from("H", ifreq, 16)[0]
        return bool(flags & IFF_UP) and bool(flags & IFF_RUNNING)

    def open_pcaps(self, directory: str) -> None:
        from .pcap import PcapWriter
        base = os.path.join(directory, self.ifname)
        try:
            self.pcap_in = PcapWriter(base + "_in.pcap")
            self.pcap_out = PcapWriter(base + "_out.pcap")
        except OSError as e:
            raise SwitchIOError(f"--pcap: cannot write {e.filename}: {e.strerror}") from None

    def flush(self) -> None:
        for w in (self.pcap_in, self.pcap_out):
            if w is not None:
                w.flush()

    def close(self) -> None:
        for w in (self.pcap_in, self.pcap_out):
            if w is not None:
                w.close()
        self.ring.close()
        self.sock.close()

    def flush_tx(self) -> None:
        """Send the frames queued on the transmit ring; count the lost ones as errors."""
        lost = self.ring.flush()
        if lost:
            self.tx -= lost
            self.tx_errors += lost

    def update_kernel_drops(self) -> None:
        """Add the frames the kernel dropped because the ring was full (PACKET_STATISTICS)."""
        try:
            _packets, drops = struct.unpack("II", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        except OSError:
            return
        self.kernel_drops += drops

    def counters(self) -> dict:
        self.update_kernel_drops()
        return {"ifname": self.ifname, "rx": self.rx, "rx_bytes": self.rx_bytes, "tx": self.tx,
                "tx_bytes": self.tx_bytes, "tx_errors": self.tx_errors, "rx_errors": self.rx_errors,
                "truncated": self.truncated, "kernel_drops": self.kernel_drops,
                "impair_in": self.imp_in.show(), "impair_out": self.imp_out.show()}

    def impairers(self):
        """(direction, Impairer) of both directions."""
        return (("in", self.imp_in), ("out", self.imp_out))


def open_raw_socket(ifname: str, rx_frames: int = RX_RING_FRAMES) -> tuple:
    """A non-blocking AF_PACKET socket and its Rings, receiving every frame arriving on
    `ifname` (promiscuous), never the frames sent through it; raise SwitchIOError naming the
    interface."""
    try:
        index = socket.if_nametoindex(ifname)
    except OSError:
        raise SwitchIOError(f"interface {ifname}: no such interface") from None
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)    # protocol 0: nothing queued before bind
    try:
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        _set_buffer(sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, SOCKET_SNDBUF)     # room for a batch in flight
        ring = Rings(sock, _mtu(sock, ifname), rx_frames)
        sock.bind((ifname, ETH_P_ALL))
        sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, struct.pack("iHH8s", index, PACKET_MR_PROMISC, 0, b""))
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        raise SwitchIOError(f"interface {ifname}: cannot attach a raw socket: {e.strerror or e}") from None
    return sock, ring


def _mtu(sock: socket.socket, ifname: str) -> int:
    ifreq = fcntl.ioctl(sock.fileno(), SIOCGIFMTU, struct.pack("16si12x", ifname.encode(), 0))
    return struct.unpack_from("i", ifreq, 16)[0]


def _set_buffer(sock, forced: int, plain: int, size: int) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, forced, size)      # root may exceed net.core.*mem_max
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, plain, size)


# ---------------------------------------------------------------------------------------------
# Control server


class ControlConnection:
    """One client of the control port: bytes in, complete lines out, replies buffered."""

    __slots__ = ("sock", "fd", "inbuf", "outbuf", "peer")

    def __init__(self, sock: socket.socket, peer):
        self.sock, self.fd, self.peer = sock, sock.fileno(), peer
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        sock.setblocking(False)

    def read_lines(self) -> list[str] | None:
        """Complete lines received so far; None when the client is gone or misbehaves."""
        try:
            chunk = self.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError:
            return None
        if not chunk:
            return None
        self.inbuf += chunk
        if b"\n" not in self.inbuf:
            return None if len(self.inbuf) > MAX_COMMAND else []
        *lines, rest = self.inbuf.split(b"\n")
        self.inbuf = bytearray(rest)
        return [line.decode("utf-8", "replace").rstrip("\r") for line in lines]

    def queue(self, reply: dict) -> None:
        self.outbuf += json.dumps(reply).encode() + b"\n"

    def send_pending(self) -> bool:
        """Send what the socket takes now; True when everything is out."""
        try:
            n = self.sock.send(self.outbuf)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            self.outbuf.clear()
            return True
        del self.outbuf[:n]
        return not self.outbuf


def open_control_listener(port: int) -> socket.socket:
    """The control port: TCP on 127.0.0.1 only; raise SwitchIOError naming the address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(16)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        raise SwitchIOError(f"--thrift-port {port}: cannot listen on 127.0.0.1:{port}: {e.strerror}") from None
    return sock


# ---------------------------------------------------------------------------------------------
# The switch process


class SwitchDaemon:
    """A loaded SimpleSwitch attached to interfaces and a control port, run by an epoll loop."""

    def __init__(self, opts: SwitchOptions, switch, log: SwitchLog, tracer: PacketTracer | None):
        self.opts, self.switch, self.log, self.tracer = opts, switch, log, tracer
        self.ports: dict[int, Port] = {}
        self.failures = 0             # frames whose processing raised an unexpected exception
        self.unknown_port = 0         # output to a port with no interface
        self.impaired: list = []      # (port, "in"/"out", Impairer) of every impairment set
        self.stopping = False
        self.listener = None
        self.thrift_port = opts.thrift_port
        self.clients: dict[int, ControlConnection] = {}
        self.handlers: dict = {}
        self.backlog: dict[int, Port] = {}    # ports whose ring still held frames after a batch
        self.epoll = select.epoll()
        self._wake_r, self._wake_w = socket.socketpair()
        self._started = time.time()

    # -- set-up -------------------------------------------------------------------------------
    def open(self) -> None:
        """Bind every interface, open pcaps, then listen on the control port."""
        for num, ifname in sorted(self.opts.interfaces.items()):
            self.add_port(num, ifname)
        self.listener = open_control_listener(self.opts.thrift_port)
        self.thrift_port = self.listener.getsockname()[1]
        if not _interface_up(self.listener, "lo"):
            self.log.warn("the loopback interface of this network namespace is down: the control port "
                          f"127.0.0.1:{self.thrift_port} cannot be reached (ip link set lo up)")
        self._watch(self.listener.fileno(), self._accept)
        for s in (self._wake_r, self._wake_w):
            s.setblocking(False)
        self._watch(self._wake_r.fileno(), self._woken)

    def add_port(self, num: int, ifname: str) -> Port:
        port = Port(num, ifname, self.opts.seed, self.opts.rx_ring_frames)
        try:
            if self.opts.pcap_dir is not None:
                port.open_pcaps(self.opts.pcap_dir)
        except SwitchIOError:
            port.close()
            raise
        self.ports[num] = port
        self._impairments_changed()
        self._watch(port.fd, lambda ev, p=port: self._port_event(p, ev))
        self.log.info(f"Adding interface {ifname} as port {num}")
        if not port.is_up():
            self.log.warn(f"interface {ifname} (port {num}) is down: frames cannot be sent on it until it is up")
        return port

    def remove_port(self, num: int) -> None:
        port = self.ports.pop(num)
        self.backlog.pop(num, None)
        self._unwatch(port.fd)
        port.close()
        self._impairments_changed()
        self.log.info(f"Removing port {num} ({port.ifname})")

    def _watch(self, fd: int, handler, events=select.EPOLLIN) -> None:
        self.handlers[fd] = handler
        self.epoll.register(fd, events)

    def _unwatch(self, fd: int) -> None:
        self.handlers.pop(fd, None)
        try:
            self.epoll.unregister(fd)
        except (OSError, ValueError):
            pass

    def ready_info(self) -> dict:
        o = self.opts
        return {"pid": os.getpid(), "thrift_port": self.thrift_port, "device_id": o.device_id,
                "ports": {str(n): p.ifname for n, p in sorted(self.ports.items())}, "cpu_port": o.cpu_port,
                "drop_port": o.drop_port, "priority_queues": o.priority_queues,
                "program": os.path.abspath(o.program), "pcap_dir": o.pcap_dir, "log_file": o.log_path,
                "log_console": o.log_console, "target": "bundled v1model (testbed.v1model)"}

    # -- the loop -------------------------------------------------------------------------------
    def request_stop(self, *_args) -> None:
        """Signal handler: leave the loop after the current batch."""
        self.stopping = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _woken(self, _ev) -> None:
        try:
            while self._wake_r.recv(512):
                pass
        except OSError:
            pass

    def run(self) -> None:
        """Process frames and commands until request_stop(); AssertFailure propagates."""
        poll, handlers = self.epoll.poll, self.handlers
        monotonic = time.monotonic
        next_flush = monotonic() + FLUSH_INTERVAL
        timeout = FLUSH_INTERVAL
        backlog = self.backlog
        while not self.stopping:
            for fd, ev in poll(0 if backlog else timeout):
                handler = handlers.get(fd)
                if handler is not None:
                    handler(ev)
            for port in list(backlog.values()):
                self._port_event(port, 0)
            now = monotonic()
            if now >= next_flush:
                self.flush()
                next_flush = now + FLUSH_INTERVAL
            timeout = next_flush - now
            if self.impaired:
                due = self._release(now)
                if due is not None:
                    timeout = min(timeout, max(0.0, due - monotonic()))

    def _drain(self, port: Port) -> None:
        """Take up to BATCH frames from `port`'s receive ring, switch each one and queue the
        results on the output ports' transmit rings; then flush those rings (one send() each).
        This is the hot path: the transmit-ring write of Rings.put is inlined here."""
        ring = port.ring
        mm, off, frame_size, ring_size = ring.mm, ring.off, ring.frame_size, ring.size
        rx_header, release, tx_header = _RX_HEADER.unpack_from, _RELEASE.pack_into, _TX_HEADER.pack_into
        process, ports = self.switch.process, self.ports
        pcap_in, num, slow = port.pcap_in, port.num, self.tracer is not None or self.opts.dump_packet_data
        got = nbytes = 0
        dirty = []                      # ports with frames queued in this batch
        for _ in range(BATCH):
            if not mm[off] & TP_STATUS_USER:
                break
            status, length, snap, mac = rx_header(mm, off)
            data = mm[off + mac:off + mac + snap]
            if status & TP_STATUS_VLAN_VALID:
                data = _with_vlan_tag(data, mm, off, status)
            if pcap_in is not None:
                pcap_in.write(data, _rx_time(mm, off))
            release(mm, off, 0)
            off += frame_size
            if off == ring_size:
                off = 0
            if snap < length:
                port.truncated += 1
                continue
            got += 1
            nbytes += length
            if slow:
                self._trace_in(port, data)
            try:
                outs = process(num, data)
            except _AssertFailure:
                ring.off = off
                for out in dirty:
                    out.flush_tx()
                raise
            except Exception:           # a target fault on one frame must not stop the switch
                self._failed(port, data)
                continue
            for onum, odata in outs:
                out = ports.get(onum)
                if out is None:
                    self.unknown_port += 1
                    if slow:
                        self._trace_out(onum, None, odata)
                    continue
                tx, n = out.ring, len(odata)
                txm, slot = tx.mm, tx.tx_off
                if n > tx.max_frame or (txm[slot] and not tx.make_room()):
                    out.tx_errors += 1
                    continue
                txm[slot + TX_DATA_OFFSET:slot + TX_DATA_OFFSET + n] = odata
                tx_header(txm, slot, TP_STATUS_SEND_REQUEST, n)       # read by the kernel at flush
                slot += tx.frame_size
                tx.tx_off = tx.tx_base if slot == tx.tx_end else slot
                if not tx.tx_pending:
                    dirty.append(out)
                tx.tx_pending += 1
                out.tx += 1
                out.tx_bytes += n
                if out.pcap_out is not None:
                    out.pcap_out.write(odata)
                if slow:
                    self._trace_out(onum, out, odata)
        ring.off = off
        port.rx += got
        port.rx_bytes += nbytes
        self._note_backlog(port)
        for out in dirty:
            out.flush_tx()

    def _note_backlog(self, port: Port) -> None:
        """Remember a port whose ring still holds frames after a batch, to be drained without
        waiting for epoll: the kernel reports a ring readable only if the slot before its write
        position is ours, so when that slot was the last one a batch read while the kernel,
        its ring full, drops frames without a wake-up, epoll would never report it again."""
        ring = port.ring
        if ring.mm[ring.off] & TP_STATUS_USER:
            self.backlog[port.num] = port
        else:
            self.backlog.pop(port.num, None)

    def _port_event(self, port: Port, ev: int) -> None:
        if ev & select.EPOLLERR:
            self._socket_error(port)
        if port.impaired:
            self._drain_impaired(port)
        else:
            self._drain(port)

    # -- the path of frames when port impairments are set (see testbed.v1model.impair) ----------
    # Impaired frames never reach the counters, pcaps or trace: those show the wire. `in` is
    # applied before a frame is counted as received; `out` before it is counted as sent.
    def _drain_impaired(self, port: Port) -> None:
        """_drain with port impairments: used for every port while some port impairs its
        output, else only for ports impairing their input."""
        imp = port.imp_in if port.imp_in.spec is not None else None
        now, dirty = time.monotonic(), []
        try:
            for data, ts in self._receive(port):
                if imp is None or imp.admit(data, now) is not None:
                    self._ingress(port, data, ts, dirty)
        finally:
            for out in dirty:
                out.flush_tx()

    def _receive(self, port: Port) -> list:
        """Up to BATCH (frame, kernel receive time in ns) from `port`'s receive ring; frames
        cut short by the ring are counted and left out."""
        ring = port.ring
        mm, off, frames = ring.mm, ring.off, []
        for _ in range(BATCH):
            if not mm[off] & TP_STATUS_USER:
                break
            status, length, snap, mac = _RX_HEADER.unpack_from(mm, off)
            data = mm[off + mac:off + mac + snap]
            if status & TP_STATUS_VLAN_VALID:
                data = _with_vlan_tag(data, mm, off, status)
            ts = _rx_time(mm, off)
            _RELEASE.pack_into(mm, off, 0)
            off = (off + ring.frame_size) % ring.size
            if snap < length:
                port.truncated += 1
            else:
                frames.append((data, ts))
        ring.off = off
        self._note_backlog(port)
        return frames

    def _ingress(self, port: Port, data: bytes, ts: int | None, dirty: list) -> None:
        """Count, capture and switch one received frame; transmit (or impair) its outputs."""
        port.rx += 1
        port.rx_bytes += len(data)
        if port.pcap_in is not None:
            port.pcap_in.write(data, ts)
        slow = self.tracer is not None or self.opts.dump_packet_data
        if slow:
            self._trace_in(port, data)
        try:
            outs = self.switch.process(port.num, data)
        except _AssertFailure:
            raise
        except Exception:               # a target fault on one frame must not stop the switch
            self._failed(port, data)
            return
        now = time.monotonic()
        for onum, odata in outs:
            out = self.ports.get(onum)
            if out is None:
                self.unknown_port += 1
                if slow:
                    self._trace_out(onum, None, odata)
            elif out.imp_out.spec is None or out.imp_out.admit(odata, now) is not None:
                self._transmit(out, odata, dirty)

    def _transmit(self, out: Port, data: bytes, dirty: list) -> None:
        """Queue one frame on `out`'s transmit ring (flushed by the caller through `dirty`)."""
        if len(data) > out.ring.max_frame or not out.ring.put(data):
            out.tx_errors += 1
            return
        if out not in dirty:
            dirty.append(out)
        out.tx += 1
        out.tx_bytes += len(data)
        if out.pcap_out is not None:
            out.pcap_out.write(data)
        if self.tracer is not None or self.opts.dump_packet_data:
            self._trace_out(out.num, out, data)

    def _release(self, now: float) -> float | None:
        """Send on the held frames that are due; return when the next one is (None: none held)."""
        dirty, upcoming = [], []
        try:
            for port, direction, imp in self.impaired:
                for data in imp.release(now):
                    if direction == "in":
                        self._ingress(port, data, None, dirty)
                    else:
                        self._transmit(port, data, dirty)
                if imp.held:
                    upcoming.append(imp.next_due())
        finally:
            for out in dirty:
                out.flush_tx()
        return min(upcoming, default=None)

    def _impairments_changed(self) -> None:
        """Recompute which impairments are set and which ports take the impaired path."""
        self.impaired = [(p, d, imp) for _n, p in sorted(self.ports.items()) for d, imp in p.impairers()
                         if imp.spec is not None]
        egress = any(d == "out" for _p, d, _i in self.impaired)
        for port in self.ports.values():
            port.impaired = egress or port.imp_in.spec is not None

    def discard_held(self) -> int:
        """Drop every held frame (at shutdown); returns how many (counted as discarded)."""
        return sum(imp.discard() for _p, _d, imp in self.impaired)

    def _socket_error(self, port: Port) -> None:
        """Read (and so clear) a pending socket error, e.g. ENETDOWN when the link went down."""
        code = port.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            port.rx_errors += 1
            self.log.warn(f"port {port.num} ({port.ifname}): {os.strerror(code)}")

    def _trace_in(self, port: Port, data: bytes) -> None:
        if self.tracer is not None:
            self.tracer.begin()
        n = self.opts.dump_packet_data
        if n and self.log.enabled("info"):
            self.log.info(f"Packet data (in, port {port.num}): {data[:n].hex(' ')}")

    def _trace_out(self, num: int, port: Port | None, data: bytes) -> None:
        if self.tracer is not None:
            if port is None:
                self.tracer(f"dropped: no interface attached as port {num}")
            else:
                self.tracer(f"transmitted on port {num} ({port.ifname}), {len(data)} bytes")
        n = self.opts.dump_packet_data
        if n and port is not None and self.log.enabled("info"):
            self.log.info(f"Packet data (out, port {num}): {data[:n].hex(' ')}")

    def _failed(self, port: Port, data: bytes) -> None:
        self.failures += 1
        if self.failures > FAILURES_LOGGED and self.failures % 1000:
            return
        self.log.error(f"failure {self.failures} (the first {FAILURES_LOGGED}, then every 1000th, are logged): "
                       f"frame {len(data)} bytes on port {port.num} ({port.ifname}) not processed "
                       f"(target fault, frame dropped):\n{traceback.format_exc().rstrip()}")

    # -- control ------------------------------------------------------------------------------
    def _accept(self, _ev) -> None:
        while True:
            try:
                sock, peer = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self.log.warn(f"control port: accept failed: {e.strerror}")
                return
            conn = ControlConnection(sock, peer)
            self.clients[conn.fd] = conn
            self._watch(conn.fd, lambda ev, c=conn: self._client_event(c, ev))

    def _client_event(self, conn: ControlConnection, ev: int) -> None:
        if ev & select.EPOLLOUT:
            if conn.send_pending():
                self.epoll.modify(conn.fd, select.EPOLLIN)
        if not ev & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
            return
        lines = conn.read_lines()
        if lines is None:
            self._drop_client(conn)
            return
        for line in lines:
            conn.queue(self.command(line))
        if conn.outbuf and not conn.send_pending():
            self.epoll.modify(conn.fd, select.EPOLLIN | select.EPOLLOUT)

    def _drop_client(self, conn: ControlConnection) -> None:
        self.clients.pop(conn.fd, None)
        self._unwatch(conn.fd)
        conn.sock.close()

    def command(self, line: str) -> dict:
        """Run one control line; the reply object of the protocol."""
        text = line.strip()
        if not text or text.startswith(("#", "//")):
            return {"ok": True, "output": "", "error": None}
        name, *args = text.split()
        local = getattr(self, "cmd_" + name, None)
        self.log.info(f"control: {text}")
        try:
            if local is not None:
                output, data = local(args)
            else:
                output, data = self.switch.cli(text), None
        except CommandError as e:
            self.log.info(f"control error: {e}")
            return {"ok": False, "output": "", "error": str(e)}
        except Exception as e:          # a fault in the control plane must not stop the switch
            self.log.error(f"control command {text!r} failed:\n{traceback.format_exc().rstrip()}")
            return {"ok": False, "output": "", "error": f"{name}: internal error: {e!r}"}
        reply = {"ok": True, "output": output, "error": None}
        if data is not None:
            reply["data"] = data
        return reply

    def cmd_switch_info(self, args):
        info = self.ready_info()
        info.update(notifications_socket=None, elogger_socket=None, debugger_socket=None)
        keys = ("device_id", "thrift_port", "pid", "program", "target", "ports", "cpu_port", "drop_port",
                "priority_queues", "pcap_dir", "log_file", "notifications_socket", "elogger_socket",
                "debugger_socket")
        rows = [f"{k:<25}: {_show(info[k])}" for k in keys]
        return "\n".join(rows), info

    def cmd_show_ports(self, args):
        rows = ["port # | iface name       | status | extra info", "=" * 56]
        for num, port in sorted(self.ports.items()):
            extra = []
            if port.pcap_in is not None:
                extra.append(f"pcap: {port.pcap_in.path}, {port.pcap_out.path}")
            if num == self.opts.cpu_port:
                extra.append("CPU port")
            extra += [f"impair {d}: {imp.spec}" for d, imp in port.impairers() if imp.spec is not None]
            rows.append(f"{num:<9}{port.ifname:<19}{'UP' if port.is_up() else 'DOWN':<9}{'; '.join(extra)}")
        return "\n".join(rows), None

    def stats(self) -> dict:
        s = self.switch.stats
        ports = {str(n): p.counters() for n, p in sorted(self.ports.items())}
        kernel_drops = sum(c["kernel_drops"] for c in ports.values())
        imps = [imp for p in self.ports.values() for _d, imp in p.impairers()]
        return {"received": sum(p.rx for p in self.ports.values()), "sent": sum(p.tx for p in self.ports.values()),
                "program_drops": s.dropped, "parser_errors": s.parser_errors, "failures": self.failures,
                "unknown_port_drops": self.unknown_port, "loops_cut": s.loops_cut,
                "tx_errors": sum(p.tx_errors for p in self.ports.values()),
                "truncated": sum(p.truncated for p in self.ports.values()), "kernel_drops": kernel_drops,
                "impaired_drops": sum(i.lost + i.overflow + i.discarded for i in imps),
                "impaired_delayed": sum(i.delayed for i in imps), "ports": ports}

    def cmd_stats(self, args):
        data = self.stats()
        rows = [f"{k:<20}: {v}" for k, v in data.items() if k != "ports"]
        for num, c in data["ports"].items():
            rows.append(f"port {num} ({c['ifname']}): rx {c['rx']} pkts {c['rx_bytes']} B, tx {c['tx']} pkts "
                        f"{c['tx_bytes']} B, tx errors {c['tx_errors']}, rx errors {c['rx_errors']}, "
                        f"truncated {c['truncated']}, kernel drops {c['kernel_drops']}")
            rows += [f"  impair {d}: {_impair_text(c['impair_' + d])}" for d in ("in", "out")
                     if _impair_used(c["impair_" + d])]
        return "\n".join(rows), data

    def cmd_reset_stats(self, args):
        for p in self.ports.values():
            p.update_kernel_drops()
            p.rx = p.rx_bytes = p.tx = p.tx_bytes = p.tx_errors = p.rx_errors = p.truncated = p.kernel_drops = 0
            for _d, imp in p.impairers():
                imp.reset_counters()
        s = self.switch.stats
        s.received = s.sent = s.dropped = s.parser_errors = s.loops_cut = 0
        self.failures = self.unknown_port = 0
        return "", None

    def cmd_port_add(self, args):
        if len(args) not in (2, 3):
            raise CommandError("port_add: usage: port_add <iface name> <port num> [pcap path]")
        ifname, num = args[0], _port_number(args[1], "port_add", self.opts.max_port_count)
        if num in self.ports or num == self.opts.drop_port:
            raise CommandError(f"port_add: port {num} is already in use")
        if any(p.ifname == ifname for p in self.ports.values()):
            raise CommandError(f"port_add: interface {ifname} is already attached")
        try:
            self.add_port(num, ifname)
        except SwitchIOError as e:
            raise CommandError(f"port_add: {e}") from None
        note = "" if len(args) == 2 else "per-port pcap path ignored (use --pcap DIR)"
        return note, None

    def cmd_port_remove(self, args):
        if len(args) != 1:
            raise CommandError("port_remove: usage: port_remove <port num>")
        num = _port_number(args[0], "port_remove", self.opts.max_port_count)
        if num not in self.ports:
            raise CommandError(f"port_remove: no interface is attached as port {num}")
        self.remove_port(num)
        return "", None

    def cmd_port_impair(self, args):
        """port_impair <port> <in|out> [loss <pct>] [delay <ms>] [jitter <ms>] [reorder <pct>] [limit <n>]"""
        if len(args) < 2:
            raise CommandError(f"port_impair: usage: {IMPAIR_USAGE}")
        port = self._impair_port(args[0], "port_impair")
        direction = parse_direction(args[1], "port_impair")
        spec = Impairment.parse(args[2:], "port_impair")
        getattr(port, "imp_" + direction).configure(spec)
        self._impairments_changed()
        self.log.info(f"port {port.num} ({port.ifname}) {direction}: impairment set: {spec}")
        return "", None

    def cmd_port_impair_clear(self, args):
        """port_impair_clear <port> [in|out]: also drops the frames held by the impairment."""
        if len(args) not in (1, 2):
            raise CommandError("port_impair_clear: usage: port_impair_clear <port> [in|out]")
        port = self._impair_port(args[0], "port_impair_clear")
        directions = [parse_direction(args[1], "port_impair_clear")] if len(args) == 2 else ["in", "out"]
        dropped = sum(getattr(port, "imp_" + d).clear() for d in directions)
        self._impairments_changed()
        self.log.info(f"port {port.num} ({port.ifname}) {'/'.join(directions)}: impairment cleared "
                      f"({dropped} held frames dropped)")
        return "", None

    def cmd_port_impair_show(self, args):
        """port_impair_show [<port>]: impairments and their counters (also as data)."""
        if len(args) > 1:
            raise CommandError("port_impair_show: usage: port_impair_show [<port>]")
        ports = [self._impair_port(args[0], "port_impair_show")] if args else \
            [p for _n, p in sorted(self.ports.items())]
        data = {str(p.num): {d: imp.show() for d, imp in p.impairers()} for p in ports}
        rows = [f"port {num} {d}: {_impair_text(show)}" for num, dirs in data.items() for d, show in dirs.items()]
        return "\n".join(rows), data

    def _impair_port(self, text: str, cmd: str) -> Port:
        num = _port_number(text, cmd, self.opts.max_port_count)
        if num not in self.ports:
            raise CommandError(f"{cmd}: no interface is attached as port {num}")
        return self.ports[num]

    def cmd_help(self, args):
        return (self.switch.cli("help") + "\nSwitch process commands:\n"
                "  switch_info  show_ports  stats  reset_stats  port_add  port_remove\n"
                "  port_impair  port_impair_clear  port_impair_show  (bundled-target extension)\n"
                f"  {IMPAIR_USAGE}"), None

    # -- shutdown -------------------------------------------------------------------------------
    def flush(self) -> None:
        for port in self.ports.values():
            port.flush()
        self.log.flush()

    def close(self) -> None:
        """Close ports (pcaps flushed), clients and the listener (idempotent)."""
        for num in list(self.ports):
            port = self.ports.pop(num)
            port.close()
        for conn in list(self.clients.values()):
            self._drop_client(conn)
        for s in (self.listener, self._wake_r, self._wake_w):
            if s is not None:
                s.close()
        self.listener = None
        self.epoll.close()


def _interface_up(sock: socket.socket, ifname: str) -> bool:
    try:
        ifreq = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, struct.pack("16sH14x", ifname.encode(), 0))
    except OSError:
        return False
    return bool(struct.unpack_from("H", ifreq, 16)[0] & IFF_UP)


def _port_number(text: str, cmd: str, max_ports: int) -> int:
    try:
        num = int(text, 0)
    except ValueError:
        raise CommandError(f"{cmd}: port number must be an integer, got {text!r}") from None
    if not 0 <= num < max_ports:
        raise CommandError(f"{cmd}: port {num} out of range 0..{max_ports - 1}")
    return num


def _impair_used(c: dict) -> bool:
    """An impairment is set, or was and left counts."""
    return c["impairment"] is not None or any(c[k] for k in ("lost", "overflow", "delayed", "reordered", "discarded"))


def _impair_text(c: dict) -> str:
    """One Impairer.show() as text: the impairment (or none), then its counters."""
    spec = "none" if c["impairment"] is None else str(Impairment(**c["impairment"]))
    return (f"{spec}; lost {c['lost']}, over limit {c['overflow']}, delayed {c['delayed']}, reordered "
            f"{c['reordered']}, discarded {c['discarded']}, queued {c['queued']}")


def _show(value) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}@{v}" for k, v in value.items()) or "none"
    return "None" if value is None else str(value)


# ---------------------------------------------------------------------------------------------
# main


def main(argv=None) -> int:
    """Run the switch process; return the exit status (see the module docstring)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        opts = parse_command_line(argv)
    except SwitchUsageError as e:
        print(f"usage: {PROG} [options] PROGRAM.p4 [-- target options]\n{PROG}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if opts.action == "help":
        print(usage_text())
        return EXIT_OK
    if opts.action == "version":
        print(f"{PROG} {VERSION} (bundled v1model target; reads P4_16 source, not BMv2 JSON)")
        return EXIT_OK
    for warning in opts.warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    return _run(opts)


def _run(opts: SwitchOptions) -> int:
    stop_early = []
    previous = {sig: signal.signal(sig, lambda *_: stop_early.append(1)) for sig in (signal.SIGTERM, signal.SIGINT)}
    log = daemon = None
    try:
        log = SwitchLog(opts)
        tracer = PacketTracer(log) if opts.tracing and log.sink is not None else None
        switch = _load(opts, tracer)
        daemon = SwitchDaemon(opts, switch, log, tracer)
        for sig in previous:
            signal.signal(sig, daemon.request_stop)
        daemon.open()
        if stop_early:
            return EXIT_OK
        _settle_memory()
        _announce(daemon)
        daemon.run()
        return EXIT_OK
    except P4Error as e:
        print(e, file=sys.stderr)
        return EXIT_PROGRAM
    except _ProgramUnreadable as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return EXIT_PROGRAM
    except SwitchIOError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return EXIT_IO
    except OSError as e:                 # e.g. the disk holding pcaps or the log is full
        name = f" ({e.filename})" if e.filename else ""
        print(f"{PROG}: error: I/O failure{name}: {e.strerror or e}", file=sys.stderr)
        return EXIT_IO
    except _AssertFailure as e:
        where = e.args[0] if e.args else "?"
        if log is not None:
            log.log("critical", f"Assert error at {where}")
        print(f"{PROG}: Assert error at {where}: the program's assert()/assume() failed; stopping",
              file=sys.stderr)
        return EXIT_ASSERT
    finally:
        if daemon is not None:
            _goodbye(daemon)
            daemon.close()
        if log is not None:
            log.close()
        sys.stdout.flush()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _ProgramUnreadable(TestbedError):
    """The program file cannot be read."""


def _load(opts: SwitchOptions, tracer):
    from .simple_switch import SimpleSwitch
    try:
        return SimpleSwitch(opts.program, opts.include or None, opts.defines or None, seed=opts.seed,
                            drop_port=opts.drop_port, priority_queues=opts.priority_queues, trace=tracer)
    except OSError as e:
        raise _ProgramUnreadable(f"cannot read program {e.filename or opts.program}: {e.strerror}") from None


def _settle_memory() -> None:
    """The loaded program lives as long as the process: move it out of the collector's sight,
    and collect young objects less often (packet processing makes no reference cycles)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


def _announce(daemon: SwitchDaemon) -> None:
    info = daemon.ready_info()
    daemon.log.info(f"Thrift-port stand-in listening on 127.0.0.1:{daemon.thrift_port}; ready")
    daemon.log.flush()
    print("READY " + json.dumps({k: info[k] for k in ("pid", "thrift_port", "device_id", "ports", "cpu_port")}),
          flush=True)


def _goodbye(daemon: SwitchDaemon) -> None:
    held = daemon.discard_held()
    if held:
        daemon.log.info(f"Stopping: {held} frames held by port impairments dropped")
    stats = daemon.stats()
    daemon.log.info("Stopping: " + ", ".join(f"{k} {v}" for k, v in stats.items() if k != "ports"))
    daemon.flush()


if __name__ == "__main__":
    sys.exit(main())
