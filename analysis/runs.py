"""Reading a run directory (results/<run-id>/) into tables: the only input analysis needs.

A run directory holds provenance.json (the configuration), events.csv (failures with their
actual times), pcaps/<node>_<intf>.pcap, and traffic/<flow>.client.csv / .server.*.csv (tool
logs). The functions here turn them into tidy DataFrames; metrics live in analysis.metrics.
"""
from __future__ import annotations

import glob
import json
import os

import numpy as np
import pandas as pd

from analysis.metrics import probe_gaps, throughput_timeline
from analysis.pcap import load_pcap


def config(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "provenance.json")) as f:
        return json.load(f)["config"]


def events(run_dir: str) -> pd.DataFrame:
    """The failure events with `time` = actual wall-clock time in seconds since the epoch."""
    path = os.path.join(run_dir, "events.csv")
    if not os.path.exists(path):
        return pd.DataFrame(columns=["kind", "target", "time"])
    df = pd.read_csv(path)
    df["time"] = df["wall_time_ns"] / 1e9
    return df


def failure_time(run_dir: str, kind: str = "switch_crash") -> float | None:
    ev = events(run_dir)
    ev = ev[ev["kind"] == kind]
    return float(ev["time"].iloc[0]) if len(ev) else None


def client_packets(run_dir: str, clients: list[str], app: str = "nat") -> pd.DataFrame:
    """Packets captured on the clients' interfaces (pcaps/<client>_<client>-eth0.pcap)."""
    frames = []
    for host in clients:
        for path in glob.glob(os.path.join(run_dir, "pcaps", f"{host}_*.pcap")):
            frames.append(load_pcap(path, label=host, app=app if app in ("nat", "firewall", "lb", "sketch") else "nat"))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def probe_replies(packets: pd.DataFrame) -> pd.DataFrame:
    """Echoed probe packets arriving back at their sender."""
    if packets.empty or "probe_echo" not in packets:
        return packets.iloc[0:0]
    return packets[packets["probe_echo"].fillna(False).astype(bool)]


def probe_recovery(packets: pd.DataFrame, failure: float | None, min_gap: float = 0.1,
                   window: float = 0.5) -> pd.DataFrame:
    """Per probe flow: whether the failure interrupted it and for how long.

    A flow is interrupted when its echoed replies stop for at least `min_gap` seconds in a gap
    that starts before `failure + window` (packets already in flight when a switch dies still
    arrive) and ends after the failure; `recovery_s` is the time from the failure to the first
    reply after that gap (0 if the flow was not interrupted: it used a surviving spine), `gap_s`
    the gap's duration and `lost` the probes missing in it. `replies` counts all replies."""
    replies = probe_replies(packets)
    rows = []
    for flow, df in replies.groupby("probe_flow"):
        gaps = probe_gaps(df, min_gap, by=("probe_flow",), echo=True)
        hit = gaps.iloc[0:0]
        if failure is not None and len(gaps):
            hit = gaps[(gaps["last_before"] <= failure + window) & (gaps["end"] >= failure)]
            hit = hit.sort_values("duration", ascending=False).head(1)
        rows.append({"flow": int(flow), "replies": len(df), "interrupted": bool(len(hit)),
                     "recovery_s": float(hit["end"].iloc[0] - failure) if len(hit) else 0.0,
                     "gap_s": float(hit["duration"].iloc[0]) if len(hit) else 0.0,
                     "lost": int(hit["lost"].iloc[0]) if len(hit) else 0})
    return pd.DataFrame(rows, columns=["flow", "replies", "interrupted", "recovery_s", "gap_s", "lost"])


def flows(run_dir: str) -> pd.DataFrame:
    """The workload's flows (traffic/flows.json): kind, name, client, client_ip, dst, port..."""
    with open(os.path.join(run_dir, "traffic", "flows.json")) as f:
        return pd.DataFrame(json.load(f))


def probe_sources(at_servers: pd.DataFrame) -> dict:
    """Per probe flow, how many distinct source endpoints the servers saw it come from (more
    than one: the app changed the flow's translation midway)."""
    if at_servers.empty or "probe_flow" not in at_servers:
        return {}
    sent = at_servers[at_servers["probe_flow"].notna() & ~at_servers["probe_echo"].fillna(False).astype(bool)]
    return (sent["src"] + ":" + sent["sport"].astype(str)).groupby(sent["probe_flow"].astype(int)).nunique().to_dict()


def flow_spines(run_dir: str, packets: pd.DataFrame, at_servers: pd.DataFrame | None = None) -> dict:
    """The spines each TCP flow crossed: outbound from its first SYN seen at the client,
    inbound from the first server packet seen at the servers, and the fabric's ECMP hash
    (testbed.routing.path_spine)."""
    from p4apps.apps import app_named
    from testbed.routing import path_spine
    from testbed.runconfig import RunConfig
    cfg = RunConfig.from_dict(config(run_dir))
    topo = cfg.topology()
    app = app_named(cfg.app) if cfg.app else None
    modes = app.hash_modes(topo, cfg.variant) if app else {}
    anycast = app.anycast(topo) if app else ()
    out = {}
    for _, f in flows(run_dir).query("kind == 'tcp'").iterrows():
        spines = set()
        syn = packets[(packets["src"] == f["client_ip"]) & (packets["dport"] == f["port"]) & (packets["proto"] == 6)]
        if len(syn):
            spines.add(path_spine(topo, f["client_ip"], f["dst"], 6, int(syn["sport"].iloc[0]), int(f["port"]), modes,
                                   anycast=anycast))
        if at_servers is not None and len(at_servers):
            back = at_servers[(at_servers["sport"] == f["port"]) & (at_servers["proto"] == 6)]
            back = back[~back["src"].isin([f["client_ip"]])].head(1)
            for _, p in back.iterrows():
                spines.add(path_spine(topo, p["src"], p["dst"], 6, int(p["sport"]), int(p["dport"]), modes,
                                      anycast=anycast))
        out[f["name"]] = spines
    return out


def tcp_flows(run_dir: str, failure: float | None) -> pd.DataFrame:
    """Per TCP flow (from the client's tool log): direction (upload: the client sends;
    download: the server sends), survived (no reset, every byte verified by the receiver),
    stream bytes, stream bytes after the failure, and the failure reason if any."""
    from testbed.traffic import read_log
    rows = []
    for path in sorted(glob.glob(os.path.join(run_dir, "traffic", "tcp*.client.csv"))):
        log = read_log(path)
        df = pd.DataFrame(log.rows)
        summary = log.summary or {}
        after = 0
        if failure is not None and len(df) and "interval_bytes" in df:
            late = df[pd.to_numeric(df["time_ns"]) / 1e9 >= failure]
            after = int(pd.to_numeric(late["interval_bytes"], errors="coerce").fillna(0).sum())
        download = bool(summary.get("reverse"))
        name = os.path.basename(path).split(".")[0]
        rows.append({"flow": name, "direction": "download" if download else "upload",
                     "survived": bool(summary.get("survived")),
                     "bytes": summary.get("bytes_received" if download else "bytes_sent"), "bytes_after": after,
                     **tcp_stall(run_dir, name, failure), "failure": summary.get("failure")})
    return pd.DataFrame(rows, columns=["flow", "direction", "survived", "bytes", "bytes_after", "stall_s", "resumed",
                                       "failure"])


def tcp_stall(run_dir: str, flow: str, failure: float | None) -> dict:
    """``stall_s``: the longest time after `failure` during which the receiver of TCP flow
    `flow` got no stream bytes, up to its last interval record; ``resumed``: after that stall
    it got bytes in at least two intervals (False for a connection stalled until the end, also
    when the stop request at the end lets a last burst through). Without a failure or logs:
    0.0 and True."""
    from testbed.traffic import read_log
    rows = [r for path in _receiver_logs(run_dir, flow) for r in read_log(path).rows if r.get("event") == "interval"]
    if failure is None or not rows:
        return {"stall_s": 0.0, "resumed": True}
    times = np.array([r["time_ns"] / 1e9 for r in rows])
    got = np.array([(r.get("interval_bytes") or 0) > 0 for r in rows])
    delivered = np.sort(times[got & (times > failure)])
    marks = np.concatenate([[failure], delivered, [max(times.max(), failure)]])
    gaps = np.diff(marks)
    worst = int(np.argmax(gaps))
    resumed = int((delivered >= marks[worst + 1]).sum()) >= 2
    return {"stall_s": round(float(gaps[worst]), 3), "resumed": resumed}


def _receiver_logs(run_dir: str, flow: str) -> list[str]:
    """The tool logs of the receiving end of TCP flow `flow` (a download's is the client's)."""
    try:
        download = bool(flows(run_dir).set_index("name").loc[flow].get("download", False))
    except (OSError, KeyError):
        download = False
    pattern = f"{flow}.client.csv" if download else f"{flow}.server.*.csv"
    return glob.glob(os.path.join(run_dir, "traffic", pattern))


def reply_timeline(packets: pd.DataFrame, failure: float | None, bin_s: float = 0.1) -> pd.DataFrame:
    """Echoed probe replies per bin (packets/s), with `t` = time relative to the failure."""
    replies = probe_replies(packets)
    if replies.empty:
        return pd.DataFrame(columns=["t", "pps"])
    tl = throughput_timeline(replies.assign(one=1), bin_s, by=(), value="one")
    origin = failure if failure is not None else float(replies["time"].min())
    return pd.DataFrame({"t": tl["time"] - origin, "pps": tl["packets"] / bin_s})


def tcp_goodput_timeline(run_dir: str, failure: float | None, names, bin_s: float = 0.1) -> pd.DataFrame:
    """Stream bytes the receivers got from the TCP flows named in `names`, summed per bin
    (Mbit/s), with `t` = bin start relative to the failure; bins with nothing are 0 up to the
    last record, so a connection that broke shows as a drop to zero."""
    from testbed.traffic import read_log
    frames = []
    for flow in names:
        for path in _receiver_logs(run_dir, flow):
            df = pd.DataFrame(read_log(path).rows)
            if len(df) and "interval_bytes" in df:
                rows = df[df["event"] == "interval"]
                frames.append(pd.DataFrame({"time": pd.to_numeric(rows["time_ns"]) / 1e9,
                                            "bytes": pd.to_numeric(rows["interval_bytes"], errors="coerce").fillna(0)}))
    if not frames:
        return pd.DataFrame(columns=["t", "mbps"])
    data = pd.concat(frames, ignore_index=True)
    origin = failure if failure is not None else float(data["time"].min())
    start = origin + np.floor((data["time"].min() - origin) / bin_s) * bin_s
    index = np.floor((data["time"] - start) / bin_s).astype(int)
    sums = data.groupby(index)["bytes"].sum().reindex(range(int(index.max()) + 1), fill_value=0)
    return pd.DataFrame({"t": np.round(start - origin + sums.index * bin_s, 6), "mbps": sums.to_numpy() * 8 / bin_s / 1e6})

