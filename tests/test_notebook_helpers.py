"""analysis.notebook: the helpers the analysis notebooks share (no root, no Mininet)."""
import json
import subprocess

import nbformat
import numpy as np
import pandas as pd
import pytest

from analysis import notebook as nb
from analysis import runs


# -- finding the data ------------------------------------------------------------------------------

def test_results_dir_follows_testbed_results():
    assert nb.results_dir({"TESTBED_RESULTS": "/x/y"}) == nb.Path("/x/y")
    assert nb.results_dir({}) == nb.REPO / "results"
    assert nb.results_dir({"TESTBED_RESULTS": ""}) == nb.REPO / "results"


def write_manifest(results, entries):
    (results / "figures").mkdir(parents=True, exist_ok=True)
    (results / "figures" / "MANIFEST.json").write_text(json.dumps(entries))


def test_experiment_dir_from_the_manifest(tmp_path):
    (tmp_path / "failover-1").mkdir()
    write_manifest(tmp_path, {"failover.png": {"experiment_dir": "failover-1"}})
    assert nb.experiment_dir(tmp_path, "failover") == tmp_path / "failover-1"
    assert nb.experiment_dir(str(tmp_path), "failover.png") == tmp_path / "failover-1"


@pytest.mark.parametrize("manifest, figure", [
    (None, "failover"),                                               # no run at all
    ({"failover.png": {"experiment_dir": "failover-1"}}, "latency"),  # that experiment never ran
    ({"failover.png": {"experiment_dir": "failover-1"}}, "failover"), # its directory was removed
])
def test_missing_results_say_how_to_make_them(tmp_path, manifest, figure):
    if manifest is not None:
        write_manifest(tmp_path, manifest)
    with pytest.raises(nb.MissingResults, match="run sudo ./run_all.sh --quick first"):
        nb.experiment_dir(tmp_path, figure)


def make_run(exp, name, config, status="ok", targets=None):
    run = exp / name
    run.mkdir(parents=True)
    prov = {"config": config, "targets": targets or {"switches": {"name": "bundled"}},
            "git": {"commit": None, "dirty": True}}
    if status:
        prov["status"] = status
    (run / "provenance.json").write_text(json.dumps(prov))
    return run


def test_runs_index_lists_run_directories_in_order(tmp_path):
    make_run(tmp_path, "20260101-000002-b", {"name": "b", "app": "nat", "variant": "noft"}, status=None)
    make_run(tmp_path, "20260101-000001-a", {"name": "a", "app": "nat", "variant": "redplane"},
             targets={"measured": "in-process", "switches": {"name": "bundled"}})
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / "table.csv").write_text("x\n1\n")
    index = nb.runs_index(tmp_path)
    assert list(index["run"]) == ["20260101-000001-a", "20260101-000002-b"]
    assert list(index["variant"]) == ["redplane", "noft"]
    assert list(index["measured"]) == ["in-process", "Mininet"]
    assert index["status"].iloc[0] == "ok" and pd.isna(index["status"].iloc[1])
    assert list(index["target"]) == ["bundled", "bundled"]
    assert index["path"].iloc[0] == tmp_path / "20260101-000001-a"


def test_runs_index_of_an_empty_experiment(tmp_path):
    index = nb.runs_index(tmp_path)
    assert index.empty and "path" in index


def test_read_table_missing(tmp_path):
    with pytest.raises(nb.MissingResults, match="no table"):
        nb.read_table(tmp_path, "summary")


def test_topology_of_a_run(tmp_path):
    run = make_run(tmp_path, "r", {"name": "r", "app": "nat"})
    topo = nb.topology(run)
    assert topo.clients() and topo.servers() and len(topo.spines()) == 2


# -- checking tables ---------------------------------------------------------------------------------

def stored(exp, name, df):
    df.to_csv(exp / f"{name}.csv", index=False)


def table():
    return pd.DataFrame({"app": ["nat", "lb"], "n": [1, 2], "x": [0.1 + 0.2, np.nan], "ok": [True, False],
                         "why": [None, "reset"], "run": ["/a/r1", "/a/r2"]})


def test_check_table_agrees_after_a_csv_round_trip(tmp_path):
    stored(tmp_path, "t", table())
    back = nb.check_table(table(), tmp_path, "t")
    assert list(back.columns) == list(table().columns)


def test_check_table_orders_by_keys_and_ignores_columns(tmp_path):
    stored(tmp_path, "t", table())
    mine = table().iloc[::-1].assign(run=["/b/r2", "/b/r1"])
    nb.check_table(mine, tmp_path, "t", keys=["app"], ignore=["run"])
    with pytest.raises(nb.TableMismatch):
        nb.check_table(mine, tmp_path, "t")


def test_check_table_tolerance(tmp_path):
    stored(tmp_path, "t", table())
    nb.check_table(table().assign(n=[1 + 1e-9, 2]), tmp_path, "t")
    with pytest.raises(nb.TableMismatch, match=r"t\.csv .*row 0 n"):
        nb.check_table(table().assign(n=[1.01, 2]), tmp_path, "t")


@pytest.mark.parametrize("change, message", [
    (lambda df: df.drop(columns=["ok"]), "columns"),
    (lambda df: df.iloc[:1], "1 rows != stored 2"),
    (lambda df: df.assign(why=["reset", "reset"]), "row 0 why"),
    (lambda df: df.assign(x=[0.3, 1.0]), "row 1 x"),
    (lambda df: df.assign(ok=[False, False]), "row 0 ok"),
])
def test_check_table_names_the_difference(tmp_path, change, message):
    stored(tmp_path, "t", table())
    with pytest.raises(nb.TableMismatch, match=message):
        nb.check_table(change(table()), tmp_path, "t")


# -- raw data from logs ---------------------------------------------------------------------------

def write_probe_log(path, flow, sends, replies, rate=100.0):
    """A probe sender's log: `sends` seqs sent every 1/rate s from t0, `replies` seqs echoed
    (reply 2 ms after the send)."""
    t0 = 1_700_000_000_000_000_000
    step = int(1e9 / rate)
    meta = {"tool": "probe", "mode": "send", "args": {"rate": rate, "flow": flow, "dst": "10.0.2.2"}}
    lines = [f"# testbed-log {json.dumps(meta)}", "event,flow,seq,send_ns,echo_ns,recv_ns,error"]
    for seq in range(sends):
        send = t0 + seq * step
        lines.append(f"sent,{flow},{seq},{send},,,")
        if seq in replies:
            lines.append(f"reply,{flow},{seq},{send},{send + 1_000_000},{send + 2_000_000},")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return t0


def test_logged_replies_feed_probe_recovery(tmp_path):
    lost = set(range(100, 150))                          # 0.5 s of a 100/s stream
    t0 = write_probe_log(tmp_path / "traffic" / "probe1.client.csv", 1, 300, set(range(300)) - lost)
    write_probe_log(tmp_path / "traffic" / "probe2.client.csv", 2, 300, set(range(300)))
    replies = nb.logged_replies(tmp_path, "probe*.client.csv")
    assert len(replies) == 550 and replies["probe_echo"].all()
    assert {"time", "time_ns", "probe_flow", "probe_seq", "rtt", "log"} <= set(replies.columns)
    assert replies["rtt"].round(6).eq(0.002).all()
    failure = t0 / 1e9 + 1.0                             # the crash, when seq 100 was due
    rec = runs.probe_recovery(replies, failure).set_index("flow")
    assert rec.loc[1, "interrupted"] and not rec.loc[2, "interrupted"]
    assert rec.loc[1, "lost"] == 50
    assert rec.loc[1, "recovery_s"] == pytest.approx(0.502, abs=1e-6)


def test_tool_logs_lists_the_tools_arguments(tmp_path):
    write_probe_log(tmp_path / "traffic" / "flow1.client.csv", 1, 3, {0, 1, 2}, rate=50.0)
    (tmp_path / "traffic" / "flows.json").write_text("[]")
    logs = nb.tool_logs(tmp_path)
    assert list(logs["log"]) == ["flow1.client.csv"]
    assert logs["tool"].iloc[0] == "probe" and logs["rate"].iloc[0] == 50.0


def test_probe_spines_follow_the_ecmp_hash(tmp_path):
    from p4apps.apps import app_named
    from testbed.routing import path_spine
    from testbed.runconfig import RunConfig
    cfg = {"name": "f", "app": "nat", "variant": "redplane"}
    run = make_run(tmp_path, "r", cfg)
    topo = RunConfig.from_dict(cfg).topology()
    client, server = topo.ip_of(topo.clients()[0]), topo.ip_of(topo.servers()[0])
    public = "10.253.0.1"
    rows = []
    for flow, sport in ((1, 40001), (2, 40002), (3, 40003)):
        rows.append({"time": 1.0 + flow, "src": client, "dst": server, "proto": 17, "sport": sport, "dport": 7000,
                     "probe_flow": flow, "probe_echo": False})
        rows.append({"time": 9.0, "src": client, "dst": server, "proto": 17, "sport": 1, "dport": 1,
                     "probe_flow": flow, "probe_echo": False})          # later packets do not count
    at_clients = pd.DataFrame(rows)
    at_servers = pd.DataFrame([{"time": 2.0, "src": server, "dst": public, "proto": 17, "sport": 7000,
                                "dport": 10816, "probe_flow": 1, "probe_echo": True}])
    got = nb.probe_spines(run, at_clients, at_servers)
    app = app_named("nat")
    modes, anycast = app.hash_modes(topo, "redplane"), app.anycast(topo)
    out = path_spine(topo, client, server, 17, 40001, 7000, modes, anycast=anycast)
    back = path_spine(topo, server, public, 17, 7000, 10816, modes, anycast=anycast)
    assert got[1] == "+".join(sorted({out, back}))
    assert got[2] == path_spine(topo, client, server, 17, 40002, 7000, modes, anycast=anycast)
    assert set(got) == {1, 2, 3}


def test_probe_spines_without_probes(tmp_path):
    run = make_run(tmp_path, "r", {"name": "f", "app": "nat", "variant": "noft"})
    assert nb.probe_spines(run, pd.DataFrame(), pd.DataFrame()) == {}


def test_same_sources(tmp_path):
    repo = tmp_path / "repo"
    (repo / "p4apps").mkdir(parents=True)
    (repo / "p4apps" / "a.p4").write_text("one\n")
    (repo / "other.txt").write_text("x\n")
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t", "-c", f"safe.directory={repo}"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "c"], check=True)
    commit = subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    run = tmp_path / "run"
    run.mkdir()
    (run / "provenance.json").write_text(json.dumps({"git": {"commit": commit, "dirty": False}}))
    assert nb.same_sources(run, ["p4apps"], repo=repo)
    (repo / "other.txt").write_text("changed\n")
    assert nb.same_sources(run, ["p4apps"], repo=repo)
    (repo / "p4apps" / "a.p4").write_text("two\n")
    assert not nb.same_sources(run, ["p4apps"], repo=repo)
    (run / "provenance.json").write_text(json.dumps({"git": {"commit": commit, "dirty": True}}))
    (repo / "p4apps" / "a.p4").write_text("one\n")
    assert not nb.same_sources(run, ["p4apps"], repo=repo)
    (run / "provenance.json").write_text(json.dumps({"git": {"commit": "0" * 40, "dirty": False}}))
    assert not nb.same_sources(run, ["p4apps"], repo=repo)


def test_experiment_script_is_imported_once():
    failover = nb.experiment_script("failover")
    assert callable(failover.summarise) and nb.experiment_script("failover") is failover
    with pytest.raises(FileNotFoundError):
        nb.experiment_script("no_such_experiment")


# -- figures ---------------------------------------------------------------------------------------------

def line_figure(ys, size=None):
    from analysis.plots import new_figure
    fig, ax = new_figure()
    if size:
        fig.set_size_inches(*size)
    ax.plot([0, 1, 2], ys)
    return fig


def test_check_figure(tmp_path):
    (tmp_path / "f.png").write_bytes(nb.figure_png(line_figure([0, 1, 0])))
    assert nb.check_figure(line_figure([0, 1, 0]), tmp_path, "f") == 0.0
    assert nb.figure_difference(line_figure([1, 0, 1]), tmp_path / "f.png") > 0.002
    with pytest.raises(nb.FigureMismatch, match="f.png"):
        nb.check_figure(line_figure([1, 0, 1]), tmp_path, "f")
    assert nb.figure_difference(line_figure([0, 1, 0], size=(9, 2)), tmp_path / "f.png") == 1.0
    with pytest.raises(nb.MissingResults):
        nb.check_figure(line_figure([0, 1, 0]), tmp_path, "g")


def test_show_returns_a_png_image():
    image = nb.show(line_figure([0, 1, 0]))
    assert image.data.startswith(b"\x89PNG") and image.format == "png"


# -- notebooks ---------------------------------------------------------------------------------------------

def test_clear_outputs_and_the_failure_message(tmp_path):
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"),
                                           nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("1/0")])
    book.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi")]
    book.cells[1].execution_count = 3
    book.cells[2].outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero",
                                                    traceback=[])]
    message = nb._failure(tmp_path / "t.ipynb", book, RuntimeError("x"))
    assert message == "t.ipynb: cell 2 failed:\n1/0\n--> ZeroDivisionError: division by zero"
    path = tmp_path / "t.ipynb"
    nbformat.write(book, path)
    assert nb.main(["--clear", str(path)]) == 0
    cleared = nbformat.read(path, as_version=4)
    assert all(c.outputs == [] and c.execution_count is None for c in cleared.cells if c.cell_type == "code")
    assert [c.source for c in cleared.cells] == ["# t", "x = 1", "1/0"]


def test_main_reports_a_failing_notebook(tmp_path, capsys):
    path = tmp_path / "bad.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("raise ValueError('nope')")]), path)
    good = tmp_path / "good.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")]), good)
    assert nb.main([str(good), "--save", str(tmp_path / "out")]) == 0
    saved = nbformat.read(tmp_path / "out" / "good.ipynb", as_version=4)
    assert saved.cells[0].outputs[0]["text"] == "42\n"
    assert nb.main([str(path), str(good)]) == 1
    err = capsys.readouterr().err
    assert "bad.ipynb: cell 0 failed" in err and "ValueError: nope" in err


def test_notebooks_lists_analysis_notebooks():
    names = [p.name for p in nb.notebooks()]
    assert names == sorted(names) and all(n.endswith(".ipynb") for n in names)
