"""Failure detection for the fabric, in the manner of BFD.

Every `interval` the monitor starts a round r: for each switch it believes alive and each of that
switch's fabric ports, it injects a hello frame (ethertype 0x88B5, see fabric.p4) on the
switch's CPU port; the switch sends it out of the named port; the neighbour records r in its
register `hello_rx[ingress port]`. The monitor then reads every switch's `hello_rx`. A link is
down when either direction has not delivered a hello for `multiplier` rounds; a switch is down
when its control port does not answer. Detection time is therefore about
multiplier x interval, as with BFD's detect multiplier.

The monitor needs two callables: `inject(switch, frame)` puts a frame on the switch's CPU port,
`read_rx(switch)` returns the switch's hello_rx values as {port: round} or None when the switch
does not answer.
"""
from __future__ import annotations

import re
import struct
import threading
from dataclasses import dataclass

from testbed.routing import FabricView
from testbed.topology import LeafSpineTopo

ETHERTYPE_HELLO = 0x88B5
HELLO_DST = bytes.fromhex("01005e0000fe")     # any MAC works: the switch ignores it


def hello_frame(port: int, rnd: int) -> bytes:
    """Ethernet + hello_t {port: 16, round: 32}."""
    return HELLO_DST + bytes(6) + struct.pack("!HHI", ETHERTYPE_HELLO, port, rnd & 0xFFFFFFFF)


def parse_register_dump(text: str) -> dict:
    """{index: value} from `register_read name` output (`name= v0, v1, ...`)."""
    _, _, values = text.partition("=")
    return {i: int(v) for i, v in enumerate(re.findall(r"\d+", values))}


@dataclass
class MonitorSettings:
    interval: float = 0.02       # seconds between rounds
    multiplier: int = 3          # rounds without a hello before a link is declared down


class LivenessMonitor:
    def __init__(self, topo: LeafSpineTopo, inject, read_rx, settings: MonitorSettings | None = None):
        self.topo = topo
        self.inject = inject
        self.read_rx = read_rx
        self.settings = settings or MonitorSettings()
        self.round_no = 0
        self.view = FabricView()

    @property
    def detection_time(self) -> float:
        return self.settings.interval * self.settings.multiplier

    def round(self) -> FabricView:
        """Inject this round's hellos, read the registers, return the resulting view."""
        self.round_no += 1
        for switch in self.topo.switches():
            if self.view.switch_up(switch):
                self._inject_hellos(switch)
        seen = {sw: self.read_rx(sw) for sw in self.topo.switches()}
        down_switches = frozenset(sw for sw, rx in seen.items() if rx is None)
        self.view = FabricView(down_switches, self._down_links(seen, down_switches))
        return self.view

    def _inject_hellos(self, switch: str) -> None:
        for link in self.topo.links_of(switch):
            peer = link.peer_of(switch)
            if peer in self.topo.switches():
                self.inject(switch, hello_frame(link.port_on(switch), self.round_no))

    def _down_links(self, seen: dict, down_switches) -> frozenset:
        if self.round_no <= self.settings.multiplier:
            return self.view.down_links
        oldest = self.round_no - self.settings.multiplier
        down = set()
        for link in self.topo.links():
            if link.node1 in self.topo.hosts():
                continue
            a, b = link.node1, link.node2
            if a in down_switches or b in down_switches:
                continue
            if seen[b].get(link.port_on(b), 0) < oldest or seen[a].get(link.port_on(a), 0) < oldest:
                down.add(link.key)
        return frozenset(down)


class MonitorThread(threading.Thread):
    """Runs monitor rounds every interval and hands changed views to a callback."""

    def __init__(self, monitor: LivenessMonitor, on_change, stop: threading.Event):
        super().__init__(name="liveness-monitor", daemon=True)
        self.monitor = monitor
        self.on_change = on_change
        self.stop_event = stop
        self.error: BaseException | None = None

    def run(self) -> None:
        last = self.monitor.view
        try:
            while not self.stop_event.wait(self.monitor.settings.interval):
                view = self.monitor.round()
                if view != last:
                    self.on_change(view)
                    last = view
        except BaseException as e:          # reported by the owner, never lost
            self.error = e
