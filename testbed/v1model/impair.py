"""Port impairment of the bundled switch: netem-like loss, delay, jitter, reorder and a queue
limit on the frames one port receives (`in`, before the pipeline) or transmits (`out`).

A bundled-target extension (BMv2 has nothing like it), for kernels without `sch_netem`. Control
commands of the switch process (see `testbed.v1model.switchd`):

    port_impair <port> <in|out> [loss <pct>] [delay <ms>] [jitter <ms>] [reorder <pct>] [limit <n>]
    port_impair_clear <port> [in|out]          (both directions without one)
    port_impair_show [<port>]

Per frame, in netem's order:
  1. loss: dropped with probability loss/100, independently of other frames;
  2. limit: dropped if `limit` frames are already held (default 1000, netem's default);
  3. reorder (needs a delay): with probability reorder/100 the frame goes at once, so it
     overtakes the held ones (netem's `reorder P`, gap 1);
  4. delay: held for a time drawn uniformly from [delay - jitter, delay + jitter] ms (floored
     at 0; netem without a distribution table), released in due-time order (so jitter reorders,
     as with netem).
Each port direction has its own random generator seeded from the switch's `--seed`, the port
and the direction, so the same traffic gets the same drops and delays on every run.
`port_impair` replaces the direction's whole impairment (unnamed parameters take their defaults,
like `tc qdisc replace`); frames already held keep their due times. Clearing drops the held
frames (as deleting a netem qdisc does) and counts them as `discarded`, as does the switch
when it stops. A restarted switch has no impairment.
"""
from __future__ import annotations

import heapq
import random
from dataclasses import asdict, dataclass

from .errors import CommandError

DEFAULT_LIMIT = 1000
DIRECTIONS = ("in", "out")
PARAMETERS = ("loss", "delay", "jitter", "reorder", "limit")
USAGE = ("port_impair <port> <in|out> [loss <pct>] [delay <ms>] [jitter <ms>] [reorder <pct>] "
         "[limit <n>]")


@dataclass(frozen=True)
class Impairment:
    """What one direction of one port does to frames: loss %, delay and jitter ms, reorder %,
    and how many frames it may hold."""

    loss: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    reorder: float = 0.0
    limit: int = DEFAULT_LIMIT

    @classmethod
    def parse(cls, tokens: list[str], cmd: str = "port_impair") -> "Impairment":
        """`loss 30 delay 20ms ...` (names in PARAMETERS, optional `%`/`ms` units); raise
        CommandError naming the argument."""
        if not tokens:
            raise CommandError(f"{cmd}: give at least one of {', '.join(PARAMETERS)} ({USAGE})")
        values: dict = {}
        pairs = iter(tokens)
        for name in pairs:
            if name not in PARAMETERS:
                raise CommandError(f"{cmd}: unknown parameter {name!r} (known: {', '.join(PARAMETERS)})")
            if name in values:
                raise CommandError(f"{cmd}: {name} given twice")
            text = next(pairs, None)
            if text is None:
                raise CommandError(f"{cmd}: {name}: missing value")
            values[name] = _value(cmd, name, text)
        return cls._checked(cmd, values)

    @classmethod
    def _checked(cls, cmd: str, values: dict) -> "Impairment":
        for name in ("jitter", "reorder"):
            if values.get(name) and not values.get("delay"):
                raise CommandError(f"{cmd}: {name} needs delay > 0 (only delayed frames are jittered or reordered)")
        return cls(values.get("loss", 0.0), values.get("delay", 0.0), values.get("jitter", 0.0),
                   values.get("reorder", 0.0), values.get("limit", DEFAULT_LIMIT))

    def __str__(self) -> str:
        return (f"loss {self.loss:g}% delay {self.delay_ms:g}ms jitter {self.jitter_ms:g}ms "
                f"reorder {self.reorder:g}% limit {self.limit}")

    def to_dict(self) -> dict:
        return asdict(self)


def _value(cmd: str, name: str, text: str):
    if name == "limit":
        try:
            limit = int(text, 10)
        except ValueError:
            limit = 0
        if limit < 1:
            raise CommandError(f"{cmd}: limit: must be an integer >= 1, got {text!r}")
        return limit
    unit = "%" if name in ("loss", "reorder") else "ms"
    number = text[:-len(unit)] if text.endswith(unit) else text
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if not value >= 0 or (unit == "%" and value > 100) or value == float("inf"):
        bounds = "a number in [0, 100]" if unit == "%" else "a number of ms >= 0"
        raise CommandError(f"{cmd}: {name}: must be {bounds}, got {text!r}")
    return value


def parse_direction(text: str, cmd: str) -> str:
    if text not in DIRECTIONS:
        raise CommandError(f"{cmd}: direction must be 'in' or 'out', got {text!r}")
    return text


COUNTERS = ("lost", "overflow", "delayed", "reordered", "discarded")


class Impairer:
    """One direction of one port: its Impairment (None = off), random generator, held frames
    (a heap of (due time, sequence, frame)) and counters. Times are seconds of the caller's
    clock, passed in, so tests drive it with their own clock."""

    __slots__ = ("spec", "rng", "held", "seq") + COUNTERS

    def __init__(self, rng: random.Random):
        self.spec: Impairment | None = None
        self.rng = rng
        self.held: list = []
        self.seq = 0
        self.reset_counters()

    @classmethod
    def seeded(cls, seed: int, port: int, direction: str) -> "Impairer":
        return cls(random.Random(f"port-impair/{seed}/{port}/{direction}"))

    def reset_counters(self) -> None:
        self.lost = self.overflow = self.delayed = self.reordered = self.discarded = 0

    def configure(self, spec: Impairment) -> None:
        self.spec = spec

    def clear(self) -> int:
        """Switch off; the held frames are dropped (counted as discarded). Returns how many."""
        self.spec = None
        return self.discard()

    def discard(self) -> int:
        n = len(self.held)
        self.held.clear()
        self.discarded += n
        return n

    def admit(self, frame, now: float):
        """The frame if it goes on at once; None if it was dropped or is now held."""
        spec, rng = self.spec, self.rng
        if spec.loss and rng.random() * 100 < spec.loss:
            self.lost += 1
            return None
        if len(self.held) >= spec.limit:
            self.overflow += 1
            return None
        if not spec.delay_ms:
            return frame
        if spec.reorder and rng.random() * 100 < spec.reorder:
            self.reordered += 1
            return frame
        self._hold(frame, now + self._delay(spec) / 1000)
        return None

    def _delay(self, spec: Impairment) -> float:
        if not spec.jitter_ms:
            return spec.delay_ms
        return max(0.0, self.rng.uniform(spec.delay_ms - spec.jitter_ms, spec.delay_ms + spec.jitter_ms))

    def _hold(self, frame, due: float) -> None:
        self.seq += 1
        heapq.heappush(self.held, (due, self.seq, frame))
        self.delayed += 1

    def next_due(self) -> float | None:
        return self.held[0][0] if self.held else None

    def release(self, now: float) -> list:
        """The held frames due at `now`, in due order (ties in arrival order)."""
        held, out = self.held, []
        while held and held[0][0] <= now:
            out.append(heapq.heappop(held)[2])
        return out

    def counters(self) -> dict:
        data = {name: getattr(self, name) for name in COUNTERS}
        data["queued"] = len(self.held)
        return data

    def show(self) -> dict:
        """The impairment (None when off) and the counters, for `port_impair_show`/`stats`."""
        return {"impairment": None if self.spec is None else self.spec.to_dict(), **self.counters()}
