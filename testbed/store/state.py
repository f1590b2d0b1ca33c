"""The per-key state machine of one store shard (docs/protocol.md section 3).

Pure: no I/O and no clock reads; every call takes `now` (seconds, the head's monotonic clock).
With `mirror` (NAT), a committed write of key -> value also commits value -> key in the same
step, so the reverse mapping is recoverable wherever the reverse direction goes.
The head calls `handle` for each request and `on_timer` when a queued request's wait may be
over; both return an `Outcome` whose `updates` the server replicates down the chain in order.
Other replicas call `apply` for each update received, and `merge` for each key of a full-state
sync. The tail turns an update into the ack for the switch with `ack_for`.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from testbed.redplane import protocol
from testbed.redplane.protocol import seq_advance, seq_newer
from testbed.store import StoreError
from testbed.store.stats import Counters


@dataclass(frozen=True)
class KeyState:
    """What a replica stores per key. `committed` is the last committed seq, advanced by
    `SEQ_FENCE` at every lease grant (0: never granted nor written); `written` says whether a
    value was ever committed (NEW_ACK vs MIGRATE_ACK); `owner` is the switch holding (or last
    holding) the lease; `writer` the switch that wrote the committed value."""

    value: int = 0
    committed: int = 0
    owner: str | None = None
    expiry: float = 0.0
    writer: str | None = None
    written: bool = False

    def lease_valid(self, now: float) -> bool:
        """True while the owner's lease is unexpired."""
        return self.owner is not None and now < self.expiry


@dataclass(frozen=True)
class Request:
    """A decoded request; `switch` identifies the sender (its address, or address:port);
    `ts` is the switch's send time (32 bits), echoed in the ack."""

    type: int
    seq: int
    key: int
    value: int
    switch: str
    inner: bytes = b""
    ts: int = 0


class AckKind(enum.Enum):
    """What the tail answers for an update."""

    GRANT = "grant"        # NEW_ACK or MIGRATE_ACK (fenced seq), with the inner packet
    RENEW = "renew"        # RENEW_ACK seq 0, header only
    WRITE = "write"        # RENEW_ACK with the request's seq, iff it is the tail's committed seq
    SNAPSHOT = "snapshot"  # SNAPSHOT_ACK with the request's seq, header only


@dataclass(frozen=True)
class AckPlan:
    """The ack an update asks the tail to send; `ts` is the request's, echoed."""

    kind: AckKind
    switch: str
    seq: int = 0
    ts: int = 0
    inner: bytes = b""


@dataclass(frozen=True)
class Update:
    """One state change (or duplicate-write no-op) flowing head to tail: the key's whole new
    state, and the ack to send once the tail has it."""

    key: int
    state: KeyState
    ack: AckPlan | None = None


@dataclass(frozen=True)
class Ack:
    """An ack to send: message fields plus the switch it goes to."""

    switch: str
    type: int
    seq: int
    key: int
    value: int
    inner: bytes = b""
    ts: int = 0


class Verdict(enum.Enum):
    """What the head did with a request (or a timer)."""

    GRANTED = "granted"
    QUEUED = "queued"
    RENEWED = "renewed"
    COMMITTED = "committed"
    DUPLICATE = "duplicate"
    OLD_WRITE = "old_write"
    REFUSED = "refused"
    SNAPSHOT_STORED = "snapshot_stored"
    SNAPSHOT_OLD = "snapshot_old"
    NOTHING = "nothing"


@dataclass
class Outcome:
    """Result of `handle` / `on_timer`: updates to replicate in order, and when to call
    `on_timer` for this key next (None: no queued request left)."""

    verdict: Verdict
    updates: list[Update] = field(default_factory=list)
    wake_at: float | None = None


@dataclass(frozen=True)
class _Waiter:
    since: float      # arrival of the switch's first queued request (kept on replacement)
    request: Request  # its newest request


class ShardState:
    """All keys of one shard at one replica, with the head's lease queue."""

    def __init__(self, lease_s: float, counters: Counters | None = None, mirror: bool = False) -> None:
        if lease_s <= 0:
            raise StoreError(f"lease period must be positive, got {lease_s} s")
        self.lease_s = lease_s
        self.mirror = mirror
        self.counters = counters if counters is not None else Counters()
        self._keys: dict[int, KeyState] = {}
        self._waiting: dict[int, dict[str, _Waiter]] = {}

    # --- queries ---------------------------------------------------------------------------
    def get(self, key: int) -> KeyState | None:
        """The state of `key`, or None if this replica never heard of it."""
        return self._keys.get(key)

    def items(self) -> list[tuple[int, KeyState]]:
        """Every (key, state), in first-seen order."""
        return list(self._keys.items())

    def __len__(self) -> int:
        return len(self._keys)

    def waiting(self, key: int) -> list[str]:
        """Switches queued for `key`, first come first."""
        return list(self._waiting.get(key, {}))

    def waiting_count(self) -> int:
        """Number of queued requests over all keys."""
        return sum(len(w) for w in self._waiting.values())

    # --- head: requests and timers -------------------------------------------------------------
    def handle(self, req: Request, now: float) -> Outcome:
        """Process one request at the head. A queued request whose wait is over is granted
        first, so an expired lease goes to whoever waited for it."""
        handler = self._HANDLERS.get(req.type)
        if handler is None:
            raise StoreError(f"request type {req.type} for key {req.key:#x} is not a request")
        promoted = self._promote(req.key, now)
        verdict, update = handler(self, req, now)
        updates = promoted + ([update] if update else [])
        if verdict is Verdict.COMMITTED and self.mirror:
            updates.append(self._mirror(req))
        return Outcome(verdict, updates, self._wake_time(req.key))

    def on_timer(self, key: int, now: float) -> Outcome:
        """Grant the first queued request for `key` if the lease it waits for has expired."""
        promoted = self._promote(key, now)
        verdict = Verdict.GRANTED if promoted else Verdict.NOTHING
        return Outcome(verdict, promoted, self._wake_time(key))

    def drop_waiters(self) -> int:
        """Forget every queued request (this replica stopped being the head); returns how many."""
        dropped = self.waiting_count()
        self._waiting.clear()
        return dropped

    def _state(self, key: int) -> KeyState:
        return self._keys.get(key, KeyState())

    def _wake_time(self, key: int) -> float | None:
        return self._state(key).expiry if self._waiting.get(key) else None

    def _promote(self, key: int, now: float) -> list[Update]:
        waiters = self._waiting.get(key)
        if not waiters or self._state(key).lease_valid(now):
            return []
        switch, waiter = next(iter(waiters.items()))
        self._unqueue(key, switch)
        wait_ms = (now - waiter.since) * 1000.0
        self.counters.add("queued_grants")
        self.counters.add("queue_wait_total_ms", wait_ms)
        self.counters.maximum("queue_wait_max_ms", wait_ms)
        return [self._grant(waiter.request, now)]

    def _unqueue(self, key: int, switch: str) -> _Waiter | None:
        waiters = self._waiting.get(key, {})
        waiter = waiters.pop(switch, None)
        if not waiters:
            self._waiting.pop(key, None)
        return waiter

    def _grant(self, req: Request, now: float) -> Update:
        """Lease to req.switch; the committed seq jumps by F (value unchanged), so every write
        sent before the grant, by any switch, is older than it (docs/protocol.md, 3)."""
        old = self._state(req.key)
        state = replace(old, owner=req.switch, expiry=now + self.lease_s,
                        committed=seq_advance(old.committed, protocol.SEQ_FENCE))
        self._keys[req.key] = state
        self.counters.add("grants")
        plan = AckPlan(AckKind.GRANT, req.switch, seq=state.committed, ts=req.ts, inner=req.inner)
        return Update(req.key, state, plan)

    def _lease_new(self, req: Request, now: float) -> tuple[Verdict, Update | None]:
        state = self._state(req.key)
        if state.lease_valid(now) and state.owner != req.switch:
            self._enqueue(req, now)
            return Verdict.QUEUED, None
        if self._unqueue(req.key, req.switch):
            self.counters.add("queue_replaced")
        return Verdict.GRANTED, self._grant(req, now)

    def _mirror(self, req: Request) -> Update:
        """The reverse mapping value -> key, committed with the forward one (NAT: the public
        endpoint finds the internal one). Its lease is left alone; it carries no ack."""
        old = self._state(req.value)
        committed = old.committed if old.value == req.key and old.committed else protocol.seq_next(old.committed)
        state = replace(old, value=req.key, committed=committed, writer=req.switch, written=True)
        self._keys[req.value] = state
        self.counters.add("mirrored")
        return Update(req.value, state, None)

    def _enqueue(self, req: Request, now: float) -> None:
        waiters = self._waiting.setdefault(req.key, {})
        old = waiters.get(req.switch)
        if old:
            self.counters.add("queue_replaced")
        waiters[req.switch] = _Waiter(old.since if old else now, req)
        self.counters.add("queued")

    def _lease_renew(self, req: Request, now: float) -> tuple[Verdict, Update | None]:
        state = self._state(req.key)
        if state.owner != req.switch:
            self.counters.add("refusals")
            return Verdict.REFUSED, None
        if req.seq == protocol.SEQ_READ:
            return self._renew(req, state, now)
        return self._write(req, state, now)

    def _renew(self, req: Request, state: KeyState, now: float) -> tuple[Verdict, Update]:
        state = replace(state, expiry=now + self.lease_s)
        self._keys[req.key] = state
        self.counters.add("renewals")
        return Verdict.RENEWED, Update(req.key, state, AckPlan(AckKind.RENEW, req.switch,
                                                               ts=req.ts))

    def _write(self, req: Request, state: KeyState, now: float) -> tuple[Verdict, Update]:
        self.counters.add("writes")
        verdict = self._write_verdict(req.seq, state.committed)
        if verdict is Verdict.COMMITTED:
            state = replace(state, value=req.value, committed=req.seq, writer=req.switch,
                            expiry=now + self.lease_s, written=True)
            self._keys[req.key] = state
            self.counters.add("commits")
        else:
            self.counters.add("duplicates" if verdict is Verdict.DUPLICATE else "old_writes")
        plan = AckPlan(AckKind.WRITE, req.switch, seq=req.seq, ts=req.ts, inner=req.inner)
        return verdict, Update(req.key, state, plan)

    @staticmethod
    def _write_verdict(seq: int, committed: int) -> Verdict:
        if seq_newer(seq, committed):
            return Verdict.COMMITTED
        return Verdict.DUPLICATE if seq == committed else Verdict.OLD_WRITE

    def _snapshot(self, req: Request, now: float) -> tuple[Verdict, Update]:
        state = self._state(req.key)
        plan = AckPlan(AckKind.SNAPSHOT, req.switch, seq=req.seq, ts=req.ts)
        if req.switch == state.writer and not seq_newer(req.seq, state.committed):
            self.counters.add("snapshots_old")
            return Verdict.SNAPSHOT_OLD, Update(req.key, state, plan)
        state = replace(state, value=req.value, committed=req.seq, writer=req.switch, written=True)
        self._keys[req.key] = state
        self.counters.add("snapshots_stored")
        return Verdict.SNAPSHOT_STORED, Update(req.key, state, plan)

    _HANDLERS = {
        protocol.LEASE_NEW: _lease_new,
        protocol.LEASE_RENEW: _lease_renew,
        protocol.SNAPSHOT: _snapshot,
    }

    # --- other replicas ----------------------------------------------------------------------
    def apply(self, update: Update) -> None:
        """Install an update received from the predecessor (FIFO from the head: it wins)."""
        old = self._state(update.key)
        if update.ack is not None and update.ack.kind is AckKind.GRANT:
            self.counters.add("fences")
        elif update.state.committed != old.committed:
            self.counters.add("commits")
        self._keys[update.key] = update.state

    def merge(self, key: int, incoming: KeyState) -> KeyState:
        """Merge a predecessor's full-state sync entry: the newer committed seq wins (value,
        seq and writer together); the lease (owner, expiry) is the predecessor's; `written`
        is kept once set."""
        mine = self._keys.get(key)
        merged = incoming
        if mine is not None and not seq_newer(incoming.committed, mine.committed):
            merged = replace(mine, owner=incoming.owner, expiry=incoming.expiry)
        if mine is not None and mine.written:
            merged = replace(merged, written=True)
        self._keys[key] = merged
        return merged

    # --- tail ----------------------------------------------------------------------------------
    def ack_for(self, update: Update) -> Ack | None:
        """The ack the tail sends for `update` (already applied here), or None: a write is
        acked only if its seq is the tail's committed seq (older ones are covered by the
        cumulative ack of the newer write, or were fenced off and never committed). The
        state is the one the update installed (a head that is also the tail may have handled
        later updates of the same outcome already)."""
        plan = update.ack
        if plan is None:
            return None
        ack = _ACK_BUILDERS[plan.kind](plan, update.key, update.state)
        if ack is None:
            self.counters.add("acks_withheld")
        return ack


def _grant_ack(plan: AckPlan, key: int, state: KeyState) -> Ack:
    """NEW_ACK if the key was never written, else MIGRATE_ACK; both carry the grant's seq."""
    type_ = protocol.MIGRATE_ACK if state.written else protocol.NEW_ACK
    return Ack(plan.switch, type_, plan.seq, key, state.value, plan.inner, plan.ts)


def _renew_ack(plan: AckPlan, key: int, state: KeyState) -> Ack:
    return Ack(plan.switch, protocol.RENEW_ACK, protocol.SEQ_READ, key, 0, b"", plan.ts)


def _write_ack(plan: AckPlan, key: int, state: KeyState) -> Ack | None:
    if state.committed != plan.seq:
        return None
    return Ack(plan.switch, protocol.RENEW_ACK, plan.seq, key, state.value, plan.inner, plan.ts)


def _snapshot_ack(plan: AckPlan, key: int, state: KeyState) -> Ack:
    return Ack(plan.switch, protocol.SNAPSHOT_ACK, plan.seq, key, state.value, b"", plan.ts)


_ACK_BUILDERS = {
    AckKind.GRANT: _grant_ack,
    AckKind.RENEW: _renew_ack,
    AckKind.WRITE: _write_ack,
    AckKind.SNAPSHOT: _snapshot_ack,
}
