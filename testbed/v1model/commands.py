"""The simple_switch_CLI command language, executed against a SimpleSwitch.

`ControlPlane(switch).execute("table_add ipv4_lpm forward 10.0.0.1/32 => 1")` returns the text
BMv2's CLI would print, or raises CommandError naming the command and what is wrong. Names are
fully-qualified control-plane names or any unique dotted suffix of one, as in runtime_CLI.
"""
from __future__ import annotations

import ipaddress
import time

from . import runtime as R
from .errors import CommandError


def parse_value(text: str, width: int, what: str) -> int:
    """A CLI number: decimal/0x/0o/0b, or dotted IPv4 (32 bits), MAC (48), IPv6 (128)."""
    try:
        if width == 32 and text.count(".") == 3:
            return int(ipaddress.IPv4Address(text))
        if width == 48 and text.count(":") == 5:
            return int(text.replace(":", ""), 16)
        if width == 128 and ":" in text:
            return int(ipaddress.IPv6Address(text))
        value = int(text, 0)
    except ValueError:
        raise CommandError(f"{what}: {text!r} is not a number") from None
    if value < 0:
        value &= (1 << width) - 1
    if value >> width:
        raise CommandError(f"{what}: {text} does not fit in {width} bits")
    return value


def _suffix_lookup(names, wanted: str, kind: str, command: str):
    if wanted in names:
        return wanted
    matches = [n for n in names if n.endswith("." + wanted)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise CommandError(f"{command}: no {kind} named {wanted!r}" + _known(names))
    raise CommandError(f"{command}: {kind} name {wanted!r} is ambiguous: {', '.join(sorted(matches))}")


def _known(names) -> str:
    names = sorted(names)
    if not names:
        return ""
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return f" (known: {shown})"


class ControlPlane:
    """Executes CLI commands; one instance per switch."""

    def __init__(self, switch):
        self.sw = switch
        self.reg = switch.registry

    # -- entry points -------------------------------------------------------------------------
    def execute(self, line: str) -> str:
        """Run one command line; return its output (possibly empty)."""
        line = line.strip()
        if not line or line.startswith(("#", "//")):
            return ""
        parts = line.split()
        name, args = parts[0], parts[1:]
        handler = getattr(self, "do_" + name, None)
        if handler is None:
            raise CommandError(f"unknown command {name!r} (try 'help')")
        return handler(args, name) or ""

    def run_script(self, text: str) -> list[str]:
        """Run every line; stop at the first error (raised with its line number)."""
        outputs = []
        for n, line in enumerate(text.splitlines(), 1):
            try:
                outputs.append(self.execute(line))
            except CommandError as e:
                raise CommandError(f"line {n}: {e}") from None
        return outputs

    # -- names --------------------------------------------------------------------------------
    def table(self, name: str, command: str) -> R.Table:
        return self.reg.tables[_suffix_lookup(self.reg.tables, name, "table", command)]

    def action(self, table: R.Table, name: str, command: str) -> R.ActionInfo:
        return table.actions[_suffix_lookup(table.actions, name, f"action of table {table.name}", command)]

    def _obj(self, registry: dict, name: str, kind: str, command: str):
        return registry[_suffix_lookup(registry, name, kind, command)]

    def _need(self, args, n: int, usage: str, command: str, at_most: int | None = None) -> None:
        if len(args) < n or (at_most is not None and len(args) > at_most):
            raise CommandError(f"{command}: wrong number of arguments; usage: {command} {usage}")

    def _int(self, text: str, what: str, command: str) -> int:
        try:
            return int(text, 0)
        except ValueError:
            raise CommandError(f"{command}: {what} must be an integer, got {text!r}") from None

    # -- tables -------------------------------------------------------------------------------
    def do_table_add(self, args, cmd):
        self._need(args, 2, "<table> <action> <match fields> => <action params> [priority]", cmd)
        table = self.table(args[0], cmd)
        action = self.action(table, args[1], cmd)
        if action.default_only:
            raise CommandError(f"{cmd}: action {action.name} can only be the default action of {table.name}")
        keys, params = _split_arrow(args[2:])
        prio = 0
        if table.needs_priority:
            if not params or len(params) != len(action.params) + 1:
                raise CommandError(f"{cmd}: table {table.name} has ternary/range keys, so the entry needs a priority after the action parameters")
            prio = self._int(params[-1], "priority", cmd)
            params = params[:-1]
        match = self._match(table, keys, cmd)
        values = self._action_args(action, params, cmd)
        if table.entries_const:
            raise CommandError(f"{cmd}: Invalid table operation (table {table.name} has const entries)")
        if len(table.entries) >= table.size:
            raise CommandError(f"{cmd}: Invalid table operation (TABLE_FULL: {table.name} holds {table.size} entries)")
        if table.find_duplicate(match, prio) is not None:
            raise CommandError(f"{cmd}: Invalid table operation (DUPLICATE_ENTRY in {table.name})")
        e = table.add(match, action, values, prio)
        return f"Adding entry to {table.kind} match table {table.name}\nEntry has been added with handle {e.handle}"

    def _match(self, table: R.Table, keys: list[str], cmd: str) -> tuple:
        if len(keys) != len(table.keys):
            names = ", ".join(f"{k.name} ({k.kind})" for k in table.keys)
            raise CommandError(f"{cmd}: table {table.name} needs {len(table.keys)} match fields [{names}], got {len(keys)}")
        return tuple(self._key(spec, text, cmd) for spec, text in zip(table.keys, keys))

    def _key(self, spec: R.KeySpec, text: str, cmd: str) -> tuple:
        full = (1 << spec.width) - 1
        what = f"match field {spec.name}"
        if spec.kind == "lpm":
            if "/" not in text:
                raise CommandError(f"{cmd}: Invalid match key: {what} is lpm and needs value/prefix-length, got {text!r}")
            v, plen_s = text.rsplit("/", 1)
            plen = self._int(plen_s, "prefix length", cmd)
            if not 0 <= plen <= spec.width:
                raise CommandError(f"{cmd}: Invalid match key: prefix length {plen} out of range for {spec.width}-bit {spec.name}")
            mask = ((1 << plen) - 1) << (spec.width - plen)
            return (parse_value(v, spec.width, what) & mask, mask, plen)
        if spec.kind in ("ternary", "optional"):
            if "&&&" in text:
                v, m = text.split("&&&", 1)
                mask = parse_value(m, spec.width, what)
                return (parse_value(v, spec.width, what) & mask, mask)
            if spec.kind == "optional" and text in ("*", "_"):
                return (0, 0)
            if spec.kind == "ternary":
                raise CommandError(f"{cmd}: Invalid match key: {what} is ternary and needs value&&&mask, got {text!r}")
            return (parse_value(text, spec.width, what), full)
        if spec.kind == "range":
            if "->" not in text:
                raise CommandError(f"{cmd}: Invalid match key: {what} is range and needs low->high, got {text!r}")
            lo, hi = text.split("->", 1)
            lo_v, hi_v = parse_value(lo, spec.width, what), parse_value(hi, spec.width, what)
            if lo_v > hi_v:
                raise CommandError(f"{cmd}: Invalid match key: range {text} is empty")
            return (lo_v, hi_v)
        return (parse_value(text, spec.width, what), full)

    def _action_args(self, action: R.ActionInfo, params: list[str], cmd: str) -> tuple:
        if len(params) != len(action.params):
            names = ", ".join(f"{n}:{w}" for n, w, _ in action.params)
            raise CommandError(f"{cmd}: action {action.name} takes {len(action.params)} parameters [{names}], got {len(params)}")
        out = []
        for (name, width, signed), text in zip(action.params, params):
            v = parse_value(text, width, f"parameter {name} of {action.name}")
            if signed and v >> (width - 1):
                v -= 1 << width
            out.append(v)
        return tuple(out)

    def do_table_set_default(self, args, cmd):
        self._need(args, 2, "<table> <action> <action params>", cmd)
        table = self.table(args[0], cmd)
        action = self.action(table, args[1], cmd)
        if table.default_const:
            raise CommandError(f"{cmd}: Invalid table operation (DEFAULT_ENTRY_IS_CONST for {table.name})")
        if action.table_only:
            raise CommandError(f"{cmd}: action {action.name} cannot be the default action of {table.name}")
        params = args[2:]
        if params and params[0] == "=>":
            params = params[1:]
        table.set_default(action, self._action_args(action, params, cmd))
        return f"Setting default action of {table.name}\naction: {action.name}"

    def do_table_reset_default(self, args, cmd):
        self._need(args, 1, "<table>", cmd, 1)
        table = self.table(args[0], cmd)
        if table.initial_default is not None:
            table.set_default(*table.initial_default)
        return ""

    def do_table_delete(self, args, cmd):
        self._need(args, 2, "<table> <entry handle>", cmd, 2)
        table = self.table(args[0], cmd)
        handle = self._handle(table, args[1], cmd)
        table.delete(handle)
        return f"Deleting entry {handle} from {table.name}"

    def _handle(self, table: R.Table, text: str, cmd: str) -> int:
        h = self._int(text, "entry handle", cmd)
        if h not in table.entries:
            raise CommandError(f"{cmd}: Invalid table operation (INVALID_HANDLE: {table.name} has no entry {h})")
        if table.entries[h].is_const:
            raise CommandError(f"{cmd}: Invalid table operation (entry {h} of {table.name} is const)")
        return h

    def do_table_modify(self, args, cmd):
        self._need(args, 3, "<table> <action> <entry handle> [action params]", cmd)
        table = self.table(args[0], cmd)
        action = self.action(table, args[1], cmd)
        handle = self._handle(table, args[2], cmd)
        params = args[3:]
        if params and params[0] == "=>":
            params = params[1:]
        table.modify(handle, action, self._action_args(action, params, cmd))
        return f"Modifying entry {handle} for {table.kind} match table {table.name}"

    def do_table_clear(self, args, cmd):
        self._need(args, 1, "<table>", cmd, 1)
        table = self.table(args[0], cmd)
        table.clear()
        return f"Clearing table {table.name}"

    def do_table_num_entries(self, args, cmd):
        self._need(args, 1, "<table>", cmd, 1)
        return str(len(self.table(args[0], cmd).entries))

    def do_table_dump(self, args, cmd):
        self._need(args, 1, "<table>", cmd, 1)
        table = self.table(args[0], cmd)
        lines = ["==========", "TABLE ENTRIES"]
        for h in sorted(table.entries):
            lines += ["**********"] + self._dump_entry(table, table.entries[h])
        lines += ["==========", "Dumping default entry"]
        d = table.default
        lines.append(f"Action entry: {d.action.name} - {_hex_args(d)}" if d else "EMPTY")
        lines.append("==========")
        return "\n".join(lines)

    def do_table_dump_entry(self, args, cmd):
        self._need(args, 2, "<table> <entry handle>", cmd, 2)
        table = self.table(args[0], cmd)
        h = self._int(args[1], "entry handle", cmd)
        if h not in table.entries:
            raise CommandError(f"{cmd}: Invalid table operation (INVALID_HANDLE: {table.name} has no entry {h})")
        return "\n".join(self._dump_entry(table, table.entries[h]))

    def _dump_entry(self, table, e: R.Entry) -> list[str]:
        lines = [f"Dumping entry {hex(e.handle)}", "Match key:"]
        for spec, m in zip(table.keys, e.match):
            digits = (spec.width + 3) // 4
            if spec.kind == "lpm":
                text = f"{m[0]:0{digits}x}/{m[2]}"
            elif spec.kind == "range":
                text = f"{m[0]:0{digits}x} -> {m[1]:0{digits}x}"
            elif spec.kind in ("ternary", "optional"):
                text = f"{m[0]:0{digits}x} &&& {m[1]:0{digits}x}"
            else:
                text = f"{m[0]:0{digits}x}"
            lines.append(f"* {spec.name:<20}: {spec.kind.upper():<10}{text}")
        if table.needs_priority:
            lines.append(f"Priority: {e.priority}")
        lines.append(f"Action entry: {e.action.name} - {_hex_args(e)}")
        return lines

    def do_show_tables(self, args, cmd):
        return "\n".join(f"{t.name:<40}[implementation=None, mk={'  '.join(k.name + '(' + k.kind + ', ' + str(k.width) + ')' for k in t.keys)}]"
                         for t in self.reg.tables.values())

    def do_table_info(self, args, cmd):
        self._need(args, 1, "<table>", cmd, 1)
        t = self.table(args[0], cmd)
        return "\n".join([f"{t.name} [{t.kind}, size={t.size}]"] + [f"  key {k.name}: {k.kind} {k.width}" for k in t.keys]
                         + [f"  action {a.name}({', '.join(n + ':' + str(w) for n, w, _ in a.params)})" for a in t.actions.values()])

    def do_table_show_actions(self, args, cmd):
        self._need(args, 1, "<table>", cmd, 1)
        t = self.table(args[0], cmd)
        return "\n".join(f"{a.name:<40}[{', '.join(n + '(' + str(w) + ')' for n, w, _ in a.params)}]" for a in t.actions.values())

    def do_show_actions(self, args, cmd):
        seen = {}
        for t in self.reg.tables.values():
            seen.update(t.actions)
        return "\n".join(f"{a.name:<40}[{', '.join(n + '(' + str(w) + ')' for n, w, _ in a.params)}]" for a in seen.values())

    # -- registers, counters, meters ----------------------------------------------------------
    def do_register_read(self, args, cmd):
        self._need(args, 1, "<register> [index]", cmd, 2)
        r = self._obj(self.reg.registers, args[0], "register", cmd)
        if len(args) == 1:
            return f"{r.name}= " + ", ".join(str(_unsigned(v, r.width)) for v in r.cells)
        i = self._index(r.size, args[1], r.name, cmd)
        return f"{r.name}[{i}]= {_unsigned(r.cells[i], r.width)}"

    def _index(self, size: int, text: str, name: str, cmd: str) -> int:
        i = self._int(text, "index", cmd)
        if not 0 <= i < size:
            raise CommandError(f"{cmd}: Invalid register/counter operation (INVALID_INDEX: {name} has {size} cells, index {i})")
        return i

    def do_register_write(self, args, cmd):
        self._need(args, 3, "<register> <index> <value>", cmd, 3)
        r = self._obj(self.reg.registers, args[0], "register", cmd)
        i = self._index(r.size, args[1], r.name, cmd)
        v = parse_value(args[2], r.width, f"value for {r.name}")
        if r.signed and v >> (r.width - 1):
            v -= 1 << r.width
        r.cells[i] = v
        return ""

    def do_register_reset(self, args, cmd):
        self._need(args, 1, "<register>", cmd, 1)
        self._obj(self.reg.registers, args[0], "register", cmd).reset()
        return ""

    def _counter(self, name: str, cmd: str):
        both = {**self.reg.counters, **self.reg.direct_counters}
        return self._obj(both, name, "counter", cmd)

    def do_counter_read(self, args, cmd):
        self._need(args, 2, "<counter> <index>", cmd, 2)
        c = self._counter(args[0], cmd)
        if isinstance(c, R.DirectCounter):
            e = self._direct_entry(c.table, args[1], cmd)
            return f"{c.name}[{e.handle}]=  BmCounterValue(packets={e.packets}, bytes={e.bytes})"
        i = self._index(c.size, args[1], c.name, cmd)
        return f"{c.name}[{i}]=  BmCounterValue(packets={c.packets[i]}, bytes={c.bytes[i]})"

    def _direct_entry(self, table, text: str, cmd: str) -> R.Entry:
        h = self._int(text, "entry handle", cmd)
        if table is None or h not in table.entries:
            raise CommandError(f"{cmd}: Invalid counter operation (INVALID_HANDLE {h})")
        return table.entries[h]

    def do_counter_write(self, args, cmd):
        self._need(args, 4, "<counter> <index> <packets> <bytes>", cmd, 4)
        c = self._counter(args[0], cmd)
        packets, nbytes = self._int(args[2], "packets", cmd), self._int(args[3], "bytes", cmd)
        if isinstance(c, R.DirectCounter):
            e = self._direct_entry(c.table, args[1], cmd)
            e.packets, e.bytes = packets, nbytes
        else:
            i = self._index(c.size, args[1], c.name, cmd)
            c.packets[i], c.bytes[i] = packets, nbytes
        return ""

    def do_counter_reset(self, args, cmd):
        self._need(args, 1, "<counter>", cmd, 1)
        c = self._counter(args[0], cmd)
        if isinstance(c, R.DirectCounter):
            for e in (c.table.entries.values() if c.table else []):
                e.packets = e.bytes = 0
        else:
            c.reset()
        return ""

    def _meter_cell(self, name: str, index: str, cmd: str) -> R.MeterCell:
        both = {**self.reg.meters, **self.reg.direct_meters}
        m = self._obj(both, name, "meter", cmd)
        if isinstance(m, R.DirectMeter):
            return self._direct_entry(m.table, index, cmd).meter
        return m.cells[self._index(m.size, index, m.name, cmd)]

    def do_meter_set_rates(self, args, cmd):
        self._need(args, 4, "<meter> <index> <rate_1>:<burst_1> <rate_2>:<burst_2>", cmd, 4)
        cell = self._meter_cell(args[0], args[1], cmd)
        cell.set_rates(*self._rates(args[2:], cmd))
        return ""

    def do_meter_array_set_rates(self, args, cmd):
        self._need(args, 3, "<meter> <rate_1>:<burst_1> <rate_2>:<burst_2>", cmd, 3)
        m = self._obj(self.reg.meters, args[0], "meter", cmd)
        rates = self._rates(args[1:], cmd)
        for cell in m.cells:
            cell.set_rates(*rates)
        return ""

    def do_meter_get_rates(self, args, cmd):
        self._need(args, 2, "<meter> <index>", cmd, 2)
        c = self._meter_cell(args[0], args[1], cmd)
        return f"{c.cir}:{c.cbs} {c.pir}:{c.pbs}" if c.configured else "meter not configured"

    def _rates(self, specs, cmd) -> tuple:
        out = []
        for s in specs:
            try:
                r, b = s.split(":")
                out += [float(r), int(b, 0)]
            except ValueError:
                raise CommandError(f"{cmd}: rate must be <rate>:<burst> (units per microsecond : units), got {s!r}") from None
        if out[0] > out[2]:
            raise CommandError(f"{cmd}: the committed rate must not exceed the peak rate")
        return tuple(out)

    # -- mirroring and multicast ----------------------------------------------------------------
    def do_mirroring_add(self, args, cmd):
        self._need(args, 2, "<session id> <egress port>", cmd, 2)
        sid = self._session(args[0], cmd)
        self.sw.mirroring[sid] = (self._int(args[1], "egress port", cmd), self.sw.mirroring.get(sid, (None, None))[1])
        return ""

    def do_mirroring_add_mc(self, args, cmd):
        self._need(args, 2, "<session id> <multicast group>", cmd, 2)
        sid = self._session(args[0], cmd)
        self.sw.mirroring[sid] = (self.sw.mirroring.get(sid, (None, None))[0], self._int(args[1], "group", cmd))
        return ""

    def do_mirroring_delete(self, args, cmd):
        self._need(args, 1, "<session id>", cmd, 1)
        sid = self._session(args[0], cmd)
        if self.sw.mirroring.pop(sid, None) is None:
            raise CommandError(f"{cmd}: Invalid mirroring operation (SESSION_NOT_FOUND: {sid})")
        return ""

    def do_mirroring_get(self, args, cmd):
        self._need(args, 1, "<session id>", cmd, 1)
        sid = self._session(args[0], cmd)
        if sid not in self.sw.mirroring:
            raise CommandError(f"{cmd}: Invalid mirroring operation (SESSION_NOT_FOUND: {sid})")
        port, grp = self.sw.mirroring[sid]
        return f"MirroringSessionConfig(mgid={grp}, port={port})"

    def _session(self, text: str, cmd: str) -> int:
        sid = self._int(text, "session id", cmd)
        if not 0 <= sid < 32768:
            raise CommandError(f"{cmd}: session id must be in 0..32767, got {sid}")
        return sid

    def do_mc_mgrp_create(self, args, cmd):
        self._need(args, 1, "<group id>", cmd, 1)
        gid = self._int(args[0], "group id", cmd)
        if not 0 < gid < 65536:
            raise CommandError(f"{cmd}: group id must be in 1..65535, got {gid}")
        if gid in self.sw.mc_groups:
            raise CommandError(f"{cmd}: Invalid PRE operation (group {gid} exists)")
        self.sw.mc_groups[gid] = []
        return f"Creating multicast group {gid}"

    def do_mc_mgrp_destroy(self, args, cmd):
        self._need(args, 1, "<group id>", cmd, 1)
        gid = self._group(args[0], cmd)
        for h in self.sw.mc_groups.pop(gid):
            self.sw.mc_nodes[h].group = None
        return f"Destroying multicast group {gid}"

    def _group(self, text, cmd) -> int:
        gid = self._int(text, "group id", cmd)
        if gid not in self.sw.mc_groups:
            raise CommandError(f"{cmd}: Invalid PRE operation (INVALID_MGID {gid})")
        return gid

    def _node(self, text, cmd) -> int:
        h = self._int(text, "node handle", cmd)
        if h not in self.sw.mc_nodes:
            raise CommandError(f"{cmd}: Invalid PRE operation (INVALID_L1_HANDLE {h})")
        return h

    def _ports(self, items, cmd) -> list[int]:
        ports = []
        for p in items:
            if p == "|":
                break
            v = self._int(p, "port", cmd)
            if v in ports:
                raise CommandError(f"{cmd}: port {v} listed twice")
            ports.append(v)
        return ports

    def do_mc_node_create(self, args, cmd):
        self._need(args, 1, "<rid> <port list> [| <lag list>]", cmd)
        rid = self._int(args[0], "replication id", cmd)
        h = self.sw.next_mc_handle
        self.sw.next_mc_handle += 1
        self.sw.mc_nodes[h] = R.McNode(rid, self._ports(args[1:], cmd))
        return f"Creating node with rid {rid} , port map and lag map\nnode was created with handle {h}"

    def do_mc_node_update(self, args, cmd):
        self._need(args, 1, "<node handle> <port list> [| <lag list>]", cmd)
        h = self._node(args[0], cmd)
        self.sw.mc_nodes[h].ports = self._ports(args[1:], cmd)
        return f"Updating node {h}"

    def do_mc_node_associate(self, args, cmd):
        self._need(args, 2, "<group id> <node handle>", cmd, 2)
        gid, h = self._group(args[0], cmd), self._node(args[1], cmd)
        node = self.sw.mc_nodes[h]
        if node.group is not None:
            raise CommandError(f"{cmd}: Invalid PRE operation (node {h} already belongs to group {node.group})")
        node.group = gid
        self.sw.mc_groups[gid].append(h)
        return f"Associating node {h} to multicast group {gid}"

    def do_mc_node_dissociate(self, args, cmd):
        self._need(args, 2, "<group id> <node handle>", cmd, 2)
        gid, h = self._group(args[0], cmd), self._node(args[1], cmd)
        if h not in self.sw.mc_groups[gid]:
            raise CommandError(f"{cmd}: Invalid PRE operation (node {h} is not in group {gid})")
        self.sw.mc_groups[gid].remove(h)
        self.sw.mc_nodes[h].group = None
        return f"Dissociating node {h} from multicast group {gid}"

    def do_mc_node_destroy(self, args, cmd):
        self._need(args, 1, "<node handle>", cmd, 1)
        h = self._node(args[0], cmd)
        node = self.sw.mc_nodes.pop(h)
        if node.group is not None:
            self.sw.mc_groups[node.group].remove(h)
        return f"Destroying node {h}"

    def do_mc_dump(self, args, cmd):
        lines = ["==========", "MC ENTRIES"]
        for gid, handles in sorted(self.sw.mc_groups.items()):
            lines.append(f"**********\nmgrp({gid})")
            for h in handles:
                n = self.sw.mc_nodes[h]
                lines.append(f"  -> (L1h={h}, rid={n.rid}) -> (ports=[{', '.join(map(str, sorted(n.ports)))}], lags=[])")
        return "\n".join(lines + ["=========="])

    # -- parser value sets, hashes, misc --------------------------------------------------------
    def do_pvs_add(self, args, cmd):
        self._need(args, 2, "<value set> <value>[&&&<mask>]", cmd, 2)
        vs = self._obj(self.reg.value_sets, args[0], "parser value set", cmd)
        v, _, m = args[1].partition("&&&")
        full = (1 << vs.width) - 1
        entry = (parse_value(v, vs.width, vs.name), parse_value(m, vs.width, vs.name) if m else full)
        entry = (entry[0] & entry[1], entry[1])
        if len(vs.members) >= vs.size:
            raise CommandError(f"{cmd}: parser value set {vs.name} is full ({vs.size})")
        vs.members.append(entry)
        return ""

    def do_pvs_remove(self, args, cmd):
        self._need(args, 2, "<value set> <value>", cmd, 2)
        vs = self._obj(self.reg.value_sets, args[0], "parser value set", cmd)
        v = parse_value(args[1].partition("&&&")[0], vs.width, vs.name)
        vs.members = [e for e in vs.members if e[0] != v]
        return ""

    def do_pvs_get(self, args, cmd):
        vs = self._obj(self.reg.value_sets, args[0], "parser value set", cmd)
        return "\n".join(f"{hex(v)}&&&{hex(m)}" for v, m in vs.members)

    def do_pvs_clear(self, args, cmd):
        self._obj(self.reg.value_sets, args[0], "parser value set", cmd).members = []
        return ""

    def _crc_params(self, args, cmd, width):
        self._need(args, 6, "<name> <polynomial> <initial remainder> <final xor value> <reflect data?> <reflect remainder?>", cmd, 6)
        vals = [self._int(a, "parameter", cmd) for a in args[1:4]]
        flags = [a.lower() in ("true", "1") for a in args[4:6]]
        self.sw.hashes.set_parameters(width, *vals, *flags)
        return ""

    def do_set_crc16_parameters(self, args, cmd):
        return self._crc_params(args, cmd, 16)

    def do_set_crc32_parameters(self, args, cmd):
        return self._crc_params(args, cmd, 32)

    def do_reset_state(self, args, cmd):
        self.sw.reset_state()
        return ""

    def do_get_time_elapsed(self, args, cmd):
        return str(self.sw.clock())

    def do_get_time_since_epoch(self, args, cmd):
        return str(int(time.time() * 1_000_000))

    def do_set_queue_depth(self, args, cmd):
        self._need(args, 1, "<nb_pkts> [<egress_port> [<priority>]]", cmd, 3)
        self._int(args[0], "depth", cmd)
        return ""

    def do_set_queue_rate(self, args, cmd):
        self._need(args, 1, "<rate_pps> [<egress_port> [<priority>]]", cmd, 3)
        self._int(args[0], "rate", cmd)
        return ""

    def do_switch_info(self, args, cmd):
        return f"program: {self.sw.program_path}\ntarget: bundled v1model (testbed.v1model)\ndrop port: {self.sw.drop_port}"

    def do_help(self, args, cmd):
        names = sorted(n[3:] for n in dir(self) if n.startswith("do_"))
        return "Documented commands:\n" + "  ".join(names)


def _split_arrow(tokens: list[str]) -> tuple[list[str], list[str]]:
    if "=>" in tokens:
        i = tokens.index("=>")
        return tokens[:i], tokens[i + 1:]
    return tokens, []


def _hex_args(e: R.Entry) -> str:
    return ", ".join(f"{a:x}" if a >= 0 else str(a) for a in e.args)


def _unsigned(v: int, width: int) -> int:
    return v & ((1 << width) - 1)
