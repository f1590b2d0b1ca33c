"""Control-plane configuration of the RedPlane library on a spine, generated from the topology.

The tables and sessions are those of p4apps/redplane/redplane.p4: rp_config (this switch's
RedPlane address, lease and RTO), rp_shards (shard -> head replica), rp_port_dmac (next-hop
MACs for renewal clones), the CPU mirroring session for retransmission copies and one renewal
session per shard (towards the leaf of that shard's head).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from testbed.errors import ConfigError
from testbed.topology import LeafSpineTopo

CPU_PORT = 510
CPU_SESSION = 99
RENEW_SESSION = 100
MAX_SWITCH_LEASE_US = 1 << 31
MAX_CLOCK_BASE_US = 1 << 47


@dataclass(frozen=True)
class RedPlaneSettings:
    """Protocol timing. The store's lease `lease_ms` must exceed the switch's `switch_lease_ms`
    by more than the largest clock drift over a lease, because the switch measures its lease
    from the request's send time (echoed in the ack) and the store from its arrival. The
    switch lease must stay below 2^31 us, the range of the 32-bit echoed timestamp."""

    lease_ms: float = 1000.0
    switch_lease_ms: float = 600.0
    rto_ms: float = 50.0

    def validate(self) -> None:
        for key in ("lease_ms", "switch_lease_ms", "rto_ms"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"redplane.{key}: must be positive, got {getattr(self, key)}")
        if self.switch_lease_ms >= self.lease_ms:
            raise ConfigError(f"redplane.switch_lease_ms: must be below lease_ms ({self.lease_ms}), "
                              f"got {self.switch_lease_ms}")
        if self.switch_lease_ms * 1000 >= MAX_SWITCH_LEASE_US:
            raise ConfigError(f"redplane.switch_lease_ms: must be below {MAX_SWITCH_LEASE_US // 1000} "
                              f"(the 32-bit timestamp's half range), got {self.switch_lease_ms}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RedPlaneSettings":
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"redplane: unknown key {sorted(unknown)[0]!r}")
        s = cls(**data)
        s.validate()
        return s


def spine_commands(topo: LeafSpineTopo, spine: str, settings: RedPlaneSettings, heads: list[str],
                   clock_base_us: int = 0) -> list[str]:
    """CLI commands configuring RedPlane on `spine`; `heads[s]` is the head replica of shard s.
    `clock_base_us` is added to the switch's timestamps: a host clock reading (us) taken just
    before this incarnation of the switch was launched, so that its clock continues past every
    earlier incarnation's and acks to those are recognised as stale (0 for a switch whose
    timestamps already continue across restarts, as in the in-process fabric)."""
    settings.validate()
    if not 0 <= clock_base_us < MAX_CLOCK_BASE_US:
        raise ConfigError(f"clock_base_us: must be 0..2^47-1 microseconds, got {clock_base_us}")
    cmds = [f"table_set_default rp_config rp_set_config {topo.redplane_ip(spine)} "
            f"{int(settings.switch_lease_ms * 1000)} {int(settings.rto_ms * 1000)} {len(heads)} "
            f"{int(clock_base_us)}",
            f"mirroring_add {CPU_SESSION} {CPU_PORT}"]
    cmds += shard_commands(topo, spine, heads, initial=True)
    for link in topo.links_of(spine):
        port, peer = link.port_on(spine), link.peer_of(spine)
        cmds.append(f"table_add rp_port_dmac rp_set_dmac {port} => {topo.mac_of(peer, link.port_on(peer))}")
    return cmds


def shard_commands(topo: LeafSpineTopo, spine: str, heads: list[str], initial: bool = False) -> list[str]:
    """Commands pointing every shard at its head (on reconfiguration: modify, not add)."""
    cmds = []
    for shard, head in enumerate(heads):
        port = topo.port_of(spine, topo.leaf_of(head))
        if initial:
            cmds.append(f"table_add rp_shards rp_set_store {shard} => {topo.ip_of(head)}")
        cmds.append(f"mirroring_add {RENEW_SESSION + shard} {port}")
    return cmds
