"""A run's whole configuration as data: fabric, app and variant, protocol settings, stores,
failure detection, failures, captures and target. Loaded from a dict (TOML or JSON files),
validated once with errors naming the key, and written into the run's provenance.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace

from testbed.errors import ConfigError
from testbed.failures import Timeline
from testbed.redplane.config import RedPlaneSettings
from testbed.topology import FabricSpec, LeafSpineTopo


@dataclass(frozen=True)
class StoreSpec:
    shards: int = 1
    replicas: int = 1           # chain length per shard

    def validate(self, topo: LeafSpineTopo) -> None:
        if self.shards < 1 or self.shards > 64:
            raise ConfigError(f"stores.shards: must be 1..64, got {self.shards}")
        if self.replicas < 1:
            raise ConfigError(f"stores.replicas: must be >= 1, got {self.replicas}")
        if not topo.stores():
            raise ConfigError("stores: the fabric has no host with role 'store'")
        if self.replicas > len(topo.stores()):
            raise ConfigError(f"stores.replicas: {self.replicas} replicas need as many store hosts "
                              f"(the fabric has {len(topo.stores())})")

    def chains(self, topo: LeafSpineTopo) -> list[list[str]]:
        """Store hosts of each shard's chain, head first (replicas spread over the store hosts)."""
        hosts = topo.stores()
        return [[hosts[(s + j) % len(hosts)] for j in range(self.replicas)] for s in range(self.shards)]


@dataclass(frozen=True)
class MonitorSpec:
    interval_ms: float = 30.0
    multiplier: int = 3

    def validate(self) -> None:
        if self.interval_ms <= 0:
            raise ConfigError(f"monitor.interval_ms: must be positive, got {self.interval_ms}")
        if self.multiplier < 1:
            raise ConfigError(f"monitor.multiplier: must be >= 1, got {self.multiplier}")


@dataclass(frozen=True)
class RunConfig:
    name: str = "run"
    fabric: FabricSpec = field(default_factory=FabricSpec)
    app: str | None = None                 # None: the plain fabric (routing only)
    variant: str = "redplane"
    target: str = "bundled"
    redplane: RedPlaneSettings = field(default_factory=RedPlaneSettings)
    stores: StoreSpec = field(default_factory=StoreSpec)
    monitor: MonitorSpec = field(default_factory=MonitorSpec)
    snapshot_ms: float = 100.0             # sketch snapshot period
    checkpoint_ms: float = 500.0           # S1 checkpoint period
    failures: tuple = ()                   # failure timeline entries (dicts)
    capture: tuple = ()                    # "h1-eth0", "s1-eth3", or "hosts" for every host
    trace: bool = False                    # per-packet switch logs
    switch_pcaps: bool = False             # pcaps of every switch port (written by the switch)
    seed: int = 1

    def validate(self) -> None:
        topo = self.topology()
        if self.app is not None:
            from p4apps.apps import app_named
            app = app_named(self.app)
            app.defines(self.variant)
            self.stores.validate(topo)
        self.redplane.validate()
        self.monitor.validate()
        for key in ("snapshot_ms", "checkpoint_ms"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}: must be positive, got {getattr(self, key)}")
        self.timeline()
        for i, point in enumerate(self.capture):
            if point != "hosts" and not _known_intf(topo, point):
                raise ConfigError(f"capture[{i}]: no interface {point!r} in the fabric")

    def topology(self) -> LeafSpineTopo:
        return LeafSpineTopo(self.fabric)

    def timeline(self) -> Timeline:
        return Timeline.from_dicts(list(self.failures), self.topology(), where="failures")

    # -- dicts and files ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["fabric"] = self.fabric.to_dict()
        out["redplane"] = self.redplane.to_dict()
        out["stores"] = asdict(self.stores)
        out["monitor"] = asdict(self.monitor)
        out["failures"] = [dict(e) for e in self.failures]
        out["capture"] = list(self.capture)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown key {sorted(unknown)[0]!r} (known: {', '.join(f.name for f in fields(cls))})")
        kwargs = dict(data)
        if "fabric" in kwargs:
            kwargs["fabric"] = FabricSpec.from_dict(kwargs["fabric"])
        if "redplane" in kwargs:
            kwargs["redplane"] = RedPlaneSettings.from_dict(kwargs["redplane"])
        if "stores" in kwargs:
            kwargs["stores"] = _sub(StoreSpec, kwargs["stores"], "stores")
        if "monitor" in kwargs:
            kwargs["monitor"] = _sub(MonitorSpec, kwargs["monitor"], "monitor")
        for key in ("failures", "capture"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    @classmethod
    def load(cls, path: str) -> "RunConfig":
        """A run configuration from a .json or .toml file."""
        try:
            if path.endswith(".toml"):
                import tomllib
                with open(path, "rb") as f:
                    data = tomllib.load(f)
            else:
                with open(path) as f:
                    data = json.load(f)
        except (OSError, ValueError) as e:
            raise ConfigError(f"{path}: {e}") from None
        try:
            return cls.from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None

    def with_(self, **changes) -> "RunConfig":
        cfg = replace(self, **changes)
        cfg.validate()
        return cfg


def _sub(cls, data, where):
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a table of settings, got {data!r}")
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    return cls(**data)


def _known_intf(topo: LeafSpineTopo, name: str) -> bool:
    node, sep, _ = name.partition("-eth")
    if not sep or node not in topo.nodes():
        return False
    return any(link.intf_on(node) == name for link in topo.links_of(node))
