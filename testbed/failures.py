"""Failures as data: events with inverses, a validated timeline, an event log, and the two
kernel-level injections (netem, link up/down) that need no switch process.

Event kinds (``target`` is what the event acts on; inverse in brackets):

==================  =============================  ======================================
kind                target                         params
==================  =============================  ======================================
switch_crash        a switch (``s1``, ``l2``)      none                 [switch_restart]
switch_restart      a switch                       none                 [switch_crash]
link_down           a link key (``l1-s2``)         ``end``              [link_up]
link_up             a link key                     ``end``              [link_down]
store_crash         a store host (``h5``)          none                 [store_restart]
store_restart       a store host                   none                 [store_crash]
netem               a link key                     ``loss`` %, ``delay_ms``, ``jitter_ms``,
                                                   ``reorder`` %, ``limit`` (packets),
                                                   ``end``                [netem_clear]
netem_clear         a link key                     as netem (the impairment to restore
                                                   when inverted), or only ``end``   [netem]
==================  =============================  ======================================

``end`` names one end of the link (the interface on that node); without it an event applies to
both ends (for netem: both directions). Only the data lives here; the actions on switches and
stores belong to their owners and are passed to `play` as handlers.

Timeline configuration (TOML shown; JSON alike), times in seconds from the start of the run::

    [[failures]]
    at = 5.0
    kind = "switch_crash"
    target = "s1"
    duration = 3.0          # optional: also schedules the inverse at 8.0

    [[failures]]
    at = 10.0
    kind = "netem"
    target = "l1-s2"
    params = { loss = 5.0, delay_ms = 2.0, end = "s2" }

Errors name the entry index and the key: ``failures[1].kind: unknown kind 'x' (...)``.

The event log (`EventLog`) is a CSV file with the columns ``planned_time, actual_time,
wall_time_ns, kind, target, params, ok, error, mechanism``: times in seconds from the run start,
the wall clock in ns since the epoch (to line up with pcap timestamps), params as JSON, ok 1/0,
and how the event was carried out when its handler says so (a handler returning a string): for
`testbed.net.Testbed`'s netem events ``netem`` (the kernel qdisc) or ``switch-port`` (the
bundled switch's port impairment, used where the kernel has no netem).

Kernel helpers take a *target* (Mininet node, `testbed.capture.NetnsExec`, or popen-like
callable; see `testbed.capture`) and an interface name, run ``tc``/``ip`` there and return the
inverse as a callable (which, when called, returns its own inverse):
`netem` -> `netem_clear` -> `netem` ..., `link_down` <-> `link_up`. netem qdiscs are installed
as the root qdisc with handle ``7e57:``; `netem` refuses to replace any other non-default root
qdisc (such as a TCLink's shaping) and `netem_clear` only removes ours. Kernels without
``sch_netem`` raise `NetemUnavailableError`; `testbed.net.Testbed.netem` then impairs the
switch ports of the link instead (the bundled target's ``port_impair``, same parameters,
`Netem.port_impair_args`).
"""
from __future__ import annotations

import csv
import json
import re
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from testbed.capture import CommandError, run_in
from testbed.errors import ConfigError, TestbedError
from testbed.topology import LeafSpineTopo, canonical_link_key

__all__ = [
    "EVENT_KINDS", "INVERSE", "FailureEvent", "Timeline", "inverse", "EventLog", "play",
    "link_interfaces", "Netem", "NetemUnavailableError", "NETEM_HANDLE",
    "netem", "netem_clear", "link_down", "link_up",
]

NETEM_HANDLE = "7e57:"


# ---------------------------------------------------------------------------------------------
# Event kinds

@dataclass(frozen=True)
class EventKind:
    """What an event kind acts on, its inverse and its allowed params."""

    target: str  # "switch" | "link" | "store"
    inverse: str
    params: tuple[str, ...] = ()


_NETEM_PARAMS = ("loss", "delay_ms", "jitter_ms", "reorder", "limit", "end")
EVENT_KINDS: dict[str, EventKind] = {
    "switch_crash": EventKind("switch", "switch_restart"),
    "switch_restart": EventKind("switch", "switch_crash"),
    "link_down": EventKind("link", "link_up", ("end",)),
    "link_up": EventKind("link", "link_down", ("end",)),
    "store_crash": EventKind("store", "store_restart"),
    "store_restart": EventKind("store", "store_crash"),
    "netem": EventKind("link", "netem_clear", _NETEM_PARAMS),
    "netem_clear": EventKind("link", "netem", _NETEM_PARAMS),
}
INVERSE = {kind: spec.inverse for kind, spec in EVENT_KINDS.items()}
_IMPAIRMENT_KEYS = ("loss", "delay_ms", "jitter_ms", "reorder", "limit")


@dataclass(frozen=True)
class Netem:
    """A netem impairment: loss %, delay ms (with jitter ms), reorder %, queue limit."""

    loss: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    reorder: float = 0.0
    limit: int | None = None

    def __post_init__(self) -> None:
        _check_netem("params", self.__dict__)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], where: str = "params") -> "Netem":
        """The impairment described by an event's params (``end`` is ignored); errors name
        ``where.<key>``."""
        values = {k: params[k] for k in _IMPAIRMENT_KEYS if k in params}
        _check_netem(where, {**_NETEM_DEFAULTS, **values})
        return cls(**values)

    def tc_args(self) -> list[str]:
        """netem arguments for ``tc qdisc ... netem``."""
        args: list[str] = []
        if self.delay_ms:
            args += ["delay", f"{self.delay_ms:g}ms"]
            if self.jitter_ms:
                args.append(f"{self.jitter_ms:g}ms")
        if self.loss:
            args += ["loss", f"{self.loss:g}%"]
        if self.reorder:
            args += ["reorder", f"{self.reorder:g}%"]
        if self.limit is not None:
            args += ["limit", str(self.limit)]
        return args

    def port_impair_args(self) -> list[str]:
        """The same impairment as arguments of the bundled switch's ``port_impair`` command
        (`testbed.v1model.impair`; jitter uniform, as netem without a distribution table)."""
        values = (("loss", self.loss), ("delay", self.delay_ms), ("jitter", self.jitter_ms),
                  ("reorder", self.reorder), ("limit", self.limit))
        args = [token for name, value in values if value for token in (name, f"{value:g}")]
        return args or ["loss", "0"]


_NETEM_DEFAULTS = {"loss": 0.0, "delay_ms": 0.0, "jitter_ms": 0.0, "reorder": 0.0, "limit": None}


def _check_netem(where: str, values: Mapping[str, Any]) -> None:
    """Range checks of netem values; errors name ``where.<key>``."""
    _number(f"{where}.loss", values["loss"], 0, 100)
    _number(f"{where}.delay_ms", values["delay_ms"], 0)
    _number(f"{where}.jitter_ms", values["jitter_ms"], 0)
    _number(f"{where}.reorder", values["reorder"], 0, 100)
    limit = values["limit"]
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"{where}.limit: must be an integer >= 1, got {limit!r}")
    for name in ("jitter_ms", "reorder"):
        if values[name] and not values["delay_ms"]:
            raise ConfigError(f"{where}.{name}: needs delay_ms > 0 "
                              f"(netem only jitters/reorders delayed packets)")


def _number(where: str, value: Any, lo: float, hi: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: must be a number, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bounds = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ConfigError(f"{where}: must be {bounds}, got {value}")


# ---------------------------------------------------------------------------------------------
# Events and timelines

@dataclass(frozen=True)
class FailureEvent:
    """One failure action at `at` seconds from the start of the run. `params` is read-only."""

    at: float
    kind: str
    target: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def to_dict(self) -> dict[str, Any]:
        """``{"at", "kind", "target"[, "params"]}``, the form `Timeline.from_dicts` reads."""
        data: dict[str, Any] = {"at": self.at, "kind": self.kind, "target": self.target}
        if self.params:
            data["params"] = dict(self.params)
        return data

    def params_json(self) -> str:
        """The params as compact, key-sorted JSON."""
        return json.dumps(dict(self.params), sort_keys=True, separators=(",", ":"))


def inverse(event: FailureEvent, at: float | None = None) -> FailureEvent:
    """The event undoing `event` (at `at`, default the same time).

    netem -> netem_clear keeps the impairment in its params, so inverting twice gives the
    original back; a netem_clear without impairment params has no inverse (TestbedError).
    """
    kind = INVERSE.get(event.kind)
    if kind is None:
        raise ConfigError(f"kind: unknown kind {event.kind!r}")
    if event.kind == "netem_clear" and not any(k in event.params for k in _IMPAIRMENT_KEYS):
        raise TestbedError(f"{event.kind} {event.target}: no inverse, the impairment to restore "
                           f"is not recorded in its params")
    return FailureEvent(event.at if at is None else at, kind, event.target, event.params)


_ENTRY_KEYS = ("at", "kind", "target", "params", "duration")


@dataclass(frozen=True)
class Timeline:
    """Failure events in time order (ties keep their configured order)."""

    events: tuple[FailureEvent, ...] = ()

    def __post_init__(self) -> None:
        ordered = sorted(self.events, key=lambda e: e.at)
        object.__setattr__(self, "events", tuple(ordered))

    def __iter__(self) -> Iterator[FailureEvent]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    @property
    def end(self) -> float:
        """Time of the last event (0 for an empty timeline)."""
        return self.events[-1].at if self.events else 0.0

    @classmethod
    def from_dicts(cls, entries: Sequence[Mapping[str, Any]],
                   topo: LeafSpineTopo | None = None, where: str = "failures") -> "Timeline":
        """Parse and validate config entries (see the module docstring); targets are checked
        against `topo` when given, else only their syntax. A ``duration`` adds the inverse."""
        if not isinstance(entries, (list, tuple)):
            raise ConfigError(f"{where}: must be a list of tables, got {entries!r}")
        events: list[FailureEvent] = []
        for i, entry in enumerate(entries):
            events += _parse_entry(f"{where}[{i}]", entry, topo)
        return cls(tuple(events))

    def to_dicts(self) -> list[dict[str, Any]]:
        """Entries that `from_dicts` turns back into an equal timeline (durations expanded)."""
        return [event.to_dict() for event in self.events]


def _parse_entry(where: str, entry: Any, topo: LeafSpineTopo | None) -> list[FailureEvent]:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: must be a table/dict, got {entry!r}")
    for key in entry:
        if key not in _ENTRY_KEYS:
            raise ConfigError(f"{where}.{key}: unknown key (known: {', '.join(_ENTRY_KEYS)})")
    for key in ("at", "kind", "target"):
        if key not in entry:
            raise ConfigError(f"{where}.{key}: missing")
    at = _time(f"{where}.at", entry["at"])
    kind = _kind(f"{where}.kind", entry["kind"])
    target = _target(f"{where}.target", kind, entry["target"], topo)
    params = _params(f"{where}.params", kind, target, entry.get("params", {}), topo)
    event = FailureEvent(at, kind, target, params)
    if "duration" not in entry:
        return [event]
    duration = _time(f"{where}.duration", entry["duration"], positive=True)
    try:
        return [event, inverse(event, at + duration)]
    except TestbedError as err:
        raise ConfigError(f"{where}.duration: {err}") from None


def _time(where: str, value: Any, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: must be a number of seconds, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ConfigError(f"{where}: must be {'> 0' if positive else '>= 0'}, got {value}")
    return float(value)


def _kind(where: str, value: Any) -> str:
    if value not in EVENT_KINDS:
        raise ConfigError(f"{where}: unknown kind {value!r} (known: {', '.join(EVENT_KINDS)})")
    return value


def _target(where: str, kind: str, value: Any, topo: LeafSpineTopo | None) -> str:
    expected = EVENT_KINDS[kind].target
    if not isinstance(value, str):
        raise ConfigError(f"{where}: must be a string naming a {expected}, got {value!r}")
    if expected == "link":
        return _link_target(where, value, topo)
    pattern = r"[sl]\d+" if expected == "switch" else r"h\d+"
    if not re.fullmatch(pattern, value):
        raise ConfigError(f"{where}: {kind} needs a {expected}, got {value!r}")
    if topo is not None:
        _check_node(where, kind, expected, value, topo)
    return value


def _link_target(where: str, value: str, topo: LeafSpineTopo | None) -> str:
    key = canonical_link_key(where, value)
    if topo is not None:
        try:
            topo.link_by_key(key)
        except ConfigError:
            raise ConfigError(f"{where}: unknown link {value!r} in this topology") from None
    return key


def _check_node(where: str, kind: str, expected: str, name: str, topo: LeafSpineTopo) -> None:
    names = topo.switches() if expected == "switch" else topo.stores()
    if name not in names:
        raise ConfigError(f"{where}: unknown {expected} {name!r} for {kind} "
                          f"(known: {', '.join(names) or 'none'})")


def _params(where: str, kind: str, target: str, params: Any,
            topo: LeafSpineTopo | None) -> dict[str, Any]:
    if not isinstance(params, Mapping):
        raise ConfigError(f"{where}: must be a table/dict, got {params!r}")
    allowed = EVENT_KINDS[kind].params
    for key in params:
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise ConfigError(f"{where}.{key}: unknown parameter for {kind} (known: {known})")
    if "end" in params and params["end"] not in target.split("-"):
        raise ConfigError(f"{where}.end: must be one end of {target}, got {params['end']!r}")
    if kind.startswith("netem"):
        Netem.from_params(params, where)
    return dict(params)


def link_interfaces(topo: LeafSpineTopo, event: FailureEvent) -> list[tuple[str, str]]:
    """``(node, interface)`` pairs a link or netem event acts on: the ``end`` param's
    interface, or both ends of the link."""
    link = topo.link_by_key(event.target)
    end = event.params.get("end")
    ends = [end] if end else [link.node1, link.node2]
    return [(node, link.intf_on(node)) for node in ends]


# ---------------------------------------------------------------------------------------------
# Event log and player

class EventLog:
    """CSV log of executed events (columns in `FIELDS`). Context manager; rows are flushed
    as they are written."""

    FIELDS = ("planned_time", "actual_time", "wall_time_ns", "kind", "target", "params", "ok",
              "error", "mechanism")

    def __init__(self, path: str) -> None:
        self.path = path
        self._file = open(path, "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file, lineterminator="\n")
        self._writer.writerow(self.FIELDS)
        self._file.flush()

    def record(self, event: FailureEvent, actual_time: float, error: str | None = None,
               wall_time_ns: int | None = None, mechanism: str | None = None) -> None:
        """Log that `event` ran at `actual_time` s (from the run start), ok unless `error`,
        carried out by `mechanism` (e.g. ``netem``, ``switch-port``) when known."""
        wall = time.time_ns() if wall_time_ns is None else wall_time_ns
        self._writer.writerow([f"{event.at:.6f}", f"{actual_time:.6f}", wall, event.kind,
                               event.target, event.params_json(), int(error is None),
                               error or "", mechanism or ""])
        self._file.flush()

    def close(self) -> None:
        """Close the file (idempotent)."""
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> "EventLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def play(timeline: Iterable[FailureEvent],
         handlers: Mapping[str, Callable[[FailureEvent], Any]],
         log: EventLog | None = None, start: float | None = None,
         stop: threading.Event | None = None, raise_errors: bool = False) -> list[tuple]:
    """Run each event's handler at its planned time (``start`` = time.monotonic() origin,
    default now) and log the actual time; returns ``(event, actual_time, error)`` per event run.
    A handler that returns a string names the mechanism it used (logged with the event).

    Waiting is interruptible through `stop` (then the remaining events are skipped). A
    handler's exception is logged as the event's error; with `raise_errors` it is re-raised.
    Every kind in the timeline needs a handler (checked before anything runs).
    """
    events = list(timeline)
    missing = sorted({e.kind for e in events} - set(handlers))
    if missing:
        raise ConfigError(f"handlers: no handler for {', '.join(missing)}")
    origin = time.monotonic() if start is None else start
    stop = stop or threading.Event()
    results = []
    for event in events:
        if stop.wait(max(0.0, origin + event.at - time.monotonic())):
            break
        results.append(_run_event(event, handlers[event.kind], origin, log, raise_errors))
    return results


def _run_event(event: FailureEvent, handler: Callable, origin: float, log: EventLog | None,
               raise_errors: bool) -> tuple:
    actual, wall = time.monotonic() - origin, time.time_ns()
    error = mechanism = None
    try:
        result = handler(event)
        mechanism = result if isinstance(result, str) else None
    except Exception as err:  # the log records it; the caller chooses to continue or not
        error = f"{type(err).__name__}: {err}"
        if raise_errors:
            _log_event(log, event, actual, error, wall)
            raise
    _log_event(log, event, actual, error, wall, mechanism)
    return event, actual, error


def _log_event(log: EventLog | None, event: FailureEvent, actual: float, error: str | None,
               wall: int, mechanism: str | None = None) -> None:
    if log is not None:
        log.record(event, actual, error, wall, mechanism)


# ---------------------------------------------------------------------------------------------
# Kernel helpers (tc netem, ip link)

class NetemUnavailableError(TestbedError):
    """The kernel has no netem qdisc (CONFIG_NET_SCH_NETEM not set / sch_netem not loaded)."""


def _root_qdisc(target: Any, intf: str) -> tuple[str, str]:
    """``(kind, handle)`` of the root qdisc of `intf`, e.g. ``("noqueue", "0:")``."""
    out = run_in(target, ["tc", "qdisc", "show", "dev", intf, "root"])
    fields = out.split()
    if len(fields) < 3 or fields[0] != "qdisc":
        raise TestbedError(f"tc qdisc show dev {intf}: unexpected output {out!r}")
    return fields[1], fields[2]


def netem(target: Any, intf: str, impairment: Netem) -> Callable[[], Any]:
    """Impair the egress of `intf` in `target`; returns the callable that clears it (and
    whose result re-applies it)."""
    kind, handle = _root_qdisc(target, intf)
    if handle not in ("0:", NETEM_HANDLE):
        raise TestbedError(f"netem on {intf}: root qdisc is {kind} {handle} (not ours); "
                           f"refusing to replace it")
    argv = ["tc", "qdisc", "replace", "dev", intf, "root", "handle", NETEM_HANDLE, "netem",
            *impairment.tc_args()]
    try:
        run_in(target, argv)
    except CommandError as err:
        if "unknown" in err.stderr.lower() and "qdisc" in err.stderr.lower():
            raise NetemUnavailableError(f"netem on {intf}: this kernel has no netem qdisc "
                                        f"({err.stderr.strip()})") from err
        raise
    return partial(netem_clear, target, intf, impairment)


def netem_clear(target: Any, intf: str, restore: Netem | None = None) -> Callable[[], Any]:
    """Remove our netem qdisc from `intf` (no-op if there is none); returns the callable that
    re-applies `restore` (a no-op callable without it)."""
    kind, handle = _root_qdisc(target, intf)
    if handle == NETEM_HANDLE:
        run_in(target, ["tc", "qdisc", "del", "dev", intf, "root"])
    elif handle != "0:":
        raise TestbedError(f"netem_clear on {intf}: root qdisc is {kind} {handle}, not ours; "
                           f"leaving it alone")
    if restore is None:
        return _nothing
    return partial(netem, target, intf, restore)


def _nothing() -> None:
    """The inverse of an action that cannot be undone (nothing to restore)."""
    return None


def link_down(target: Any, intf: str) -> Callable[[], Any]:
    """``ip link set dev <intf> down`` in `target`; returns the callable bringing it up."""
    run_in(target, ["ip", "link", "set", "dev", intf, "down"])
    return partial(link_up, target, intf)


def link_up(target: Any, intf: str) -> Callable[[], Any]:
    """``ip link set dev <intf> up`` in `target`; returns the callable bringing it down."""
    run_in(target, ["ip", "link", "set", "dev", intf, "up"])
    return partial(link_down, target, intf)
