"""The leaf-spine fabric as pure data: names, addresses, ports and link options.

Nothing here needs root or touches the kernel. `FabricSpec` is the validated configuration (it
round-trips through `to_dict`/`from_dict` for TOML/JSON run configs and provenance);
`LeafSpineTopo` computes every node and link from it, answers the look-ups the routing control
plane needs, and can hand Mininet an equivalent `mininet.topo.Topo` (`mininet_topo()`).

Names
    spines ``s1..sS``, leaves ``l1..lL``, hosts ``h1..hN``. Hosts are numbered leaf by leaf:
    host ``k`` (1-based) of leaf ``i`` is ``h{(i-1)*H + k}`` with ``H = hosts_per_leaf``.
    Each host has one role: ``client``, ``server``, ``store`` (a state-store replica) or
    ``none``. Roles come from role lists (``clients``/``servers``/``stores``: host names; hosts in
    no list get ``none``) or from a per-leaf assignment (``leaf_roles``: one list of roles per
    leaf, one role per host position). With neither, leaves take whole roles in turn:
    ``l1`` clients, ``l2`` servers, ``l3`` stores, ``l4`` clients, ...

Addressing plan (i = leaf index, k = host position on its leaf, s = spine index, all 1-based)
    =====================================  ================================================
    host subnet of leaf i                  ``10.0.i.0/24``
    host k of leaf i                       ``10.0.i.(k+1)/24`` (so k <= 253)
    gateway of leaf i's hosts              ``10.0.i.1`` (the leaf; MAC = the leaf's port MAC)
    leaf i loopback / router id            ``10.254.0.i``
    spine s RedPlane address               ``10.255.0.s`` (source of its RedPlane requests)
    store replicas                         ordinary hosts with role ``store``: their host IP
    host MAC                               ``02:00:0a:00:<i>:<k+1>`` (the IP's bytes, in hex)
    switch port MAC                        ``02:<kind>:00:<idx>:<port hi>:<port lo>``,
                                           kind 01 = leaf, 02 = spine; port 0 = router MAC
    switch dpid / device id                spine s: ``s``; leaf i: ``256 + i`` (dpid: 16 hex)
    =====================================  ================================================

Ports and interfaces
    Switch ports are numbered from 1; hosts use port 0. Leaf ``i``: ports ``1..H`` go to its hosts
    in position order, ports ``H+1..H+S`` to spines ``s1..sS``. Spine ``s``: port ``i`` goes to
    leaf ``l{i}``. Interface names are ``<node>-eth<port>`` (so hosts have ``h1-eth0``).
    `links()` lists host links first (host order), then fabric links leaf by leaf, spine by
    spine; each `Link` has the lower tier as ``node1`` (host or leaf) and the upper as ``node2``.
    A link's key is ``"<node1>-<node2>"``, e.g. ``"h1-l1"`` or ``"l1-s2"``.

Link parameters
    `LinkParams` (bandwidth Mbit/s, delay ms, loss %, max queue packets) has a fabric-wide
    default and per-link overrides keyed by link key. `LinkParams.mininet_opts()` gives the
    keyword options of Mininet's ``TCLink`` (``bw``, ``delay``, ``loss``, ``max_queue_size``).
    Mininet applies delay, loss and max_queue with the kernel's netem qdisc (sch_netem) and bw
    with htb/tbf; on kernels built without netem (such as the one this project was developed on)
    only ``bw`` can be used.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from testbed.errors import ConfigError

__all__ = [
    "ROLES", "MAX_SPINES", "MAX_LEAVES", "MAX_HOSTS_PER_LEAF",
    "LinkParams", "FabricSpec", "Link", "NodeInfo", "LeafSpineTopo", "canonical_link_key",
    "intf_name",
]

ROLES = ("client", "server", "store", "none")
DEFAULT_ROLE_CYCLE = ("client", "server", "store")
MAX_SPINES = 254
MAX_LEAVES = 254
MAX_HOSTS_PER_LEAF = 253

_MAC_KIND = {"leaf": 0x01, "spine": 0x02}
_LEAF_DEVICE_BASE = 256
_NAME_RE = re.compile(r"^([a-z]+)(\d+)$")


# ---------------------------------------------------------------------------------------------
# Validation helpers

def _check_int(where: str, value: Any, lo: int, hi: int | None = None) -> int:
    """Return `value` if it is an int within [lo, hi], else raise ConfigError naming `where`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: must be an integer, got {value!r}")
    if value < lo:
        raise ConfigError(f"{where}: must be >= {lo}, got {value}")
    if hi is not None and value > hi:
        raise ConfigError(f"{where}: must be <= {hi}, got {value}")
    return value


def _check_number(where: str, value: Any, lo: float, hi: float | None = None,
                  lo_open: bool = False) -> float:
    """Return `value` as float if it is a number within the bounds, else raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: must be a number, got {value!r}")
    if value < lo or (lo_open and value == lo):
        relation = ">" if lo_open else ">="
        raise ConfigError(f"{where}: must be {relation} {lo:g}, got {value}")
    if hi is not None and value > hi:
        raise ConfigError(f"{where}: must be <= {hi:g}, got {value}")
    return float(value)


def _check_keys(where: str, data: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Raise ConfigError if `data` is not a mapping or has a key outside `allowed`."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: must be a table/dict, got {data!r}")
    allowed = tuple(allowed)
    for key in data:
        if key not in allowed:
            prefix = f"{where}." if where else ""
            raise ConfigError(f"{prefix}{key}: unknown key (known: {', '.join(allowed)})")


def _split_name(name: str) -> tuple[str, int] | None:
    """Split ``"l12"`` into ``("l", 12)``; None if `name` is not letters followed by digits."""
    match = _NAME_RE.match(name) if isinstance(name, str) else None
    return (match.group(1), int(match.group(2))) if match else None


# ---------------------------------------------------------------------------------------------
# Link parameters

@dataclass(frozen=True)
class LinkParams:
    """Traffic-control parameters of one link (applied to both directions).

    bw: bandwidth in Mbit/s, None = unshaped; delay_ms: one-way delay in ms; loss: packet loss
    in percent; max_queue: queue limit in packets, None = kernel default.
    """

    bw: float | None = None
    delay_ms: float = 0.0
    loss: float = 0.0
    max_queue: int | None = None

    def __post_init__(self) -> None:
        self.validate("link")

    def validate(self, where: str) -> None:
        """Raise ConfigError naming ``where.<field>`` if a value is out of range."""
        _validate_link_values(where, dataclasses.asdict(self))

    @property
    def shaped(self) -> bool:
        """True if any parameter differs from an unshaped, lossless, delay-free link."""
        return self != LinkParams()

    def mininet_opts(self) -> dict[str, Any]:
        """Keyword options for Mininet's TCLink; only the parameters that are set."""
        opts: dict[str, Any] = {}
        if self.bw is not None:
            opts["bw"] = self.bw
        if self.delay_ms:
            opts["delay"] = f"{self.delay_ms:g}ms"
        if self.loss:
            opts["loss"] = self.loss
        if self.max_queue is not None:
            opts["max_queue_size"] = self.max_queue
        return opts

    def to_dict(self) -> dict[str, Any]:
        """The parameters as a TOML-friendly dict (unset values omitted)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "link",
                  base: "LinkParams | None" = None) -> "LinkParams":
        """Build from a (possibly partial) dict; missing keys are taken from `base`
        (default: the class defaults). Errors name ``where.<field>``."""
        _check_keys(where, data, (f.name for f in dataclasses.fields(cls)))
        merged = {**dataclasses.asdict(base or cls()), **data}
        _validate_link_values(where, merged)
        return cls(**merged)


def _validate_link_values(where: str, values: Mapping[str, Any]) -> None:
    """Check the values of LinkParams fields; errors name ``where.<field>``."""
    if values["bw"] is not None:
        _check_number(f"{where}.bw", values["bw"], 0.0, lo_open=True)
    _check_number(f"{where}.delay_ms", values["delay_ms"], 0.0)
    _check_number(f"{where}.loss", values["loss"], 0.0, 100.0)
    if values["max_queue"] is not None:
        _check_int(f"{where}.max_queue", values["max_queue"], 1)


# ---------------------------------------------------------------------------------------------
# Fabric specification

def _as_tuple(where: str, value: Any) -> tuple:
    """Accept a list or tuple (from TOML/JSON) and return a tuple, else raise ConfigError."""
    if isinstance(value, (list, tuple)):
        return tuple(value)
    raise ConfigError(f"{where}: must be a list, got {value!r}")


@dataclass(frozen=True)
class FabricSpec:
    """Validated sizes, host roles and link parameters of a leaf-spine fabric.

    Construct directly or with `from_dict`; lists are stored as tuples and `link_overrides`
    (a mapping from link key such as ``"l1-s2"`` to `LinkParams` or to a partial dict merged onto
    `link`) is stored as a sorted tuple of ``(key, LinkParams)`` pairs. Invalid values raise
    `ConfigError` naming the key and the value.
    """

    spines: int = 2
    leaves: int = 3
    hosts_per_leaf: int = 2
    clients: tuple[str, ...] = ()
    servers: tuple[str, ...] = ()
    stores: tuple[str, ...] = ()
    leaf_roles: tuple[tuple[str, ...], ...] | None = None
    link: LinkParams = field(default_factory=LinkParams)
    link_overrides: tuple[tuple[str, LinkParams], ...] = ()

    def __post_init__(self) -> None:
        self._normalise()
        self._validate_sizes()
        self._validate_roles()
        self._validate_overrides()

    # -- normalisation -------------------------------------------------------------------------
    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def _normalise(self) -> None:
        for name in ("clients", "servers", "stores"):
            self._set(name, _as_tuple(name, getattr(self, name)))
        if self.leaf_roles is not None:
            rows = _as_tuple("leaf_roles", self.leaf_roles)
            self._set("leaf_roles", tuple(
                _as_tuple(f"leaf_roles[{i}]", row) for i, row in enumerate(rows)))
        if isinstance(self.link, Mapping):
            self._set("link", LinkParams.from_dict(self.link, "link"))
        if not isinstance(self.link, LinkParams):
            raise ConfigError(f"link: must be a table/dict of link parameters, got {self.link!r}")
        self._set("link_overrides", self._normalise_overrides(self.link_overrides))

    def _normalise_overrides(self, overrides: Any) -> tuple[tuple[str, LinkParams], ...]:
        items = overrides.items() if isinstance(overrides, Mapping) else overrides
        result: dict[str, LinkParams] = {}
        for item in _as_tuple("link_overrides", tuple(items)):
            if not isinstance(item, tuple) or len(item) != 2:
                raise ConfigError(f"link_overrides: expected (link key, params) pairs, "
                                  f"got {item!r}")
            key, params = item
            where = f"link_overrides.{key}"
            canonical = canonical_link_key(where, key)
            if isinstance(params, Mapping):
                params = LinkParams.from_dict(params, where, base=self.link)
            elif not isinstance(params, LinkParams):
                raise ConfigError(f"{where}: must be a table/dict of link parameters, "
                                  f"got {params!r}")
            if canonical in result:
                raise ConfigError(f"{where}: link given twice (as {canonical})")
            result[canonical] = params
        return tuple(sorted(result.items(), key=lambda kv: _natural_key(kv[0])))

    # -- validation ----------------------------------------------------------------------------
    def _validate_sizes(self) -> None:
        _check_int("spines", self.spines, 1, MAX_SPINES)
        _check_int("leaves", self.leaves, 1, MAX_LEAVES)
        _check_int("hosts_per_leaf", self.hosts_per_leaf, 1, MAX_HOSTS_PER_LEAF)

    def _validate_roles(self) -> None:
        listed = self.clients or self.servers or self.stores
        if self.leaf_roles is not None and listed:
            raise ConfigError("leaf_roles: cannot be combined with clients/servers/stores; "
                              "give roles one way only")
        if self.leaf_roles is not None:
            self._validate_leaf_roles()
        else:
            self._validate_role_lists()

    def _validate_leaf_roles(self) -> None:
        if len(self.leaf_roles) != self.leaves:
            raise ConfigError(f"leaf_roles: must have one entry per leaf ({self.leaves}), "
                              f"got {len(self.leaf_roles)}")
        for i, row in enumerate(self.leaf_roles):
            if len(row) != self.hosts_per_leaf:
                raise ConfigError(f"leaf_roles[{i}]: must have one role per host "
                                  f"({self.hosts_per_leaf}), got {len(row)}")
            for k, role in enumerate(row):
                if role not in ROLES:
                    raise ConfigError(f"leaf_roles[{i}][{k}]: unknown role {role!r} "
                                      f"(known: {', '.join(ROLES)})")

    def _validate_role_lists(self) -> None:
        seen: dict[str, str] = {}
        for list_name in ("clients", "servers", "stores"):
            for j, host in enumerate(getattr(self, list_name)):
                where = f"{list_name}[{j}]"
                self._check_host_name(where, host)
                if host in seen:
                    raise ConfigError(f"{where}: host {host!r} already listed in {seen[host]}")
                seen[host] = list_name

    def _check_host_name(self, where: str, host: Any) -> None:
        parts = _split_name(host)
        n_hosts = self.leaves * self.hosts_per_leaf
        if parts is None or parts[0] != "h" or not 1 <= parts[1] <= n_hosts:
            raise ConfigError(f"{where}: unknown host {host!r} (hosts are h1..h{n_hosts})")

    def _validate_overrides(self) -> None:
        for key, _params in self.link_overrides:
            if not self.has_link(key):
                raise ConfigError(f"link_overrides.{key}: no such link in a fabric of "
                                  f"{self.spines} spines, {self.leaves} leaves, "
                                  f"{self.hosts_per_leaf} hosts per leaf")

    # -- queries -------------------------------------------------------------------------------
    def has_link(self, key: str) -> bool:
        """True if canonical link key ``"h3-l2"`` / ``"l2-s1"`` names a link of this fabric."""
        lower, upper = key.split("-")
        (lk, li), (uk, ui) = _split_name(lower), _split_name(upper)
        if (lk, uk) == ("l", "s"):
            return 1 <= li <= self.leaves and 1 <= ui <= self.spines
        return 1 <= li <= self.leaves * self.hosts_per_leaf and \
            (li - 1) // self.hosts_per_leaf + 1 == ui

    def role_of_position(self, leaf: int, position: int) -> str:
        """Role of host `position` (1-based) on leaf `leaf` (1-based)."""
        if self.leaf_roles is not None:
            return self.leaf_roles[leaf - 1][position - 1]
        if self.clients or self.servers or self.stores:
            name = f"h{(leaf - 1) * self.hosts_per_leaf + position}"
            return next((role for role, hosts in (("client", self.clients),
                                                  ("server", self.servers),
                                                  ("store", self.stores)) if name in hosts),
                        "none")
        return DEFAULT_ROLE_CYCLE[(leaf - 1) % len(DEFAULT_ROLE_CYCLE)]

    def link_params(self, key: str) -> LinkParams:
        """Parameters of the link with canonical key `key` (override or default)."""
        return dict(self.link_overrides).get(key, self.link)

    # -- (de)serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A TOML/JSON-friendly dict; `from_dict(to_dict())` gives an equal spec."""
        data: dict[str, Any] = {
            "spines": self.spines, "leaves": self.leaves, "hosts_per_leaf": self.hosts_per_leaf,
            "clients": list(self.clients), "servers": list(self.servers),
            "stores": list(self.stores), "link": self.link.to_dict(),
            "link_overrides": {k: p.to_dict() for k, p in self.link_overrides},
        }
        if self.leaf_roles is not None:
            data["leaf_roles"] = [list(row) for row in self.leaf_roles]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FabricSpec":
        """Build and validate a spec from a dict (as read from TOML/JSON); unknown keys fail."""
        _check_keys("", data, (f.name for f in dataclasses.fields(cls)))
        kwargs = dict(data)
        if "link" in kwargs:
            kwargs["link"] = LinkParams.from_dict(kwargs["link"], "link")
        if "link_overrides" in kwargs and not isinstance(kwargs["link_overrides"], Mapping):
            raise ConfigError(f"link_overrides: must be a table/dict keyed by link, "
                              f"got {kwargs['link_overrides']!r}")
        return cls(**kwargs)


def canonical_link_key(where: str, key: Any) -> str:
    """Normalise a link key to lower tier first (``"s1-l2"`` -> ``"l2-s1"``); raise
    ConfigError naming `where` for anything that is not a host-leaf or leaf-spine key."""
    ends = key.split("-") if isinstance(key, str) else []
    parts = [_split_name(e) for e in ends]
    if len(ends) != 2 or None in parts:
        raise ConfigError(f"{where}: link key must look like 'l1-s2' or 'h3-l2', got {key!r}")
    tiers = {"h": 0, "l": 1, "s": 2}
    kinds = sorted(p[0] for p in parts)
    if kinds not in (["l", "s"], ["h", "l"]):
        raise ConfigError(f"{where}: a link joins a host and a leaf or a leaf and a spine, "
                          f"got {key!r}")
    lower, upper = sorted(ends, key=lambda e: tiers[_split_name(e)[0]])
    return f"{lower}-{upper}"


def _natural_key(text: str) -> tuple:
    """Sort key treating digit runs as numbers (``h2`` before ``h10``)."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


# ---------------------------------------------------------------------------------------------
# Computed topology

@dataclass(frozen=True)
class NodeInfo:
    """One node: kind (``host``/``leaf``/``spine``), 1-based index within its kind, the leaf
    and position of a host (None for switches), its role (``None`` for switches), IPv4 address
    (host address, leaf loopback or spine RedPlane address) and MAC (host MAC or router MAC)."""

    name: str
    kind: str
    index: int
    ip: str
    mac: str
    role: str | None = None
    leaf: str | None = None
    position: int | None = None

    @property
    def is_switch(self) -> bool:
        """True for leaves and spines."""
        return self.kind != "host"


@dataclass(frozen=True)
class Link:
    """A link between ``node1`` (lower tier: host or leaf) and ``node2`` (leaf or spine)."""

    node1: str
    port1: int
    node2: str
    port2: int
    params: LinkParams = field(default_factory=LinkParams)

    @property
    def key(self) -> str:
        """Canonical link key, e.g. ``"l1-s2"``."""
        return f"{self.node1}-{self.node2}"

    @property
    def intf1(self) -> str:
        """Interface name on node1."""
        return intf_name(self.node1, self.port1)

    @property
    def intf2(self) -> str:
        """Interface name on node2."""
        return intf_name(self.node2, self.port2)

    def ends(self) -> tuple[tuple[str, int, str], tuple[str, int, str]]:
        """``((node1, port1, intf1), (node2, port2, intf2))``."""
        return (self.node1, self.port1, self.intf1), (self.node2, self.port2, self.intf2)

    def port_on(self, node: str) -> int:
        """Port number of this link on `node`."""
        return self._end(node)[1]

    def intf_on(self, node: str) -> str:
        """Interface name of this link on `node`."""
        return self._end(node)[2]

    def peer_of(self, node: str) -> str:
        """The node at the other end from `node`."""
        return self.node2 if self._end(node)[0] == self.node1 else self.node1

    def _end(self, node: str) -> tuple[str, int, str]:
        for end in self.ends():
            if end[0] == node:
                return end
        raise ConfigError(f"node: {node!r} is not an end of link {self.key}")

    def to_dict(self) -> dict[str, Any]:
        """Both ends with ports and interface names, plus the link parameters."""
        return {"key": self.key, "node1": self.node1, "port1": self.port1, "intf1": self.intf1,
                "node2": self.node2, "port2": self.port2, "intf2": self.intf2,
                "params": self.params.to_dict()}


def intf_name(node: str, port: int) -> str:
    """Interface name of `port` on `node`: ``<node>-eth<port>``."""
    return f"{node}-eth{port}"


def _host_ip(leaf: int, position: int) -> str:
    return f"10.0.{leaf}.{position + 1}"


def _host_mac(leaf: int, position: int) -> str:
    return f"02:00:0a:00:{leaf:02x}:{position + 1:02x}"


def _switch_mac(kind: str, index: int, port: int) -> str:
    return f"02:{_MAC_KIND[kind]:02x}:00:{index:02x}:{port >> 8:02x}:{port & 0xff:02x}"


class LeafSpineTopo:
    """Nodes, links, addresses and ports of a leaf-spine fabric, computed from a `FabricSpec`.

    ``LeafSpineTopo(spec)`` or ``LeafSpineTopo(spines=2, leaves=3, hosts_per_leaf=2, ...)``
    (keywords are `FabricSpec` fields). Every look-up raises `ConfigError` for unknown nodes.
    """

    def __init__(self, spec: FabricSpec | None = None, **spec_fields: Any) -> None:
        if spec is not None and spec_fields:
            raise ConfigError("LeafSpineTopo: give a FabricSpec or its fields, not both")
        self.spec = spec if spec is not None else FabricSpec(**spec_fields)
        self._nodes: dict[str, NodeInfo] = {}
        self._links: list[Link] = []
        self._adjacency: dict[str, dict[int, tuple[str, Link]]] = {}
        self._build()

    # -- construction --------------------------------------------------------------------------
    def _build(self) -> None:
        spec = self.spec
        for s in range(1, spec.spines + 1):
            self._add_node(NodeInfo(f"s{s}", "spine", s, f"10.255.0.{s}",
                                    _switch_mac("spine", s, 0)))
        for i in range(1, spec.leaves + 1):
            self._add_node(NodeInfo(f"l{i}", "leaf", i, f"10.254.0.{i}",
                                    _switch_mac("leaf", i, 0)))
        for i in range(1, spec.leaves + 1):
            for k in range(1, spec.hosts_per_leaf + 1):
                self._add_host(i, k)
        for i in range(1, spec.leaves + 1):
            for s in range(1, spec.spines + 1):
                self._add_link(f"l{i}", spec.hosts_per_leaf + s, f"s{s}", i)

    def _add_node(self, info: NodeInfo) -> None:
        self._nodes[info.name] = info
        self._adjacency[info.name] = {}

    def _add_host(self, leaf: int, position: int) -> None:
        number = (leaf - 1) * self.spec.hosts_per_leaf + position
        name = f"h{number}"
        self._add_node(NodeInfo(name, "host", number, _host_ip(leaf, position),
                                _host_mac(leaf, position),
                                role=self.spec.role_of_position(leaf, position),
                                leaf=f"l{leaf}", position=position))
        self._add_link(name, 0, f"l{leaf}", position)

    def _add_link(self, node1: str, port1: int, node2: str, port2: int) -> None:
        link = Link(node1, port1, node2, port2, self.spec.link_params(f"{node1}-{node2}"))
        self._links.append(link)
        self._adjacency[node1][port1] = (node2, link)
        self._adjacency[node2][port2] = (node1, link)

    # -- nodes ---------------------------------------------------------------------------------
    def node(self, name: str) -> NodeInfo:
        """The `NodeInfo` of `name`."""
        try:
            return self._nodes[name]
        except (KeyError, TypeError):
            raise ConfigError(f"node: unknown node {name!r} (this fabric has "
                              f"s1..s{self.spec.spines}, l1..l{self.spec.leaves}, "
                              f"h1..h{self.spec.leaves * self.spec.hosts_per_leaf})") from None

    def nodes(self) -> list[str]:
        """All node names: spines, then leaves, then hosts."""
        return list(self._nodes)

    def spines(self) -> list[str]:
        """Spine names in index order."""
        return self._of_kind("spine")

    def leaves(self) -> list[str]:
        """Leaf names in index order."""
        return self._of_kind("leaf")

    def switches(self) -> list[str]:
        """Spines then leaves."""
        return self.spines() + self.leaves()

    def hosts(self) -> list[str]:
        """Host names in number order."""
        return self._of_kind("host")

    def _of_kind(self, kind: str) -> list[str]:
        return [n for n, info in self._nodes.items() if info.kind == kind]

    def hosts_with_role(self, role: str) -> list[str]:
        """Hosts whose role is `role` (one of `ROLES`), in number order."""
        if role not in ROLES:
            raise ConfigError(f"role: unknown role {role!r} (known: {', '.join(ROLES)})")
        return [h for h in self.hosts() if self._nodes[h].role == role]

    def clients(self) -> list[str]:
        """Hosts with role ``client``."""
        return self.hosts_with_role("client")

    def servers(self) -> list[str]:
        """Hosts with role ``server``."""
        return self.hosts_with_role("server")

    def stores(self) -> list[str]:
        """Hosts with role ``store`` (state-store replicas)."""
        return self.hosts_with_role("store")

    def role_of(self, host: str) -> str:
        """Role of `host`."""
        return self._require_kind(host, "host").role

    def _require_kind(self, name: str, *kinds: str) -> NodeInfo:
        info = self.node(name)
        if info.kind not in kinds:
            raise ConfigError(f"node: {name!r} is a {info.kind}, expected a {' or '.join(kinds)}")
        return info

    # -- addresses -----------------------------------------------------------------------------
    def ip_of(self, node: str) -> str:
        """IPv4 address (no prefix): host address, leaf loopback or spine RedPlane address."""
        return self.node(node).ip

    def redplane_ip(self, spine: str) -> str:
        """The RedPlane (switch-side protocol) address of `spine`."""
        return self._require_kind(spine, "spine").ip

    def mac_of(self, node: str, port: int | None = None) -> str:
        """MAC of a host, of a switch port, or (port None) a switch's router MAC."""
        info = self.node(node)
        if info.kind == "host" or port is None:
            return info.mac
        if port not in self._adjacency[node]:
            raise ConfigError(f"port: {node} has no port {port} "
                              f"(ports: {sorted(self._adjacency[node])})")
        return _switch_mac(info.kind, info.index, port)

    def subnet_of(self, leaf: str) -> str:
        """Host subnet of `leaf`, e.g. ``"10.0.1.0/24"``."""
        info = self._require_kind(leaf, "leaf")
        return str(ipaddress.IPv4Network(f"10.0.{info.index}.0/24"))

    def gateway_of(self, host: str) -> tuple[str, str]:
        """``(ip, mac)`` of the gateway of `host`: its leaf's address and port MAC."""
        info = self._require_kind(host, "host")
        leaf = self._nodes[info.leaf]
        return f"10.0.{leaf.index}.1", self.mac_of(info.leaf, info.position)

    def dpid_of(self, switch: str) -> str:
        """16-hex-digit datapath id of `switch` (see `device_id_of`)."""
        return f"{self.device_id_of(switch):016x}"

    def device_id_of(self, switch: str) -> int:
        """Numeric switch id: spine s -> s, leaf i -> 256 + i."""
        info = self._require_kind(switch, "spine", "leaf")
        return info.index if info.kind == "spine" else _LEAF_DEVICE_BASE + info.index

    # -- structure -----------------------------------------------------------------------------
    def links(self) -> list[Link]:
        """All links: host links in host order, then fabric links leaf by leaf, spine by spine."""
        return list(self._links)

    def link(self, a: str, b: str) -> Link:
        """The link between `a` and `b` (either order)."""
        for peer, link in self._adjacency[self.node(a).name].values():
            if peer == b:
                return link
        raise ConfigError(f"link: {a} and {b} are not adjacent")

    def link_by_key(self, key: str) -> Link:
        """The link with key ``"a-b"`` (either order)."""
        canonical = canonical_link_key("link", key)
        return self.link(*canonical.split("-"))

    def links_of(self, node: str) -> list[Link]:
        """Links attached to `node`, in port order."""
        return [link for _port, (_peer, link) in sorted(self._adjacency[self.node(node).name]
                                                       .items())]

    def neighbours(self, node: str) -> list[str]:
        """Nodes adjacent to `node`, in port order."""
        return [peer for _port, (peer, _link) in sorted(self._adjacency[self.node(node).name]
                                                       .items())]

    def port_of(self, node: str, neighbour: str) -> int:
        """Port on `node` that leads to `neighbour`."""
        return self.link(node, neighbour).port_on(node)

    def intf_of(self, node: str, neighbour: str) -> str:
        """Interface name on `node` that leads to `neighbour`."""
        return self.link(node, neighbour).intf_on(node)

    def peer_of_port(self, node: str, port: int) -> str:
        """The node attached to `port` of `node`."""
        try:
            return self._adjacency[self.node(node).name][port][0]
        except KeyError:
            raise ConfigError(f"port: {node} has no port {port}") from None

    def hosts_of_leaf(self, leaf: str) -> list[str]:
        """Hosts attached to `leaf`, in position (= port) order."""
        self._require_kind(leaf, "leaf")
        return [h for h in self.hosts() if self._nodes[h].leaf == leaf]

    def leaf_of(self, host: str) -> str:
        """The leaf `host` is attached to."""
        return self._require_kind(host, "host").leaf

    def uplinks(self, leaf: str) -> list[Link]:
        """Links from `leaf` to the spines, in spine order (node1 = leaf, node2 = spine)."""
        self._require_kind(leaf, "leaf")
        return [link for link in self.links_of(leaf) if link.node1 == leaf]

    # -- export --------------------------------------------------------------------------------
    def node_opts(self, name: str) -> dict[str, Any]:
        """Mininet ``addHost``/``addSwitch`` options of `name`.

        Hosts: ``ip`` (with /24), ``mac``, ``defaultRoute``, ``role``, ``leaf``.
        Switches: ``kind``, ``dpid``, ``device_id``, ``router_ip``, ``router_mac`` (no ``ip``:
        Mininet would put it on an interface of the root namespace).
        """
        info = self.node(name)
        if info.kind == "host":
            gateway, _mac = self.gateway_of(name)
            return {"ip": f"{info.ip}/24", "mac": info.mac, "defaultRoute": f"via {gateway}",
                    "role": info.role, "leaf": info.leaf}
        return {"kind": info.kind, "dpid": self.dpid_of(name),
                "device_id": self.device_id_of(name), "router_ip": info.ip,
                "router_mac": info.mac}

    def link_opts(self, link: Link) -> dict[str, Any]:
        """Mininet ``addLink`` options of `link`: ports, interface names, MACs, TC params."""
        opts = {"port1": link.port1, "port2": link.port2,
                "intfName1": link.intf1, "intfName2": link.intf2,
                "addr1": self.mac_of(link.node1, link.port1),
                "addr2": self.mac_of(link.node2, link.port2)}
        opts.update(link.params.mininet_opts())
        return opts

    def mininet_topo(self):
        """An equivalent `mininet.topo.Topo` (imports Mininet lazily; needs no root)."""
        from mininet.topo import Topo  # local import: the data model does not need Mininet

        topo = Topo()
        for name in self.switches():
            topo.addSwitch(name, **self.node_opts(name))
        for name in self.hosts():
            topo.addHost(name, **self.node_opts(name))
        for link in self._links:
            topo.addLink(link.node1, link.node2, **self.link_opts(link))
        return topo

    def describe(self) -> dict[str, Any]:
        """Spec, nodes and links as a JSON-friendly dict, for run provenance."""
        return {"spec": self.spec.to_dict(),
                "nodes": [dataclasses.asdict(info) for info in self._nodes.values()],
                "links": [link.to_dict() for link in self._links]}
