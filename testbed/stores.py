"""State-store replicas as owned processes on Mininet hosts, and the chain master.

`StoreReplica` starts one `python -m testbed.store` process in a host's namespace, waits for
its READY line, talks to it through its control socket (reachable from the root namespace
through the filesystem), and stops or kills it. `StoreCluster` runs one chain per shard and
repairs a chain when a replica fails (the chain-replication paper's master): the failed
replica is removed, its neighbours are joined (with a full state sync from the predecessor),
and when a head changes the cluster reports it so the switches can be re-pointed.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

from testbed.errors import TestbedError
from testbed.store.control import ControlError, send_command


class StoreStartError(TestbedError):
    """A replica did not start; the message names it and its log."""


class StoreReplica:
    def __init__(self, host, app: str, shard: int, n_shards: int, lease_ms: float, control_dir: str,
                 log_dir: str, prev: str | None, next_: str | None, mirror: bool):
        self.host, self.app, self.shard, self.n_shards = host, app, shard, n_shards
        self.lease_ms, self.prev, self.next, self.mirror = lease_ms, prev, next_, mirror
        self.name = f"{host.name}.shard{shard}"
        self.control = os.path.join(control_dir, f"{host.name}-{shard}.sock")
        self.log_path = os.path.join(log_dir, f"store-{self.name}.log")
        self.stats_path = os.path.join(log_dir, f"store-{self.name}.stats.json")
        self.proc = None

    @property
    def ip(self) -> str:
        return self.host.IP()

    def argv(self) -> list[str]:
        args = [sys.executable, "-m", "testbed.store", "--app", self.app, "--shard", str(self.shard),
                "--shards", str(self.n_shards), "--listen", self.ip, "--lease-ms", str(self.lease_ms),
                "--control", self.control, "--stats-file", self.stats_path,
                "--next", self.next or "none", "--prev", self.prev or "none"]
        return args + (["--mirror-values"] if self.mirror else [])

    def start(self, timeout: float = 15.0) -> "StoreReplica":
        log = open(self.log_path, "ab")
        try:
            self.proc = self.host.popen(self.argv(), stdout=subprocess.PIPE, stderr=log)
        finally:
            log.close()
        try:
            self._await_ready(time.monotonic() + timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def _await_ready(self, deadline: float) -> None:
        buf = b""
        while b"READY" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise StoreStartError(f"store {self.name} did not start (log: {self.log_path})")
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.2))
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    continue
                buf += chunk

    def command(self, line: str, timeout: float = 10.0) -> dict:
        return send_command(self.control, line, timeout)

    def alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            self.command("ping", timeout=1.0)
            return True
        except ControlError:
            return False

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (the store writes its stats), then SIGKILL if it lingers."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reap()

    def kill(self) -> None:
        """Crash the replica at once."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        self._reap()

    def _reap(self) -> None:
        if self.proc is not None:
            self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        if os.path.exists(self.control):
            os.remove(self.control)


class StoreCluster:
    """One chain of replicas per shard, and its repair."""

    def __init__(self, chains: list[list[str]], hosts: dict, app: str, lease_ms: float, control_dir: str,
                 log_dir: str, mirror: bool):
        self.hosts, self.app, self.lease_ms = hosts, app, lease_ms
        self.control_dir, self.log_dir, self.mirror = control_dir, log_dir, mirror
        self.n_shards = len(chains)
        self.chains = [[self._make(hosts[names[i]], s, hosts[names[i - 1]].IP() if i else None,
                                   hosts[names[i + 1]].IP() if i + 1 < len(names) else None)
                        for i in range(len(names))] for s, names in enumerate(chains)]
        self.events: list[tuple[float, str, str]] = []

    def _make(self, host, shard, prev, nxt) -> StoreReplica:
        return StoreReplica(host, self.app, shard, self.n_shards, self.lease_ms, self.control_dir, self.log_dir,
                            prev, nxt, self.mirror)

    def start(self, timeout: float = 20.0) -> None:
        for chain in self.chains:
            for replica in reversed(chain):          # tails first: predecessors connect to them
                replica.start(timeout)
        for chain in self.chains:
            for replica in chain[:-1]:
                _wait_synced(replica, timeout)

    def stop(self) -> None:
        for chain in self.chains:
            for replica in chain:
                replica.stop()

    def heads(self) -> list[StoreReplica]:
        return [chain[0] for chain in self.chains]

    def replicas_on(self, host: str) -> list[StoreReplica]:
        return [r for chain in self.chains for r in chain if r.host.name == host]

    def remove(self, replica: StoreReplica) -> bool:
        """Repair the chain after `replica` failed; returns True if its shard's head changed."""
        chain = self.chains[replica.shard]
        i = chain.index(replica)
        prev = chain[i - 1] if i > 0 else None
        nxt = chain[i + 1] if i + 1 < len(chain) else None
        chain.remove(replica)
        if nxt is not None:
            nxt.command(f"set_prev {prev.ip if prev else 'none'}")
        if prev is not None:
            prev.command(f"set_next {nxt.ip if nxt else 'none'}", timeout=15.0)
        self.events.append((time.monotonic(), "removed", replica.name))
        return i == 0

    def rejoin(self, host: str, shard: int) -> StoreReplica:
        """Start a fresh replica of `shard` on `host` as the chain's new tail (state synced)."""
        chain = self.chains[shard]
        tail = chain[-1] if chain else None
        replica = self._make(self.hosts[host], shard, tail.ip if tail else None, None)
        replica.start()
        if tail is not None:
            tail.command(f"set_next {replica.ip}", timeout=15.0)
        chain.append(replica)
        self.events.append((time.monotonic(), "joined", replica.name))
        return replica


def _wait_synced(replica: StoreReplica, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not replica.command("role").get("next_synced"):
        if time.monotonic() > deadline:
            raise StoreStartError(f"store {replica.name}: its successor did not connect within {timeout} s "
                                  f"(log: {replica.log_path})")
        time.sleep(0.05)
