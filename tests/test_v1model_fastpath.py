"""The unicast fast path of SimpleSwitch.process against the general path it short-cuts.

Every STF program of tests/p4 runs twice, once as loaded (fast path, falling back to the
general path for drops, multicast, digests, clones, resubmits, recirculation and truncation)
and once with the general path forced; every packet's outputs, the final counters and the
STF verdicts must be the same.
"""
import pathlib
import types

import pytest

from testbed.v1model.simple_switch import SimpleSwitch
from testbed.v1model.stf import StfRunner, _FakeClock

P4 = pathlib.Path(__file__).parent / "p4"
PROGRAMS = sorted(p for p in P4.glob("*.p4") if p.with_suffix(".stf").exists())


def run(program: pathlib.Path, general: bool):
    sw = SimpleSwitch(str(program), clock=_FakeClock())
    if general:
        sw.process = types.MethodType(SimpleSwitch.process, sw)
    inner, seen = sw.process, []

    def recorded(port, data):
        out = inner(port, data)
        seen.append((port, data, out))
        return out

    sw.process = recorded
    stf = program.with_suffix(".stf")
    result = StfRunner(sw, str(stf)).run(stf.read_text())
    return seen, result, sw.stats, list(sw.digests)


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.stem)
def test_fast_path_matches_the_general_path(program):
    fast_seen, fast_result, fast_stats, fast_digests = run(program, general=False)
    slow_seen, slow_result, slow_stats, slow_digests = run(program, general=True)
    assert fast_result.passed and slow_result.passed, fast_result.report() + slow_result.report()
    assert fast_seen == slow_seen
    assert fast_stats == slow_stats
    assert fast_digests == slow_digests


def test_the_fast_path_is_used_unless_tracing():
    program = str(P4 / "tm.p4")
    assert "process" in vars(SimpleSwitch(program))
    assert "process" not in vars(SimpleSwitch(program, trace=lambda line: None))


def test_the_programs_exercise_every_fallback():
    """The comparison above has teeth only if its programs leave the fast path in each way."""
    features = set()
    for program in PROGRAMS:
        features |= SimpleSwitch(str(program)).lowered.features
    assert {"clone", "resubmit", "recirculate", "truncate"} <= features     # digests: below


def test_externs_digests_and_logs_match():
    """Registers, counters, meters, random, digests and log_msg (tests/p4/externs.p4, which
    has no STF file): the same packets give the same outputs and state on both paths."""
    packets = [bytes([i % 4, i % 3 == 1]) + (i * 7919).to_bytes(4, "big") for i in range(60)]
    results = []
    for general in (False, True):
        sw = SimpleSwitch(str(P4 / "externs.p4"), clock=_FakeClock(), log=True, seed=3)
        if general:
            sw.process = types.MethodType(SimpleSwitch.process, sw)
        sw.cli("meter_set_rates mt 0 0.01:2 0.02:3")
        sw.cli("table_add t_meter m_read 3 =>")
        outs = [sw.process(0, p) for p in packets]
        state = [sw.cli(f"register_read r {i}") for i in range(4)] + [sw.cli("counter_read c 1")]
        results.append((outs, state, list(sw.digests), list(sw.logs), sw.stats))
    assert results[0][2], "no digest was made: the comparison would miss that fallback"
    assert results[0] == results[1]
