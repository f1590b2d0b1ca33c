"""The v1model architecture and traffic manager, as BMv2's simple_switch runs them.

`SimpleSwitch.process(port, data)` pushes one packet through parser, checksum verification,
ingress, the traffic manager (clone, resubmit, multicast, drop, unicast), egress, checksum
update and deparser, and returns every (port, bytes) the switch sends as a result, in order.
It is synchronous and deterministic: time comes from an injectable clock (microseconds since
the switch started), randomness from a seeded generator.
"""
from __future__ import annotations

import time
from time import monotonic_ns
from dataclasses import dataclass

from . import runtime as R
from .checker import check
from .hashes import HashUnit
from .lower import Lowerer
from .parser import parse_file
from . import types as T

NORMAL, INGRESS_CLONE, EGRESS_CLONE, COALESCED, RECIRC, REPLICATION, RESUBMIT = 0, 1, 2, 3, 4, 5, 6
I2E, E2E = 0, 1
MAX_JOBS_PER_PACKET = 1024
MAX_LOOPS = 64            # resubmit/recirculate passes of one packet


@dataclass
class Stats:
    received: int = 0
    sent: int = 0
    dropped: int = 0
    parser_errors: int = 0
    loops_cut: int = 0


class SimpleSwitch:
    """A loaded P4 program plus the switch state around it."""

    def __init__(self, program_path: str, include_path=None, defines=None, clock=None, seed: int = 0,
                 drop_port: int = 511, priority_queues: int = 1, log=None, trace=None):
        self.program_path = program_path
        self.drop_port = drop_port
        self.priority_queues = priority_queues
        self.ctx = R.PacketContext()
        self.ctx.log_enabled = log is not None
        self.ctx.sm = None
        self.log = log
        self.trace = trace          # callable(str) for a per-packet trace; None = no trace code at all
        self.rand = R.RandomSource(seed)
        self.hashes = HashUnit()
        self.start = time.monotonic()
        self._start_ns = time.monotonic_ns()
        self.clock = clock or self._real_clock
        self.stats = Stats()
        self.mirroring: dict[int, tuple] = {}          # session -> (port or None, mgrp or None)
        self.mc_groups: dict[int, list] = {}           # gid -> [node handles]
        self.mc_nodes: dict[int, R.McNode] = {}
        self.next_mc_handle = 0
        self.digests: list = []
        self._cp = None
        ast = parse_file(program_path, include_path, defines)
        self.checked = check(ast)
        self.lowered = Lowerer(self.checked, self).run()
        self.registry = self.lowered.registry
        self._classes()

    def _real_clock(self) -> int:
        return (time.monotonic_ns() - self._start_ns) // 1000

    def _classes(self) -> None:
        """Python classes of the parsed headers, user metadata and standard metadata."""
        blocks = self.registry.blocks
        params = blocks["ingress"].decl.params
        types = self.lowered.typegen
        self.hdr_new = _constructor(types, params[0].type)
        self.meta_new = _constructor(types, params[1].type)
        self.sm_new = _constructor(types, params[2].type)
        self.f_parser = blocks["parser"].apply
        self.f_verify = blocks["verify_checksum"].apply
        self.f_ingress = blocks["ingress"].apply
        self.f_egress = blocks["egress"].apply
        self.f_compute = blocks["compute_checksum"].apply
        self.f_deparser = blocks["deparser"].apply
        trivial = self.lowered.trivial
        self.f_verify = None if "verify_checksum" in trivial else self.f_verify
        self.f_compute = None if "compute_checksum" in trivial else self.f_compute
        features = self.lowered.features
        self.has_requests = bool(features & {"clone", "resubmit", "recirculate", "truncate"})
        if self.trace is None:
            # An instance attribute shadows the method: the same contract, fewer steps.
            self.process = _unicast_path(self, "egress" in trivial)

    # -- the packet path --------------------------------------------------------------------
    # Work items are tuples: ("i", data, port, itype, preserved, loops) enters ingress,
    # ("e", port, itype, hdr, meta, sm, payload, loops, length) enters egress. They are handled
    # in FIFO order, as the traffic manager's queues would release them.
    def process(self, port: int, data: bytes) -> list[tuple[int, bytes]]:
        """Process one packet arriving on `port`; return the packets sent, in order."""
        self.stats.received += 1
        if self.trace:
            self.trace(f"packet in: port {port}, {len(data)} bytes")
        jobs: list[tuple] = []
        self._ingress(data, port, NORMAL, (), 0, jobs)
        return self._run(jobs)

    def _run(self, jobs: list) -> list[tuple[int, bytes]]:
        """Handle the work items in FIFO order (appending the ones they make); return the
        packets sent."""
        out: list[tuple[int, bytes]] = []
        i = 0
        while i < len(jobs) and i < MAX_JOBS_PER_PACKET:
            job = jobs[i]
            i += 1
            if job[0] == "e":
                self._egress(job, jobs, out)
            else:
                self._ingress(*job[1:], jobs)
        self.stats.sent += len(out)
        return out

    def _ingress(self, data, port, itype, preserved, loops, jobs) -> None:
        ctx = self.ctx
        hdr, meta, sm = self.hdr_new(), self.meta_new(), self.sm_new()
        now = self.clock()
        sm.ingress_port = port
        sm.packet_length = len(data)
        sm.instance_type = itype
        sm.ingress_global_timestamp = now
        if preserved:
            _restore(preserved, meta, sm)
        ctx.length, ctx.now_us, ctx.sm = len(data), now, sm
        if self.has_requests:
            ctx.clone = ctx.resubmit = ctx.recirculate = ctx.truncate = None
        payload = self._parse(data, hdr, meta, sm)
        ctx.payload = payload
        if self.f_verify:
            self.f_verify(hdr, meta)
        try:
            self.f_ingress(hdr, meta, sm)
        except R.ExitSignal:
            pass
        self._after_ingress(data, port, loops, jobs, hdr, meta, sm, payload)

    def _parse(self, data: bytes, hdr, meta, sm) -> bytes:
        pkt = R.PacketIn(data)
        try:
            self.f_parser(pkt, hdr, meta, sm, _fresh=True)
        except R.ParserException as e:
            sm.parser_error = e.code
            self.stats.parser_errors += 1
            if self.trace:
                self.trace(f"parser error {self.checked.errors[e.code]} at byte {pkt.pos}")
        return data[pkt.pos:]

    def _after_ingress(self, data, port, loops, jobs, hdr, meta, sm, payload) -> None:
        ctx = self.ctx
        if ctx.clone is not None and ctx.clone[0] == I2E:
            self._clone_i2e(data, port, loops, jobs, meta, sm, ctx.clone)
        if ctx.digests:
            self.digests.extend(ctx.digests)
            ctx.digests = []
        if ctx.resubmit is not None:
            self._note("resubmit")
            self._loop(jobs, loops, data, port, RESUBMIT, _capture(ctx.resubmit, meta, sm))
        elif sm.mcast_grp:
            self._note(f"multicast to group {sm.mcast_grp}")
            self._replicate(jobs, sm.mcast_grp, hdr, meta, sm, payload, REPLICATION, loops)
        elif sm.egress_spec == self.drop_port:
            self._note("dropped at the end of ingress")
            self.stats.dropped += 1
        else:
            if self.trace:
                self.trace(f"ingress done: egress_spec {sm.egress_spec}")
            jobs.append(("e", sm.egress_spec, NORMAL, hdr, meta, sm, payload, loops, sm.packet_length))

    def _loop(self, jobs, loops, data, port, itype, preserved) -> None:
        if loops >= MAX_LOOPS:
            self.stats.loops_cut += 1
            return
        jobs.append(("i", data, port, itype, preserved, loops + 1))

    def _replicate(self, jobs, group, hdr, meta, sm, payload, itype, loops) -> None:
        for handle in self.mc_groups.get(group, []):
            node = self.mc_nodes[handle]
            for port in sorted(node.ports):
                c_sm = sm.copy()
                c_sm.egress_rid = node.rid
                jobs.append(("e", port, itype, hdr.copy(), meta.copy(), c_sm, payload, loops, sm.packet_length))

    def _note(self, msg: str) -> None:
        if self.trace:
            self.trace(msg)

    def _clone_i2e(self, data, port, loops, jobs, meta, sm, clone) -> None:
        session = self.mirroring.get(clone[1])
        self._note(f"I2E clone to session {clone[1]}" + ("" if session else " (not configured)"))
        if session is None:
            return
        preserved = _capture(clone[2], meta, sm)
        c_hdr, c_meta, c_sm = self.hdr_new(), self.meta_new(), self.sm_new()
        c_sm.ingress_port = port
        c_sm.packet_length = len(data)
        payload = self._parse(data, c_hdr, c_meta, c_sm)
        c_meta, c_sm = self.meta_new(), self.sm_new()
        _restore(preserved, c_meta, c_sm)
        c_sm.packet_length = len(data)
        self._to_session(jobs, session, c_hdr, c_meta, c_sm, payload, INGRESS_CLONE, loops)

    def _to_session(self, jobs, session, hdr, meta, sm, payload, itype, loops) -> None:
        port, group = session
        if group is not None:
            self._replicate(jobs, group, hdr, meta, sm, payload, itype, loops)
        if port is not None:
            jobs.append(("e", port, itype, hdr.copy(), meta.copy(), sm.copy(), payload, loops, sm.packet_length))

    def _egress(self, job: tuple, jobs: list, out: list) -> None:
        _, port, itype, hdr, meta, sm, payload, loops, length = job
        ctx = self.ctx
        if sm.priority >= self.priority_queues:
            self._note(f"dropped: priority {sm.priority} out of range ({self.priority_queues} queues)")
            self.stats.dropped += 1
            return
        now = self.clock()
        sm.egress_port = port
        sm.egress_spec = self.drop_port + 1
        sm.instance_type = itype
        sm.egress_global_timestamp = now
        sm.packet_length = length
        sm.enq_timestamp = sm.ingress_global_timestamp & 0xFFFFFFFF
        sm.deq_timedelta = max(0, now - sm.ingress_global_timestamp) & 0xFFFFFFFF
        ctx.length, ctx.now_us, ctx.sm = length, now, sm
        if self.has_requests:
            ctx.clone = ctx.recirculate = ctx.truncate = None
        try:
            self.f_egress(hdr, meta, sm)
        except R.ExitSignal:
            pass
        self._egress_done(port, itype, hdr, meta, sm, payload, loops, length, jobs, out)

    def _egress_done(self, port, itype, hdr, meta, sm, payload, loops, length, jobs, out) -> None:
        """After the egress control: E2E clone, drop, deparse, recirculate, truncate, send."""
        ctx = self.ctx
        if ctx.clone is not None and ctx.clone[0] == E2E:
            self._clone_e2e(jobs, hdr, meta, sm, ctx.clone, payload, loops, length)
        if sm.egress_spec == self.drop_port:
            self._note(f"dropped at the end of egress (port {port})")
            self.stats.dropped += 1
            return
        data = self._deparse(hdr, meta, payload)
        if ctx.recirculate is not None:
            self._note("recirculate")
            self._loop(jobs, loops, data, sm.ingress_port, RECIRC, _capture(ctx.recirculate, meta, sm))
            return
        if ctx.truncate is not None:
            data = data[:ctx.truncate]
        if self.trace:
            self.trace(f"packet out: port {port}, {len(data)} bytes, instance type {itype}")
        out.append((port, data))

    def _clone_e2e(self, jobs, hdr, meta, sm, clone, payload, loops, length) -> None:
        session = self.mirroring.get(clone[1])
        self._note(f"E2E clone to session {clone[1]}" + ("" if session else " (not configured)"))
        if session is None:
            return
        preserved = _capture(clone[2], meta, sm)
        c_meta, c_sm = self.meta_new(), self.sm_new()
        _restore(preserved, c_meta, c_sm)
        c_sm.packet_length = length
        self._to_session(jobs, session, hdr.copy(), c_meta, c_sm, payload, EGRESS_CLONE, loops)

    def _deparse(self, hdr, meta, payload: bytes) -> bytes:
        self.ctx.payload = payload
        if self.f_compute:
            self.f_compute(hdr, meta)
        po = R.PacketOut()
        self.f_deparser(po, hdr)
        po.parts.append(payload)
        return b"".join(po.parts)

    # -- the Python API ------------------------------------------------------------------------
    def send(self, port: int, data: bytes) -> list[tuple[int, bytes]]:
        """Alias of `process`: push a packet into `port`, get back (port, bytes) sent."""
        return self.process(port, data)

    def cli(self, command: str) -> str:
        """Run one simple_switch_CLI command; raises CommandError when it fails."""
        return self._control().execute(command)

    def cli_script(self, text: str) -> list[str]:
        """Run a file's worth of CLI commands, stopping at the first failure."""
        return self._control().run_script(text)

    def _control(self):
        if self._cp is None:
            from .commands import ControlPlane
            self._cp = ControlPlane(self)
        return self._cp

    @property
    def logs(self) -> list[str]:
        """Messages of log_msg() calls (collected when the switch was made with log=...)."""
        return self.ctx.logs

    # -- state helpers the control plane uses ------------------------------------------------
    def reset_state(self) -> None:
        """Clear tables (except const entries), registers, counters, meters, PRE and mirroring."""
        for t in self.registry.tables.values():
            t.clear()
            if t.initial_default is not None:
                t.set_default(*t.initial_default)
        for r in self.registry.registers.values():
            r.reset()
        for c in self.registry.counters.values():
            c.reset()
        self.mirroring.clear()
        self.mc_groups.clear()
        self.mc_nodes.clear()


def _unicast_path(sw: SimpleSwitch, skip_egress: bool):
    """`process` when not tracing, with the common case run straight through: one packet in, at
    most one out by unicast, no clone/resubmit/recirculate/truncate request made. A packet that
    leaves that case (dropped, multicast, a digest or a request) continues on the general path
    from where it is (`_after_ingress`, `_egress_done`, `_run`), so behaviour is identical.
    `skip_egress`: the egress control is empty, so its standard_metadata cannot be observed."""
    ctx, stats, clock = sw.ctx, sw.stats, sw.clock
    if clock == sw._real_clock:
        clock = _microseconds_since(sw._start_ns)
    hdr_new, meta_new, sm_new = sw.hdr_new, sw.meta_new, sw.sm_new
    parser, verify, ingress = sw.f_parser, sw.f_verify, sw.f_ingress
    egress, compute, deparser = sw.f_egress, sw.f_compute, sw.f_deparser
    drop_port, queues, requests = sw.drop_port, sw.priority_queues, sw.has_requests
    after, egress_done, run = sw._after_ingress, sw._egress_done, sw._run
    ParserException, ExitSignal, PacketOut = R.ParserException, R.ExitSignal, R.PacketOut
    pkt = R.PacketIn(b"")                   # reused: the parser holds it only while it runs

    def process(port: int, data: bytes) -> list[tuple[int, bytes]]:
        stats.received += 1
        hdr, meta, sm = hdr_new(), meta_new(), sm_new()
        now = clock()
        n = len(data)
        sm.ingress_port = port
        sm.packet_length = n
        sm.ingress_global_timestamp = now
        ctx.length, ctx.now_us, ctx.sm = n, now, sm
        if requests:
            ctx.clone = ctx.resubmit = ctx.recirculate = ctx.truncate = None
        pkt.data, pkt.pos, pkt.n = data, 0, n
        try:
            parser(pkt, hdr, meta, sm, True)           # True: the headers are fresh
        except ParserException as e:
            sm.parser_error = e.code
            stats.parser_errors += 1
        payload = ctx.payload = data[pkt.pos:]
        if verify is not None:
            verify(hdr, meta)
        try:
            ingress(hdr, meta, sm)
        except ExitSignal:
            pass
        out = sm.egress_spec
        if (sm.mcast_grp or ctx.digests or out == drop_port or sm.priority >= queues
                or requests and (ctx.clone is not None or ctx.resubmit is not None)):
            jobs: list = []
            after(data, port, 0, jobs, hdr, meta, sm, payload)
            return run(jobs)
        if not skip_egress:                # the steps of _egress, in line; keep the two in step
            length = sm.packet_length
            now = clock()
            sm.egress_port = out
            sm.egress_spec = drop_port + 1
            sm.instance_type = NORMAL
            sm.egress_global_timestamp = now
            sm.enq_timestamp = sm.ingress_global_timestamp & 0xFFFFFFFF
            sm.deq_timedelta = max(0, now - sm.ingress_global_timestamp) & 0xFFFFFFFF
            ctx.length, ctx.now_us = length, now
            if requests:
                ctx.clone = ctx.recirculate = ctx.truncate = None
            try:
                egress(hdr, meta, sm)
            except ExitSignal:
                pass
            if requests and (ctx.clone is not None or ctx.recirculate is not None or ctx.truncate is not None):
                jobs, sent = [], []
                egress_done(out, NORMAL, hdr, meta, sm, payload, 0, length, jobs, sent)
                stats.sent += len(sent)
                return sent + run(jobs)
            if sm.egress_spec == drop_port:
                stats.dropped += 1
                return []
        if compute is not None:
            compute(hdr, meta)
        po = PacketOut()
        deparser(po, hdr)
        po.parts.append(payload)
        stats.sent += 1
        return [(out, b"".join(po.parts))]

    return process


def _microseconds_since(start_ns: int):
    """The real clock of SimpleSwitch as a plain function (cheaper to call than a method)."""
    def clock() -> int:
        return (monotonic_ns() - start_ns) // 1000
    return clock


def _constructor(types, t):
    if isinstance(t, T.FieldsT):
        return types.classes[types.class_name(t)]
    raise TypeError(f"v1model block parameter of type {t} is not a struct")


def _capture(spec, meta, sm) -> tuple:
    """Values of the preserved fields, as ((root, path, value), ...)."""
    if not spec:
        return ()
    out = []
    for root, path in spec:
        obj = meta if root == "meta" else sm
        for a in path[:-1]:
            obj = getattr(obj, a)
        out.append((root, path, getattr(obj, path[-1])))
    return tuple(out)


def _restore(preserved, meta, sm) -> None:
    for root, path, value in preserved:
        obj = meta if root == "meta" else sm
        for a in path[:-1]:
            obj = getattr(obj, a)
        setattr(obj, path[-1], value)
