"""Run-time objects that generated code calls into: packets, stacks, externs, tables.

Generated code (see `lower.py`) holds direct references to these objects, so the hot path is a
handful of attribute accesses and dict lookups per table and extern.
"""
from __future__ import annotations

import random as _random
from dataclasses import dataclass, field

# ---- control flow signals ------------------------------------------------------------------------


class ExitSignal(Exception):
    """`exit` was executed: leave every control up to the architecture."""


class ParserException(Exception):
    """The parser stops with a P4 error code (PacketTooShort, StackOutOfBounds, ...)."""

    def __init__(self, code: int):
        self.code = code


class AssertFailure(Exception):
    """An assert()/assume() in the program failed (simple_switch exits in that case)."""


# ---- packets -------------------------------------------------------------------------------------


class PacketIn:
    """The bytes the parser reads, with a cursor in bytes."""

    __slots__ = ("data", "pos", "n")

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0
        self.n = len(data)

    def remaining(self) -> bytes:
        return self.data[self.pos:]


class PacketOut:
    """The byte strings the deparser emits, in order."""

    __slots__ = ("parts",)

    def __init__(self):
        self.parts: list[bytes] = []


# ---- header stacks -------------------------------------------------------------------------------


class Stack:
    """A header stack: `h` holds the elements, `nxt` is nextIndex."""

    __slots__ = ("h", "nxt", "make")

    def __init__(self, make, size: int):
        self.make = make
        self.h = [make() for _ in range(size)]
        self.nxt = 0

    def copy(self) -> "Stack":
        s = Stack.__new__(Stack)
        s.make = self.make
        s.h = [e.copy() for e in self.h]
        s.nxt = self.nxt
        return s

    def assign(self, other: "Stack") -> None:
        for a, b in zip(self.h, other.h):
            a.assign(b)
        self.nxt = other.nxt

    def reset(self) -> None:
        for e in self.h:
            e.reset()
        self.nxt = 0

    def get(self, i: int):
        """Element i, or a scratch header when i is out of range (reads give zeros)."""
        if 0 <= i < len(self.h):
            return self.h[i]
        return self.make()

    def next_for_extract(self):
        if self.nxt >= len(self.h):
            raise ParserException(STACK_OUT_OF_BOUNDS)
        e = self.h[self.nxt]
        self.nxt += 1
        return e

    def last(self):
        if self.nxt == 0:
            raise ParserException(STACK_OUT_OF_BOUNDS)
        return self.h[self.nxt - 1]

    def push_front(self, count: int) -> None:
        n = len(self.h)
        for i in range(n - 1, -1, -1):
            if i >= count:
                self.h[i].assign(self.h[i - count])
            else:
                self.h[i].reset()
        self.nxt = min(self.nxt + count, n)

    def pop_front(self, count: int) -> None:
        n = len(self.h)
        for i in range(n):
            if i + count < n:
                self.h[i].assign(self.h[i + count])
            else:
                self.h[i].reset()
        self.nxt = max(self.nxt - count, 0)

    def is_equal(self, other: "Stack") -> bool:
        return all(a.is_equal(b) for a, b in zip(self.h, other.h))


# Error codes of core.p4 (the checker puts them first, in this order).
NO_ERROR, PACKET_TOO_SHORT, NO_MATCH, STACK_OUT_OF_BOUNDS, HEADER_TOO_SHORT, PARSER_TIMEOUT, \
    PARSER_INVALID_ARGUMENT = range(7)


# ---- stateful externs ----------------------------------------------------------------------------


class Register:
    def __init__(self, name: str, size: int, width: int, signed: bool = False):
        self.name, self.size, self.width, self.signed = name, size, width, signed
        self.cells = [0] * size

    def read(self, index: int, old: int = 0) -> int:
        """Cell `index`; out of range leaves the destination unchanged (BMv2): returns `old`."""
        if 0 <= index < self.size:
            return self.cells[index]
        return old

    def write(self, index: int, value: int) -> None:
        if 0 <= index < self.size:
            self.cells[index] = value

    def reset(self) -> None:
        self.cells = [0] * self.size


class Counter:
    def __init__(self, name: str, size: int, kind: str, ctx: "PacketContext"):
        self.name, self.size, self.kind, self.ctx = name, size, kind, ctx
        self.packets = [0] * size
        self.bytes = [0] * size

    def count(self, index: int) -> None:
        if 0 <= index < self.size:
            self.packets[index] += 1
            self.bytes[index] += self.ctx.length

    def reset(self) -> None:
        self.packets = [0] * self.size
        self.bytes = [0] * self.size


class DirectCounter:
    """Counts live in the table entries; this object names the table it is attached to."""

    def __init__(self, name: str, kind: str):
        self.name, self.kind = name, kind
        self.table: Table | None = None

    def count(self) -> None:
        """Calls in actions are no-ops: BMv2 counts every hit of the attached table once."""


GREEN, YELLOW, RED = 0, 1, 2


@dataclass
class MeterCell:
    """One two-rate three-color marker (RFC 2698). Rates are units per microsecond."""

    cir: float = 0.0
    cbs: int = 0
    pir: float = 0.0
    pbs: int = 0
    configured: bool = False
    tc: float = 0.0
    tp: float = 0.0
    last_us: int | None = None

    def set_rates(self, cir: float, cbs: int, pir: float, pbs: int) -> None:
        self.cir, self.cbs, self.pir, self.pbs = cir, cbs, pir, pbs
        self.tc, self.tp = float(cbs), float(pbs)
        self.configured = True
        self.last_us = None

    def execute(self, amount: int, now_us: int) -> int:
        if not self.configured:
            return GREEN
        if self.last_us is not None:
            dt = max(0, now_us - self.last_us)
            self.tc = min(self.cbs, self.tc + dt * self.cir)
            self.tp = min(self.pbs, self.tp + dt * self.pir)
        self.last_us = now_us
        if self.tp < amount:
            return RED
        if self.tc < amount:
            self.tp -= amount
            return YELLOW
        self.tp -= amount
        self.tc -= amount
        return GREEN


class Meter:
    def __init__(self, name: str, size: int, kind: str, ctx: "PacketContext"):
        self.name, self.size, self.kind, self.ctx = name, size, kind, ctx
        self.cells = [MeterCell() for _ in range(size)]

    def execute(self, index: int, old: int = 0) -> int:
        if not 0 <= index < self.size:
            return old
        amount = self.ctx.length if self.kind == "bytes" else 1
        return self.cells[index].execute(amount, self.ctx.now_us)


class DirectMeter:
    def __init__(self, name: str, kind: str, ctx: "PacketContext"):
        self.name, self.kind, self.ctx = name, kind, ctx
        self.table: Table | None = None
        self.color = GREEN

    def read(self) -> int:
        return self.color

    def on_hit(self, entry: "Entry") -> None:
        if entry.meter is None:
            self.color = GREEN
            return
        amount = self.ctx.length if self.kind == "bytes" else 1
        self.color = entry.meter.execute(amount, self.ctx.now_us)


class RandomSource:
    """random() extern; seeded so runs are reproducible."""

    def __init__(self, seed: int = 0):
        self.rng = _random.Random(seed)

    def value(self, lo: int, hi: int, old: int) -> int:
        if lo > hi:
            return old
        return self.rng.randint(lo, hi)


@dataclass
class PacketContext:
    """Per-packet facts the externs need (packet length, time) and requests they make."""

    length: int = 0
    now_us: int = 0
    payload: bytes = b""
    clone: tuple | None = None          # (session, field list index or paths)
    resubmit: object = None
    recirculate: object = None
    truncate: int | None = None
    digests: list = field(default_factory=list)
    logs: list = field(default_factory=list)


@dataclass
class McNode:
    """A multicast node of the packet replication engine: one rid and a set of ports."""

    rid: int
    ports: list
    group: int | None = None


# ---- tables --------------------------------------------------------------------------------------


@dataclass
class KeySpec:
    name: str
    kind: str         # exact, lpm, ternary, range, optional
    width: int


@dataclass
class ActionInfo:
    name: str                   # control-plane name
    fn: object                  # generated function(ctx..., *args)
    params: list                # [(name, width, signed)]
    default_only: bool = False
    table_only: bool = False


@dataclass(eq=False)
class Entry:
    action: ActionInfo
    args: tuple
    fn: object
    hit: bool = True
    handle: int = -1
    match: tuple = ()           # per key: (value, mask) or (lo, hi) for range
    priority: int = 0
    order: tuple = ()           # sort key: smaller wins
    packets: int = 0
    bytes: int = 0
    meter: MeterCell | None = None
    is_const: bool = False

    @property
    def action_name(self) -> str:
        return self.action.name


class Table:
    """A match-action table: exact and lpm by dict, ternary/range/optional by priority scan."""

    CACHE_LIMIT = 4096

    def __init__(self, name: str, keys: list[KeySpec], actions: dict[str, ActionInfo], size: int,
                 ctx: PacketContext):
        self.name, self.keys, self.actions, self.size, self.ctx = name, keys, actions, size, ctx
        kinds = {k.kind for k in keys}
        self.kind = "ternary" if kinds & {"ternary", "range", "optional"} else "lpm" if "lpm" in kinds else "exact"
        self.needs_priority = self.kind == "ternary"
        self.lpm_index = next((i for i, k in enumerate(keys) if k.kind == "lpm"), None)
        self.entries: dict[int, Entry] = {}
        self.next_handle = 0
        self.default: Entry | None = None
        self.initial_default: tuple | None = None
        self.default_const = False
        self.entries_const = False
        self.counter: DirectCounter | None = None
        self.meter: DirectMeter | None = None
        self._exact: dict = {}
        self._lpm: dict[int, dict] = {}
        self._lpm_lengths: list[int] = []
        self._lpm_masks: list = []
        self._scan: list[Entry] = []
        self._cache: dict = {}
        self.lookup = self._lookup_fn()

    # -- data plane ---------------------------------------------------------------------------
    def _lookup_fn(self):
        if self.kind == "exact":
            return self._lookup_exact
        if self.kind == "lpm":
            return self._lookup_lpm1 if len(self.keys) == 1 else self._lookup_lpm
        return self._lookup_scan

    def _hit(self, e: Entry | None) -> Entry:
        if e is None:
            return self.default
        if self.counter is not None:
            e.packets += 1
            e.bytes += self.ctx.length
        if self.meter is not None:
            self.meter.on_hit(e)
        return e

    def _lookup_exact(self, key):
        e = self._exact.get(key)
        if e is None:
            return self.default
        if self.counter is None and self.meter is None:
            return e
        return self._hit(e)

    def _lookup_lpm1(self, key):
        """lpm on a single key: longest prefix first, one dict probe per prefix length."""
        for mask, entries in self._lpm_masks:
            e = entries.get(key & mask)
            if e is not None:
                return e if self.counter is None and self.meter is None else self._hit(e)
        return self.default

    def _lookup_lpm(self, key):
        for mask, entries in self._lpm_masks:
            k = list(key)
            k[self.lpm_index] &= mask
            e = entries.get(tuple(k))
            if e is not None:
                return self._hit(e)
        return self.default

    def _lpm_reindex(self) -> None:
        """Prefix lengths, longest first, with their masks (kept for the lookup loop)."""
        self._lpm_lengths = sorted(self._lpm, reverse=True)
        width = self.keys[self.lpm_index].width
        self._lpm_masks = [(((1 << p) - 1) << (width - p), self._lpm[p]) for p in self._lpm_lengths]

    def _lookup_scan(self, key):
        try:
            e = self._cache[key]
        except KeyError:
            e = self._scan_match(key)
            if len(self._cache) < self.CACHE_LIMIT:
                self._cache[key] = e
        except TypeError:
            e = self._scan_match(key)
        return self._hit(e)

    def _scan_match(self, key):
        keys = key if len(self.keys) > 1 else (key,)
        kinds = self.keys
        for e in self._scan:
            for k, spec, m in zip(keys, kinds, e.match):
                if spec.kind == "range":
                    if not m[0] <= k <= m[1]:
                        break
                elif k & m[1] != m[0]:
                    break
            else:
                return e
        return None

    # -- control plane ------------------------------------------------------------------------
    def _invalidate(self) -> None:
        self._cache.clear()

    def add(self, match: tuple, action: ActionInfo, args: tuple, priority: int, order=None,
            is_const: bool = False) -> Entry:
        """Insert an entry; `match` holds per-key (value, mask) or (lo, hi). Returns it."""
        e = Entry(action, args, action.fn, True, self.next_handle, match, priority, is_const=is_const)
        e.order = order if order is not None else (priority, e.handle)
        if self.meter is not None:
            e.meter = MeterCell()
        self._index(e)
        self.entries[e.handle] = e
        self.next_handle += 1
        self._invalidate()
        return e

    def _index(self, e: Entry) -> None:
        if self.kind == "exact":
            self._exact[self._exact_key(e.match)] = e
        elif self.kind == "lpm":
            plen = e.match[self.lpm_index][2]
            if plen not in self._lpm:
                self._lpm[plen] = {}
                self._lpm_reindex()
            self._lpm[plen][self._exact_key(e.match)] = e
        else:
            self._scan.append(e)
            self._scan.sort(key=lambda x: x.order)

    def _exact_key(self, match):
        values = tuple(m[0] for m in match)
        return values[0] if len(values) == 1 else values

    def find_duplicate(self, match: tuple, priority: int) -> Entry | None:
        for e in self.entries.values():
            if e.match == match and (not self.needs_priority or e.priority == priority):
                return e
        return None

    def delete(self, handle: int) -> None:
        e = self.entries.pop(handle)
        if self.kind == "exact":
            del self._exact[self._exact_key(e.match)]
        elif self.kind == "lpm":
            plen = e.match[self.lpm_index][2]
            del self._lpm[plen][self._exact_key(e.match)]
            if not self._lpm[plen]:
                del self._lpm[plen]
                self._lpm_reindex()
        else:
            self._scan.remove(e)
        self._invalidate()

    def modify(self, handle: int, action: ActionInfo, args: tuple) -> None:
        e = self.entries[handle]
        e.action, e.args, e.fn = action, args, action.fn
        self._invalidate()

    def clear(self) -> None:
        for h in [h for h, e in self.entries.items() if not e.is_const]:
            self.delete(h)

    def set_default(self, action: ActionInfo, args: tuple) -> None:
        self.default = Entry(action, args, action.fn, hit=False)
        self._invalidate()
