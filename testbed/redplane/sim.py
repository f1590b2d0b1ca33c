"""In-process stand-ins for the RedPlane pieces that run as processes in Mininet: a one-replica
store shard answering frames (the real state machine, `ShardState`), and the per-switch
retransmission agent. With testbed.fabric_sim they let tests drive the switch programs
through whole protocol exchanges deterministically, with a fake clock.
"""
from __future__ import annotations

import ipaddress
import struct

from testbed.redplane import protocol
from testbed.redplane.agent import AgentCore
from testbed.store.state import Request, ShardState
from testbed.v1model.hashes import csum16

ETH_IPV4 = 0x0800


def _ip(addr: str) -> bytes:
    return ipaddress.IPv4Address(addr).packed


def udp_frame(src_mac: bytes, dst_mac: bytes, src_ip: bytes, dst_ip: bytes, sport: int, dport: int,
              payload: bytes) -> bytes:
    """Ethernet + IPv4 + UDP (checksum 0) around `payload`, with correct lengths."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src_ip, dst_ip)
    ip = ip[:10] + struct.pack("!H", csum16(ip)) + ip[12:]
    return dst_mac + src_mac + struct.pack("!H", ETH_IPV4) + ip + udp


def parse_udp(frame: bytes):
    """(src ip, dst ip, sport, dport, payload) of an Ethernet/IPv4/UDP frame, or None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    ihl = (frame[14] & 0x0F) * 4
    sport, dport, length = struct.unpack_from("!HHH", frame, 14 + ihl)
    start = 14 + ihl + 8
    return frame[26:30], frame[30:34], sport, dport, frame[start:start + length - 8]


class StoreStub:
    """One shard with a single replica (head = tail), answering as the store process would."""

    def __init__(self, app: str, ip: str, mac: str, lease_s: float, clock, shard: int = 0, mirror: bool = False):
        self.layout = protocol.layout_for(app)
        self.ip, self.mac = _ip(ip), bytes.fromhex(mac.replace(":", ""))
        self.shard = shard
        self.state = ShardState(lease_s, mirror=mirror)
        self.clock = clock                  # seconds
        self.requests: list = []            # (time, Request) as received
        self.waiting_keys: set = set()
        self.down = False

    def __call__(self, frame: bytes) -> list[bytes]:
        if self.down:
            return []
        parsed = parse_udp(frame)
        if parsed is None or parsed[1] != self.ip or parsed[3] != protocol.store_port(self.shard):
            return []
        src, _, _, _, payload = parsed
        msg = self.layout.unpack(payload)
        req = Request(msg.type, msg.seq, msg.key, msg.value, str(ipaddress.IPv4Address(src)), msg.inner,
                      msg.ts)
        self.requests.append((self.clock(), req))
        outcome = self.state.handle(req, self.clock())
        if outcome.wake_at is not None:
            self.waiting_keys.add(req.key)
        return self._acks(outcome.updates, frame[6:12])

    def poll(self) -> list[bytes]:
        """Grant queued requests whose wait is over (the store's timers)."""
        out = []
        for key in list(self.waiting_keys):
            outcome = self.state.on_timer(key, self.clock())
            if outcome.wake_at is None:
                self.waiting_keys.discard(key)
            out += self._acks(outcome.updates, None)
        return out

    def _acks(self, updates, next_mac) -> list[bytes]:
        frames = []
        for update in updates:
            ack = self.state.ack_for(update)
            if ack is None:
                continue
            payload = self.layout.pack(ack.type, ack.seq, ack.key, ack.value, ack.inner, ts=ack.ts)
            frames.append(udp_frame(self.mac, next_mac or bytes(6), self.ip, _ip(ack.switch),
                                    protocol.store_port(self.shard), protocol.SWITCH_PORT, payload))
        return frames


class SimAgent:
    """The per-switch agent (testbed.redplane.agent.AgentCore) on an in-process switch."""

    def __init__(self, fabric, switch: str, rto_s: float, clock, snapshot_s: float | None = None):
        self.core = AgentCore(lambda frame: fabric.inject(switch, frame), clock, rto_s, snapshot_s)
        fabric.cpu_handlers[switch] = self.core.on_frame

    def poll(self) -> None:
        self.core.tick()


class FakeClock:
    """Time for the in-process fabric: microseconds for switches, `seconds()` for stores."""

    def __init__(self, start_us: int = 1_000_000):
        self.us = start_us

    def __call__(self) -> int:
        return self.us

    def seconds(self) -> float:
        return self.us / 1e6

    def advance(self, seconds: float) -> None:
        self.us += int(seconds * 1e6)


class AppFabric:
    """A whole in-process deployment of one app: fabric, routing, stores, agents, echo servers.

    Servers answer UDP and TCP payloads by echoing them back to the sender (so tests see both
    directions of a connection); `send` returns what reached the server and the client.
    """

    def __init__(self, app_name: str, variant: str = "redplane", topo=None, settings=None,
                 n_shards: int = 1, hash_modes: dict | None = None, snapshot_ms: float = 100.0):
        from p4apps.apps import app_named
        from testbed.fabric_sim import InProcessFabric
        from testbed.redplane.config import RedPlaneSettings
        from testbed.routing import RoutingController
        from testbed.topology import LeafSpineTopo
        self.app = app_named(app_name)
        self.variant = variant
        self.topo = topo or LeafSpineTopo(spines=2, leaves=3, hosts_per_leaf=2)
        self.settings = settings or RedPlaneSettings()
        self.clock = FakeClock()
        spines = self.topo.spines()
        self.fabric = InProcessFabric(self.topo, {s: self.app.program_path() for s in spines}, self.clock,
                                      {s: self.app.defines(variant) for s in spines})
        modes = self.app.hash_modes(self.topo, variant) if hash_modes is None else hash_modes
        self.routing = RoutingController(self.topo, self.fabric.handles, self.app.anycast(self.topo), modes)
        self.routing.program_all()
        self.heads = self.topo.stores()[:n_shards]
        self.stores = [self._store(h, i) for i, h in enumerate(self.heads)]
        for spine in spines:
            self.configure(spine)
        snapshot_s = snapshot_ms / 1000 if self.app.snapshot_mode and variant == "redplane" else None
        self.agents = {s: SimAgent(self.fabric, s, self.settings.rto_ms / 1000, self.clock.seconds, snapshot_s)
                       for s in spines}
        self.seen: dict[str, list[bytes]] = {h: [] for h in self.topo.servers()}
        for server in self.topo.servers():
            self.fabric.attach(server, self._echo(server))

    def _store(self, host: str, shard: int) -> StoreStub:
        store = StoreStub(self.app.layout, self.topo.ip_of(host), self.topo.mac_of(host),
                          self.settings.lease_ms / 1000, self.clock.seconds, shard, self.app.mirror_values)
        self.fabric.attach(host, store)
        return store

    def configure(self, spine: str) -> None:
        for cmd in self.app.redplane_commands(self.topo, spine, self.settings, self.heads) + \
                self.app.spine_commands(self.topo, spine, len(self.heads)):
            self.fabric.switches[spine].cli(cmd)

    def _echo(self, server: str):
        def handler(frame: bytes) -> list[bytes]:
            self.seen[server].append(frame)
            return [echo_reply(frame, self.topo.mac_of(server), self.topo.gateway_of(server)[1])]
        return handler

    def send(self, client: str, frame: bytes) -> None:
        self.fabric.host_send(client, frame)

    def advance(self, seconds: float) -> None:
        """Let time pass: stores grant queued leases, agents retransmit."""
        self.clock.advance(seconds)
        for host, store in zip(self.heads, self.stores):
            for frame in store.poll():
                self.fabric.host_send(host, frame)
        for agent in self.agents.values():
            agent.poll()

    def stat(self, spine: str, index: int) -> int:
        out = self.fabric.switches[spine].cli(f"counter_read rp_stats {index}")
        return int(out.split("packets=")[1].split(",")[0])


def echo_reply(frame: bytes, own_mac: str, gateway_mac: str) -> bytes:
    """The frame sent back by an echo server: addresses and ports swapped, same payload."""
    ip_start, ihl = 14, (frame[14] & 0x0F) * 4
    ip = bytearray(frame[ip_start:])
    ip[12:16], ip[16:20] = frame[ip_start + 16:ip_start + 20], frame[ip_start + 12:ip_start + 16]
    l4 = ihl
    ip[l4:l4 + 2], ip[l4 + 2:l4 + 4] = frame[ip_start + l4 + 2:ip_start + l4 + 4], frame[ip_start + l4:ip_start + l4 + 2]
    ip[10:12] = b"\0\0"
    ip[10:12] = struct.pack("!H", csum16(bytes(ip[:ihl])))
    _fix_l4_checksum(ip, ihl)
    return bytes.fromhex(gateway_mac.replace(":", "")) + bytes.fromhex(own_mac.replace(":", "")) + frame[12:14] + bytes(ip)


def _fix_l4_checksum(ip: bytearray, ihl: int) -> None:
    proto, total = ip[9], struct.unpack_from("!H", ip, 2)[0]
    offset = {6: 16, 17: 6}.get(proto)
    if offset is None or (proto == 17 and ip[ihl + 6:ihl + 8] == b"\0\0"):
        return
    ip[ihl + offset:ihl + offset + 2] = b"\0\0"
    pseudo = bytes(ip[12:20]) + struct.pack("!BBH", 0, proto, total - ihl)
    ip[ihl + offset:ihl + offset + 2] = struct.pack("!H", csum16(pseudo + bytes(ip[ihl:total])))
