"""The state store as a replicated chain, on 127.0.0.1 only.

In-process replicas (asyncio servers on any free ports) serve two emulated switches that talk
through a seeded lossy, duplicating and reordering UDP proxy. The checks: no acknowledged write
is lost (also across head, middle and tail failures with reconfiguration), at most one switch
holds a lease at any time, every ack leaves only once the tail has the write, malformed packets
are counted and harmless. A last group runs real store processes through the CLI, the control
socket and signals.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import random
import selectors
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from testbed.redplane.protocol import (APP_LAYOUTS, LEASE_NEW, LEASE_RENEW, MIGRATE_ACK, NEW_ACK,
                                       RENEW_ACK, SEQ_FENCE, seq_newer, seq_next, seq_not_older,
                                       ts_age, ts_of)
from testbed.store.chain import Endpoint
from testbed.store.control import ControlError, async_send_command, send_command
from testbed.store.server import StoreConfig, StoreServer
from testbed.store.stats import COUNTER_NAMES

HOST = "127.0.0.1"
LAYOUT = APP_LAYOUTS["nat"]
F = SEQ_FENCE
LEASE_MS = 300
LEASE_STORE = LEASE_MS / 1000
LEASE_SWITCH = 0.2      # L_switch <= L minus the largest ack delay (proxy delay is <= 15 ms)
RTO = 0.03
WORKLOAD_S = 1.6
ACKED_BEFORE_FAILURE = 20


def inner_packet(tag: bytes) -> bytes:
    """A small IPv4 packet standing in for the piggybacked packet."""
    total = 20 + len(tag)
    return bytes([0x45, 0, 0, total]) + bytes(5) + bytes([17]) + bytes(10) + tag


async def wait_until(predicate, timeout: float, what: str, interval: float = 0.005) -> None:
    """Poll `predicate` until true; fail the test after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait for `event` at most `timeout` seconds; True if it was set."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except asyncio.TimeoutError:
        return False
    return True


# --- in-process chain ---------------------------------------------------------------------------
def replica_config(**overrides) -> StoreConfig:
    """A loopback replica of shard 0 on free ports, acking to the request's source port."""
    base = StoreConfig(app="nat", listen=HOST, udp_port=0, repl_port=0, lease_ms=LEASE_MS,
                       switch_port=None)
    return replace(base, **overrides)


class Chain:
    """In-process replicas of one shard, head first. Owns them: `close` stops every one."""

    def __init__(self) -> None:
        self.replicas: list[StoreServer] = []
        self.alive: list[StoreServer] = []

    async def start(self, length: int = 3, **overrides) -> "Chain":
        """Start `length` replicas tail first, then wait until every link is synced."""
        successor = None
        for position in reversed(range(length)):
            prev = HOST if position > 0 else None
            nxt = Endpoint(HOST, successor.repl_address[1]) if successor else None
            server = StoreServer(replica_config(prev=prev, next=nxt, **overrides))
            self.replicas.insert(0, server)
            await server.start()
            successor = server
        self.alive = list(self.replicas)
        await wait_until(lambda: all(r.role()["next_synced"] for r in self.replicas[:-1]),
                         5, "chain links synced")
        return self

    @property
    def head(self) -> StoreServer:
        return self.alive[0]

    @property
    def tail(self) -> StoreServer:
        return self.alive[-1]

    async def crash(self, replica: StoreServer) -> None:
        """Stop a replica abruptly (its sockets and connections close at once)."""
        self.alive.remove(replica)
        await replica.stop()

    async def close(self) -> None:
        for replica in self.alive:
            await replica.stop()
        self.alive = []


@contextlib.asynccontextmanager
async def running_chain(length: int = 3, **overrides):
    chain = Chain()
    try:
        yield await chain.start(length, **overrides)
    finally:
        await chain.close()


# --- lossy proxy --------------------------------------------------------------------------------
class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, on_datagram) -> None:
        self._on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self._on_datagram(data, addr)


class LossyProxy:
    """Relays one switch's requests to the head (`target`) and the tail's acks back, losing,
    duplicating and delaying (so reordering) each datagram with a seeded random generator.
    The store sees the proxy's upstream socket as the switch."""

    def __init__(self, rng: random.Random, target, loss=0.1, duplicate=0.1, max_delay=0.015):
        self.rng, self.target = rng, tuple(target)
        self.loss, self.duplicate, self.max_delay = loss, duplicate, max_delay
        self.switch_addr = None
        self.stats = {"lost": 0, "duplicated": 0, "relayed": 0}
        self._pending: list[asyncio.TimerHandle] = []  # cancelled on close

    async def start(self) -> "LossyProxy":
        loop = asyncio.get_running_loop()
        _, self.front = await loop.create_datagram_endpoint(
            lambda: _Endpoint(self._from_switch), local_addr=(HOST, 0))
        _, self.upstream = await loop.create_datagram_endpoint(
            lambda: _Endpoint(self._from_store), local_addr=(HOST, 0))
        return self

    @property
    def address(self):
        return self.front.transport.get_extra_info("sockname")[:2]

    def _from_switch(self, data: bytes, addr) -> None:
        self.switch_addr = addr
        self._relay(self.upstream, data, self.target)

    def _from_store(self, data: bytes, addr) -> None:
        if self.switch_addr:
            self._relay(self.front, data, self.switch_addr)

    def _relay(self, side: _Endpoint, data: bytes, dest) -> None:
        if self.rng.random() < self.loss:
            self.stats["lost"] += 1
            return
        copies = 2 if self.rng.random() < self.duplicate else 1
        self.stats["duplicated"] += copies - 1
        loop = asyncio.get_running_loop()
        for _ in range(copies):
            delay = self.rng.uniform(0, self.max_delay)
            self._pending.append(loop.call_later(delay, self._send, side, data, dest))

    def _send(self, side: _Endpoint, data: bytes, dest) -> None:
        if side.transport and not side.transport.is_closing():
            side.transport.sendto(data, dest)
            self.stats["relayed"] += 1

    def close(self) -> None:
        for handle in self._pending:
            handle.cancel()
        for side in (self.front, self.upstream):
            if side.transport:
                side.transport.close()


# --- emulated switches ----------------------------------------------------------------------------
@dataclass
class Journal:
    """What the switches observed, for the invariants checked at the end. `sent` maps each
    written value (random, so unique) to the time of its first and last send."""

    leases: list[tuple[str, int, float, float]] = field(default_factory=list)
    acked: list[tuple[str, int, int, int]] = field(default_factory=list)
    sent: dict[int, tuple[float, float]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    migrations: int = 0

    def record_send(self, value: int, now: float) -> None:
        self.sent[value] = (self.sent.get(value, (now, now))[0], now)


@dataclass
class Flow:
    """A switch's per-flow state (the registers of docs/protocol.md section 5); `seq` 0 means
    no state."""

    expiry: float = 0.0
    seq: int = 0
    value: int = 0
    outstanding: tuple[int, int] | None = None
    granted: asyncio.Event = field(default_factory=asyncio.Event)
    renewed: asyncio.Event = field(default_factory=asyncio.Event)
    acked: asyncio.Event = field(default_factory=asyncio.Event)


class SwitchSim(asyncio.DatagramProtocol):
    """A RedPlane switch reduced to its lease and write logic, writing random values to a few
    flows. Its lease runs L_switch from the echoed send time of the request an ack answers;
    a lease ack installs state only if it is newer than ours. Every write ack is checked
    against the tail's state on arrival."""

    def __init__(self, name: str, journal: Journal, chain: Chain, rng: random.Random) -> None:
        self.name, self.journal, self.chain, self.rng = name, journal, chain, rng
        self.inner = inner_packet(name.encode())
        self.flows: dict[int, Flow] = {}
        self.transport = None
        self.proxy_addr = None

    async def start(self, proxy_addr) -> "SwitchSim":
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self,
                                                                local_addr=(HOST, 0))
        self.proxy_addr = tuple(proxy_addr)
        return self

    def close(self) -> None:
        if self.transport:
            self.transport.close()

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def flow(self, key: int) -> Flow:
        return self.flows.setdefault(key, Flow())

    def send(self, type_: int, seq: int, key: int, value: int, inner: bytes = b"") -> None:
        ts = ts_of(int(self.now() * 1e6))
        self.transport.sendto(LAYOUT.pack(type_, seq, key, value, inner, ts=ts), self.proxy_addr)

    def sent_time(self, msg) -> float | None:
        """When the request an ack answers was sent, if less than L_switch ago."""
        age = ts_age(ts_of(int(self.now() * 1e6)), msg.ts) / 1e6
        return self.now() - age if age < LEASE_SWITCH else None

    # acks
    def datagram_received(self, data: bytes, addr) -> None:
        msg = LAYOUT.unpack(data)
        if msg.type in (NEW_ACK, MIGRATE_ACK):
            self._on_grant(msg)
        elif msg.type == RENEW_ACK and msg.seq == 0:
            self._on_renewal(msg)
        elif msg.type == RENEW_ACK:
            self._on_write_ack(msg)

    def _hold(self, key: int, start: float, end: float) -> None:
        self.flow(key).expiry = end
        self.journal.leases.append((self.name, key, start, end))

    def _extend(self, key: int, sent: float) -> None:
        flow, now = self.flow(key), self.now()
        if sent + LEASE_SWITCH > max(flow.expiry, now):
            self._hold(key, now, sent + LEASE_SWITCH)

    def _on_grant(self, msg) -> None:
        flow, sent = self.flow(msg.key), self.sent_time(msg)
        if msg.inner != self.inner:
            self.journal.violations.append(f"{self.name}: grant returned another packet")
        if sent is None:
            return  # stale
        self._extend(msg.key, sent)
        if flow.seq == 0 or seq_newer(msg.seq, flow.seq):
            flow.seq, flow.value = msg.seq, msg.value if msg.type == MIGRATE_ACK else 0
            flow.outstanding = None  # fenced off: the agent drops it
            self.journal.migrations += msg.type == MIGRATE_ACK
        flow.granted.set()

    def _on_renewal(self, msg) -> None:
        sent = self.sent_time(msg)
        if sent is not None and self.flow(msg.key).seq:
            self._extend(msg.key, sent)
        self.flow(msg.key).renewed.set()

    def _on_write_ack(self, msg) -> None:
        flow = self.flow(msg.key)
        if flow.outstanding is None or msg.seq != flow.outstanding[0]:
            return
        seq, value = flow.outstanding
        self._check_tail_has(msg.key, seq, value)
        if (msg.value, msg.inner) != (value, self.inner):
            self.journal.violations.append(f"{self.name}: ack of seq {seq} carries "
                                           f"value {msg.value:#x}, expected {value:#x}")
        self.journal.acked.append((self.name, msg.key, seq, value))
        flow.outstanding, flow.value = None, value
        flow.acked.set()

    def _check_tail_has(self, key: int, seq: int, value: int) -> None:
        state = self.chain.tail.state.get(key)
        if state is None or not seq_not_older(state.committed, seq):
            self.journal.violations.append(
                f"{self.name}: ack of key {key} seq {seq} before the tail has it ({state})")
        elif state.committed == seq and state.value != value:
            self.journal.violations.append(f"{self.name}: tail has another value for seq {seq}")

    # workload
    async def run(self, keys: list[int], stop_at: float) -> None:
        """Write bursts of 1-4 random values to random flows until `stop_at`."""
        while self.now() < stop_at:
            key = self.rng.choice(keys)
            for _ in range(self.rng.randint(1, 4)):
                if self.now() >= stop_at or not await self.write(key, stop_at):
                    break

    async def write(self, key: int, stop_at: float) -> bool:
        """One acknowledged write; False if the lease could not be held or a newer grant
        fenced the write off."""
        if not await self.ensure_lease(key, stop_at):
            return False
        flow = self.flow(key)
        flow.seq = seq_next(flow.seq)
        mine = flow.outstanding = (flow.seq, self.rng.getrandbits(48))
        flow.acked.clear()
        while flow.outstanding == mine:
            if flow.expiry <= self.now():
                flow.outstanding = None  # lease lost: the write is abandoned
                return False
            self.journal.record_send(mine[1], self.now())
            self.send(LEASE_RENEW, mine[0], key, mine[1], self.inner)
            await wait_event(flow.acked, RTO)
        return flow.value == mine[1]

    async def ensure_lease(self, key: int, stop_at: float) -> bool:
        """Hold a lease with at least half the period left: renew, or ask for a new one."""
        flow = self.flow(key)
        deadline = min(stop_at, self.now() + 4 * LEASE_STORE)
        while self.now() < deadline:
            left = flow.expiry - self.now()
            if left > LEASE_SWITCH / 2:
                return True
            event = flow.renewed if left > 0 else flow.granted
            event.clear()
            self._renew(key) if left > 0 else self._ask_lease(key)
            await wait_event(event, RTO)
        return False

    def _renew(self, key: int) -> None:
        self.send(LEASE_RENEW, 0, key, int(self.now() * 1000))

    def _ask_lease(self, key: int) -> None:
        self.send(LEASE_NEW, 0, key, 0, self.inner)


@contextlib.asynccontextmanager
async def switches_through_proxies(chain: Chain, journal: Journal, seed: int):
    """Two switches, each behind its own lossy proxy aimed at the head. Owns all sockets."""
    rng = random.Random(seed)
    proxies, sims = [], []
    try:
        for name in ("s1", "s2"):
            proxy = await LossyProxy(random.Random(rng.random()), chain.head.udp_address).start()
            proxies.append(proxy)
            sim = SwitchSim(name, journal, chain, random.Random(rng.random()))
            sims.append(await sim.start(proxy.address))
        yield sims, proxies
    finally:
        for item in sims + proxies:
            item.close()


# --- invariants ----------------------------------------------------------------------------------
def assert_one_lease_holder(journal: Journal) -> None:
    """No two switches ever believed they held the same flow's lease at the same time."""
    by_key: dict[int, list] = {}
    for switch, key, start, end in journal.leases:
        by_key.setdefault(key, []).append((start, end, switch))
    for key, spans in by_key.items():
        spans.sort()
        for (s1, e1, w1), (s2, e2, w2) in zip(spans, spans[1:]):
            assert w1 == w2 or e1 <= s2, f"key {key}: {w1} until {e1} overlaps {w2} from {s2}"


def assert_no_acked_write_lost(journal: Journal, replica: StoreServer) -> None:
    """Per key, `replica` holds the last acknowledged write's value, or the value of a write
    sent after that one was first sent. (Seqs cannot tell: every grant moves them on by F, so
    after a few grants an old seq looks newer in serial arithmetic.)"""
    last: dict[int, tuple[str, int, int]] = {}
    for switch, key, seq, value in journal.acked:
        last[key] = (switch, seq, value)
    for key, (switch, seq, value) in last.items():
        state = replica.state.get(key)
        assert state is not None and state.written, f"key {key}: acked write lost ({state})"
        if state.value == value:
            continue
        later = journal.sent.get(state.value)
        assert later is not None and later[1] > journal.sent[value][0], (
            f"{switch}'s acked write key {key} seq {seq} lost: replica has {state}")


def same_committed_state(replicas: list[StoreServer]) -> bool:
    def view(r):
        return {k: (s.value, s.committed) for k, s in r.state.items()}
    return all(view(r) == view(replicas[0]) for r in replicas[1:])


# --- scenarios -----------------------------------------------------------------------------------
async def crash_head(chain: Chain, proxies: list[LossyProxy]) -> None:
    await chain.crash(chain.head)
    assert chain.head.set_prev("none")["head"] is True
    for proxy in proxies:  # the switches' shard table now points at the new head
        proxy.target = tuple(chain.head.udp_address)


async def crash_middle(chain: Chain, proxies: list[LossyProxy]) -> None:
    await chain.crash(chain.alive[1])
    chain.tail.set_prev(HOST)
    result = await chain.head.set_next(f"{HOST}:{chain.tail.repl_address[1]}")
    assert result["synced"] is True


async def crash_tail(chain: Chain, proxies: list[LossyProxy]) -> None:
    await chain.crash(chain.tail)
    assert (await chain.tail.set_next("none"))["synced"] is True


FAILURES = {None: None, "head": crash_head, "middle": crash_middle, "tail": crash_tail}


async def run_workload(failure: str | None, seed: int) -> None:
    journal = Journal()
    keys = [LAYOUT.key_of(key_addr=0x0A000001 + i, key_port=1000 + i) for i in range(4)]
    async with running_chain(3) as chain, \
            switches_through_proxies(chain, journal, seed) as (sims, proxies):
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + WORKLOAD_S
        tasks = [asyncio.create_task(sim.run(keys, stop_at)) for sim in sims]
        try:
            await wait_until(lambda: len(journal.acked) >= ACKED_BEFORE_FAILURE, WORKLOAD_S,
                             "writes acknowledged before the failure")
            acked_before = len(journal.acked)
            if FAILURES[failure]:
                await FAILURES[failure](chain, proxies)
            await asyncio.wait_for(asyncio.gather(*tasks), WORKLOAD_S + 4 * LEASE_STORE + 2)
        finally:
            for task in tasks:
                task.cancel()
        await wait_until(lambda: same_committed_state(chain.alive), 3, "replicas to converge")
        assert journal.violations == []
        assert len(journal.acked) > acked_before + ACKED_BEFORE_FAILURE, "no progress after"
        assert_one_lease_holder(journal)
        for replica in chain.alive:
            assert_no_acked_write_lost(journal, replica)
        if failure != "tail":
            assert all(r.counters["acks_total"] == 0 for r in chain.alive[:-1])
        assert sum(p.stats["lost"] for p in proxies) > 0
        assert sum(p.stats["duplicated"] for p in proxies) > 0


@pytest.mark.parametrize("failure", [None, "head", "middle", "tail"])
def test_no_acked_write_lost_and_one_lease_holder(failure):
    asyncio.run(run_workload(failure, seed=1234))


# --- targeted chain tests -------------------------------------------------------------------------
class UdpClient(asyncio.DatagramProtocol):
    """A switch without a proxy: sends requests, collects acks in a queue."""

    def __init__(self) -> None:
        self.acks: asyncio.Queue = asyncio.Queue()
        self.transport = None

    @classmethod
    async def open(cls) -> "UdpClient":
        loop = asyncio.get_running_loop()
        _, client = await loop.create_datagram_endpoint(cls, local_addr=(HOST, 0))
        return client

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.acks.put_nowait((LAYOUT.unpack(data), addr, asyncio.get_running_loop().time()))

    def send(self, target, type_, seq, key, value, inner=b"", ts=0) -> None:
        self.transport.sendto(LAYOUT.pack(type_, seq, key, value, inner, ts=ts), tuple(target))

    async def next_ack(self, timeout: float = 2.0):
        return await asyncio.wait_for(self.acks.get(), timeout)


@contextlib.asynccontextmanager
async def clients(count: int):
    opened = []
    try:
        for _ in range(count):
            opened.append(await UdpClient.open())
        yield opened
    finally:
        for client in opened:
            client.transport.close()


async def contested_lease() -> None:
    key = LAYOUT.key_of(key_addr=0x0A000063, key_port=99)
    async with running_chain(3) as chain, clients(2) as (s1, s2):
        head, loop = chain.head.udp_address, asyncio.get_running_loop()
        s1.send(head, LEASE_NEW, 0, key, 0, inner_packet(b"a"), ts=11)
        (ack, source, _) = await s1.next_ack()
        assert (ack.type, ack.seq, ack.ts, ack.inner) == (NEW_ACK, F, 11, inner_packet(b"a"))
        assert tuple(source) == tuple(chain.tail.udp_address)  # acks come from the tail
        sent_write = loop.time()
        s1.send(head, LEASE_RENEW, F + 1, key, 777, inner_packet(b"out"), ts=12)
        (ack, _, _) = await s1.next_ack()
        assert (ack.type, ack.seq, ack.value, ack.ts, ack.inner) == (
            RENEW_ACK, F + 1, 777, 12, inner_packet(b"out"))
        s2.send(head, LEASE_NEW, 0, key, 0, inner_packet(b"b"), ts=13)
        (ack, _, arrived) = await s2.next_ack(timeout=LEASE_STORE + 2)
        assert (ack.type, ack.seq, ack.value, ack.ts, ack.inner) == (
            MIGRATE_ACK, 2 * F + 1, 777, 13, inner_packet(b"b"))
        assert arrived >= sent_write + LEASE_STORE  # not before S1's lease expired
        s1.send(head, LEASE_RENEW, F + 2, key, 1, inner_packet(b"late"))  # S1 lost the lease
        s1.send(head, LEASE_RENEW, 0, key, 5)
        await wait_until(lambda: chain.head.counters["refusals"] == 2, 2, "refusals")
        assert chain.head.counters["queued_grants"] == 1
        assert chain.head.counters["queue_wait_total_ms"] > 0
        s2_port = s2.transport.get_extra_info("sockname")[1]
        assert s1.acks.empty() and chain.tail.state.get(key).owner == f"{HOST}:{s2_port}"


def test_contested_lease_waits_for_expiry_through_the_chain():
    asyncio.run(contested_lease())


def key_in_shard(shard: int, n_shards: int) -> int:
    """The first NAT key (10.0.0.1, port p) that hashes to `shard`."""
    for port in range(1, 65536):
        key = LAYOUT.key_of(key_addr=0x0A000001, key_port=port)
        if LAYOUT.shard_of_key(key, n_shards) == shard:
            return key
    raise AssertionError(f"no key for shard {shard}")


async def malformed_and_misrouted() -> None:
    async with running_chain(2, n_shards=2) as chain, clients(1) as (client,):
        head = chain.head.udp_address
        good, foreign = key_in_shard(0, 2), key_in_shard(1, 2)
        for junk in (b"\x01", b"\x00" * 5, LAYOUT.pack(0, 0, good, 0) + b"\x60xx",
                     LAYOUT.pack(9, 0, good, 0)):
            client.transport.sendto(junk, tuple(head))
        client.send(head, LEASE_NEW, 0, foreign, 0)
        client.send(chain.tail.udp_address, LEASE_NEW, 0, good, 0)  # not the head
        client.send(head, LEASE_NEW, 0, good, 0)
        (ack, _, _) = await client.next_ack()
        assert (ack.type, ack.key) == (NEW_ACK, good)
        counters = chain.head.counters
        assert (counters["malformed"], counters["misrouted"], counters["datagrams"]) == (4, 1, 6)
        assert chain.tail.counters["not_head"] == 1
        assert client.acks.empty()


def test_malformed_and_misrouted_requests_are_counted_and_dropped():
    asyncio.run(malformed_and_misrouted())


async def middle_failure_sync() -> None:
    key = LAYOUT.key_of(key_addr=0x0A000007, key_port=7)
    async with running_chain(3) as chain, clients(1) as (client,):
        head, middle, tail = chain.replicas
        client.send(head.udp_address, LEASE_NEW, 0, key, 0)
        assert (await client.next_ack())[0].type == NEW_ACK
        middle._link.send = lambda update: None  # B keeps what it gets, then dies with it
        for seq in (F + 1, F + 2, F + 3):
            client.send(head.udp_address, LEASE_RENEW, seq, key, seq * 100)
        await wait_until(lambda: head.state.get(key).committed == F + 3, 2, "head commits")
        await wait_until(lambda: middle.state.get(key).committed == F + 3, 2, "middle applies")
        assert tail.state.get(key).committed == F and client.acks.empty()
        await chain.crash(middle)
        assert (await head.set_next(f"{HOST}:{tail.repl_address[1]}"))["synced"] is True
        state = tail.state.get(key)  # synced without any new request for the key
        assert (state.committed, state.value, state.owner) == (
            F + 3, (F + 3) * 100, head.state.get(key).owner)
        client.send(head.udp_address, LEASE_RENEW, F + 3, key, (F + 3) * 100)  # retransmitted
        (ack, _, _) = await client.next_ack()
        assert (ack.type, ack.seq, ack.value) == (RENEW_ACK, F + 3, (F + 3) * 100)
        assert head.counters["duplicates"] == 1 and tail.counters["sync_received_keys"] >= 1


def test_middle_failure_sync_brings_unforwarded_writes_to_the_tail():
    asyncio.run(middle_failure_sync())


async def fences_and_exact_acks() -> None:
    key = LAYOUT.key_of(key_addr=0x0A000009, key_port=9)
    async with running_chain(3) as chain, clients(2) as (s1, s2):
        head = chain.head.udp_address
        s1.send(head, LEASE_NEW, 0, key, 0)
        assert (await s1.next_ack())[0].seq == F
        for seq in (F + 1, F + 2):
            s1.send(head, LEASE_RENEW, seq, key, seq, inner_packet(b"w%d" % seq))
            assert (await s1.next_ack())[0].seq == seq
        # FIX 3: a duplicate of an older write is not acked, one of the latest is
        s1.send(head, LEASE_RENEW, F + 1, key, F + 1, inner_packet(b"old"))
        s1.send(head, LEASE_RENEW, F + 2, key, F + 2, inner_packet(b"dup"))
        (ack, _, _) = await s1.next_ack()
        assert (ack.seq, ack.inner) == (F + 2, inner_packet(b"dup")) and s1.acks.empty()
        assert chain.tail.counters["acks_withheld"] == 1
        # FIX 2: the next grant moves the committed seq on by F at every replica
        s2.send(head, LEASE_NEW, 0, key, 0)
        (ack, _, _) = await s2.next_ack(timeout=LEASE_STORE + 2)
        assert (ack.type, ack.seq, ack.value) == (MIGRATE_ACK, 2 * F + 2, F + 2)
        await wait_until(lambda: all(r.state.get(key).committed == 2 * F + 2 for r in chain.alive),
                         2, "the fence at every replica")
        assert all(r.state.get(key).value == F + 2 for r in chain.alive)
        assert [r.counters["fences"] for r in chain.alive] == [0, 2, 2]


def test_grants_fence_at_every_replica_and_the_tail_acks_only_the_latest_write():
    asyncio.run(fences_and_exact_acks())


async def fencing_and_control() -> None:
    async with running_chain(2) as chain:
        head, tail = chain.replicas
        tail.set_prev("none")  # tail promoted: it must drop and refuse the old head
        await wait_until(lambda: tail.role()["predecessors"] == 0, 2, "fenced predecessor")
        await wait_until(lambda: tail.counters["replication_refused"] >= 1, 3, "refused reconnect")
        assert tail.is_head and tail.is_tail


def test_new_head_fences_its_old_predecessor():
    asyncio.run(fencing_and_control())


async def control_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "ctl.sock")
    async with running_chain(1, control=path, stats_file=str(tmp_path / "s.json")) as chain:
        assert (await async_send_command(path, "ping"))["ok"]
        role = await async_send_command(path, "role")
        assert role["head"] and role["tail"]
        stats = (await async_send_command(path, "stats"))["stats"]
        assert set(COUNTER_NAMES) <= set(stats) and stats["config"]["lease_ms"] == LEASE_MS
        assert (await async_send_command(path, "dump_stats"))["path"].endswith("s.json")
        assert (await async_send_command(path, "get 0x10"))["state"] is None
        assert (await async_send_command(path, "dump"))["keys"] == {}
        with pytest.raises(ControlError, match="unknown command 'fly'"):
            await async_send_command(path, "fly")
        with pytest.raises(ControlError, match="bad endpoint"):
            await async_send_command(path, "set_next host:notaport")
        assert chain.head is chain.tail
    assert not Path(path).exists()


def test_control_socket_commands(tmp_path):
    asyncio.run(control_socket(tmp_path))


# --- real processes --------------------------------------------------------------------------------
class StoreProcess:
    """Owns one ``python -m testbed.store`` child process on loopback; `stop` ends it by pid."""

    def __init__(self, tmp_path: Path, name: str, *args: str) -> None:
        self.control = str(tmp_path / f"{name}.sock")
        self.stats_file = tmp_path / f"{name}.json"
        self._stderr = open(tmp_path / f"{name}.err", "w")
        command = [sys.executable, "-m", "testbed.store", "--app", "nat", "--listen", HOST,
                   "--port", "0", "--repl-port", "0", "--switch-port", "source",
                   "--lease-ms", str(LEASE_MS), "--control", self.control,
                   "--stats-file", str(self.stats_file), *args]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._stderr,
                                     text=True, start_new_session=True)
        self.ready = self._wait_ready(timeout=15)

    def _wait_ready(self, timeout: float) -> dict:
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise AssertionError(f"store {self.control} not READY within {timeout} s")
        line = self.proc.stdout.readline()
        assert line.startswith("READY "), f"unexpected first line {line!r}"
        return json.loads(line[len("READY "):])

    @property
    def udp(self):
        return tuple(self.ready["udp"])

    @property
    def repl_port(self) -> int:
        return self.ready["repl"][1]

    def command(self, line: str) -> dict:
        return send_command(self.control, line, timeout=10)

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM, wait, SIGKILL if needed; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self.proc.stdout.close()
        self._stderr.close()
        return self.proc.returncode


def poll_until(predicate, timeout: float, what: str) -> None:
    """Blocking `wait_until`, for the process tests."""
    asyncio.run(wait_until(predicate, timeout, what, interval=0.02))


def udp_request(sock: socket.socket, target, *fields) -> tuple:
    sock.sendto(LAYOUT.pack(*fields), target)
    data, source = sock.recvfrom(2048)
    return LAYOUT.unpack(data), source


@pytest.fixture
def store_processes(tmp_path):
    started: list[StoreProcess] = []

    def start(name: str, *args: str) -> StoreProcess:
        started.append(StoreProcess(tmp_path, name, *args))
        return started[-1]
    try:
        yield start
    finally:
        for proc in started:
            proc.stop()


def test_store_processes_survive_middle_failure(store_processes, tmp_path):
    tail = store_processes("c", "--prev", HOST)
    middle = store_processes("b", "--prev", HOST, "--next", f"{HOST}:{tail.repl_port}")
    head = store_processes("a", "--next", f"{HOST}:{middle.repl_port}")
    poll_until(lambda: head.command("role")["next_synced"] and middle.command("role")["next_synced"],
               10, "chain synced")
    key = LAYOUT.key_of(key_addr=0x0A000001, key_port=80)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(5)
        ack, source = udp_request(sock, head.udp, LEASE_NEW, 0, key, 0)
        assert ack.type == NEW_ACK and source == tail.udp
        assert ack.seq == F
        for seq in (F + 1, F + 2, F + 3):
            ack, source = udp_request(sock, head.udp, LEASE_RENEW, seq, key, seq * 10)
            assert (ack.type, ack.seq, ack.value, source) == (RENEW_ACK, seq, seq * 10, tail.udp)
        sock.sendto(b"garbage", head.udp)
        middle.proc.kill()  # crash: no clean exit
        middle.proc.wait(10)
        assert head.command(f"set_next {HOST}:{tail.repl_port}")["synced"] is True
        ack, source = udp_request(sock, head.udp, LEASE_RENEW, F + 4, key, 40)
        assert (ack.seq, ack.value, source) == (F + 4, 40, tail.udp)
    assert tail.command(f"get {key}")["state"]["committed"] == F + 4
    head.proc.send_signal(signal.SIGUSR1)
    poll_until(head.stats_file.exists, 10, "stats file after SIGUSR1")
    stats = json.loads(head.stats_file.read_text())
    assert set(COUNTER_NAMES) <= set(stats)
    assert stats["malformed"] == 1 and stats["requests"]["LEASE_RENEW"] == 4
    assert stats["config"]["lease_ms"] == LEASE_MS and stats["syncs_completed"] == 2
    assert tail.stop() == 0 and head.stop() == 0
    tail_stats = json.loads(tail.stats_file.read_text())
    assert tail_stats["acks_total"] == 5 and tail_stats["acks_sent"]["NEW_ACK"] == 1
    assert not Path(tail.control).exists()


def test_store_cli_rejects_bad_configuration(tmp_path):
    result = subprocess.run([sys.executable, "-m", "testbed.store", "--app", "nat",
                             "--shard", "5", "--shards", "4", "--port", "0"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "--shard: got 5" in result.stderr
    result = subprocess.run([sys.executable, "-m", "testbed.store", "--app", "dns"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "--app" in result.stderr


def test_checkpoint_commands_keep_the_last_checkpoint(tmp_path):
    """The S1 baseline saves control-plane checkpoints in a store replica."""
    import asyncio

    from testbed.checkpoint import StoreSink
    from testbed.store.server import StoreConfig, StoreServer

    path = str(tmp_path / "ctl.sock")

    async def scenario():
        server = StoreServer(StoreConfig(app="nat", listen="127.0.0.1", udp_port=0, control=path))
        await server.start()
        try:
            sink = StoreSink(path)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, sink.put, "s1", {"taken_at": 1.0, "slots": {"5": [1, 2, 3, 4]}})
            await loop.run_in_executor(None, sink.put, "s1", {"taken_at": 2.0, "slots": {}})
            got = await loop.run_in_executor(None, sink.get, "s1")
            missing = await loop.run_in_executor(None, sink.get, "s2")
        finally:
            await server.stop()
        return got, missing
    got, missing = asyncio.run(scenario())
    assert got == {"taken_at": 2.0, "slots": {}} and missing is None
