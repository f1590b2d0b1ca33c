"""analysis.experiments (the tables behind the experiment figures) and the plotting functions
the experiment scripts use: synthetic inputs with known answers, no root needed."""
import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from analysis import experiments as ax
from analysis import plots, style

PROGRAM = """
#include <core.p4>
#include <v1model.p4>
header h_t { bit<8> a; }
struct headers_t { h_t h; }
struct meta_t { bit<8> x; }
parser P(packet_in pkt, out headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.h); transition accept; }
}
control VC(inout headers_t hdr, inout meta_t meta) { apply { } }
control Inner(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) {
    register<bit<16>>(8) r_inner;
    action bump() { r_inner.write(0, 1); }
    table t_inner { key = { hdr.h.a: exact; } actions = { bump; NoAction; } size = 16; }
    apply { t_inner.apply(); }
}
control Ig(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) {
    register<bit<32>>(4) r_used;
    register<bit<8>>(100) r_unused;
    counter(10, CounterType.packets) c_used;
    Inner() inner;
    action set_x(bit<8> v) { meta.x = v; r_used.write(0, 1); }
    action count_it() { c_used.count(0); }
    action never() { r_unused.write(0, 1); }
    table t1 { key = { hdr.h.a: exact; } actions = { set_x; NoAction; } size = 32; }
    table t2 { key = { meta.x: exact; } actions = { count_it; NoAction; } size = 64; }
    table t3 { key = { meta.x: exact; } actions = { NoAction; } size = 8; }
    table t_dead { key = { meta.x: exact; } actions = { never; } size = 8; }
    apply {
        if (t1.apply().hit) {
            t2.apply();
            inner.apply(hdr, meta, sm);
        } else {
            t3.apply();
        }
        sm.egress_spec = 1;
    }
}
control Eg(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) {
    table e1 { key = { sm.egress_port: exact; } actions = { NoAction; } size = 4; }
    apply { e1.apply(); }
}
control CC(inout headers_t hdr, inout meta_t meta) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr); } }
V1Switch(P(), VC(), Ig(), Eg(), CC(), D()) main;
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    from testbed.v1model import load
    path = tmp_path_factory.mktemp("p4") / "prog.p4"
    path.write_text(PROGRAM)
    return load(str(path))


# ---- resources ---------------------------------------------------------------------------------

def test_pipeline_depth_takes_the_longest_branch_and_follows_nested_controls(program):
    # t1, then the hit branch: t2 and Inner's t_inner (3) beats the miss branch's t3 (2)
    assert ax.pipeline_depth(program.registry.blocks["ingress"]) == 3
    assert ax.pipeline_depth(program.registry.blocks["egress"]) == 1


def test_program_resources_counts_declared_and_used(program):
    res = ax.program_resources(program)
    assert res["tables"] == 6 and res["used_tables"] == 5            # t_dead is never applied
    assert res["registers"] == 3 and res["used_registers"] == 2      # r_unused only in `never`
    assert res["register_bits"] == 4 * 32 + 100 * 8 + 8 * 16
    assert res["used_register_bits"] == 4 * 32 + 8 * 16
    assert res["counters"] == 1 and res["used_counters"] == 1 and res["counter_cells"] == 10
    assert res["used_actions"] == 4                                   # set_x, count_it, bump, NoAction
    assert res["depth"] == 4


def test_installed_entries_counts_what_the_control_plane_added(program):
    program.cli("table_add t1 set_x 1 => 5")
    program.cli("table_add t1 set_x 2 => 6")
    program.cli("table_add t_dead never 3 =>")
    counts = ax.installed_entries(program)
    assert counts["t1"] == 2 and counts["total"] == 3 and counts["used"] == 2


def test_resource_table_relative_growth():
    rows = [{"app": "nat", "variant": v, "used_tables": t, "entries": 10, "used_actions": a, "used_register_bits": 64,
             "used_counters": 0, "depth": d} for v, t, a, d in (("noft", 8, 10, 9), ("redplane", 10, 12, 9))]
    df = ax.resource_table(rows)
    rp = df[df["variant"] == "redplane"].iloc[0]
    assert rp["used_tables_vs_noft"] == pytest.approx(0.25)
    assert rp["used_actions_vs_noft"] == pytest.approx(0.2)
    assert rp["depth_vs_noft"] == 0 and np.isnan(rp["used_counters_vs_noft"])
    assert np.isnan(df[df["variant"] == "noft"]["depth_vs_noft"].iloc[0])


# ---- throughput --------------------------------------------------------------------------------

def test_rate_table_medians_and_ratio():
    reps = pd.DataFrame({"app": "nat", "variant": ["noft"] * 3 + ["redplane"] * 3,
                         "packets": [1000] * 6, "seconds": [0.01, 0.02, 0.04, 0.02, 0.04, 0.08]})
    t = ax.rate_table(reps).set_index("variant")
    assert t.loc["noft", "pps"] == 50000 and t.loc["redplane", "pps"] == 25000
    assert t.loc["noft", "pps_min"] == 25000 and t.loc["noft", "pps_max"] == 100000
    assert t.loc["redplane", "vs_noft"] == 0.5 and t.loc["redplane", "us_per_packet"] == 40


# ---- latency -----------------------------------------------------------------------------------

def write_log(path, tool, mode, fields, rows):
    meta = {"tool": tool, "mode": mode, "version": 1, "fields": {f: f for f in fields}, "args": {}}
    with open(path, "w") as f:
        f.write("# testbed-log " + json.dumps(meta) + "\n" + ",".join(fields) + "\n")
        for row in rows:
            f.write(",".join("" if v is None else str(v) for v in row) + "\n")
        f.write('# summary {"sent": %d}\n' % len(rows))


SEND_FIELDS = ["event", "flow", "seq", "send_ns", "echo_ns", "recv_ns", "error"]


def sender_rows(flow, rtts_ms, t0=10**18):
    rows = []
    for seq, rtt in enumerate(rtts_ms):
        send = t0 + seq * 10**7
        rows.append(["sent", flow, seq, send, None, None, None])
        if rtt is not None:
            rows.append(["reply", flow, seq, send, send + 1, send + int(rtt * 1e6), None])
    return rows


@pytest.fixture
def run_dir(tmp_path):
    traffic = tmp_path / "traffic"
    traffic.mkdir()
    write_log(traffic / "steady1.client.csv", "probe", "send", SEND_FIELDS, sender_rows(1, [3.0, 1.0, 1.0, 2.0]))
    write_log(traffic / "short7.client.csv", "probe", "send", SEND_FIELDS, sender_rows(1007, [None, 1.5, 0.5]))
    write_log(traffic / "echo.server.h3.csv", "probe", "recv", ["flow", "seq", "send_ns", "recv_ns", "src", "len"],
              [[1, s, 0, 0, "x", 64] for s in (0, 1, 1, 2)] + [[1007, 2, 0, 0, "x", 64]])
    return str(tmp_path)


def test_probe_rtts_reads_replies_from_sender_logs(run_dir):
    rtts = ax.probe_rtts(run_dir)
    assert sorted(rtts["log"].unique()) == ["short7", "steady1"]
    steady = rtts[rtts["log"] == "steady1"].sort_values("seq")
    assert steady["rtt"].round(6).tolist() == [0.003, 0.001, 0.001, 0.002]
    assert steady["sent"].iloc[0] == 4
    assert len(rtts[rtts["log"] == "short7"]) == 2                  # seq 0 got no reply
    assert ax.probe_rtts(run_dir, "short*.client.csv")["log"].unique().tolist() == ["short7"]


def test_first_vs_later_and_percentiles(run_dir):
    rtts = ax.first_vs_later(ax.probe_rtts(run_dir)).assign(app="nat", variant="redplane")
    assert rtts[rtts["packet"] == "first"]["log"].tolist() == ["steady1"]
    table = ax.latency_table(rtts).set_index("packet")
    assert table.loc["first", "count"] == 1 and table.loc["first", "p50_ms"] == 3.0
    later = [1.0, 1.0, 2.0, 1.5, 0.5]
    assert table.loc["later", "count"] == 5
    assert table.loc["later", "p50_ms"] == pytest.approx(np.percentile(later, 50))
    assert table.loc["later", "max_ms"] == 2.0 and table.loc["later", "min_ms"] == 0.5


def test_delivered_probes_counts_distinct_sequence_numbers(run_dir):
    assert ax.delivered_probes(run_dir) == {1: 3, 1007: 1}


# ---- overhead ----------------------------------------------------------------------------------

def packets(rows):
    cols = ["time", "frame_len", "src", "rp_dir", "rp_type_name", "rp_inner_len", "rp_seq", "rp_key"]
    return pd.DataFrame(rows, columns=cols)


def test_phase_packets_assigns_windows():
    df = packets([[t, 100, "a", None, None, None, None, None] for t in (1.0, 2.1, 2.3, 2.9, 4.9, 5.0, 9.0)])
    phases = pd.DataFrame({"name": ["p1", "p2"], "start": [0.5, 2.5], "end": [2.0, 4.8]})
    out = ax.phase_packets(df, phases, grace=0.2)         # windows [0.5, 2.2) and [2.5, 5.0)
    assert out.groupby("phase")["time"].apply(list).to_dict() == {"p1": [1.0, 2.1], "p2": [2.9, 4.9]}


def test_overhead_row_ratio_of_store_bytes_to_client_bytes():
    store = packets([[1, 100, "s", "request", "LEASE_NEW", 60, 0, 1], [1, 50, "s", "ack", "NEW_ACK", 0, 0, 1],
                     [1, 300, "s", None, None, None, None, None]])     # chain traffic: not RedPlane, ignored
    clients = packets([[1, 500, "c", None, None, None, None, None], [1, 500, "c", None, None, None, None, None]])
    row = ax.overhead_row(store, clients)
    assert row["rp_bytes"] == 150 and row["data_bytes"] == 1000 and row["ratio"] == 0.15
    assert row["header_bytes"] == 90 and row["header_ratio"] == pytest.approx(0.09)
    assert row["bytes_LEASE_NEW"] == 100 and row["bytes_NEW_ACK"] == 50 and row["rp_messages"] == 2


def test_renewal_rate_counts_seq0_renewals_and_their_acks():
    store = packets([[0.5, 80, "s", "request", "LEASE_RENEW", 0, 0, 1],        # renewal
                     [0.6, 70, "s", "ack", "RENEW_ACK", 0, 0, 1],              # its ack
                     [0.7, 150, "s", "request", "LEASE_RENEW", 60, 3, 1],      # a write: not a renewal
                     [1.5, 80, "s", "request", "LEASE_RENEW", 0, 0, 1]])       # outside the window
    r = ax.renewal_rate(store, 0.0, 1.0)
    assert r["renewals_per_s"] == 1 and r["renewal_kbps"] == pytest.approx(150 * 8 / 1e3)
    assert r["rp_kbps"] == pytest.approx(300 * 8 / 1e3)


# ---- lease sweep, snapshot, store failure --------------------------------------------------------

def test_lease_row_over_interrupted_flows_only():
    probes = pd.DataFrame({"interrupted": [True, True, False], "recovery_s": [0.2, 0.6, 0.0]})
    assert ax.lease_row(probes) == {"flows": 3, "interrupted": 2, "median_recovery_s": pytest.approx(0.4),
                                    "max_recovery_s": 0.6}
    assert ax.lease_row(probes.assign(interrupted=False))["median_recovery_s"] == 0.0


def test_sketch_errors():
    delivered = pd.DataFrame({"flow": [1, 2, 3], "packets": [100, 200, 0], "spine": ["s1", "s2", "s1"]})
    out = ax.sketch_errors(delivered, {1: 90, 2: 203, 3: 0}, {"s1"}).set_index("flow")
    assert out.loc[1, "lost"] == 10 and out.loc[1, "lost_fraction"] == 0.1 and out.loc[1, "on_failed"]
    assert out.loc[2, "lost"] == -3 and not out.loc[2, "on_failed"]
    assert np.isnan(out.loc[3, "lost_fraction"])


def test_acked_writes_and_lost_writes():
    store = packets([[1, 60, "s", "ack", "RENEW_ACK", 0, 1, 7], [2, 60, "s", "ack", "RENEW_ACK", 0, 2, 7],
                     [3, 60, "s", "ack", "RENEW_ACK", 0, 0, 7],           # a renewal ack: not a write
                     [4, 60, "s", "ack", "RENEW_ACK", 0, 1, 9], [5, 60, "s", "request", "LEASE_RENEW", 0, 5, 9]])
    acked = ax.acked_writes(store).set_index("key")
    assert acked.loc[7, "acked_seq"] == 2 and acked.loc[7, "acks"] == 2 and acked.loc[9, "acked_seq"] == 1
    dumps = {"tail": {"7": {"committed": 2}, "9": {"committed": 1}}, "head": {"7": {"committed": 1}}}
    lost = ax.lost_writes(acked.reset_index(), dumps).set_index("key")
    assert not lost.loc[7, "lost_on_tail"] and lost.loc[7, "lost_on_head"]
    assert lost.loc[9, "lost_on_head"] and lost["lost"].all()
    assert not ax.lost_writes(acked.reset_index(), {"tail": dumps["tail"]})["lost"].any()


def test_acked_and_lost_writes_across_the_seq_wrap():
    """Grants advance seqs by F, so a key wraps: 65530 then 3 (newer) is acked seq 3."""
    store = packets([[1, 60, "s", "ack", "RENEW_ACK", 0, 65530, 7], [2, 60, "s", "ack", "RENEW_ACK", 0, 3, 7]])
    acked = ax.acked_writes(store)
    assert acked.set_index("key").loc[7, "acked_seq"] == 3
    lost = ax.lost_writes(acked, {"kept": {"7": {"committed": 3}}, "behind": {"7": {"committed": 65530}}})
    assert not lost.loc[0, "lost_on_kept"] and lost.loc[0, "lost_on_behind"]


def test_shard_heads_parses_table_dump():
    dump = ("Dumping entry 0x0\nAction entry: SpineIngress.redplane.rp_set_store - a000302\n"
            "Dumping entry 0x1\nAction entry: SpineIngress.redplane.rp_set_store - a000303\n"
            "Dumping default entry\nAction entry: SpineIngress.redplane.rp_no_store - \n")
    assert ax.shard_heads(dump) == ["10.0.3.2", "10.0.3.3"]


def test_read_json(tmp_path):
    (tmp_path / "x.json").write_text('{"a": 1}')
    assert ax.read_json(str(tmp_path), "x") == {"a": 1} and ax.read_json(str(tmp_path), "y") is None


# ---- the experiments' plotting functions -------------------------------------------------------

def test_bar_panels_centres_partial_groups_and_labels_series_once():
    table = pd.DataFrame({"app": ["fabric", "nat", "nat"], "variant": ["fabric", "noft", "redplane"],
                          "v": [4, 9, 10], "lo": [4, 8, 9], "hi": [4, 10, 12]})
    fig = plots.bar_panels(table, [{"value": "v", "ylabel": "tables", "low": "lo", "high": "hi", "annotate": True},
                                   {"value": "v", "ylabel": "depth", "log": True}])
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    bars = [p for p in fig.axes[0].patches]
    assert sorted(round(b.get_x() + b.get_width() / 2, 6) for b in bars)[0] == 0.0   # fabric's lone bar centred
    assert [t.get_text() for t in fig.legends[0].get_texts()] == \
        [style.label(v) for v in style.ordered(table["variant"])]
    assert fig.axes[1].get_yscale() == "log"


def test_line_and_cdf_and_timeline_panels():
    t = pd.DataFrame({"lease_ms": [250, 1000, 250, 1000], "y": [0.2, 0.9, 0.3, 1.0], "app": ["nat"] * 2 + ["lb"] * 2})
    fig = plots.line_panels(t, [{"x": "lease_ms", "y": "y", "xlabel": "lease_ms", "ylabel": "recovery_time_s",
                                 "reference": [(250, 0.25), (1000, 1.0)], "reference_label": "bound"}])
    assert len(fig.axes[0].lines) == 3
    rtts = pd.DataFrame({"rtt": [0.001, 0.002, 0.003], "app": ["nat", "nat", "sketch"],
                         "variant": ["redplane", "noft", "snapshot"]})
    fig = plots.cdf_panels(rtts, facet="app", hue="variant", logx=True)
    assert [a.get_title() for a in fig.axes if a.get_visible()] == [style.label("nat", "app"), style.label("sketch", "app")]
    tl = pd.DataFrame({"t": [-1, 0, 1], "pps": [200, 100, 200], "trial": "chain of 2, head crashed", "series": "chain2"})
    fig = plots.timeline_panels(tl, facet="trial", hue="series", xlabel="time_since_store_crash")
    assert fig.axes[0].get_title() == "chain of 2, head crashed"


def test_catalogue_has_every_name_the_experiments_use():
    for name in ("fabric", "chain2", "chain3"):
        assert style.entry(name)["label"] != name
    for name in ("counter", "fabric"):
        assert style.entry(name, "app")["label"] != name
    for key in ("rtt_ms", "median_rtt_ms", "kpps", "tables", "actions", "entries", "register_kbits", "depth",
                "workload_overhead", "lease_ms", "snapshot_ms", "recovery_time_s", "renewal_kbps",
                "snapshot_overhead", "counts_lost", "time_since_store_crash"):
        assert style.axis_label(key)
