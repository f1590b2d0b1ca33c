"""Chain replication between the replicas of one shard (docs/protocol.md section 4).

Replicas talk over TCP (port = shard's UDP port + 1000), one JSON record per line:

    {"op": "update", "key": K, "state": S, "ack": A | null}   predecessor -> successor
    {"op": "sync", "key": K, "state": S}                       full-state sync entry
    {"op": "sync_done", "keys": N}                             end of the full-state sync
    {"op": "sync_ok", "keys": N}                               successor -> predecessor

S = {"value", "committed", "owner", "lease_ms", "writer", "written"}: the lease travels as the
time left (milliseconds) so replicas need not share a clock; it only grows in transit
(conservative). A lease grant is an update whose `committed` moved on by F (docs/protocol.md, 3).
A = {"kind", "switch", "seq", "ts", "inner" (hex)}: `ts` is the request's, echoed in the ack.

Every new connection to a successor starts with a full-state sync taken at the moment the
connection is up, followed by live updates in order: nothing is missed and nothing is older
than what the successor already merged.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Callable, Iterable

from testbed.store import StoreError
from testbed.store.state import AckKind, AckPlan, KeyState, Update
from testbed.store.stats import Counters

log = logging.getLogger("testbed.store.chain")

LINE_LIMIT = 1 << 20
RETRY_MIN_S = 0.02
RETRY_MAX_S = 0.5


class ReplicationError(StoreError):
    """A replication record or connection is bad; the message names the peer or the field."""


@dataclass(frozen=True)
class Endpoint:
    """A host and a port, parsed from ``HOST[:PORT]``."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str, default_port: int) -> "Endpoint":
        """Parse ``HOST`` or ``HOST:PORT``; raises `StoreError` naming the bad text."""
        host, sep, port = text.rpartition(":") if ":" in text else (text, "", "")
        if not host or (sep and not port.isdigit()) or (sep and not 0 < int(port) < 65536):
            raise StoreError(f"bad endpoint {text!r}: expected HOST or HOST:PORT")
        return cls(host, int(port) if sep else default_port)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


# --- records -----------------------------------------------------------------------------------
def state_to_wire(state: KeyState, now: float) -> dict:
    """JSON form of a key's state; the lease as milliseconds left at `now`."""
    lease_ms = max(0.0, state.expiry - now) * 1000.0 if state.owner else 0.0
    return {"value": state.value, "committed": state.committed, "owner": state.owner,
            "lease_ms": lease_ms, "writer": state.writer, "written": state.written}


def state_from_wire(wire: dict, now: float) -> KeyState:
    """A key's state from its JSON form, the lease ending `lease_ms` after `now`."""
    try:
        return KeyState(value=_uint(wire["value"]), committed=_uint(wire["committed"]),
                        owner=_opt_str(wire["owner"]), writer=_opt_str(wire["writer"]),
                        expiry=now + float(wire["lease_ms"]) / 1000.0,
                        written=_bool(wire["written"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ReplicationError(f"bad state record {wire!r}: {exc}") from None


def _uint(value: object) -> int:
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"expected an unsigned integer, got {value!r}")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _opt_str(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"expected a string or null, got {value!r}")
    return value


def _plan_to_wire(plan: AckPlan | None) -> dict | None:
    if plan is None:
        return None
    return {"kind": plan.kind.value, "switch": plan.switch, "seq": plan.seq, "ts": plan.ts,
            "inner": plan.inner.hex()}


def _plan_from_wire(wire: dict | None) -> AckPlan | None:
    if wire is None:
        return None
    try:
        return AckPlan(AckKind(wire["kind"]), str(wire["switch"]), _uint(wire["seq"]),
                       _uint(wire["ts"]), bytes.fromhex(wire["inner"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ReplicationError(f"bad ack record {wire!r}: {exc}") from None


def _line(record: dict) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def encode_update(update: Update, now: float) -> bytes:
    """One ``update`` record line."""
    return _line({"op": "update", "key": update.key, "state": state_to_wire(update.state, now),
                  "ack": _plan_to_wire(update.ack)})


def encode_sync(key: int, state: KeyState, now: float) -> bytes:
    """One ``sync`` record line."""
    return _line({"op": "sync", "key": key, "state": state_to_wire(state, now)})


def encode_control(op: str, keys: int) -> bytes:
    """A ``sync_done`` or ``sync_ok`` line."""
    return _line({"op": op, "keys": keys})


def decode_record(line: bytes) -> dict:
    """Parse one record line into a dict with at least ``op``; raises `ReplicationError`."""
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReplicationError(f"replication line is not JSON ({exc}): {line[:80]!r}") from None
    if not isinstance(record, dict) or not isinstance(record.get("op"), str):
        raise ReplicationError(f"replication record without op: {line[:80]!r}")
    return record


def update_from_record(record: dict, now: float) -> Update:
    """The `Update` of an ``update`` record."""
    try:
        key = _uint(record["key"])
    except (KeyError, ValueError) as exc:
        raise ReplicationError(f"bad key in record {record!r}: {exc}") from None
    return Update(key, state_from_wire(record.get("state"), now), _plan_from_wire(record.get("ack")))


def sync_from_record(record: dict, now: float) -> tuple[int, KeyState]:
    """The (key, state) of a ``sync`` record."""
    update = update_from_record(dict(record, ack=None), now)
    return update.key, update.state


# --- the link to the successor -------------------------------------------------------------------
SnapshotFn = Callable[[], Iterable[tuple[int, KeyState]]]


class SuccessorLink:
    """Owns the TCP connection to this replica's successor: connects (retrying with backoff),
    sends the full-state sync, then live updates; reconnects with a fresh sync if it breaks."""

    def __init__(self, endpoint: Endpoint, snapshot: SnapshotFn, clock: Callable[[], float],
                 counters: Counters) -> None:
        self.endpoint = endpoint
        self._snapshot = snapshot
        self._clock = clock
        self._counters = counters
        self._writer: asyncio.StreamWriter | None = None
        self._synced = asyncio.Event()
        self._task: asyncio.Task | None = None

    @property
    def live(self) -> bool:
        """True while connected (updates are being sent)."""
        return self._writer is not None

    @property
    def synced(self) -> bool:
        """True once the successor confirmed the full-state sync on the current connection."""
        return self._synced.is_set()

    def start(self) -> None:
        """Start connecting in the background."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"link-{self.endpoint}")

    async def wait_synced(self, timeout: float) -> bool:
        """Wait until the successor confirmed the sync; False on timeout."""
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def send(self, update: Update) -> None:
        """Send one update after everything sent before; dropped (and counted) if not connected:
        the next connection's full-state sync carries its state."""
        if self._writer is None:
            self._counters.add("replication_dropped")
            return
        self._writer.write(encode_update(update, self._clock()))
        self._counters.add("replication_sent")

    def send_sync_entry(self, key: int, state: KeyState) -> None:
        """Pass on one merged entry of a full-state sync we received (to keep our successor
        as up to date as we are)."""
        if self._writer is not None:
            self._writer.write(encode_sync(key, state, self._clock()))
            self._counters.add("sync_sent_keys")

    async def close(self) -> None:
        """Stop the link and drop the connection at once (unsent data is discarded)."""
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._drop_connection()

    def _drop_connection(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()
        self._writer = None
        self._synced.clear()

    async def _run(self) -> None:
        delay = RETRY_MIN_S
        while True:
            try:
                reader, writer = await asyncio.open_connection(self.endpoint.host, self.endpoint.port,
                                                               limit=LINE_LIMIT)
            except OSError as exc:
                log.debug("successor %s not reachable: %s", self.endpoint, exc)
                await asyncio.sleep(delay)  # retry backoff, not synchronisation
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = RETRY_MIN_S
            await self._serve(reader, writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._start_sync(writer)
        try:
            await self._read_confirmations(reader)
        except (OSError, ReplicationError, asyncio.IncompleteReadError, ValueError) as exc:
            log.warning("replication link to %s broke: %s", self.endpoint, exc)
        self._counters.add("replication_errors")
        self._drop_connection()

    def _start_sync(self, writer: asyncio.StreamWriter) -> None:
        """Send the full state and go live in one step (no await): FIFO with later updates."""
        now = self._clock()
        entries = list(self._snapshot())
        writer.writelines(encode_sync(key, state, now) for key, state in entries)
        writer.write(encode_control("sync_done", len(entries)))
        self._writer = writer
        self._counters.add("replication_connects")
        self._counters.add("sync_sent_keys", len(entries))
        log.info("connected to successor %s, sent %d keys", self.endpoint, len(entries))

    async def _read_confirmations(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            if decode_record(line).get("op") == "sync_ok":
                self._counters.add("syncs_completed")
                self._synced.set()
        raise ReplicationError(f"successor {self.endpoint} closed the connection")
