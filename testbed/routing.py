"""The fabric's routing control plane: tables computed from the topology and the live links.

`compute_config(topo, view)` turns the topology and the set of live switches and links into the
entries each switch should hold (see p4apps/include/fabric.p4 for the tables). `Programmer`
keeps one switch's installed entries and applies the difference to a desired config through
runtime-CLI commands, in an order that never points a route at a missing ECMP member.
`RoutingController` owns one programmer per switch, reacts to failures and recoveries, and
records when it reprogrammed whom (`events`).

Routes, per switch:
- leaf: its hosts as /32 to the host port; every other leaf's subnet to an ECMP group (id =
  that leaf's index) over the live spines that reach both leaves; each spine's RedPlane
  address to the port towards that spine; anycast prefixes (NAT public address, LB VIP) to
  groups 1000, 1001, ... over every live spine. Each group route carries an ECMP hash mode
  (5-tuple by default; apps ask for endpoint or symmetric hashing to keep both directions of
  a translated connection on one spine).
- spine: every leaf's subnet to the port towards that leaf.
"""
from __future__ import annotations

import ipaddress
import re
import threading
import time
from dataclasses import dataclass, field

from testbed.errors import TestbedError
from testbed.topology import LeafSpineTopo

ANYCAST_GROUP_BASE = 1000
HASH_5TUPLE, HASH_DST, HASH_SRC, HASH_SYMMETRIC = 0, 1, 2, 3


class RoutingError(TestbedError):
    """A switch refused a routing command; the message names the switch and the command."""


@dataclass(frozen=True)
class FabricView:
    """What the controller believes is alive."""

    down_switches: frozenset = frozenset()
    down_links: frozenset = frozenset()            # canonical link keys, e.g. "l1-s2"

    def switch_up(self, name: str) -> bool:
        return name not in self.down_switches

    def link_up(self, topo: LeafSpineTopo, a: str, b: str) -> bool:
        return topo.link(a, b).key not in self.down_links and self.switch_up(a) and self.switch_up(b)


@dataclass
class SwitchConfig:
    """Desired entries of one switch. Values are action tuples: (name, *args)."""

    lpm: dict = field(default_factory=dict)          # "a.b.c.d/len" -> action
    members: dict = field(default_factory=dict)      # (group, index) -> action
    arp: dict = field(default_factory=dict)          # ingress port -> action
    smac: dict = field(default_factory=dict)         # egress port -> action


def compute_config(topo: LeafSpineTopo, view: FabricView, anycast: tuple = (),
                   hash_modes: dict | None = None) -> dict:
    """Desired SwitchConfig of every live switch. `hash_modes` maps (leaf, prefix) to the ECMP
    hash mode of that route (default: 5-tuple)."""
    out = {}
    modes = hash_modes or {}
    for leaf in topo.leaves():
        if view.switch_up(leaf):
            out[leaf] = _leaf_config(topo, view, leaf, anycast, modes)
    for spine in topo.spines():
        if view.switch_up(spine):
            out[spine] = _spine_config(topo, view, spine)
    return out


def _port_macs(topo: LeafSpineTopo, switch: str, cfg: SwitchConfig) -> None:
    for link in topo.links_of(switch):
        port = link.port_on(switch)
        cfg.smac[port] = ("set_smac", topo.mac_of(switch, port))


def _hop(topo: LeafSpineTopo, switch: str, peer: str) -> tuple:
    port = topo.port_of(switch, peer)
    peer_mac = topo.mac_of(peer) if peer in topo.hosts() else topo.mac_of(peer, topo.port_of(peer, switch))
    return ("to_port", port, peer_mac)


def _leaf_config(topo, view, leaf, anycast, modes) -> SwitchConfig:
    cfg = SwitchConfig()
    _port_macs(topo, leaf, cfg)
    for host in topo.hosts_of_leaf(leaf):
        port = topo.port_of(leaf, host)
        cfg.arp[port] = ("arp_reply", topo.mac_of(leaf, port))
        cfg.lpm[f"{topo.ip_of(host)}/32"] = _hop(topo, leaf, host)
    live = [s for s in topo.spines() if view.link_up(topo, leaf, s)]
    for other in topo.leaves():
        if other == leaf:
            continue
        via = [s for s in live if view.link_up(topo, s, other)]
        prefix = topo.subnet_of(other)
        _group(topo, cfg, leaf, topo.node(other).index, via, prefix, modes.get((leaf, prefix), HASH_5TUPLE))
    for spine in live:
        cfg.lpm[f"{topo.redplane_ip(spine)}/32"] = _hop(topo, leaf, spine)
    for i, prefix in enumerate(anycast):
        _group(topo, cfg, leaf, ANYCAST_GROUP_BASE + i, live, prefix, modes.get((leaf, prefix), HASH_5TUPLE))
    return cfg


def _group(topo, cfg: SwitchConfig, leaf: str, group: int, spines: list, prefix: str, mode: int) -> None:
    if not spines:
        return
    for i, spine in enumerate(spines):
        cfg.members[(group, i)] = _hop(topo, leaf, spine)
    cfg.lpm[prefix] = ("to_group", group, len(spines), mode)


def _spine_config(topo, view, spine) -> SwitchConfig:
    cfg = SwitchConfig()
    _port_macs(topo, spine, cfg)
    for leaf in topo.leaves():
        if view.link_up(topo, spine, leaf):
            cfg.lpm[topo.subnet_of(leaf)] = _hop(topo, spine, leaf)
    return cfg


# ---- applying configs ----------------------------------------------------------------------------
_HANDLE = re.compile(r"added with handle (\d+)")
TABLES = {"lpm": "ipv4_lpm", "members": "ecmp_members", "arp": "arp_responder", "smac": "smac"}


def _key_text(kind: str, key) -> str:
    if kind == "members":
        return f"{key[0]} {key[1]}"
    return str(key)


def _args_text(action: tuple) -> str:
    return " ".join(_arg(a) for a in action[1:])


def _arg(a) -> str:
    return str(a)


class Programmer:
    """Installed entries of one switch, and the commands that change them."""

    def __init__(self, name: str, client):
        self.name = name
        self.client = client                    # anything with .cli(command) -> output
        self.installed: dict = {kind: {} for kind in TABLES}   # kind -> key -> (action, handle)
        self.commands = 0

    def forget(self) -> None:
        """The switch restarted empty: nothing is installed any more."""
        self.installed = {kind: {} for kind in TABLES}

    def apply(self, desired: SwitchConfig) -> int:
        """Make the switch hold `desired`; returns the number of commands sent."""
        before = self.commands
        for kind in ("smac", "arp", "members"):
            self._upsert(kind, getattr(desired, kind))
        self._upsert("lpm", desired.lpm)
        self._remove("lpm", desired.lpm)
        for kind in ("members", "arp", "smac"):
            self._remove(kind, getattr(desired, kind))
        return self.commands - before

    def _upsert(self, kind: str, want: dict) -> None:
        table, have = TABLES[kind], self.installed[kind]
        for key, action in want.items():
            old = have.get(key)
            if old is None:
                out = self._cli(f"table_add {table} {action[0]} {_key_text(kind, key)} => {_args_text(action)}")
                m = _HANDLE.search(out)
                if not m:
                    raise RoutingError(f"{self.name}: no entry handle in the reply to table_add {table}: {out!r}")
                have[key] = (action, int(m.group(1)))
            elif old[0] != action:
                self._cli(f"table_modify {table} {action[0]} {old[1]} {_args_text(action)}")
                have[key] = (action, old[1])

    def _remove(self, kind: str, want: dict) -> None:
        table, have = TABLES[kind], self.installed[kind]
        for key in [k for k in have if k not in want]:
            self._cli(f"table_delete {table} {have.pop(key)[1]}")

    def _cli(self, command: str) -> str:
        self.commands += 1
        try:
            return self.client.cli(command)
        except TestbedError as e:
            raise RoutingError(f"{self.name}: {command}: {e}") from e


@dataclass
class RoutingEvent:
    time: float            # time.monotonic() of the event
    kind: str              # detected / reprogrammed / programmed / s1 restore
    subject: str           # link key or switch name
    detail: str = ""


class RoutingController:
    """Programs every switch from the topology and follows failures and recoveries."""

    def __init__(self, topo: LeafSpineTopo, clients: dict, anycast: tuple = (), hash_modes: dict | None = None,
                 clock=time.monotonic):
        self.topo = topo
        self.anycast = tuple(anycast)
        self.hash_modes = dict(hash_modes or {})
        self.clock = clock
        self.programmers = {name: Programmer(name, client) for name, client in clients.items()}
        self.view = FabricView()
        self.events: list[RoutingEvent] = []
        self.lock = threading.Lock()

    def program_all(self) -> None:
        """Initial programming of every switch."""
        with self.lock:
            self._converge("initial")

    def set_view(self, view: FabricView, cause: str) -> None:
        """Adopt a new belief about live switches and links, and reprogram what changed."""
        with self.lock:
            for sw in view.down_switches - self.view.down_switches:
                self._event("detected", sw, "switch down")
            for sw in self.view.down_switches - view.down_switches:
                self._event("detected", sw, "switch up")
                self.programmers[sw].forget()
            for key in view.down_links - self.view.down_links:
                self._event("detected", key, "link down")
            for key in self.view.down_links - view.down_links:
                self._event("detected", key, "link up")
            self.view = view
            self._converge(cause)

    def _converge(self, cause: str) -> None:
        for name, cfg in compute_config(self.topo, self.view, self.anycast, self.hash_modes).items():
            n = self.programmers[name].apply(cfg)
            if n:
                self._event("reprogrammed", name, f"{n} commands ({cause})")

    def note(self, kind: str, subject: str, detail: str = "") -> None:
        """Record an event of the control plane's own (e.g. an S1 restore) in the timeline."""
        with self.lock:
            self._event(kind, subject, detail)

    def _event(self, kind: str, subject: str, detail: str) -> None:
        self.events.append(RoutingEvent(self.clock(), kind, subject, detail))


def prefix_of(addr: str, length: int) -> str:
    return str(ipaddress.IPv4Network(f"{addr}/{length}", strict=False))


def ecmp_member(src: str, dst: str, proto: int, sport: int, dport: int, size: int, mode: int = HASH_5TUPLE) -> int:
    """The ECMP member index a leaf picks for this flow (fabric.p4's flow hash: CRC-16 over
    address, address, protocol, port, port with the hash mode's masking, modulo `size`)."""
    from testbed.v1model.hashes import CRC16
    a, b = int(ipaddress.IPv4Address(src)), int(ipaddress.IPv4Address(dst))
    pa, pb = sport, dport
    if mode == HASH_DST:
        a, pa, b, pb = b, pb, 0, 0
    elif mode == HASH_SRC:
        b, pb = 0, 0
    elif mode == HASH_SYMMETRIC:
        a, b, pa, pb = a ^ b, 0, pa ^ pb, 0
    data = a.to_bytes(4, "big") + b.to_bytes(4, "big") + bytes([proto]) + pa.to_bytes(2, "big") + pb.to_bytes(2, "big")
    return CRC16.compute(data) % size


def path_spine(topo: LeafSpineTopo, src: str, dst: str, proto: int, sport: int, dport: int,
               hash_modes: dict | None = None, view: FabricView | None = None, anycast: tuple = ()) -> str:
    """The spine a flow from host address `src` to `dst` crosses (both leaves and spines up)."""
    view = view or FabricView()
    leaf = next(l for l in topo.leaves() if ipaddress.IPv4Address(src) in ipaddress.IPv4Network(topo.subnet_of(l)))
    cfg = compute_config(topo, view, anycast, hash_modes)[leaf]
    prefix, action = _longest_match(cfg.lpm, dst)
    if action[0] != "to_group":
        raise RoutingError(f"no ECMP route from {src} to {dst}")
    idx = ecmp_member(src, dst, proto, sport, dport, action[2], action[3])
    port = cfg.members[(action[1], idx)][1]
    return topo.peer_of_port(leaf, port)


def _longest_match(lpm: dict, addr: str):
    ip = ipaddress.IPv4Address(addr)
    best = max((p for p in lpm if ip in ipaddress.IPv4Network(p)), key=lambda p: ipaddress.IPv4Network(p).prefixlen)
    return best, lpm[best]
