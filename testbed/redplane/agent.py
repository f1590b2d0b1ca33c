"""The per-switch RedPlane agent: the part of the protocol a v1model data plane cannot do alone.

It sits on the switch's CPU port and has two jobs:
- retransmission: the data plane clones every write request to the CPU port; the agent keeps
  each copy and re-injects it once after the RTO. The data plane drops a re-injected copy whose
  seq is not newer than the flow's acknowledged seq (acknowledged meanwhile, or fenced off by a
  newer lease grant), and otherwise sends it again (and clones it again). An idle switch costs
  no CPU.
- snapshot timer (bounded-inconsistency apps): v1model has no packet generator, so every
  snapshot period the agent injects one trigger per sketch column.

`AgentCore` holds the logic with an injectable clock and send function; `main` runs it on a
raw socket bound to the CPU interface (`python -m testbed.redplane.agent --help`). Restoring a
failed spine's sketch is the controller's job (`restore_triggers`), not the agent's.
"""
from __future__ import annotations

import argparse
import heapq
import os
import select
import signal
import socket
import struct
import sys
import time

ETHERTYPE_SKETCH_CTL = 0x88B6
SK_OP_SNAPSHOT, SK_OP_RESTORE = 1, 2
CTL_DST = bytes.fromhex("01005e0000fd")


def sketch_trigger(op: int, spine: int, column: int, epoch: int) -> bytes:
    """Ethernet + sketch_ctl_t {op: 8, spine: 8, column: 8, epoch: 16} (see p4apps/sketch.p4)."""
    return CTL_DST + bytes(6) + struct.pack("!HBBBH", ETHERTYPE_SKETCH_CTL, op, spine, column, epoch & 0xFFFF)


def restore_triggers(failed_spine: int, columns: int = 32) -> list[bytes]:
    """Frames asking a survivor to fetch and add a failed spine's last snapshot, per column."""
    return [sketch_trigger(SK_OP_RESTORE, failed_spine, c, 0) for c in range(columns)]


def is_write_copy(frame: bytes) -> bool:
    """A RedPlane request (UDP from port 4000 to a store port) cloned by the data plane."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return False
    ihl = (frame[14] & 0x0F) * 4
    sport, dport = struct.unpack_from("!HH", frame, 14 + ihl)
    return sport == 4000 and 8000 <= dport < 8064


class AgentCore:
    def __init__(self, send, clock=time.monotonic, rto_s: float = 0.05, snapshot_s: float | None = None,
                 columns: int = 32):
        self.send, self.clock, self.rto_s = send, clock, rto_s
        self.snapshot_s, self.columns = snapshot_s, columns
        self.held: list[tuple[float, int, bytes]] = []     # heap of (due, n, frame)
        self.n = 0
        self.epoch = 0
        self.next_snapshot = clock() + snapshot_s if snapshot_s else None
        self.stats = {"kept": 0, "reinjected": 0, "ignored": 0, "snapshots": 0}

    def on_frame(self, frame: bytes) -> None:
        """A frame the switch sent to its CPU port."""
        if not is_write_copy(frame):
            self.stats["ignored"] += 1
            return
        self.n += 1
        heapq.heappush(self.held, (self.clock() + self.rto_s, self.n, frame))
        self.stats["kept"] += 1

    def next_deadline(self) -> float | None:
        times = [t for t in (self.held[0][0] if self.held else None, self.next_snapshot) if t is not None]
        return min(times) if times else None

    def tick(self) -> None:
        """Do whatever is due now."""
        now = self.clock()
        while self.held and self.held[0][0] <= now:
            self.send(heapq.heappop(self.held)[2])
            self.stats["reinjected"] += 1
        if self.next_snapshot is not None and self.next_snapshot <= now:
            self.snapshot()
            self.next_snapshot = max(self.next_snapshot + self.snapshot_s, now)

    def snapshot(self) -> None:
        self.epoch = self.epoch % 0xFFFF + 1
        for column in range(self.columns):
            self.send(sketch_trigger(SK_OP_SNAPSHOT, 0, column, self.epoch))
        self.stats["snapshots"] += 1


# ---- the process -------------------------------------------------------------------------------
def _raw_socket(intf: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((intf, 0))
    s.setblocking(False)
    return s


def _outgoing(addr) -> bool:
    return len(addr) > 2 and addr[2] == socket.PACKET_OUTGOING


def run(args) -> int:
    sock = _raw_socket(args.intf)
    core = AgentCore(sock.send, rto_s=args.rto_ms / 1000,
                     snapshot_s=args.snapshot_ms / 1000 if args.snapshot_ms else None, columns=args.columns)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    print(f"READY agent on {args.intf} pid {os.getpid()}", flush=True)
    while not stop:
        deadline = core.next_deadline()
        timeout = 0.5 if deadline is None else max(0.0, min(0.5, deadline - core.clock()))
        try:
            readable, _, _ = select.select([sock], [], [], timeout)
        except InterruptedError:
            continue
        if readable:
            _drain(sock, core)
        core.tick()
    print("agent stats " + " ".join(f"{k}={v}" for k, v in core.stats.items()), flush=True)
    sock.close()
    return 0


def _drain(sock, core) -> None:
    while True:
        try:
            frame, addr = sock.recvfrom(65535)
        except BlockingIOError:
            return
        if not _outgoing(addr):
            core.on_frame(frame)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m testbed.redplane.agent",
                                description="RedPlane per-switch agent on the switch's CPU interface.")
    p.add_argument("--intf", required=True, help="the CPU interface (the end not attached to the switch)")
    p.add_argument("--rto-ms", type=float, default=50.0, help="retransmission timeout (default 50)")
    p.add_argument("--snapshot-ms", type=float, default=0.0, help="snapshot period; 0 = no snapshots")
    p.add_argument("--columns", type=int, default=32, help="sketch columns (default 32)")
    args = p.parse_args(argv)
    if args.rto_ms <= 0:
        p.error("--rto-ms must be positive")
    try:
        return run(args)
    except OSError as e:
        print(f"agent: cannot use interface {args.intf}: {e.strerror}", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
