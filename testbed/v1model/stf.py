"""Run p4c-style STF tests on the bundled target.

The semantics follow p4c's BMv2 STF runner: control-plane lines run in file order before and
between packets; only ports named in `packet`/`expect` lines are observed; per observed port
the received packets must match the `expect` lines in order (no ordering across ports); `*`
is a don't-care nibble, a received packet may be longer than expected unless the expectation
ends in `$`; `expect <port>` with no data accepts any packets on that port. STF priorities are
"larger wins": they are sent to the table as 10000 - priority, as the p4c runner does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import runtime as R
from .commands import ControlPlane
from .errors import CommandError
from .simple_switch import SimpleSwitch

STF_PRIORITY_BASE = 10000
CLI_PASSTHROUGH = {
    "mirroring_add", "mirroring_add_mc", "mirroring_delete", "mirroring_get", "mc_mgrp_create",
    "mc_mgrp_destroy", "mc_node_create", "mc_node_update", "mc_node_associate", "mc_node_dissociate",
    "mc_node_destroy", "counter_read", "counter_write", "counter_reset", "register_read",
    "register_write", "register_reset", "meter_get_rates", "meter_set_rates", "meter_array_set_rates",
    "set_crc16_parameters", "set_crc32_parameters", "table_set_default", "table_add", "table_delete", "table_modify", "table_clear", "pvs_add",
}


class StfError(Exception):
    """A malformed STF line; the message names the file and line."""


@dataclass
class Expectation:
    line: int
    pattern: str | None          # upper-case hex with '*', None = anything
    exact: bool = False


@dataclass
class StfResult:
    passed: bool
    failures: list[str] = field(default_factory=list)
    received: dict = field(default_factory=dict)       # port -> [bytes]
    log: list[str] = field(default_factory=list)

    def report(self) -> str:
        if self.passed:
            return "PASS"
        return "FAIL\n" + "\n".join(self.failures)


class StfRunner:
    def __init__(self, switch: SimpleSwitch, path: str):
        self.sw = switch
        self.cp = ControlPlane(switch)
        self.path = path
        self.expects: dict[int, list[Expectation]] = {}
        self.any_ports: set[int] = set()
        self.received: dict[int, list[bytes]] = {}
        self.failures: list[str] = []
        self.log: list[str] = []

    def run(self, text: str) -> StfResult:
        lines = list(_lines(text))
        self.observed = self._observed_ports(lines)
        for lineno, line in lines:
            self.line = lineno
            self._command(line)
        self._compare()
        return StfResult(not self.failures, self.failures, self.received, self.log)

    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @staticmethod
    def _observed_ports(lines) -> set[int]:
        ports = set()
        for _, line in lines:
            words = line.split()
            if words[0].lower() in ("packet", "expect") and len(words) > 1:
                try:
                    ports.add(int(words[1], 0))
                except ValueError:
                    pass
        return ports

    def _command(self, line: str) -> None:
        first, _, rest = line.partition(" ")
        kw = first.lower()
        handler = getattr(self, "cmd_" + kw, None)
        if handler is not None:
            handler(rest.strip())
        elif kw in CLI_PASSTHROUGH:
            self._cli(line)
        elif kw in ("wait", "no_packet"):
            return
        else:
            raise StfError(f"{self.where()}: unknown STF command {first!r}")

    def _cli(self, command: str) -> None:
        try:
            out = self.cp.execute(command)
        except CommandError as e:
            raise StfError(f"{self.where()}: {e}") from None
        if out:
            self.log.append(out)

    # -- packets ------------------------------------------------------------------------------
    def cmd_packet(self, rest: str) -> None:
        port_s, _, data = rest.partition(" ")
        port = self._port(port_s)
        hexdata = "".join(data.split())
        if not re.fullmatch(r"[0-9a-fA-F]*", hexdata):
            raise StfError(f"{self.where()}: packet data must be hex digits")
        if len(hexdata) % 2:
            # p4c's BMv2 STF runner (backends/bmv2/bmv2stf.py HexToByte) converts 2-digit groups with
            # int(s[i:i+2], 16): a trailing lone digit X becomes the byte 0x0X (gauntlet_index_3-bmv2)
            hexdata = hexdata[:-1] + "0" + hexdata[-1]
        for out_port, out in self.sw.process(port, bytes.fromhex(hexdata)):
            if out_port in self.observed:
                self.received.setdefault(out_port, []).append(out)

    def cmd_expect(self, rest: str) -> None:
        port_s, _, data = rest.partition(" ")
        port = self._port(port_s)
        pattern = "".join(data.split()).upper()
        if not pattern:
            self.any_ports.add(port)
            return
        exact = pattern.endswith("$")
        pattern = pattern.rstrip("$")
        if not re.fullmatch(r"[0-9A-F*]*", pattern):
            raise StfError(f"{self.where()}: expected data must be hex digits or '*'")
        self.expects.setdefault(port, []).append(Expectation(self.line, pattern, exact))

    def _port(self, text: str) -> int:
        try:
            return int(text, 0)
        except ValueError:
            raise StfError(f"{self.where()}: port must be a number, got {text!r}") from None

    # -- table commands -----------------------------------------------------------------------
    def cmd_add(self, rest: str) -> None:
        rest = rest.split("=", 1)[0].strip() if re.search(r"\)\s*=", rest) else rest
        words = rest.split(None, 1)
        if len(words) < 2:
            raise StfError(f"{self.where()}: add needs a table, keys and an action")
        table = self._table(words[0])
        rest = words[1]
        prio = None
        m = re.match(r"(\d+)\s+(.*)$", rest)
        if m and ":" not in rest.split()[0]:
            prio, rest = int(m.group(1)), m.group(2)
        keys_text, action, args = _split_action(rest, self.where())
        match = self._stf_keys(table, keys_text)
        info = self._action(table, action)
        values = self._action_args(info, args)
        priority = 0
        if table.needs_priority:
            priority = STF_PRIORITY_BASE - (prio if prio is not None else 0)
        if table.find_duplicate(match, priority) is not None:
            raise StfError(f"{self.where()}: duplicate entry in {table.name}")
        table.add(match, info, values, priority)

    def cmd_setdefault(self, rest: str) -> None:
        words = rest.split(None, 1)
        if len(words) < 2:
            raise StfError(f"{self.where()}: setdefault needs a table and an action")
        table = self._table(words[0])
        _, action, args = _split_action(words[1], self.where())
        info = self._action(table, action)
        table.set_default(info, self._action_args(info, args))

    def cmd_remove(self, rest: str) -> None:
        if rest.strip().lower() == "all":
            for t in self.sw.registry.tables.values():
                t.clear()

    def cmd_check_counter(self, rest: str) -> None:
        m = re.match(r"([\w.$\[\]]+)\((\w+)\)\s*(?:(bytes|packets)\s*(==|!=|<=|>=|<|>)\s*(\d+))?", rest)
        if not m:
            raise StfError(f"{self.where()}: check_counter needs name(index) [bytes|packets <op> <n>]")
        try:
            text = self.cp.execute(f"counter_read {m.group(1)} {m.group(2)}")
        except CommandError as e:
            raise StfError(f"{self.where()}: {e}") from None
        got = dict(re.findall(r"(packets|bytes)=(\d+)", text))
        kind = m.group(3) or "packets"
        op, n = m.group(4) or "!=", int(m.group(5) or 0)
        value = int(got[kind])
        if not {"==": value == n, "!=": value != n, "<=": value <= n, ">=": value >= n,
                "<": value < n, ">": value > n}[op]:
            self.failures.append(f"{self.where()}: counter {m.group(1)}[{m.group(2)}] {kind} = {value}, expected {op} {n}")

    def _table(self, name: str) -> R.Table:
        try:
            return self.cp.table(name, "add")
        except CommandError as e:
            raise StfError(f"{self.where()}: {e}") from None

    def _action(self, table: R.Table, name: str) -> R.ActionInfo:
        try:
            return self.cp.action(table, name, "add")
        except CommandError as e:
            raise StfError(f"{self.where()}: {e}") from None

    def _action_args(self, info: R.ActionInfo, args: dict) -> tuple:
        out = []
        for pname, width, signed in info.params:
            if pname not in args:
                raise StfError(f"{self.where()}: action {info.name} needs argument {pname}")
            out.append(_number(args.pop(pname), width, self.where()))
        if args:
            raise StfError(f"{self.where()}: action {info.name} has no parameter {next(iter(args))!r}")
        return tuple(out)

    def _stf_keys(self, table: R.Table, text: str) -> tuple:
        given = {}
        for word in text.split():
            k, sep, v = word.partition(":")
            if not sep:
                raise StfError(f"{self.where()}: table key must be name:value, got {word!r}")
            given[self._key_index(table, k)] = v
        return tuple(_stf_key(spec, given.get(i), self.where()) for i, spec in enumerate(table.keys))

    def _key_index(self, table: R.Table, name: str) -> int:
        name = re.sub(r"\$(\d+)", r"[\1]", name)
        candidates = [name, name + ".$valid$", name[:-6] + ".$valid$" if name.endswith(".valid") else None]
        names = [k.name for k in table.keys]
        for c in candidates:
            if c in names:
                return names.index(c)
        for i, n in enumerate(names):
            if n.endswith("." + name) or (name == "valid" and n.endswith("$valid$")):
                return i
        raise StfError(f"{self.where()}: table {table.name} has no key field {name!r} (keys: {', '.join(names)})")

    # -- comparison ---------------------------------------------------------------------------
    def _compare(self) -> None:
        for port in sorted(self.observed):
            if port in self.any_ports:
                continue
            expected = self.expects.get(port, [])
            got = self.received.get(port, [])
            for i, exp in enumerate(expected):
                if i >= len(got):
                    self.failures.append(f"port {port}: expected packet {i} ({self.path}:{exp.line}) was not received")
                    continue
                problem = compare_packet(exp, got[i])
                if problem:
                    self.failures.append(f"port {port}: packet {i} ({self.path}:{exp.line}) differs: {problem}")
            for i in range(len(expected), len(got)):
                self.failures.append(f"port {port}: unexpected packet {i}: {got[i].hex().upper()}")


def compare_packet(exp: Expectation, data: bytes) -> str | None:
    """None if `data` matches the expectation, else a readable description of the difference."""
    got = data.hex().upper()
    pattern = exp.pattern or ""
    if len(got) < len(pattern):
        return f"received {len(got) // 2} bytes, expected {len(pattern) // 2}\n    expected {pattern}\n    received {got}"
    if exp.exact and len(got) != len(pattern):
        return f"received {len(got) // 2} bytes, expected exactly {len(pattern) // 2}\n    expected {pattern}\n    received {got}"
    marks = "".join(" " if p == "*" or p == g else "^" for p, g in zip(pattern, got))
    if "^" not in marks:
        return None
    first = marks.index("^")
    return (f"first difference at byte {first // 2} (nibble {first})\n    expected {pattern}\n"
            f"    received {got[:len(pattern)]}\n             {marks}")


def _lines(text: str):
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line:
            yield n, line


def _split_action(text: str, where: str) -> tuple[str, str, dict]:
    m = re.match(r"(.*?)\s*([\w.$]+)\s*\((.*)\)\s*$", text)
    if not m:
        raise StfError(f"{where}: expected an action call name(arg:value, ...)")
    args = {}
    for part in filter(None, (p.strip() for p in m.group(3).split(","))):
        k, sep, v = part.partition(":")
        if not sep:
            raise StfError(f"{where}: action argument must be name:value, got {part!r}")
        args[k.strip()] = v.strip()
    return m.group(1), m.group(2), args


def _number(text: str, width: int, where: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise StfError(f"{where}: {text!r} is not a number") from None
    return v & ((1 << width) - 1)


def _stf_key(spec: R.KeySpec, value: str | None, where: str) -> tuple:
    full = (1 << spec.width) - 1
    if value is None:
        if spec.kind == "lpm":
            return (0, 0, 0)
        if spec.kind == "range":
            return (0, full)
        return (0, 0) if spec.kind in ("ternary", "optional") else (0, full)
    if spec.kind in ("ternary", "optional"):
        return _ternary(value, spec.width, where)
    if spec.kind == "lpm":
        return _lpm(value, spec.width, where)
    if spec.kind == "range":
        lo, sep, hi = value.partition("..") if ".." in value else value.partition("->")
        if not sep:
            v = _number(value, spec.width, where)
            return (v, v)
        return (_number(lo, spec.width, where), _number(hi, spec.width, where))
    return (_number(value, spec.width, where), full)


def _ternary(value: str, width: int, where: str) -> tuple:
    if "&&&" in value:
        v, m = value.split("&&&", 1)
        mask = _number(m, width, where)
        return (_number(v, width, where) & mask, mask)
    prefix = value[:2].lower()
    bits = {"0x": 4, "0b": 1, "0o": 3}.get(prefix)
    if bits is None:
        raise StfError(f"{where}: ternary key value {value!r} must be hex, binary or octal (decimal is not supported)")
    digits = value[2:].replace("_", "")
    full_digit = (1 << bits) - 1
    v = m = 0
    for d in digits:
        v <<= bits
        m <<= bits
        if d != "*":
            v |= int(d, 16)
            m |= full_digit
    mask = m & ((1 << width) - 1)
    return (v & mask, mask)


def _lpm(value: str, width: int, where: str) -> tuple:
    if "/" in value:
        v, plen_s = value.split("/", 1)
        plen = int(plen_s, 0)
    else:
        prefix = value[:2].lower()
        bits = {"0x": 4, "0b": 1, "0o": 3}.get(prefix)
        if bits is None:
            v, plen = value, width
        else:
            digits = value[2:]
            plen = min(width, (len(digits) - digits.count("*")) * bits)
            v = value.replace("*", "0")
    mask = ((1 << plen) - 1) << (width - plen) if plen else 0
    return (_number(v, width, where) & mask, mask, plen)


def run_stf(program: str, stf_path: str, include_path=None, defines=None) -> StfResult:
    """Load `program`, run the STF file against it and return the result."""
    sw = SimpleSwitch(program, include_path, defines, clock=_FakeClock())
    with open(stf_path, encoding="utf-8") as f:
        text = f.read()
    return StfRunner(sw, stf_path).run(text)


class _FakeClock:
    """Deterministic time for tests: advances 1 microsecond per reading."""

    def __init__(self):
        self.t = 0

    def __call__(self) -> int:
        self.t += 1
        return self.t
