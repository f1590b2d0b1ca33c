"""The asyncio state-store server: one process = one replica of one shard.

Sockets, all owned by `StoreServer` and closed by `stop`:
- UDP ``listen:port`` (default 8000 + shard): requests from switches (head only) and acks to
  switches (tail only, sent from this socket to the switch's address, port 4000);
- TCP ``listen:repl_port`` (default port + 1000): the predecessor's replication connection;
- a TCP connection to the successor (`chain.SuccessorLink`), when there is one;
- the UNIX control socket (`control.ControlServer`), when configured.

Role: the head is the replica with no predecessor (``prev`` None) and the only one that serves
requests; the tail is the replica with no successor and the only one that acks.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, fields
from typing import Callable

from testbed.errors import ConfigError
from testbed.redplane import protocol
from testbed.redplane.protocol import MalformedMessage, layout_for
from testbed.store import StoreError
from testbed.store.chain import (Endpoint, ReplicationError, SuccessorLink, decode_record,
                                 encode_control, state_to_wire, sync_from_record,
                                 update_from_record, LINE_LIMIT)
from testbed.store.control import ControlServer
from testbed.store.state import KeyState, Outcome, Request, ShardState, Update
from testbed.store.stats import Counters, write_stats_file

log = logging.getLogger("testbed.store")

ANY_PREDECESSOR = "any"
SYNC_TIMEOUT_S = 5.0
SESSION_CLOSE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class StoreConfig:
    """Configuration of one store replica (see ``python -m testbed.store --help``).

    `udp_port` None means 8000 + shard and 0 any free port; `repl_port` None means udp_port +
    1000 (any free port if udp_port is 0). `prev` None makes this replica the head; otherwise
    it is the IP address the predecessor connects from, or "any". `switch_port` None means
    "reply to the request's source port and tell switches apart by address:port" (for tests
    where several emulated switches share 127.0.0.1).
    """

    app: str
    shard: int = 0
    n_shards: int = 1
    listen: str = "0.0.0.0"
    udp_port: int | None = None
    repl_port: int | None = None
    lease_ms: float = 1000.0
    next: Endpoint | None = None
    prev: str | None = None
    switch_port: int | None = protocol.SWITCH_PORT
    control: str | None = None
    stats_file: str | None = None
    mirror_values: bool = False

    def validate(self) -> None:
        """Raise `ConfigError` naming the first bad setting."""
        _check(self.app in protocol.APP_LAYOUTS, "--app", self.app,
               f"one of {', '.join(protocol.APP_LAYOUTS)}")
        _check(1 <= self.n_shards <= protocol.MAX_SHARDS, "--shards", self.n_shards,
               f"1..{protocol.MAX_SHARDS}")
        _check(0 <= self.shard < self.n_shards, "--shard", self.shard, f"0..{self.n_shards - 1}")
        _check(self.lease_ms > 0, "--lease-ms", self.lease_ms, "a positive number")
        for flag, port in (("--port", self.udp_port), ("--repl-port", self.repl_port),
                           ("--switch-port", self.switch_port)):
            _check(port is None or 0 <= port < 65536, flag, port, "a port 0..65535")
        _check(self.control is None or len(os.fsencode(self.control)) < 100, "--control",
               self.control, "a UNIX socket path shorter than 100 bytes")
        _check(self.stats_file is None or os.path.isdir(os.path.dirname(self.stats_file) or "."),
               "--stats-file", self.stats_file, "a path in an existing directory")

    @property
    def bind_udp_port(self) -> int:
        """The UDP port to bind."""
        return protocol.store_port(self.shard) if self.udp_port is None else self.udp_port

    @property
    def bind_repl_port(self) -> int:
        """The replication TCP port to bind."""
        if self.repl_port is not None:
            return self.repl_port
        udp = self.bind_udp_port
        return udp + protocol.REPLICATION_PORT_OFFSET if udp else 0

    def as_dict(self) -> dict:
        """JSON-ready dict of every setting."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["next"] = str(self.next) if self.next else None
        return out


def _check(ok: bool, flag: str, value: object, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{flag}: got {value!r}, expected {expected}")


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: "StoreServer") -> None:
        self._server = server

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self._server.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        self._server.counters.add("send_errors")
        log.debug("UDP error: %s", exc)


class StoreServer:
    """One replica of one shard. `start` binds everything; `stop` releases everything."""

    def __init__(self, config: StoreConfig, clock: Callable[[], float] = time.monotonic) -> None:
        config.validate()
        self.config = config
        self.layout = layout_for(config.app)
        self.counters = Counters()
        self.state = ShardState(config.lease_ms / 1000.0, self.counters, config.mirror_values)
        self.checkpoints: dict = {}         # S1 baseline: switch name -> last checkpoint
        self._clock = clock
        self._next: Endpoint | None = None
        self._prev: str | None = config.prev
        self._link: SuccessorLink | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._repl_server: asyncio.Server | None = None
        self._control: ControlServer | None = None
        self._predecessors: set[asyncio.StreamWriter] = set()
        self._sessions: set[asyncio.Task] = set()
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._reconfiguring = asyncio.Lock()
        self.udp_address: tuple[str, int] | None = None
        self.repl_address: tuple[str, int] | None = None
        self._started_wall = time.time()
        self._started = clock()

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> dict:
        """Bind the UDP, replication and control sockets, connect to the successor; returns the
        readiness info (the JSON of the ``READY`` line)."""
        try:
            await self._bind_udp()
            await self._bind_replication()
            if self.config.control:
                self._control = ControlServer(self.config.control, self)
                await self._control.start()
        except BaseException:
            await self.stop()
            raise
        await self._replace_link(self.config.next)
        return self.ready_info()

    async def _bind_udp(self) -> None:
        loop = asyncio.get_running_loop()
        where = (self.config.listen, self.config.bind_udp_port)
        try:
            self._udp, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self),
                                                               local_addr=where)
        except OSError as exc:
            raise StoreError(f"shard {self.config.shard}: cannot bind UDP {where}: {exc}") from None
        self.udp_address = self._udp.get_extra_info("sockname")[:2]

    async def _bind_replication(self) -> None:
        where = (self.config.listen, self.config.bind_repl_port)
        try:
            self._repl_server = await asyncio.start_server(self._on_predecessor, *where,
                                                           limit=LINE_LIMIT)
        except OSError as exc:
            raise StoreError(f"shard {self.config.shard}: cannot bind replication TCP {where}: "
                             f"{exc}") from None
        self.repl_address = self._repl_server.sockets[0].getsockname()[:2]

    def ready_info(self) -> dict:
        """What the ``READY`` line reports: pid, app, shard, bound addresses, role."""
        return {"pid": os.getpid(), "app": self.config.app, "shard": self.config.shard,
                "udp": list(self.udp_address or ()), "repl": list(self.repl_address or ()),
                "control": self.config.control, **self.role()}

    async def stop(self) -> None:
        """Close every socket and connection this replica owns, and cancel its timers."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._udp:
            self._udp.close()
        if self._control:
            await self._control.close()
        await self._replace_link(None)
        await self._close_replication()

    async def _close_replication(self) -> None:
        if self._repl_server:
            self._repl_server.close()
        self._drop_predecessors()  # sessions see end of file and finish
        if self._sessions:
            await asyncio.wait(list(self._sessions), timeout=SESSION_CLOSE_TIMEOUT_S)
        if self._repl_server:
            await self._repl_server.wait_closed()

    # --- role ----------------------------------------------------------------------------------
    @property
    def is_head(self) -> bool:
        """True if this replica has no predecessor: it serves the switches' requests."""
        return self._prev is None

    @property
    def is_tail(self) -> bool:
        """True if this replica has no successor: it acks the switches."""
        return self._next is None

    def role(self) -> dict:
        """Role and chain neighbours."""
        return {"head": self.is_head, "tail": self.is_tail, "prev": self._prev,
                "next": str(self._next) if self._next else None,
                "next_live": bool(self._link and self._link.live),
                "next_synced": bool(self._link and self._link.synced),
                "predecessors": len(self._predecessors)}

    async def set_next(self, target: str, timeout: float = SYNC_TIMEOUT_S) -> dict:
        """Point this replica at a new successor (``HOST[:PORT]``) or make it the tail
        (``none``). With a successor, waits (up to `timeout`) for its full-state sync to be
        confirmed; ``synced`` in the result says whether it was."""
        endpoint = self._parse_next(target)
        async with self._reconfiguring:
            link = await self._replace_link(endpoint)
        if link is None:
            log.info("shard %d: now the tail", self.config.shard)
            return {"next": None, "synced": True}
        return {"next": str(endpoint), "synced": await link.wait_synced(timeout)}

    def _parse_next(self, target: str) -> Endpoint | None:
        if target.lower() == "none":
            return None
        return Endpoint.parse(target, protocol.replication_port(self.config.shard))

    async def _replace_link(self, endpoint: Endpoint | None) -> SuccessorLink | None:
        """Swap the successor. `_next` changes first, so that while the old link closes this
        replica is never a tail by mistake (updates meanwhile are dropped and counted; the new
        link's full-state sync carries them)."""
        old, self._link, self._next = self._link, None, endpoint
        if old:
            await old.close()
        if endpoint is not None:
            self._link = SuccessorLink(endpoint, self.state.items, self._clock, self.counters)
            self._link.start()
        return self._link

    def set_prev(self, source: str) -> dict:
        """Set the predecessor's address (``any`` accepts any), or make this replica the head
        (``none``). Connections from anyone else are closed: a new head fences the old one."""
        was_head = self.is_head
        self._prev = None if source.lower() == "none" else source
        if was_head and not self.is_head:
            self._stop_heading()
        for writer in list(self._predecessors):
            if not self._accepts_predecessor(writer.get_extra_info("peername")[0]):
                self._close_predecessor(writer)
        return {"prev": self._prev, "head": self.is_head}

    def _stop_heading(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        dropped = self.state.drop_waiters()
        self.counters.add("queue_replaced", dropped)

    def _accepts_predecessor(self, peer_ip: str) -> bool:
        return self._prev is not None and self._prev in (ANY_PREDECESSOR, peer_ip)

    # --- requests (head) -------------------------------------------------------------------------
    def on_datagram(self, data: bytes, addr: tuple) -> None:
        """Handle one UDP datagram; malformed, misrouted and misdirected ones are counted and
        dropped. Never raises."""
        self.counters.add("datagrams")
        request = self._parse_request(data, addr)
        if request is None:
            return
        if not self.is_head:
            self.counters.add("not_head")
            return
        self._emit(request.key, self.state.handle(request, self._clock()))

    def _parse_request(self, data: bytes, addr: tuple) -> Request | None:
        try:
            msg = self.layout.unpack(data)
        except MalformedMessage as exc:
            return self._malformed(addr, exc)
        if msg.type not in protocol.REQUEST_TYPES:
            return self._malformed(addr, f"bad request type {msg.type}")
        self.counters.requests[protocol.REQUEST_TYPES[msg.type]] += 1
        if self.layout.shard_of_key(msg.key, self.config.n_shards) != self.config.shard:
            self.counters.add("misrouted")
            return None
        return Request(msg.type, msg.seq, msg.key, msg.value, self._switch_id(addr), msg.inner,
                       msg.ts)

    def _malformed(self, addr: tuple, why: object) -> None:
        self.counters.add("malformed")
        log.debug("malformed request from %s: %s", addr, why)
        return None

    def _switch_id(self, addr: tuple) -> str:
        return addr[0] if self.config.switch_port is not None else f"{addr[0]}:{addr[1]}"

    def _emit(self, key: int, outcome: Outcome) -> None:
        for update in outcome.updates:
            self._propagate(update)
        self._schedule(key, outcome.wake_at)

    def _schedule(self, key: int, wake_at: float | None) -> None:
        old = self._timers.pop(key, None)
        if old:
            old.cancel()
        if wake_at is None:
            return
        delay = max(0.0, wake_at - self._clock())
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(delay, self._on_timer, key)

    def _on_timer(self, key: int) -> None:
        self._timers.pop(key, None)
        if self.is_head:
            self._emit(key, self.state.on_timer(key, self._clock()))

    # --- down the chain ----------------------------------------------------------------------------
    def _propagate(self, update: Update) -> None:
        """Pass an update (already applied here) on to the successor, or ack it as the tail."""
        if self.is_tail:
            self._send_ack(update)
        elif self._link is not None:
            self._link.send(update)
        else:
            self.counters.add("replication_dropped")

    def _send_ack(self, update: Update) -> None:
        ack = self.state.ack_for(update)
        if ack is None or self._udp is None or self._udp.is_closing():
            return
        data = self.layout.pack(ack.type, ack.seq, ack.key, ack.value, ack.inner, ts=ack.ts)
        self._udp.sendto(data, self._ack_destination(ack.switch))
        self.counters.add("acks_total")
        self.counters.acks_sent[protocol.ACK_TYPES[ack.type]] += 1

    def _ack_destination(self, switch: str) -> tuple[str, int]:
        host, sep, port = switch.rpartition(":")
        if sep:
            return host, int(port)
        return switch, self.config.switch_port or protocol.SWITCH_PORT

    async def _on_predecessor(self, reader: asyncio.StreamReader,
                              writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if not self._accepts_predecessor(peer[0]):
            self._refuse_predecessor(writer, peer)
            return
        self._drop_predecessors()  # the newest predecessor wins
        self._predecessors.add(writer)
        task = asyncio.current_task()
        self._sessions.add(task)
        try:
            await self._read_replication(reader, writer)
        except (ReplicationError, OSError, ValueError) as exc:
            self.counters.add("replication_errors")
            log.warning("shard %d: replication from %s failed: %s", self.config.shard, peer, exc)
        finally:
            self._sessions.discard(task)
            self._close_predecessor(writer)

    def _refuse_predecessor(self, writer: asyncio.StreamWriter, peer: tuple) -> None:
        self.counters.add("replication_refused")
        log.warning("shard %d: refused replication from %s (prev is %s)",
                    self.config.shard, peer, self._prev)
        writer.transport.abort()

    async def _read_replication(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        synced_keys = 0
        while line := await reader.readline():
            record = decode_record(line)
            op = record["op"]
            if op == "update":
                self._on_update(update_from_record(record, self._clock()))
            elif op == "sync":
                self._on_sync_entry(*sync_from_record(record, self._clock()))
                synced_keys += 1
            elif op == "sync_done":
                writer.write(encode_control("sync_ok", synced_keys))
            else:
                raise ReplicationError(f"unknown replication op {op!r}")

    def _on_update(self, update: Update) -> None:
        self.counters.add("replication_received")
        self.state.apply(update)
        self._propagate(update)

    def _on_sync_entry(self, key: int, state: KeyState) -> None:
        self.counters.add("sync_received_keys")
        merged = self.state.merge(key, state)
        if self._link is not None:
            self._link.send_sync_entry(key, merged)

    def _drop_predecessors(self) -> None:
        for writer in list(self._predecessors):
            self._close_predecessor(writer)

    def _close_predecessor(self, writer: asyncio.StreamWriter) -> None:
        self._predecessors.discard(writer)
        writer.transport.abort()

    # --- stats and inspection ----------------------------------------------------------------------
    def stats(self) -> dict:
        """The stats dump: config, role, counters, per-type requests and acks."""
        return {"config": self.config.as_dict(), "role": self.role(), "pid": os.getpid(),
                "started_at": self._started_wall, "uptime_s": self._clock() - self._started,
                "keys": len(self.state), "waiting": self.state.waiting_count(),
                "udp": list(self.udp_address or ()), "repl": list(self.repl_address or ()),
                **self.counters.as_dict()}

    def write_stats(self) -> str | None:
        """Write the stats dump to the configured stats file; returns its path (None if no
        file is configured)."""
        if not self.config.stats_file:
            return None
        try:
            write_stats_file(self.config.stats_file, self.stats())
        except OSError as exc:
            raise StoreError(f"--stats-file {self.config.stats_file}: cannot write: {exc}") from None
        return self.config.stats_file

    def key_state(self, key: int) -> dict | None:
        """JSON form of one key's state (lease as ms left), or None."""
        state = self.state.get(key)
        return None if state is None else state_to_wire(state, self._clock())

    def dump(self) -> dict[str, dict]:
        """JSON form of every key's state, keyed by the key in decimal."""
        now = self._clock()
        return {str(key): state_to_wire(state, now) for key, state in self.state.items()}
