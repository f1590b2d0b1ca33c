"""analysis.runs on run directories made here with known answers."""
import os

import pandas as pd
import pytest

from analysis import runs


def server_log(run_dir, name, rows):
    """A tcpflow server log: rows of (time s, interval bytes)."""
    os.makedirs(os.path.join(run_dir, "traffic"), exist_ok=True)
    with open(os.path.join(run_dir, "traffic", name), "w") as f:
        f.write('# testbed-log {"tool": "tcpflow", "mode": "server"}\n')
        f.write("time_ns,flow,event,interval_bytes,total_bytes,detail\n")
        f.write(f"{int(rows[0][0] * 1e9) - 1000},,accepted,,0,10.0.0.1:1\n")
        total = 0
        for t, b in rows:
            total += b
            f.write(f"{int(t * 1e9)},1,interval,{b},{total},\n")


def test_tcp_goodput_timeline_sums_servers_and_shows_a_break_as_zero(tmp_path):
    # flow tcp1: 12500 B per 0.1 s (1 Mbit/s) on two backends, stopping 0.2 s after the failure
    # at t=100; flow tcp2 is not asked for
    steady = [(99.65 + 0.1 * i, 12500) for i in range(6)]          # 99.65 .. 100.15
    server_log(tmp_path, "tcp1.server.h3.csv", steady)
    server_log(tmp_path, "tcp1.server.h4.csv", [(100.45, 12500)])  # one late interval elsewhere
    server_log(tmp_path, "tcp2.server.h3.csv", [(99.75, 10 ** 6)])
    tl = runs.tcp_goodput_timeline(str(tmp_path), 100.0, ["tcp1"])
    assert list(tl.columns) == ["t", "mbps"]
    by_t = dict(zip(tl["t"].round(3), tl["mbps"].round(6)))
    assert by_t[-0.4] == by_t[-0.1] == by_t[0.1] == pytest.approx(1.0)
    assert by_t[0.2] == by_t[0.3] == 0.0                            # the gap is explicit
    assert by_t[0.4] == pytest.approx(1.0)
    assert tl["t"].is_monotonic_increasing and tl["mbps"].sum() == pytest.approx(7.0)


def test_tcp_goodput_timeline_without_logs_is_empty(tmp_path):
    tl = runs.tcp_goodput_timeline(str(tmp_path), 1.0, ["tcp9"])
    assert tl.empty and list(tl.columns) == ["t", "mbps"]
    assert isinstance(tl, pd.DataFrame)
