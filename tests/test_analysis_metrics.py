"""analysis.metrics on synthetic pcaps (written with scapy) whose answers are known."""
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from analysis import metrics
from analysis.pcap import load_pcap, match_packets
from testbed.redplane import protocol, scapy_layers
from testbed.traffic.probe import encode_probe

T0 = 1_700_000_000
SERVER = ("10.0.1.1", 80)


def at(seconds) -> Decimal:
    """Exact capture time T0 + `seconds` at microsecond resolution."""
    return Decimal(T0) + Decimal(round(seconds * 1e6)) / 10**6


def write(path, packets):
    """Write (time in s after T0, packet) pairs in time order; return the loaded frame."""
    ordered = sorted(packets, key=lambda tp: tp[0])
    for t, pkt in ordered:
        pkt.time = at(t)
    wrpcap(str(path), [pkt for _, pkt in ordered])
    return load_pcap(path)


def probe(flow, seq, dport=9000):
    return Ether() / IP(src="10.0.0.1", dst="10.0.1.9") / UDP(sport=5000, dport=dport) / \
        Raw(encode_probe(flow, seq, 0, 64))


def tcp(src, sport, dst, dport, seq, flags="A", payload=100, ip_id=0, ack=1):
    return Ether() / IP(src=src, dst=dst, id=ip_id) / \
        TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags) / Raw(b"d" * payload)


# --- probe streams --------------------------------------------------------------------------
@pytest.fixture
def gap_stream(tmp_path):
    """Probe k arrives at t = k * 10 ms; seq 100-149 (due in [1.0, 1.5)) are missing."""
    seqs = [s for s in range(250) if not 100 <= s < 150]
    return write(tmp_path / "rx.pcap", [(0.01 * s, probe(1, s)) for s in seqs])


def test_probe_gaps_finds_the_known_gap(gap_stream):
    gaps = metrics.probe_gaps(gap_stream, threshold=0.1)
    assert len(gaps) == 1
    gap = gaps.iloc[0]
    assert (gap["point"], gap["probe_flow"]) == ("rx", 1)
    assert gap["start"] == pytest.approx(T0 + 1.0, abs=1e-6)
    assert gap["end"] == pytest.approx(T0 + 1.5, abs=1e-6)
    assert gap["last_before"] == pytest.approx(T0 + 0.99, abs=1e-6)
    assert gap["duration"] == pytest.approx(0.5, abs=1e-6)
    assert gap["interval"] == pytest.approx(0.01, abs=1e-6)
    assert (gap["seq_before"], gap["seq_after"], gap["lost"]) == (99, 150, 50)
    assert metrics.probe_gaps(gap_stream, threshold=1.0).empty


def test_probe_gaps_does_not_count_reordered_probes_as_lost(tmp_path):
    times = {s: 0.01 * s for s in range(20) if s != 5}
    times[5] = 0.195  # late: arrives after seq 19, just before the silence
    times.update({s: 0.5 + 0.01 * s for s in range(20, 30)})
    times[12] = 0.755  # very late: after the silence
    df = write(tmp_path / "r.pcap", [(t, probe(2, s)) for s, t in times.items()])
    gaps = metrics.probe_gaps(df, threshold=0.1)
    assert gaps[["seq_before", "seq_after", "lost"]].values.tolist() == [[5, 20, 0]]


def test_probe_loss(gap_stream):
    loss = metrics.probe_loss(gap_stream).iloc[0]
    assert (loss["expected"], loss["received"], loss["lost"], loss["duplicates"]) == \
        (250, 200, 50, 0)
    assert loss["loss_rate"] == pytest.approx(0.2)


# --- latency and loss between two points -------------------------------------------------------
def test_latency_is_exactly_two_ms_and_loss_is_counted(tmp_path):
    sent = write(tmp_path / "a.pcap", [(0.001 * s, probe(3, s)) for s in range(200)])
    got = write(tmp_path / "b.pcap", [(0.001 * s + 0.002, probe(3, s))
                                      for s in range(200) if s % 20])
    matched = match_packets(sent, got)
    stats = metrics.latency_percentiles(matched["latency"])
    assert stats["count"] == 190
    assert stats[["min", "p50", "p99", "max", "mean"]].tolist() == pytest.approx([0.002] * 5)
    assert metrics.loss_rate(matched) == pytest.approx(10 / 200)
    assert metrics.loss_rate(matched, by="flow_a").tolist() == pytest.approx([0.05])


def test_first_of_flow_marks_each_flows_earliest_packet():
    df = pd.DataFrame({"flow_a": ["x", "y", "x", "y", None], "time_a": [2.0, 1.0, 1.0, 3.0, 0.0]})
    assert metrics.first_of_flow(df).tolist() == [False, True, True, False, False]


def test_latency_percentiles_and_cdf_of_a_known_sample():
    stats = metrics.latency_percentiles([0.004, 0.001, 0.003, 0.002, np.nan], (50, 100))
    assert stats.to_dict() == pytest.approx({"count": 4, "mean": 0.0025, "min": 0.001,
                                             "p50": 0.0025, "p100": 0.004, "max": 0.004})
    cdf = metrics.latency_cdf([3.0, 1.0, 2.0, 4.0])
    assert cdf.values.tolist() == [[1.0, 0.25], [2.0, 0.5], [3.0, 0.75], [4.0, 1.0]]
    assert metrics.latency_percentiles([])["count"] == 0


# --- throughput and recovery -------------------------------------------------------------------
@pytest.fixture
def outage(tmp_path):
    """Flow 1 (port 9001) loses everything in (1.0, 1.3) s; flow 2 (port 9002) loses nothing.
    Probes every 10 ms at 5 ms offsets, so no packet sits on a bin edge."""
    pkts = []
    for k in range(300):
        t = 0.005 + 0.01 * k
        if not 1.0 < t < 1.3:
            pkts.append((t, probe(1, k, dport=9001)))
        pkts.append((t, probe(2, k, dport=9002)))
    return write(tmp_path / "rx.pcap", pkts)


def test_recovery_time_per_flow(outage):
    rec = metrics.recovery_time(outage, failure_time=T0 + 1.0, by="dport", bin_s=0.1,
                                baseline_s=1.0, horizon=T0 + 3.0)
    broken, fine = rec.set_index("dport").loc[9001], rec.set_index("dport").loc[9002]
    assert broken["baseline_rate"] == pytest.approx(100) and fine["baseline_rate"] == 100
    assert broken["time_to_first"] == pytest.approx(0.305, abs=1e-6)
    assert broken["time_to_normal"] == pytest.approx(0.3)
    assert fine["time_to_first"] == pytest.approx(0.005, abs=1e-6)
    assert fine["time_to_normal"] == 0.0


def test_recovery_time_is_missing_for_a_flow_that_never_returns(tmp_path):
    df = write(tmp_path / "rx.pcap", [(0.005 + 0.01 * k, probe(1, k)) for k in range(100)]
               + [(3.0, probe(2, 0, dport=1))])
    rec = metrics.recovery_time(df, failure_time=T0 + 1.0, by="dport").set_index("dport")
    assert rec.loc[9000, ["first_after", "time_to_first", "time_to_normal"]].isna().all()
    assert np.isnan(rec.loc[1, "time_to_normal"])  # no baseline before the failure


def test_throughput_timeline_fills_empty_bins(outage):
    flow1 = outage[outage["dport"] == 9001]
    timeline = metrics.throughput_timeline(flow1, bin_s=0.1, by="dport", start=T0, end=T0 + 2.0)
    assert len(timeline) == 21 and list(timeline.columns) == \
        ["dport", "time", "bytes", "packets", "rate_bps"]
    frame = int(flow1["frame_len"].iloc[0])
    packets = timeline.set_index(((timeline["time"] - T0) / 0.1).round().astype(int))["packets"]
    assert packets.loc[5] == 10 and packets.loc[10] == 0 and packets.loc[12] == 0
    assert packets.loc[13] == 10
    row = timeline.iloc[5]
    assert row["bytes"] == 10 * frame and row["rate_bps"] == pytest.approx(10 * frame * 8 / 0.1)
    assert timeline["packets"].sum() == len(flow1[flow1["time"] <= T0 + 2.0])


def test_throughput_timeline_groups_by_point_and_flow(outage):
    timeline = metrics.throughput_timeline(outage, bin_s=0.5)
    assert set(timeline.groupby(["point", "flow"]).size()) == {len(timeline) // 2}
    assert timeline["bytes"].sum() == outage["frame_len"].sum()


# --- replication overhead ----------------------------------------------------------------------
def test_replication_overhead_counts_known_bytes(tmp_path):
    layer = scapy_layers.LAYERS["nat"]
    inner = IP(src="10.0.0.1", dst="10.0.1.1") / TCP(sport=1000, dport=80)
    request = Ether() / IP(src="10.0.9.1", dst="10.0.9.2") / \
        UDP(sport=protocol.SWITCH_PORT, dport=protocol.store_port(1)) / \
        layer(type=protocol.LEASE_NEW, seq=1, key_addr="10.0.0.1", key_port=1000,
              value_addr="192.168.0.1", value_port=5000) / inner
    ack = Ether() / IP(src="10.0.9.2", dst="10.0.9.1") / \
        UDP(sport=protocol.store_port(1), dport=protocol.SWITCH_PORT) / \
        layer(type=protocol.NEW_ACK, seq=1, key_addr="10.0.0.1", key_port=1000)
    data = [tcp("10.0.0.1", 1000, *SERVER, seq=i * 100) for i in range(10)]
    df = write(tmp_path / "uplink.pcap", [(0.01 * i, p) for i, p in
                                          enumerate([request.copy() for _ in range(3)]
                                                    + [ack.copy() for _ in range(3)] + data)])
    table = metrics.replication_overhead(df).set_index(["rp_dir", "rp_type_name"])
    req_len, ack_len, data_len = len(request), len(ack), len(data[0])
    rp_len = protocol.APP_LAYOUTS["nat"].header_bytes
    assert rp_len == 19 and req_len == 14 + 20 + 8 + rp_len + 40 and ack_len == 14 + 20 + 8 + rp_len
    assert table.loc[("request", "LEASE_NEW"), ["messages", "bytes", "inner_bytes"]].tolist() \
        == [3, 3 * req_len, 3 * 40]
    assert table.loc[("ack", "NEW_ACK"), ["messages", "bytes"]].tolist() == [3, 3 * ack_len]
    total = table.loc[("all", "all")]
    assert total["data_bytes"] == 10 * data_len
    assert total["bytes"] == 3 * (req_len + ack_len)
    assert total["header_bytes"] == 3 * (req_len + ack_len) - 120
    assert total["ratio"] == pytest.approx(3 * (req_len + ack_len) / (10 * data_len))


# --- NAT consistency and connection survival ---------------------------------------------------
FAILURE = 1.0


def nat_scenario(tmp_path):
    """Inside/outside captures of a NAT around a failure at t=1.0 s, 20 segments per flow.

    flow 1 (10.0.0.1:1001) keeps 192.168.0.1:5001 throughout (survives);
    flow 2 (10.0.0.2:1002) is remapped from :5002 to :6002 after the failure (violation);
    flow 3 (10.0.0.3:1003) keeps its mapping, but the server resets it after the failure;
    flow 4 (10.0.0.4:1004) is black-holed after the failure.
    """
    inside, outside = [], []
    for n in (1, 2, 3, 4):
        for k in range(20):
            t = 0.1 * k + 0.01 * n
            seg = dict(seq=1000 + 100 * k, ip_id=100 * n + k)
            inside.append((t, tcp(f"10.0.0.{n}", 1000 + n, *SERVER, **seg)))
            if n == 4 and t > FAILURE:
                continue
            port = 6000 + n if (n == 2 and t > FAILURE) else 5000 + n
            outside.append((t + 0.001, tcp("192.168.0.1", port, *SERVER, **seg)))
    outside.append((1.5, tcp(*SERVER, "192.168.0.1", 5003, seq=1, flags="R", payload=0)))
    return write(tmp_path / "inside.pcap", inside), write(tmp_path / "outside.pcap", outside)


def test_consistency_violations_finds_the_remapped_flow(tmp_path):
    inside, outside = nat_scenario(tmp_path)
    matched = match_packets(inside, outside, key="nat")
    violations = metrics.consistency_violations(matched)
    assert violations["original"].unique().tolist() == ["tcp 10.0.0.2:1002>10.0.1.1:80"]
    assert violations["translation"].tolist() == ["tcp 192.168.0.1:5002>10.0.1.1:80",
                                                  "tcp 192.168.0.1:6002>10.0.1.1:80"]
    assert violations["packets"].tolist() == [10, 10]
    assert violations["first_seen"].tolist() == pytest.approx([T0 + 0.02, T0 + 1.02])
    assert violations["last_seen"].tolist() == pytest.approx([T0 + 0.92, T0 + 1.92])


def test_consistency_violations_from_redplane_messages(tmp_path):
    layer = scapy_layers.LAYERS["nat"]

    def lease(value_port):
        return Ether() / IP(src="10.0.9.1", dst="10.0.9.2") / UDP(sport=4000, dport=8000) / \
            layer(type=0, seq=1, key_addr="10.0.0.1", key_port=1, value_addr="1.1.1.1",
                  value_port=value_port)
    df = write(tmp_path / "rp.pcap", [(0.0, lease(5)), (0.5, lease(5)), (1.0, lease(6))])
    violations = metrics.consistency_violations(
        df, original=["rp_key_addr", "rp_key_port"],
        translated=["rp_value_addr", "rp_value_port"], time="time")
    assert violations["translation"].tolist() == ["1.1.1.1 5", "1.1.1.1 6"]
    assert violations["packets"].tolist() == [2, 1]


def test_connection_survival(tmp_path):
    inside, outside = nat_scenario(tmp_path)
    table = metrics.connection_survival(inside, outside, failure_time=T0 + FAILURE)
    table = table.set_index("flow")
    flows = {n: f"tcp 10.0.0.{n}:{1000 + n}>10.0.1.1:80" for n in (1, 2, 3, 4)}
    assert list(table.index) == [flows[n] for n in (1, 2, 3, 4)]
    assert table["bytes_sent"].tolist() == [2000] * 4
    assert table["bytes_delivered"].tolist() == [2000, 2000, 2000, 1000]
    assert table.loc[flows[4], "delivered_fraction"] == 0.5
    assert table["bytes_after"].tolist() == [1000, 1000, 1000, 0]
    assert table["resets"].tolist() == [0, 0, 1, 0]
    assert table["same_mapping"].iloc[:3].tolist() == [True, False, True]
    assert pd.isna(table["same_mapping"].iloc[3]) and pd.isna(table["mapping_after"].iloc[3])
    assert table["survived"].tolist() == [True, False, False, False]
    assert table.loc[flows[1], "connection"] == "tcp 10.0.0.1:1001<>10.0.1.1:80"
    assert table.loc[flows[2], "mapping_after"] == "tcp 192.168.0.1:6002>10.0.1.1:80"


def test_connection_id_is_direction_free(tmp_path):
    df = write(tmp_path / "c.pcap", [(0.0, tcp("10.0.0.1", 1, "10.0.0.2", 2, 0)),
                                     (0.1, tcp("10.0.0.2", 2, "10.0.0.1", 1, 0))])
    ids = metrics.connection_id(df)
    assert ids.nunique() == 1 and ids.iloc[0] == "tcp 10.0.0.1:1<>10.0.0.2:2"
