"""The stateful apps as data: program, variants, service addresses and control-plane config.

Every app has the same interface (`App`), and `APPS` maps names to instances, so experiments
and the testbed pick apps by name. An app's configuration is generated from the topology:
nothing is written by hand per fabric size.

Variants (one P4 source each):
    redplane  fault tolerance with RedPlane (linearizable mode)
    noft      no fault tolerance: state only in the switch that created it
    s1        noft plus checkpoint-recovery by a control-plane process (testbed/checkpoint.py)
"""
from __future__ import annotations

import ipaddress
import os
import zlib

from p4apps import P4APPS_DIR
from testbed.errors import ConfigError
from testbed.routing import HASH_DST, HASH_SRC, HASH_SYMMETRIC
from testbed.topology import LeafSpineTopo

VARIANTS = {
    "redplane": {},
    "noft": {"REDPLANE_NOFT": "1"},
    "s1": {"REDPLANE_NOFT": "1"},
}


class App:
    """Base of every app. Subclasses set the class attributes and override the hooks."""

    name = ""
    program = ""            # file name under p4apps/
    layout = ""             # RedPlane layout name (testbed/redplane/protocol.py)
    mirror_values = False   # the store commits value -> key too (NAT)

    def program_path(self) -> str:
        return os.path.join(P4APPS_DIR, self.program)

    def defines(self, variant: str) -> dict:
        if variant not in VARIANTS:
            raise ConfigError(f"variant: must be one of {', '.join(VARIANTS)}, got {variant!r}")
        return dict(VARIANTS[variant])

    def destination(self, topo: LeafSpineTopo, server: str) -> str:
        """The address clients send to in order to reach `server` through the app."""
        return topo.ip_of(server)

    def anycast(self, topo: LeafSpineTopo) -> tuple:
        """Prefixes any spine can serve (routed to every live spine)."""
        return ()

    def hash_modes(self, topo: LeafSpineTopo, variant: str) -> dict:
        """ECMP hash mode per (leaf, prefix); default 5-tuple everywhere."""
        return {}

    def spine_commands(self, topo: LeafSpineTopo, spine: str, n_shards: int) -> list[str]:
        """The app's own table entries on `spine`."""
        return []

    def redplane_commands(self, topo: LeafSpineTopo, spine: str, settings, heads: list[str],
                          clock_base_us: int = 0) -> list[str]:
        """The RedPlane library's configuration on `spine` (heads[s] = shard s's head;
        clock_base_us: see testbed.redplane.config.spine_commands)."""
        from testbed.redplane.config import spine_commands
        return spine_commands(topo, spine, settings, heads, clock_base_us)

    @property
    def snapshot_mode(self) -> bool:
        """True for bounded-inconsistency apps, whose agent injects snapshot triggers."""
        return False


def _client_leaves(topo: LeafSpineTopo) -> list[str]:
    return sorted({topo.leaf_of(h) for h in topo.clients()}, key=topo.leaves().index)


def _server_leaves(topo: LeafSpineTopo) -> list[str]:
    return sorted({topo.leaf_of(h) for h in topo.servers()}, key=topo.leaves().index)


def _affinity(topo, client_side_mode, server_side_mode, server_prefixes, client_prefixes) -> dict:
    """Both directions of a translated connection on one spine: the client leaves hash their
    traffic towards the servers with one mode, the server leaves theirs back with the other."""
    modes = {}
    for leaf in _client_leaves(topo):
        for prefix in server_prefixes:
            modes[(leaf, prefix)] = client_side_mode
    for leaf in _server_leaves(topo):
        for prefix in client_prefixes:
            modes[(leaf, prefix)] = server_side_mode
    return modes


class NatApp(App):
    """Source NAT for the client leaves' subnets, public address PUBLIC_IP."""

    name = "nat"
    program = "nat.p4"
    layout = "nat"
    mirror_values = True
    PUBLIC_IP = "10.253.0.1"
    PUBLIC_PREFIX = "10.253.0.0/24"
    POOL = 1024                 # must equal NAT_POOL in nat.p4
    PORT_BASE = 10000
    PORTS_PER_SPINE = 8192

    def anycast(self, topo):
        return (self.PUBLIC_PREFIX,)

    def hash_modes(self, topo, variant):
        """Without RedPlane both directions must meet the spine holding the mapping: hash on
        the server endpoint, which the NAT does not change. With RedPlane any spine will do."""
        if variant == "redplane":
            return {}
        servers = [topo.subnet_of(l) for l in _server_leaves(topo)]
        return _affinity(topo, HASH_DST, HASH_SRC, servers, [self.PUBLIC_PREFIX])

    def spine_commands(self, topo, spine, n_shards):
        cmds = [f"table_set_default nat_public set_public {self.PUBLIC_IP}"]
        cmds += [f"table_add nat_inside inside {topo.subnet_of(leaf)} =>" for leaf in _client_leaves(topo)]
        for shard, ports in enumerate(self.port_pools(topo, spine, n_shards)):
            cmds += [f"table_add nat_ports use_port {shard} {slot} => {port}" for slot, port in enumerate(ports)]
        return cmds

    def port_pools(self, topo, spine, n_shards) -> list[list[int]]:
        """Per shard, POOL public ports of this spine's range whose public endpoint hashes to
        that shard (crc32 of address ++ port, as the switch and store compute it)."""
        base = self.PORT_BASE + (topo.node(spine).index - 1) * self.PORTS_PER_SPINE
        if base + self.PORTS_PER_SPINE > 65536:
            raise ConfigError(f"nat: too many spines for the public port space (spine {spine})")
        addr = int(ipaddress.IPv4Address(self.PUBLIC_IP)).to_bytes(4, "big")
        pools = [[] for _ in range(n_shards)]
        for port in range(base, base + self.PORTS_PER_SPINE):
            shard = zlib.crc32(addr + port.to_bytes(2, "big")) % n_shards
            if len(pools[shard]) < self.POOL:
                pools[shard].append(port)
        if min(len(p) for p in pools) < self.POOL:
            raise ConfigError(f"nat: {n_shards} shards leave fewer than {self.POOL} ports per shard on {spine}")
        return pools


class FirewallApp(App):
    """A stateful firewall protecting the client leaves' subnets (inside) from the rest."""

    name = "firewall"
    program = "firewall.p4"
    layout = "firewall"

    def hash_modes(self, topo, variant):
        """Both directions are keyed by the internal endpoint: symmetric hashing keeps them on
        the spine holding its lease (in every variant)."""
        clients = [topo.subnet_of(l) for l in _client_leaves(topo)]
        servers = [topo.subnet_of(l) for l in _server_leaves(topo)]
        return _affinity(topo, HASH_SYMMETRIC, HASH_SYMMETRIC, servers, clients)

    def spine_commands(self, topo, spine, n_shards):
        cmds = []
        for leaf in _client_leaves(topo):
            cmds += [f"table_add fw_inside_src src_inside {topo.subnet_of(leaf)} =>",
                     f"table_add fw_inside_dst dst_inside {topo.subnet_of(leaf)} =>"]
        return cmds


class LoadBalancerApp(App):
    """An L4 load balancer: VIP -> one of the servers, chosen per connection."""

    name = "lb"
    program = "lb.p4"
    layout = "lb"
    VIP = "10.252.0.1"
    VIP_PREFIX = "10.252.0.0/24"

    def anycast(self, topo):
        return (self.VIP_PREFIX,)

    def destination(self, topo, server):
        return self.VIP

    def hash_modes(self, topo, variant):
        """Both directions hash on the client endpoint, which the balancer does not change."""
        clients = [topo.subnet_of(l) for l in _client_leaves(topo)]
        return _affinity(topo, HASH_SRC, HASH_DST, [self.VIP_PREFIX], clients)

    def spine_commands(self, topo, spine, n_shards):
        backends = topo.servers()
        cmds = [f"table_set_default lb_vip set_vip {self.VIP} {len(backends)}"]
        for i, host in enumerate(backends):
            cmds += [f"table_add lb_backends set_backend {i} => {topo.ip_of(host)}",
                     f"table_add lb_backend from_backend {topo.ip_of(host)} =>"]
        return cmds


class CounterApp(App):
    """Per-flow packet counters replicated on every packet: the write-centric extreme."""

    name = "counter"
    program = "counter.p4"
    layout = "nat"              # 48-bit key (endpoint), 48-bit value (the count)

    def spine_commands(self, topo, spine, n_shards):
        return [f"table_add counter_inside inside {topo.subnet_of(leaf)} =>" for leaf in _client_leaves(topo)]


class SketchApp(App):
    """A count-min sketch per spine, in snapshot (bounded-inconsistency) mode."""

    name = "sketch"
    program = "sketch.p4"
    layout = "sketch"
    WIDTH = 32                  # SK_WIDTH in sketch.p4
    ROWS = 3

    @property
    def snapshot_mode(self) -> bool:
        return True

    def columns(self, src: str, dst: str, proto: int, sport: int, dport: int) -> list[int]:
        """The column of a flow in each row, as sketch.p4 hashes it (crc16, crc32, csum16)."""
        from testbed.v1model.hashes import CRC16, csum16
        data = (ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
                + bytes([proto]) + sport.to_bytes(2, "big") + dport.to_bytes(2, "big"))
        return [CRC16.compute(data) % self.WIDTH, zlib.crc32(data) % self.WIDTH, csum16(data) % self.WIDTH]

    def estimate(self, counts: list[int], base: list[int], flow: tuple) -> int:
        """Count-min estimate of `flow` (src, dst, proto, sport, dport) from one switch's
        registers sk_cnt (both copies) and sk_base."""
        cells = self.ROWS * self.WIDTH
        return min(base[r * self.WIDTH + c] + counts[r * self.WIDTH + c] + counts[cells + r * self.WIDTH + c]
                   for r, c in enumerate(self.columns(*flow)))

    def redplane_commands(self, topo, spine, settings, heads, clock_base_us=0):
        index = topo.node(spine).index
        if index > 7:
            raise ConfigError(f"sketch: at most 7 spines (the snapshot key holds 3 bits of spine index), got {spine}")
        cmds = [f"table_set_default rp_config sk_set_config {topo.redplane_ip(spine)} {index} {len(heads)}"]
        cmds += [f"table_add rp_shards rp_set_store {shard} => {topo.ip_of(head)}" for shard, head in enumerate(heads)]
        return cmds


class DemoteApp(App):
    """Flow-size demotion (PIAS-style DSCP marking): the worked example of docs/writing-an-app.md."""

    name = "demote"
    program = "examples/demote.p4"
    layout = "demote"           # 48-bit key (client endpoint), 48-bit value (bytes sent)
    T1, T2 = 4000, 16000        # bytes: high class below T1, mid below T2, low from T2 on
    DSCP = {"high": 40, "mid": 24, "low": 8}    # must equal DEMOTE_DSCP_* in demote.p4

    def hash_modes(self, topo, variant):
        """All packets of a key on one spine (the one holding its lease): the client leaves hash
        their traffic to the servers on the source endpoint, which is the key."""
        servers = [topo.subnet_of(l) for l in _server_leaves(topo)]
        return {(leaf, prefix): HASH_SRC for leaf in _client_leaves(topo) for prefix in servers}

    def spine_commands(self, topo, spine, n_shards):
        cmds = [f"table_set_default demote_config set_thresholds {self.T1} {self.T2}"]
        cmds += [f"table_add demote_clients client {topo.subnet_of(leaf)} =>" for leaf in _client_leaves(topo)]
        return cmds

    def dscp_class(self, tos: int) -> str:
        """'high', 'mid' or 'low' for an IPv4 TOS byte this app marked, else 'unmarked'."""
        return next((name for name, dscp in self.DSCP.items() if tos >> 2 == dscp), "unmarked")


APPS: dict[str, App] = {app.name: app for app in (NatApp(), FirewallApp(), LoadBalancerApp(), CounterApp(), SketchApp(),
                                                  DemoteApp())}


def app_named(name: str) -> App:
    try:
        return APPS[name]
    except KeyError:
        raise ConfigError(f"app: must be one of {', '.join(APPS)}, got {name!r}") from None
