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


def test_a_download_is_measured_at_the_client(tmp_path):
    import json
    server_log(tmp_path, "tcp2.client.csv", [(10.05, 25000), (10.15, 25000)])
    server_log(tmp_path, "tcp2.server.h3.csv", [(10.05, 99999)])      # bytes sent: not goodput
    with open(tmp_path / "traffic" / "flows.json", "w") as f:
        json.dump([{"kind": "tcp", "name": "tcp2", "download": True}], f)
    tl = runs.tcp_goodput_timeline(str(tmp_path), 10.0, ["tcp2"])
    assert list(tl["mbps"].round(6)) == [2.0, 2.0]


def test_tcp_stall_is_the_longest_silence_after_the_failure(tmp_path):
    rows = [(9.9, 100), (10.1, 100), (10.2, 0), (10.3, 0), (10.4, 0), (10.5, 100), (10.6, 100)]
    server_log(tmp_path, "tcp1.server.h3.csv", rows)
    assert runs.tcp_stall(str(tmp_path), "tcp1", 10.0) == {"stall_s": pytest.approx(0.4), "resumed": True}
    server_log(tmp_path, "tcp3.server.h3.csv", [(9.9, 100), (10.1, 0), (13.0, 0)])  # never resumed
    assert runs.tcp_stall(str(tmp_path), "tcp3", 10.0) == {"stall_s": pytest.approx(3.0), "resumed": False}
    server_log(tmp_path, "tcp5.server.h3.csv", [(9.9, 100), (10.6, 100), (10.7, 100), (10.8, 0)])  # resumed
    assert runs.tcp_stall(str(tmp_path), "tcp5", 10.0) == {"stall_s": pytest.approx(0.6), "resumed": True}
    server_log(tmp_path, "tcp7.server.h3.csv", [(9.9, 100), (10.1, 0), (16.3, 0), (16.4, 5000)])  # last burst
    assert runs.tcp_stall(str(tmp_path), "tcp7", 10.0) == {"stall_s": pytest.approx(6.4), "resumed": False}
    assert runs.tcp_stall(str(tmp_path), "tcp1", None) == {"stall_s": 0.0, "resumed": True}
