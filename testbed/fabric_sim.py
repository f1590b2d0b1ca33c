"""An in-process fabric: one SimpleSwitch per switch of a LeafSpineTopo, wired as the topology
says, with hosts reduced to inboxes. No root, no processes, deterministic: tests of programs
and of the routing control plane run here in milliseconds, and the same control-plane code
then drives the Mininet fabric.
"""
from __future__ import annotations

import zlib
from collections import deque

from p4apps import LEAF_P4, SPINE_P4
from testbed.errors import TestbedError
from testbed.topology import LeafSpineTopo
from testbed.v1model.errors import CommandError
from testbed.v1model.simple_switch import SimpleSwitch

CPU_PORT = 510
MAX_HOPS = 10_000


class SwitchDown(CommandError):
    """The switch does not answer (it crashed and was not restarted)."""


class SwitchHandle:
    """A stable control-plane handle to a switch that may crash and restart."""

    def __init__(self, fabric: "InProcessFabric", name: str):
        self.fabric, self.name = fabric, name

    def cli(self, command: str) -> str:
        sw = self.fabric.switches.get(self.name)
        if sw is None:
            raise SwitchDown(f"{self.name} is down")
        return sw.cli(command)


class InProcessFabric:
    def __init__(self, topo: LeafSpineTopo, programs: dict | None = None, clock=None, defines: dict | None = None):
        self.topo = topo
        self.clock = clock
        self.programs = {sw: LEAF_P4 for sw in topo.leaves()} | {sw: SPINE_P4 for sw in topo.spines()}
        self.programs.update(programs or {})
        self.defines = defines or {}             # switch -> preprocessor defines
        self.switches: dict[str, SimpleSwitch | None] = {sw: self._load(sw) for sw in topo.switches()}
        self.down_links: set[str] = set()
        self.inbox: dict[str, list[bytes]] = {h: [] for h in topo.hosts()}
        self.cpu_out: dict[str, list[bytes]] = {sw: [] for sw in topo.switches()}
        self.handles = {sw: SwitchHandle(self, sw) for sw in topo.switches()}
        self.host_handlers: dict = {}        # host -> callable(frame) -> [reply frames]
        self.cpu_handlers: dict = {}         # switch -> callable(frame) for CPU-port output

    def attach(self, host: str, handler) -> None:
        """Make `host` answer frames: handler(frame) returns the frames it sends back."""
        self.host_handlers[host] = handler

    def _load(self, switch: str) -> SimpleSwitch:
        return SimpleSwitch(self.programs[switch], defines=self.defines.get(switch), clock=self.clock,
                            seed=zlib.crc32(switch.encode()))

    # -- failures ---------------------------------------------------------------------------
    def crash(self, switch: str) -> None:
        self.switches[switch] = None

    def restart(self, switch: str) -> None:
        """Bring a switch back with an empty data plane, as real hardware would."""
        self.switches[switch] = self._load(switch)

    def link_down(self, key: str) -> None:
        self.down_links.add(self.topo.link_by_key(key).key)

    def link_up(self, key: str) -> None:
        self.down_links.discard(self.topo.link_by_key(key).key)

    # -- traffic ----------------------------------------------------------------------------
    def host_send(self, host: str, frame: bytes) -> None:
        """A host sends a frame; it travels until every copy is delivered or dropped."""
        link = self.topo.links_of(host)[0]
        self._run(deque([(link.peer_of(host), link.port_on(link.peer_of(host)), frame, link.key)]))

    def inject(self, switch: str, frame: bytes) -> None:
        """Put a frame on a switch's CPU port."""
        self._run(deque([(switch, CPU_PORT, frame, None)]))

    def _run(self, queue: deque) -> None:
        hops = 0
        while queue:
            hops += 1
            if hops > MAX_HOPS:
                raise TestbedError("in-process fabric: forwarding loop (more than 10000 hops)")
            node, port, frame, via = queue.popleft()
            if via is not None and via in self.down_links:
                continue
            sw = self.switches.get(node)
            if sw is None:
                continue
            for out_port, data in sw.process(port, frame):
                self._deliver(node, out_port, data, queue)

    def _deliver(self, switch: str, port: int, data: bytes, queue: deque) -> None:
        if port == CPU_PORT:
            handler = self.cpu_handlers.get(switch)
            handler(data) if handler else self.cpu_out[switch].append(data)
            return
        try:
            peer = self.topo.peer_of_port(switch, port)
        except Exception:
            return                                   # no such port: the frame is lost
        link = self.topo.link(switch, peer)
        if peer in self.inbox:
            if link.key not in self.down_links:
                self._to_host(peer, data, link, queue)
            return
        queue.append((peer, link.port_on(peer), data, link.key))

    def _to_host(self, host: str, data: bytes, link, queue: deque) -> None:
        handler = self.host_handlers.get(host)
        if handler is None:
            self.inbox[host].append(data)
            return
        leaf = link.peer_of(host)
        for reply in handler(data):
            queue.append((leaf, link.port_on(leaf), reply, link.key))

    # -- what the liveness monitor needs ----------------------------------------------------
    def read_rx(self, switch: str) -> dict | None:
        from testbed.liveness import parse_register_dump
        sw = self.switches.get(switch)
        if sw is None:
            return None
        return parse_register_dump(sw.cli("register_read hello_rx"))
