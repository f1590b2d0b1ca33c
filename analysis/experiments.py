"""The tables each experiment's figure needs, from run directories (or, for program resources,
from a loaded program): pure functions, nothing printed, nothing plotted.

Sections, one per experiment script of experiments/:

- resources: `program_resources`, `pipeline_depth` (a loaded SimpleSwitch: registry + checked
  AST), `resource_table`.
- throughput: `rate_table` (per-repetition timings to packets/s and the RedPlane/no-FT ratio).
- latency: `probe_rtts` (a run's probe-sender logs), `first_vs_later`, `latency_table`.
- overhead: `phase_packets`, `overhead_row`, `renewal_rate`.
- lease sweep: `lease_row`.
- snapshot: `sketch_errors`.
- store failure: `acked_writes`, `lost_writes`.

Units: seconds, bytes, packets; rates per second. Times from logs and pcaps are seconds since
the Unix epoch.
"""
from __future__ import annotations

import glob
import json
import os
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from analysis.metrics import latency_percentiles, replication_overhead

__all__ = ["PERCENTILES", "acked_writes", "first_vs_later", "latency_table", "lease_row",
           "lost_writes", "overhead_row", "phase_packets", "pipeline_depth", "probe_rtts",
           "program_resources", "rate_table", "delivered_probes", "shard_heads", "installed_entries", "used_objects", "read_json", "renewal_rate", "resource_table",
           "sketch_errors"]

PERCENTILES = (50, 90, 99)


def read_json(run_dir: str, name: str):
    """<run_dir>/<name>.json, or None if the run did not write it."""
    path = os.path.join(run_dir, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------------------------------------
# Resources (a loaded program: registry + checked AST)

def program_resources(switch) -> dict:
    """What a loaded program (`testbed.v1model.load(...)`) declares and what its reachable code
    uses, from its registry and checked AST:

    - ``tables``/``actions``/``registers``/``register_bits``/``counters``/``counter_cells``:
      declared match-action tables, distinct actions any table can run (NoAction counted
      once), register arrays and their size x width, indexed plus direct counters and their
      cells;
    - ``used_*``: the same over what code reachable from the ingress and egress controls
      applies or calls (`used_objects`), i.e. what a compiler keeping only live objects would
      allocate;
    - ``depth_ingress``/``depth_egress`` (`pipeline_depth`) and ``depth`` = their sum: tables a
      packet can meet one after the other on its way through.
    """
    reg = switch.registry
    used = used_objects(switch)
    tables = list(reg.tables.values())
    out = _counts(tables, list(reg.registers.values()),
                  list(reg.counters.values()) + list(reg.direct_counters.values()), "")
    out.update(_counts([t for t in tables if t.name in used["tables"]],
                       [r for r in reg.registers.values() if r.name in used["registers"]],
                       [c for c in list(reg.counters.values()) + list(reg.direct_counters.values())
                        if c.name in used["counters"]], "used_"))
    out["used_actions"] = len(used["actions"])
    for role in ("ingress", "egress"):
        out[f"depth_{role}"] = pipeline_depth(reg.blocks[role])
    out["depth"] = out["depth_ingress"] + out["depth_egress"]
    return out


def _counts(tables, registers, counters, prefix: str) -> dict:
    actions = {name for t in tables for name in t.actions}
    cells = sum(c.size if hasattr(c, "size") else (c.table.size if c.table else 0) for c in counters)
    return {f"{prefix}tables": len(tables), f"{prefix}actions": len(actions),
            f"{prefix}registers": len(registers),
            f"{prefix}register_bits": int(sum(r.size * r.width for r in registers)),
            f"{prefix}counters": len(counters), f"{prefix}counter_cells": int(cells)}


def used_objects(switch) -> dict:
    """Full names of the tables, actions, registers and counters that code reachable from the
    ingress and egress controls applies or calls: a table's every action counts as reachable
    once the table is applied; nested controls are followed through their ``apply``."""
    walker = _UsageWalker()
    for role in ("ingress", "egress"):
        walker.control(switch.registry.blocks[role])
    return walker.used


class _UsageWalker:
    def __init__(self):
        self.used = {"tables": set(), "actions": set(), "registers": set(), "counters": set()}
        self.seen: set = set()

    def control(self, inst) -> None:
        if id(inst) in self.seen:
            return
        self.seen.add(id(inst))
        self.node(inst.decl.body, inst)

    def node(self, node, inst) -> None:
        from testbed.v1model import syntax as S
        if isinstance(node, S.Call):
            self.call(node, inst)
        if isinstance(node, S.Node):
            for child in _children(node):
                self.node(child, inst)

    def call(self, call, inst) -> None:
        from testbed.v1model import syntax as S
        func = call.func
        if isinstance(func, S.Member) and isinstance(func.expr, S.Name):
            self.method(inst.objects.get(func.expr.name, inst.ctor.get(func.expr.name)), func.name, inst)
        elif isinstance(func, S.Name):
            self.action(func.name, inst)

    def method(self, target, name: str, inst) -> None:
        kind = type(target).__name__
        if kind == "Table" and name == "apply":
            self.used["tables"].add(target.name)
            for action in target.actions:
                self.used["actions"].add(action)
                self.action(action.rsplit(".", 1)[-1], inst)
        elif kind == "Instance" and name == "apply" and getattr(target, "kind", "") == "control":
            self.control(target)
        elif kind == "Register":
            self.used["registers"].add(target.name)
        elif kind in ("Counter", "DirectCounter"):
            self.used["counters"].add(target.name)

    def action(self, name: str, inst) -> None:
        """Walk the body of the action or function `name` local to `inst` (once)."""
        from testbed.v1model import syntax as S
        for decl in getattr(inst.decl, "locals", []):
            if isinstance(decl, (S.ActionDecl, S.FunctionDecl)) and decl.name == name:
                key = (id(inst), name)
                if key not in self.seen:
                    self.seen.add(key)
                    self.node(decl.body, inst)


def installed_entries(switch) -> dict:
    """Entries the control plane installed, per table (short name -> count), plus ``total``
    and ``used`` (in the tables reachable code applies, see `used_objects`)."""
    tables = switch.registry.tables
    used = used_objects(switch)["tables"]
    counts = {name.rsplit(".", 1)[-1]: len(t.entries) for name, t in tables.items()}
    counts["total"] = sum(len(t.entries) for t in tables.values())
    counts["used"] = sum(len(t.entries) for name, t in tables.items() if name in used)
    return counts


def pipeline_depth(instance) -> int:
    """The longest chain of table applications through a control instance (an elaborated
    `Instance`): statements in sequence add up, the branches of an ``if`` or ``switch`` take
    the longest one, a nested control's ``apply`` counts its own depth, and a table's
    ``apply`` counts 1 (plus what its arguments apply). Parsers and actions apply no tables."""
    return _depth(instance.decl.body, instance)


def _depth(node, inst) -> int:
    from testbed.v1model import syntax as S
    if node is None:
        return 0
    if isinstance(node, S.Block):
        return sum(_depth(s, inst) for s in node.stmts)
    if isinstance(node, S.If):
        return _depth(node.cond, inst) + max(_depth(node.then, inst), _depth(node.other, inst))
    if isinstance(node, S.Switch):
        return _depth(node.expr, inst) + max([_depth(c.body, inst) for c in node.cases] or [0])
    if isinstance(node, S.Call):
        return _call_depth(node, inst) + sum(_depth(a.value, inst) for a in node.args)
    if isinstance(node, S.Node):
        return sum(_depth(child, inst) for child in _children(node))
    return 0


def _children(node) -> list:
    from dataclasses import fields
    from testbed.v1model import syntax as S
    out = []
    for f in fields(node):
        if f.name in ("loc", "annotations", "type_ref", "to"):
            continue
        value = getattr(node, f.name)
        items = value if isinstance(value, (list, tuple)) else [value]
        out += [v for v in items if isinstance(v, S.Node)]
    return out


def _call_depth(call, inst) -> int:
    """1 for `table.apply()`, the nested control's depth for `control.apply(...)`, else what
    the callee expression itself applies."""
    from testbed.v1model import syntax as S
    func = call.func
    if isinstance(func, S.Member) and func.name == "apply" and isinstance(func.expr, S.Name):
        target = inst.objects.get(func.expr.name, inst.ctor.get(func.expr.name))
        kind = type(target).__name__
        if kind == "Table":
            return 1
        if kind == "Instance" and getattr(target, "kind", "") == "control":
            return pipeline_depth(target)
        return 0
    return _depth(func, inst)


def resource_table(rows: Iterable[dict]) -> pd.DataFrame:
    """Per (app, variant) rows of `program_resources` + ``entries``, with the RedPlane
    overhead: for each app, ``<metric>_vs_noft`` = redplane value / noft value - 1 (relative
    growth; NaN where noft has none) for the used tables, actions, register bits and
    counters, the entries and the depth."""
    df = pd.DataFrame(list(rows))
    metrics = ["used_tables", "entries", "used_actions", "used_register_bits", "used_counters", "depth"]
    for m in metrics:
        df[f"{m}_vs_noft"] = np.nan
    for app, g in df.groupby("app"):
        base = g[g["variant"] == "noft"]
        if base.empty:
            continue
        for m in metrics:
            b = float(base[m].iloc[0])
            sel = (df["app"] == app) & (df["variant"] == "redplane")
            df.loc[sel, f"{m}_vs_noft"] = (df.loc[sel, m] / b - 1) if b else np.nan
    return df


# ---------------------------------------------------------------------------------------------
# Throughput (in-process timings)

def rate_table(reps: pd.DataFrame, baseline: str = "noft") -> pd.DataFrame:
    """Per (app, variant): packets/s from repetitions.

    `reps` has one row per repetition: app, variant, packets (data packets through the spine),
    seconds (time the spine's pipeline spent on them, including any store acks it processed
    for them). ``pps`` = median over repetitions of packets / seconds; ``pps_min``/``pps_max``
    the range; ``us_per_packet`` = 1e6 / pps; ``vs_<baseline>`` = pps / the baseline
    variant's pps of the same app.
    """
    r = reps.assign(pps=reps["packets"] / reps["seconds"])
    out = r.groupby(["app", "variant"], sort=False).agg(
        reps=("pps", "size"), packets=("packets", "sum"), pps=("pps", "median"),
        pps_min=("pps", "min"), pps_max=("pps", "max")).reset_index()
    out["us_per_packet"] = 1e6 / out["pps"]
    base = out[out["variant"] == baseline].set_index("app")["pps"]
    out[f"vs_{baseline}"] = out["pps"] / out["app"].map(base)
    return out


# ---------------------------------------------------------------------------------------------
# Latency (probe-sender logs)

def probe_rtts(run_dir: str, pattern: str = "*.client.csv") -> pd.DataFrame:
    """Echoed probe round trips from a run's probe-sender logs (traffic/<pattern>).

    One row per reply: ``log`` (file name without .client.csv), ``flow`` (probe flow id),
    ``seq``, ``send_ns``, ``recv_ns``, ``rtt`` (s) = (recv_ns - send_ns) / 1e9, and ``sent``
    (probes the sender sent in that log). Logs of other tools are skipped."""
    from testbed.traffic import read_log
    frames = []
    for path in sorted(glob.glob(os.path.join(run_dir, "traffic", pattern))):
        log = read_log(path)
        if log.meta.get("tool") != "probe" or log.meta.get("mode") != "send":
            continue
        frames.append(_replies(pd.DataFrame(log.rows, columns=log.fields),
                               os.path.basename(path).split(".")[0]))
    if not frames:
        return pd.DataFrame(columns=["log", "flow", "seq", "send_ns", "recv_ns", "rtt", "sent"])
    return pd.concat(frames, ignore_index=True)


def _replies(rows: pd.DataFrame, name: str) -> pd.DataFrame:
    sent = int((rows["event"] == "sent").sum()) if len(rows) else 0
    rep = rows[rows["event"] == "reply"] if len(rows) else rows
    out = pd.DataFrame({"log": name, "flow": rep["flow"].astype("int64"), "seq": rep["seq"].astype("int64"),
                        "send_ns": rep["send_ns"].astype("int64"), "recv_ns": rep["recv_ns"].astype("int64")})
    out["rtt"] = (out["recv_ns"] - out["send_ns"]) / 1e9
    out["sent"] = sent
    return out.drop_duplicates(["log", "flow", "seq"]).reset_index(drop=True)


def first_vs_later(rtts: pd.DataFrame) -> pd.DataFrame:
    """`rtts` with ``packet`` = 'first' for the reply to each log's probe seq 0 (the packet
    that set up the flow's state), 'later' otherwise. A log whose seq 0 got no reply has no
    'first' row (see ``lost_first`` in `latency_table`)."""
    return rtts.assign(packet=np.where(rtts["seq"] == 0, "first", "later"))


def latency_table(rtts: pd.DataFrame, by: Sequence[str] = ("app", "variant", "packet"),
                  percentiles: Sequence[float] = PERCENTILES) -> pd.DataFrame:
    """Per group of `by`: RTT percentiles in ms (``count``, ``mean_ms``, ``p50_ms``...,
    ``max_ms``) from rows with ``rtt`` in seconds."""
    rows = []
    for key, g in rtts.groupby(list(by), sort=False):
        stats = latency_percentiles(g["rtt"], percentiles)
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row["count"] = int(stats["count"])
        for name, value in stats.items():
            if name != "count":
                row[f"{name}_ms"] = round(float(value) * 1e3, 3)
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Overhead (pcaps at the store and the clients, by phase)

def phase_packets(packets: pd.DataFrame, phases: pd.DataFrame, grace: float = 0.5) -> pd.DataFrame:
    """`packets` with a ``phase`` column: the name of the phase (rows of `phases`: name, start,
    end in s since the epoch) whose window [start, end + grace) holds the packet's time;
    packets outside every window are dropped. Windows must not overlap."""
    out = []
    for _, ph in phases.iterrows():
        sel = (packets["time"] >= ph["start"]) & (packets["time"] < ph["end"] + grace)
        out.append(packets[sel].assign(phase=ph["name"]))
    return pd.concat(out, ignore_index=True) if out else packets.iloc[0:0].assign(phase=None)


def overhead_row(store: pd.DataFrame, clients: pd.DataFrame) -> dict:
    """Replication overhead of one phase: RedPlane messages captured at the store hosts
    (`store`) against data captured at the client hosts (`clients`: both directions of every
    flow, seen once).

    Returns ``rp_bytes`` (wire bytes of every RedPlane request and ack), ``rp_messages``,
    ``header_bytes`` (rp_bytes minus piggybacked inner packets), ``data_bytes``, ``ratio`` =
    rp_bytes / data_bytes, ``header_ratio``, and per message type ``bytes_<TYPE>`` (e.g.
    bytes_LEASE_NEW, bytes_RENEW_ACK, bytes_SNAPSHOT)."""
    rp = store[store["rp_dir"].notna()]
    data = clients[clients["rp_dir"].isna()] if "rp_dir" in clients else clients
    table = replication_overhead(pd.concat([rp, data], ignore_index=True))
    total = table[(table["rp_dir"] == "all")].iloc[0]
    row = {"rp_messages": int(total["messages"]), "rp_bytes": int(total["bytes"]),
           "header_bytes": int(total["header_bytes"]), "data_bytes": int(total["data_bytes"]),
           "ratio": float(total["ratio"]), "header_ratio": float(total["header_ratio"])}
    for _, r in table[table["rp_dir"] != "all"].iterrows():
        row[f"bytes_{r['rp_type_name']}"] = row.get(f"bytes_{r['rp_type_name']}", 0) + int(r["bytes"])
    return row


def renewal_rate(store: pd.DataFrame, start: float, end: float) -> dict:
    """Lease renewal traffic at the store between `start` and `end` (s since the epoch):
    LEASE_RENEW requests with seq 0 and their RENEW_ACKs (acks of seq 0). ``renewals_per_s``
    and ``renewal_kbps`` (wire bits, both directions, per second / 1000)."""
    span = max(end - start, 1e-9)
    rows = store[(store["time"] >= start) & (store["time"] < end) & store["rp_dir"].notna()]
    reads = rows[(rows["rp_seq"].fillna(-1) == 0)
                 & rows["rp_type_name"].isin(["LEASE_RENEW", "RENEW_ACK"])]
    requests = reads[reads["rp_dir"] == "request"]
    return {"renewals_per_s": len(requests) / span,
            "renewal_kbps": float(reads["frame_len"].sum()) * 8 / span / 1e3,
            "rp_kbps": float(rows["frame_len"].sum()) * 8 / span / 1e3}


# ---------------------------------------------------------------------------------------------
# Lease sweep

def lease_row(probes: pd.DataFrame) -> dict:
    """Recovery of one failover trial's probe flows (`analysis.runs.probe_recovery` rows):
    ``interrupted`` flows, ``median_recovery_s``/``max_recovery_s`` over them (0 if none)."""
    hit = probes[probes["interrupted"]]
    return {"flows": len(probes), "interrupted": len(hit),
            "median_recovery_s": float(hit["recovery_s"].median()) if len(hit) else 0.0,
            "max_recovery_s": float(hit["recovery_s"].max()) if len(hit) else 0.0}


# ---------------------------------------------------------------------------------------------
# Snapshot (sketch estimates against packets delivered)

def delivered_probes(run_dir: str, pattern: str = "*.server.*.csv") -> dict:
    """Per probe flow id: distinct probes (sequence numbers) the receivers logged
    (traffic/<pattern>, probe ``recv`` logs)."""
    from testbed.traffic import read_log
    seen: dict = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "traffic", pattern))):
        log = read_log(path)
        if log.meta.get("tool") != "probe" or log.meta.get("mode") != "recv":
            continue
        for row in log.rows:
            seen.setdefault(int(row["flow"]), set()).add(int(row["seq"]))
    return {flow: len(seqs) for flow, seqs in seen.items()}


def sketch_errors(delivered: pd.DataFrame, estimates: dict, failed: set) -> pd.DataFrame:
    """Per flow: packets delivered to the server (`delivered`: flow, packets, spine = the spine
    the flow crossed before the failure), the fabric's count-min estimate after the restore
    (`estimates`: flow -> estimate on the surviving spine), and ``lost`` = delivered -
    estimate (counts the sketch lost; negative = overestimate from hash collisions),
    ``lost_fraction`` = lost / delivered. ``on_failed`` marks flows whose spine is in
    `failed`."""
    out = delivered.copy()
    out["estimate"] = out["flow"].map(estimates).astype("float64")
    out["lost"] = out["packets"] - out["estimate"]
    out["lost_fraction"] = out["lost"] / out["packets"].where(out["packets"] > 0)
    out["on_failed"] = out["spine"].isin(failed)
    return out


# ---------------------------------------------------------------------------------------------
# Store failure (acks captured at the store hosts against the final store dumps)

def acked_writes(store: pd.DataFrame) -> pd.DataFrame:
    """The writes the store acknowledged to a switch: RENEW_ACKs with seq != 0 captured at
    the store hosts' interfaces, per key the latest acknowledged seq (``key``, ``acked_seq``,
    ``acks``, ``last_ack`` time). A key's acks leave the tail in commit order, so the last one
    in time is the newest (plain max would be wrong once seqs wrap: grants advance them by F)."""
    acks = store[(store["rp_dir"] == "ack") & (store["rp_type_name"] == "RENEW_ACK")
                 & (store["rp_seq"].fillna(0) != 0) & store["rp_key"].notna()]
    if acks.empty:
        return pd.DataFrame(columns=["key", "acked_seq", "acks", "last_ack"])
    acks = acks.sort_values("time", kind="stable")
    out = acks.groupby(acks["rp_key"].astype("int64")).agg(
        acked_seq=("rp_seq", "last"), acks=("rp_seq", "size"), last_ack=("time", "max"))
    out.index.name = "key"
    out = out.reset_index()
    out["acked_seq"] = out["acked_seq"].astype("int64")
    return out


def lost_writes(acked: pd.DataFrame, dumps: dict) -> pd.DataFrame:
    """`acked` with, per surviving replica (`dumps`: replica name -> {key (decimal str) ->
    state with ``committed``}), the replica's committed seq for the key (-1: no state) and
    ``lost_on_<name>``: the acknowledged seq is newer (serial comparison) than what the replica
    committed, or the replica has no state. ``lost``: lost on any replica."""
    from testbed.redplane.protocol import seq_newer
    out = acked.copy()
    out["lost"] = False
    for name, dump in dumps.items():
        committed = out["key"].map(lambda k: (dump.get(str(int(k))) or {}).get("committed", -1))
        out[f"committed_{name}"] = committed.astype("int64")
        out[f"lost_on_{name}"] = [c < 0 or seq_newer(int(a), int(c))
                                  for a, c in zip(out["acked_seq"], out[f"committed_{name}"])]
        out["lost"] |= out[f"lost_on_{name}"]
    return out


def shard_heads(table_dump: str) -> list[str]:
    """The store addresses of the ``rp_set_store`` entries in a switch's ``table_dump
    rp_shards`` output, in entry order (dotted quads)."""
    import ipaddress
    import re
    return [str(ipaddress.IPv4Address(int(h, 16)))
            for h in re.findall(r"rp_set_store - ([0-9a-fA-F]+)", table_dump)]
