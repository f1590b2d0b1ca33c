"""Failure timelines as data (no root) and the netem / link helpers (root, in test namespaces)."""
import csv
import os
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from testbed.capture import NetnsExec, run_in
from testbed.errors import ConfigError, TestbedError
from testbed.failures import (
    EVENT_KINDS, EventLog, FailureEvent, Netem, NetemUnavailableError, Timeline, inverse,
    link_down, link_interfaces, netem, netem_clear, play,
)
from testbed.net import Testbed as _Testbed  # not a test class
from testbed.net import netem_available
from testbed.runconfig import RunConfig
from testbed.topology import LeafSpineTopo


@pytest.fixture
def workdir():
    """A temporary directory removed after the test (pytest's tmp_path keeps old runs)."""
    with tempfile.TemporaryDirectory(prefix="tb-test-") as path:
        yield Path(path)


@pytest.fixture(scope="module")
def topo():
    return LeafSpineTopo(spines=2, leaves=3, hosts_per_leaf=2)  # stores: h5, h6


# ---------------------------------------------------------------------------------------------
# Data (no root)

def test_timeline_parses_sorts_and_expands_durations(topo):
    timeline = Timeline.from_dicts([
        {"at": 5, "kind": "netem", "target": "s2-l1", "params": {"loss": 5, "end": "s2"}},
        {"at": 1.5, "kind": "switch_crash", "target": "s1", "duration": 2},
        {"at": 3, "kind": "store_crash", "target": "h5"},
    ], topo)
    assert [(e.at, e.kind, e.target) for e in timeline] == [
        (1.5, "switch_crash", "s1"), (3.0, "store_crash", "h5"),
        (3.5, "switch_restart", "s1"), (5.0, "netem", "l1-s2")]
    assert timeline.end == 5.0
    assert Timeline.from_dicts(timeline.to_dicts(), topo) == timeline


@pytest.mark.parametrize("entries, message", [
    ([{"at": 1, "kind": "explode", "target": "s1"}], "failures[0].kind: unknown kind 'explode'"),
    ([{"at": 0, "kind": "link_down", "target": "l1-s1"},
      {"at": -1, "kind": "switch_crash", "target": "s1"}], "failures[1].at: must be >= 0"),
    ([{"at": 1, "kind": "switch_crash", "target": "s9"}],
     "failures[0].target: unknown switch 's9'"),
    ([{"at": 1, "kind": "store_crash", "target": "h1"}],
     "failures[0].target: unknown store 'h1'"),
    ([{"at": 1, "kind": "link_down", "target": "l1-s7"}],
     "failures[0].target: unknown link 'l1-s7'"),
    ([{"at": 1, "kind": "link_down", "target": "l1"}], "failures[0].target: link key must"),
    ([{"at": 1, "kind": "switch_crash", "target": "h1"}], "failures[0].target: switch_crash"),
    ([{"at": 1, "kind": "switch_crash"}], "failures[0].target: missing"),
    ([{"at": "soon", "kind": "switch_crash", "target": "s1"}], "failures[0].at: must be a number"),
    ([{"at": 1, "kind": "switch_crash", "target": "s1", "when": 2}],
     "failures[0].when: unknown key"),
    ([{"at": 1, "kind": "switch_crash", "target": "s1", "params": {"x": 1}}],
     "failures[0].params.x: unknown parameter for switch_crash"),
    ([{"at": 1, "kind": "netem", "target": "l1-s1", "params": {"loss": 150}}],
     "failures[0].params.loss: must be in [0, 100]"),
    ([{"at": 1, "kind": "netem", "target": "l1-s1", "params": {"reorder": 5}}],
     "failures[0].params.reorder: needs delay_ms > 0"),
    ([{"at": 1, "kind": "netem", "target": "l1-s1", "params": {"end": "s2"}}],
     "failures[0].params.end: must be one end of l1-s1"),
    ([{"at": 1, "kind": "netem_clear", "target": "l1-s1", "duration": 1}],
     "failures[0].duration: netem_clear l1-s1: no inverse"),
    ([{"at": 1, "kind": "link_up", "target": "l1-s1", "duration": 0}],
     "failures[0].duration: must be > 0"),
    ("not a list", "failures: must be a list"),
])
def test_timeline_validation_names_index_and_key(topo, entries, message):
    with pytest.raises(ConfigError) as info:
        Timeline.from_dicts(entries, topo)
    assert message in str(info.value)


def test_targets_checked_syntactically_without_topology():
    Timeline.from_dicts([{"at": 0, "kind": "switch_crash", "target": "s42"}])
    with pytest.raises(ConfigError, match="failures\\[0\\].target"):
        Timeline.from_dicts([{"at": 0, "kind": "store_crash", "target": "s1"}])


@pytest.mark.parametrize("kind", sorted(EVENT_KINDS))
def test_inverse_is_an_involution(kind):
    target = {"switch": "s1", "link": "l1-s1", "store": "h5"}[EVENT_KINDS[kind].target]
    params = {"loss": 2.0} if kind.startswith("netem") else {}
    event = FailureEvent(1.0, kind, target, params)
    assert inverse(event).kind == EVENT_KINDS[kind].inverse
    assert inverse(inverse(event)) == event
    assert inverse(event, at=4.0).at == 4.0


def test_netem_clear_without_impairment_has_no_inverse():
    with pytest.raises(TestbedError, match="no inverse"):
        inverse(FailureEvent(0, "netem_clear", "l1-s1"))


def test_event_params_are_read_only():
    event = FailureEvent(0, "netem", "l1-s1", {"loss": 1})
    with pytest.raises(TypeError):
        event.params["loss"] = 2


def test_link_interfaces(topo):
    both = FailureEvent(0, "link_down", "l2-s1")
    assert link_interfaces(topo, both) == [("l2", "l2-eth3"), ("s1", "s1-eth2")]
    one = FailureEvent(0, "netem", "l2-s1", {"end": "s1", "loss": 1})
    assert link_interfaces(topo, one) == [("s1", "s1-eth2")]


def test_netem_arguments():
    assert Netem(loss=1.5, delay_ms=10, jitter_ms=2, reorder=25, limit=500).tc_args() == \
        ["delay", "10ms", "2ms", "loss", "1.5%", "reorder", "25%", "limit", "500"]
    assert Netem().tc_args() == []
    with pytest.raises(ConfigError, match="params.jitter_ms: needs delay_ms"):
        Netem(jitter_ms=1)


def test_netem_as_port_impair_arguments():
    assert Netem(loss=1.5, delay_ms=10, jitter_ms=2, reorder=25, limit=500).port_impair_args() == \
        ["loss", "1.5", "delay", "10", "jitter", "2", "reorder", "25", "limit", "500"]
    assert Netem(delay_ms=20).port_impair_args() == ["delay", "20"]
    assert Netem().port_impair_args() == ["loss", "0"]


def test_switch_port_fallback_impairs_what_each_end_transmits():
    """netem on end X impairs what X sends: X's port `out` if X is a switch, else `in` on the
    switch port facing the host."""
    tb = _Testbed(RunConfig(name="unit"), results_dir="/nonexistent")    # nothing is built
    assert tb.impair_point("l1-s1", "l1") == ("l1", tb.topo.port_of("l1", "s1"), "out")
    assert tb.impair_point("l1-s1", "s1") == ("s1", tb.topo.port_of("s1", "l1"), "out")
    assert tb.impair_point("h1-l1", "h1") == ("l1", tb.topo.port_of("l1", "h1"), "in")
    assert tb.impair_point("h1-l1", "l1") == ("l1", tb.topo.port_of("l1", "h1"), "out")


def test_play_logs_the_mechanism_a_handler_names(workdir):
    timeline = Timeline.from_dicts([{"at": 0, "kind": "netem", "target": "l1-s1", "params": {"loss": 1}},
                                    {"at": 0, "kind": "link_down", "target": "l1-s1"}])
    path = workdir / "events.csv"
    with EventLog(str(path)) as log:
        play(timeline, {"netem": lambda e: "switch-port", "link_down": lambda e: 42}, log)
    rows = list(csv.DictReader(path.open()))
    assert [(r["kind"], r["mechanism"]) for r in rows] == [("netem", "switch-port"), ("link_down", "")]


def test_event_log_and_play(workdir):
    timeline = Timeline.from_dicts([
        {"at": 0.0, "kind": "switch_crash", "target": "s1"},
        {"at": 0.05, "kind": "netem", "target": "l1-s1", "params": {"loss": 3}},
    ])
    seen = []

    def boom(event):
        raise RuntimeError("tc failed")

    path = workdir / "events.csv"
    with EventLog(str(path)) as log:
        results = play(timeline, {"switch_crash": seen.append, "netem": boom}, log)
    assert [r[0].kind for r in results] == ["switch_crash", "netem"]
    assert seen == [timeline.events[0]]
    assert results[1][1] >= 0.05
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == list(EventLog.FIELDS)
    assert (rows[0]["kind"], rows[0]["ok"], rows[0]["error"]) == ("switch_crash", "1", "")
    assert rows[1]["ok"] == "0" and "tc failed" in rows[1]["error"]
    assert rows[1]["params"] == '{"loss":3}' and float(rows[1]["planned_time"]) == 0.05


def test_play_checks_handlers_and_can_be_stopped():
    timeline = Timeline.from_dicts([{"at": 30, "kind": "link_down", "target": "l1-s1"}])
    with pytest.raises(ConfigError, match="no handler for link_down"):
        play(timeline, {})
    stop = threading.Event()
    stop.set()
    assert play(timeline, {"link_down": lambda e: None}, stop=stop) == []


# ---------------------------------------------------------------------------------------------
# Kernel helpers (root)

@contextmanager
def veth_between_namespaces():
    """Two fresh namespaces joined by a veth pair; both deleted on exit."""
    tag = f"tb{os.getpid() % 10000}f"
    with NetnsExec.create(f"{tag}a") as a, NetnsExec.create(f"{tag}b") as b:
        subprocess.run(["ip", "link", "add", f"{tag}a0", "netns", a.name, "type", "veth",
                        "peer", "name", f"{tag}b0", "netns", b.name], check=True)
        for ns, intf in ((a, f"{tag}a0"), (b, f"{tag}b0")):
            run_in(ns, ["ip", "link", "set", intf, "up"])
        yield a, f"{tag}a0", b, f"{tag}b0"


def _is_up(ns, intf):
    return "state DOWN" not in run_in(ns, ["ip", "link", "show", "dev", intf]) and \
        ",UP" in run_in(ns, ["ip", "link", "show", "dev", intf])


@pytest.mark.root
def test_link_down_returns_its_inverse():
    with veth_between_namespaces() as (a, intf_a, _b, _intf_b):
        assert _is_up(a, intf_a)
        undo = link_down(a, intf_a)
        assert not _is_up(a, intf_a)
        redo = undo()
        assert _is_up(a, intf_a)
        redo()
        assert not _is_up(a, intf_a)


@pytest.mark.root
def test_netem_applies_and_clears_or_reports_missing_kernel_support():
    """Kernel netem where the kernel has it; elsewhere the error that sends `Testbed.netem` to
    the switch-port fallback (tested on real links in test_link_impairment_mininet.py)."""
    with veth_between_namespaces() as (a, intf_a, _b, _intf_b):
        if not netem_available():
            with pytest.raises(NetemUnavailableError, match=f"netem on {intf_a}: this kernel has no netem qdisc"):
                netem(a, intf_a, Netem(loss=10, delay_ms=1))
            assert "netem" not in run_in(a, ["tc", "qdisc", "show", "dev", intf_a])
            return
        undo = netem(a, intf_a, Netem(loss=10, delay_ms=1))
        assert "netem 7e57:" in run_in(a, ["tc", "qdisc", "show", "dev", intf_a])
        redo = undo()
        assert "netem" not in run_in(a, ["tc", "qdisc", "show", "dev", intf_a])
        redo()
        assert "loss 10%" in run_in(a, ["tc", "qdisc", "show", "dev", intf_a])
        netem_clear(a, intf_a)


@pytest.mark.root
def test_netem_leaves_foreign_root_qdisc_alone():
    with veth_between_namespaces() as (a, intf_a, _b, _intf_b):
        run_in(a, ["tc", "qdisc", "add", "dev", intf_a, "root", "handle", "5:", "tbf",
                   "rate", "10mbit", "burst", "32k", "latency", "50ms"])
        with pytest.raises(TestbedError, match="refusing to replace"):
            netem(a, intf_a, Netem(loss=1))
        with pytest.raises(TestbedError, match="not ours"):
            netem_clear(a, intf_a)
        assert "tbf 5:" in run_in(a, ["tc", "qdisc", "show", "dev", intf_a])
