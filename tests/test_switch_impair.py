"""Port impairment of the bundled switch (testbed.v1model.impair): the logic, driven by a
clock and a random generator of the test's own (no root; the real frames are in
test_switch_process.py)."""
from __future__ import annotations

import math
import random

import pytest

from testbed.v1model.errors import CommandError
from testbed.v1model.impair import DEFAULT_LIMIT, Impairer, Impairment, parse_direction

N = 2000


def impairer(seed: int = 1, **spec) -> Impairer:
    imp = Impairer(random.Random(seed))
    imp.configure(Impairment(**spec))
    return imp


def within_binomial(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    """`count` successes of `n` trials is within `sigmas` standard deviations of n*p."""
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


# ---------------------------------------------------------------------------------------------
# The command's arguments

def test_parse_reads_every_parameter_with_or_without_units():
    spec = Impairment.parse("loss 30% delay 20ms jitter 5 reorder 25 limit 50".split())
    assert spec == Impairment(loss=30, delay_ms=20, jitter_ms=5, reorder=25, limit=50)
    assert Impairment.parse(["loss", "0.5"]) == Impairment(loss=0.5, limit=DEFAULT_LIMIT)
    assert str(spec) == "loss 30% delay 20ms jitter 5ms reorder 25% limit 50"


@pytest.mark.parametrize("tokens, message", [
    ([], "give at least one of loss, delay, jitter, reorder, limit"),
    (["drop", "5"], "unknown parameter 'drop'"),
    (["loss"], "loss: missing value"),
    (["loss", "x"], "loss: must be a number in [0, 100], got 'x'"),
    (["loss", "150"], "loss: must be a number in [0, 100], got '150'"),
    (["reorder", "-1", "delay", "5"], "reorder: must be a number in [0, 100]"),
    (["delay", "-3ms"], "delay: must be a number of ms >= 0, got '-3ms'"),
    (["delay", "nan"], "delay: must be a number of ms >= 0"),
    (["jitter", "5"], "jitter needs delay > 0"),
    (["reorder", "5"], "reorder needs delay > 0"),
    (["limit", "0"], "limit: must be an integer >= 1, got '0'"),
    (["limit", "2.5"], "limit: must be an integer >= 1"),
    (["loss", "1", "loss", "2"], "loss given twice"),
])
def test_bad_arguments_name_the_argument(tokens, message):
    with pytest.raises(CommandError) as info:
        Impairment.parse(tokens, "port_impair")
    assert str(info.value).startswith("port_impair: ") and message in str(info.value)


def test_direction():
    assert parse_direction("in", "c") == "in" and parse_direction("out", "c") == "out"
    with pytest.raises(CommandError, match="c: direction must be 'in' or 'out', got 'up'"):
        parse_direction("up", "c")


# ---------------------------------------------------------------------------------------------
# What it does to frames

def test_loss_drops_a_binomial_fraction_independently():
    imp = impairer(loss=30)
    passed = [imp.admit(i, now=0.0) for i in range(N)]
    kept = [f for f in passed if f is not None]
    assert within_binomial(N - len(kept), N, 0.30), len(kept)
    assert imp.lost == N - len(kept) and kept == sorted(kept)       # survivors go at once, in order
    runs = sum(1 for a, b in zip(passed, passed[1:]) if (a is None) != (b is None))
    expected_runs = 2 * (N - 1) * 0.3 * 0.7                        # independent drops: no bursts
    assert abs(runs - expected_runs) < 5 * math.sqrt(expected_runs)


def test_no_impairment_parameter_is_a_pass_through():
    imp = impairer(limit=5)
    assert [imp.admit(i, 0.0) for i in range(100)] == list(range(100))
    assert imp.counters() == dict(lost=0, overflow=0, delayed=0, reordered=0, discarded=0, queued=0)


def test_delayed_frames_are_released_at_their_due_time_in_due_order():
    imp = impairer(delay_ms=20, jitter_ms=10)
    arrivals = [i * 0.001 for i in range(200)]                     # one frame per ms
    assert all(imp.admit(i, now) is None for i, now in enumerate(arrivals))
    assert imp.delayed == 200 and imp.next_due() >= 0.010
    released, now = [], 0.0
    while imp.held:
        now = imp.next_due()
        for frame in imp.release(now):
            delay = now - arrivals[frame]
            assert 0.010 - 1e-9 <= delay <= 0.030 + 1e-9
            released.append((now, frame))
    assert sorted(f for _t, f in released) == list(range(200))
    assert [t for t, _f in released] == sorted(t for t, _f in released)
    assert any(a > b for (_t, a), (_u, b) in zip(released, released[1:])), "jitter reorders, as with netem"
    assert imp.release(now + 1) == [] and imp.next_due() is None


def test_a_fixed_delay_keeps_the_order_and_nothing_leaves_early():
    imp = impairer(delay_ms=20)
    for i in range(10):
        imp.admit(i, now=i * 0.005)
    assert imp.release(0.0199) == []
    assert imp.release(0.020) == [0]
    assert imp.release(0.036) == [1, 2, 3]
    assert imp.release(10.0) == list(range(4, 10))


def test_reorder_sends_a_fraction_at_once_and_delays_the_rest():
    imp = impairer(delay_ms=10, reorder=25, limit=N)
    at_once = [f for f in (imp.admit(i, 0.0) for i in range(N)) if f is not None]
    assert within_binomial(len(at_once), N, 0.25), len(at_once)
    assert imp.reordered == len(at_once) and imp.delayed == N - len(at_once)
    later = imp.release(0.010)
    assert len(later) == N - len(at_once) and set(later).isdisjoint(at_once)


def test_limit_drops_what_arrives_at_a_full_queue():
    imp = impairer(delay_ms=100, limit=50)
    results = [imp.admit(i, 0.0) for i in range(80)]
    assert results == [None] * 80
    assert (imp.delayed, imp.overflow, len(imp.held)) == (50, 30, 50)
    assert imp.release(0.1) == list(range(50))
    assert imp.admit(99, 0.2) is None and imp.delayed == 51          # room again


def test_loss_applies_before_the_limit_and_the_delay():
    imp = impairer(loss=50, delay_ms=5, limit=10)
    for i in range(N):
        imp.admit(i, 0.0)
    assert imp.lost + imp.overflow + imp.delayed == N
    assert within_binomial(imp.lost, N, 0.5) and imp.delayed == 10


def test_clear_switches_off_and_discards_the_held_frames():
    imp = impairer(delay_ms=50)
    for i in range(7):
        imp.admit(i, 0.0)
    assert imp.clear() == 7
    assert imp.spec is None and imp.held == [] and imp.discarded == 7
    assert imp.counters()["queued"] == 0 and imp.show()["impairment"] is None


def test_reconfiguring_keeps_held_frames_and_their_due_times():
    imp = impairer(delay_ms=50)
    imp.admit("old", 0.0)
    imp.configure(Impairment(loss=100))
    assert imp.admit("new", 0.01) is None and imp.lost == 1
    assert imp.release(0.049) == [] and imp.release(0.05) == ["old"]


def test_seeded_generators_repeat_per_port_and_direction():
    def lost(seed, port, direction):
        imp = Impairer.seeded(seed, port, direction)
        imp.configure(Impairment(loss=20))
        return [i for i in range(500) if imp.admit(i, 0.0) is None]
    assert lost(7, 1, "out") == lost(7, 1, "out")
    assert lost(7, 1, "out") != lost(8, 1, "out")
    assert lost(7, 1, "out") != lost(7, 2, "out") != lost(7, 1, "in")


def test_reset_counters_keeps_the_impairment_and_the_queue():
    imp = impairer(delay_ms=5, loss=50)
    for i in range(100):
        imp.admit(i, 0.0)
    queued = len(imp.held)
    imp.reset_counters()
    assert imp.counters() == dict(lost=0, overflow=0, delayed=0, reordered=0, discarded=0, queued=queued)
    assert imp.spec == Impairment(delay_ms=5, loss=50)


# ---------------------------------------------------------------------------------------------
# The switch process's commands (no ports needed; real frames: test_switch_process.py)

def test_switch_process_commands_report_bad_arguments(tmp_path):
    from pathlib import Path
    from testbed.v1model.process import SwitchProcess
    program = Path(__file__).resolve().parents[1] / "benchmarks" / "p4" / "l3.p4"
    with SwitchProcess(program, {}, thrift_port=0, log_file=tmp_path / "s.log", name="impair-cmds").start(30) as sw:
        assert "port_impair <port> <in|out> [loss <pct>]" in sw.cli("help")
        assert sw.request("port_impair_show") == {"ok": True, "output": "", "error": None, "data": {}}
        for command, message in (
                ("port_impair", "port_impair: usage: port_impair <port> <in|out>"),
                ("port_impair x out loss 1", "port_impair: port number must be an integer, got 'x'"),
                ("port_impair 3 out loss 1", "port_impair: no interface is attached as port 3"),
                ("port_impair_clear", "port_impair_clear: usage"),
                ("port_impair_clear 3", "port_impair_clear: no interface is attached as port 3"),
                ("port_impair_show 1 2", "port_impair_show: usage")):
            reply = sw.request(command)
            assert not reply["ok"] and reply["error"].startswith(message), (command, reply)
        stats = sw.stats()
        assert stats["impaired_drops"] == 0 and stats["impaired_delayed"] == 0
