"""Metrics over packet DataFrames: pure functions, each defined precisely in its docstring.

Inputs are frames from `analysis.pcap` (`load_pcap`, `load_pcaps`, `match_packets`) or the
outputs of other functions here. Units: times in seconds (``time`` columns: seconds since the
Unix epoch; durations: seconds), sizes in bytes, rates per second (``rate_bps``: bits/s).
Nothing here reads files, prints or plots.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from analysis.pcap import match_packets

__all__ = [
    "TCP_RST", "TCP_SYN", "TCP_FIN", "connection_id", "connection_survival",
    "consistency_violations", "first_of_flow", "latency_cdf", "latency_percentiles", "loss_rate", "probe_gaps",
    "probe_loss", "recovery_time", "replication_overhead", "throughput_timeline",
]

TCP_FIN, TCP_SYN, TCP_RST = 0x01, 0x02, 0x04


# ---------------------------------------------------------------------------------------------
# Small helpers

def _columns(by: str | Sequence[str] | None, df: pd.DataFrame, strict: bool = False) -> list[str]:
    """`by` as a list of columns of `df` (None/() = none). Absent columns are left out, or
    raise KeyError if `strict`."""
    names = [by] if isinstance(by, str) else list(by or ())
    missing = [c for c in names if c not in df.columns]
    if strict and missing:
        raise KeyError(f"columns {missing} not in the frame")
    return [c for c in names if c not in missing]


def _groups(df: pd.DataFrame, by: list[str]):
    """(key tuple, sub-frame) pairs; one pair with key () when `by` is empty."""
    if not by:
        return [((), df)]
    return [((k,) if not isinstance(k, tuple) else k, g)
            for k, g in df.groupby(by, sort=True, observed=True, dropna=True)]


def _probes(df: pd.DataFrame, echo: bool) -> pd.DataFrame:
    """Probe rows (echo replies if `echo`), time-ordered."""
    rows = df[df["probe_seq"].notna()]
    rows = rows[rows["probe_echo"].fillna(False).astype(bool) == echo]
    return rows.sort_values("time_ns", kind="stable")


# ---------------------------------------------------------------------------------------------
# Probe streams

def _missing_between(received: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Per pair: how many integers strictly between before and after are not in `received`
    (sorted unique)."""
    span = np.maximum(after - before - 1, 0)
    inside = np.searchsorted(received, after, "left") - np.searchsorted(received, before, "right")
    return np.maximum(span - np.maximum(inside, 0), 0)


def _gaps_of(rows: pd.DataFrame, threshold: float) -> pd.DataFrame:
    times = rows["time"].to_numpy()
    seqs = rows["probe_seq"].to_numpy(np.int64)
    steps = np.diff(times)
    interval = float(np.median(steps)) if len(steps) else 0.0
    at = np.flatnonzero(steps > threshold)
    before, after = seqs[at], seqs[at + 1]
    start = times[at] + interval
    return pd.DataFrame({
        "last_before": times[at], "start": start, "end": times[at + 1],
        "duration": times[at + 1] - start, "interval": interval,
        "seq_before": before, "seq_after": after,
        "lost": _missing_between(np.unique(seqs), before, after)})


_GAP_COLUMNS = ["last_before", "start", "end", "duration", "interval", "seq_before",
                "seq_after", "lost"]


def probe_gaps(df: pd.DataFrame, threshold: float,
               by: str | Sequence[str] = ("point", "probe_flow"),
               echo: bool = False) -> pd.DataFrame:
    """Silences in received probe streams.

    Per group of `by` (columns absent from `df` are ignored), the probe rows (``probe_seq``
    present; echo replies only if `echo`) are put in capture-time order, and ``interval`` is
    the median time between consecutive probes (the stream's period). A gap is a pair of
    consecutive received probes more than `threshold` seconds apart:

    - ``last_before``: capture time of the last probe before the silence;
    - ``start`` = last_before + interval: when the next probe was due (the first one missed);
    - ``end``: capture time of the first probe after the silence;
    - ``duration`` = end - start (s): for n probes lost from a steady stream, n * interval
      (probes 100-149 of a 100/s stream missing: start 1.00, end 1.50, duration 0.5 s);
    - ``seq_before``/``seq_after``: sequence numbers of the two probes;
    - ``lost``: sequence numbers strictly between the two that were never received in the
      group (a late, reordered probe is not lost).

    Returns one row per gap: the `by` columns then the columns above, by group and time.
    """
    keys = _columns(by, df)
    frames = []
    for key, rows in _groups(_probes(df, echo), keys):
        gaps = _gaps_of(rows, threshold)
        for i, (name, value) in enumerate(zip(keys, key)):
            gaps.insert(i, name, value)
        frames.append(gaps)
    return pd.concat(frames, ignore_index=True) if frames else \
        pd.DataFrame(columns=keys + _GAP_COLUMNS)


def probe_loss(df: pd.DataFrame, by: str | Sequence[str] = ("point", "probe_flow"),
               echo: bool = False) -> pd.DataFrame:
    """Loss of probe streams from their sequence numbers.

    Per group of `by`: ``expected`` = max(seq) - min(seq) + 1 (probes sent between the first and
    last received one), ``received`` = distinct sequence numbers seen, ``lost`` = expected -
    received, ``loss_rate`` = lost / expected, ``duplicates`` = probe rows - received.
    """
    keys = _columns(by, df)
    rows = _probes(df, echo)
    seq = rows["probe_seq"].astype("int64")
    grouped = seq.groupby([rows[k] for k in keys], observed=True) if keys else \
        seq.groupby(np.zeros(len(seq), int))
    out = pd.DataFrame({"expected": grouped.max() - grouped.min() + 1,
                        "received": grouped.nunique(), "rows": grouped.size()})
    out["lost"] = out["expected"] - out["received"]
    out["loss_rate"] = out["lost"] / out["expected"]
    out["duplicates"] = out.pop("rows") - out["received"]
    return out.reset_index(drop=not keys)


# ---------------------------------------------------------------------------------------------
# Rates and recovery

def _bin_index(times: np.ndarray, origin: float, bin_s: float) -> np.ndarray:
    return np.floor((times - origin) / bin_s).astype(np.int64)


def throughput_timeline(df: pd.DataFrame, bin_s: float,
                        by: str | Sequence[str] = ("point", "flow"),
                        value: str = "frame_len", start: float | None = None,
                        end: float | None = None) -> pd.DataFrame:
    """Bytes per time bin per group.

    Bins are ``[start + k*bin_s, start + (k+1)*bin_s)`` for k = 0 .. floor((end-start)/bin_s);
    `start`/`end` default to the first/last capture time in `df` (s since the epoch); rows
    outside are dropped. Every group of `by` gets every bin (zeros where nothing was seen, so
    outages show). ``bytes`` = sum of `value` (default ``frame_len``: wire bytes including the
    link header), ``packets`` = rows, ``rate_bps`` = bytes * 8 / bin_s (bit/s).

    Returns columns: the `by` columns, ``time`` (bin start, s since the epoch), ``bytes``,
    ``packets``, ``rate_bps``.
    """
    keys = _columns(by, df)
    if not len(df):
        return pd.DataFrame(columns=keys + ["time", "bytes", "packets", "rate_bps"])
    start = float(df["time"].min()) if start is None else float(start)
    end = float(df["time"].max()) if end is None else float(end)
    rows = df[(df["time"] >= start) & (df["time"] <= end)]
    n_bins = int(np.floor((end - start) / bin_s)) + 1
    binned = pd.DataFrame({"bin": _bin_index(rows["time"].to_numpy(), start, bin_s),
                           "bytes": rows[value].fillna(0).to_numpy(np.int64),
                           **{k: rows[k].to_numpy() for k in keys}})
    sums = binned.groupby(keys + ["bin"], observed=True, dropna=True).agg(
        bytes=("bytes", "sum"), packets=("bytes", "size"))
    full = _every_bin(sums, keys, n_bins)
    full["time"] = start + full["bin"] * bin_s
    full["rate_bps"] = full["bytes"] * 8 / bin_s
    return full[keys + ["time", "bytes", "packets", "rate_bps"]]


def _every_bin(sums: pd.DataFrame, keys: list[str], n_bins: int) -> pd.DataFrame:
    """`sums` (indexed by keys + bin) reindexed to every bin of every group, zero-filled."""
    bins = np.arange(n_bins)
    if not keys:
        return sums.reindex(pd.RangeIndex(n_bins, name="bin"), fill_value=0).reset_index()
    groups = sums.index.droplevel("bin").unique()
    levels = [np.repeat(groups.get_level_values(i).to_numpy(), n_bins) for i in range(len(keys))]
    index = pd.MultiIndex.from_arrays(levels + [np.tile(bins, len(groups))],
                                      names=keys + ["bin"])
    return sums.reindex(index, fill_value=0).reset_index()


def recovery_time(df: pd.DataFrame, failure_time: float, by: str | Sequence[str] = "flow",
                  bin_s: float = 0.1, baseline_s: float = 1.0, fraction: float = 0.9,
                  sustain: int = 3, value: str | None = None,
                  horizon: float | None = None) -> pd.DataFrame:
    """Per flow, how long after `failure_time` (s since the epoch) delivery came back.

    `df` holds the packets delivered (e.g. captured at the receivers); a flow is a group of
    `by`. Delivery is counted in packets, or in the sum of column `value` (e.g. ``tcp_len``).

    - ``baseline_rate``: delivery per second in ``[failure_time - baseline_s, failure_time)``.
    - ``first_after``: capture time of the flow's first packet strictly after the failure;
      ``time_to_first`` = first_after - failure_time (s).
    - ``time_to_normal`` (s): time is cut into bins ``[failure_time + k*bin_s, ... + (k+1)*bin_s)``
      up to `horizon` (default: the last capture time in `df`; only whole bins count). A bin is
      normal when its rate is >= ``fraction * baseline_rate``. time_to_normal = k * bin_s for
      the first k that starts `sustain` consecutive normal bins (0 for a flow the failure did
      not disturb; resolution bin_s).

    Missing values (NaN): no packet after the failure, no baseline (flow started later), or
    never back to normal before the horizon.
    """
    keys = _columns(by, df)
    horizon = float(df["time"].max()) if horizon is None else float(horizon)
    n_bins = int(np.floor((horizon - failure_time) / bin_s + 1e-9))
    rows = [[*key, *_recovery_of(g, failure_time, bin_s, baseline_s, fraction, sustain, value,
                                 n_bins)]
            for key, g in _groups(df, keys)]
    return pd.DataFrame(rows, columns=keys + ["baseline_rate", "first_after", "time_to_first",
                                              "time_to_normal"])


def _recovery_of(rows: pd.DataFrame, failure: float, bin_s: float, baseline_s: float,
                 fraction: float, sustain: int, value: str | None, n_bins: int) -> list[float]:
    times = rows["time"].to_numpy()
    weights = np.ones(len(rows)) if value is None else rows[value].fillna(0).to_numpy(float)
    before = (times >= failure - baseline_s) & (times < failure)
    baseline = weights[before].sum() / baseline_s
    after = times > failure
    first = times[after].min() if after.any() else np.nan
    return [baseline, first, first - failure, _time_to_normal(
        times, weights, failure, bin_s, baseline * fraction, sustain, n_bins)]


def _time_to_normal(times, weights, failure, bin_s, target, sustain, n_bins) -> float:
    if target <= 0 or n_bins <= 0:
        return np.nan
    k = _bin_index(times, failure, bin_s)
    inside = (k >= 0) & (k < n_bins)
    rates = np.bincount(k[inside], weights[inside], minlength=n_bins) / bin_s
    normal = rates >= target
    runs = np.convolve(normal.astype(int), np.ones(sustain, int), "valid") == sustain
    first = np.flatnonzero(runs)
    return float(first[0] * bin_s) if len(first) else np.nan


# ---------------------------------------------------------------------------------------------
# Latency and loss

def latency_percentiles(latencies: Iterable[float] | pd.Series,
                        percentiles: Sequence[float] = (50, 90, 99, 99.9)) -> pd.Series:
    """Summary of a latency sample (NaN values dropped; unit = the input's, e.g. s).

    Returns a Series indexed ``count``, ``mean``, ``min``, ``p<q>`` for each q in `percentiles`
    (linear interpolation between order statistics, numpy's default), ``max``.
    """
    values = pd.Series(latencies, dtype="float64").dropna().to_numpy()
    names = [f"p{q:g}" for q in percentiles]
    if not len(values):
        return pd.Series([0] + [np.nan] * (len(names) + 3),
                         index=["count", "mean", "min"] + names + ["max"], dtype="float64")
    stats = [len(values), values.mean(), values.min(), *np.percentile(values, percentiles),
             values.max()]
    return pd.Series(stats, index=["count", "mean", "min"] + names + ["max"], dtype="float64")


def latency_cdf(latencies: Iterable[float] | pd.Series) -> pd.DataFrame:
    """Empirical CDF: ``latency`` sorted ascending, ``fraction`` = rank / n (1/n .. 1)."""
    values = np.sort(pd.Series(latencies, dtype="float64").dropna().to_numpy())
    return pd.DataFrame({"latency": values,
                         "fraction": np.arange(1, len(values) + 1) / max(len(values), 1)})


def first_of_flow(df: pd.DataFrame, by: str | Sequence[str] = "flow_a",
                  time: str = "time_a") -> pd.Series:
    """True for each flow's first packet (earliest `time` per group of `by`; ties: the first
    row), e.g. to compare first-packet latency (lease setup) with later packets. Rows with a
    missing `by` value are False."""
    keys = _columns(by, df, strict=True)
    order = df.sort_values(time, kind="stable")
    first = ~order.duplicated(subset=keys, keep="first") & order[keys].notna().all(axis=1)
    return first.reindex(df.index)


def loss_rate(matched: pd.DataFrame, by: str | Sequence[str] | None = None):
    """Fraction of the packets seen at point A that never reached point B.

    `matched` is `match_packets` output (column ``lost``). Returns lost / total as a float, or a
    Series per group of `by` (e.g. ``"flow_a"``). NaN for no packets.
    """
    keys = _columns(by, matched)
    lost = matched["lost"].astype(float)
    if not keys:
        return float(lost.mean()) if len(lost) else np.nan
    return lost.groupby([matched[k] for k in keys], observed=True).mean().rename("loss_rate")


# ---------------------------------------------------------------------------------------------
# RedPlane overhead

def replication_overhead(df: pd.DataFrame) -> pd.DataFrame:
    """RedPlane bytes against data bytes, by message direction and type.

    RedPlane rows are those with ``rp_dir`` set; data rows are the other IPv4 rows (``src``
    present). Give the packets of one capture point (or one link) so nothing is counted twice.
    Per (``rp_dir``, ``rp_type_name``) plus a final ``('all', 'all')`` row:

    - ``messages``: RedPlane packets; ``bytes``: their wire bytes (``frame_len``);
    - ``inner_bytes``: bytes of piggybacked inner packets (``rp_inner_len``);
    - ``header_bytes``: bytes - inner_bytes (what replication adds beyond the data itself);
    - ``data_bytes``: wire bytes of the data rows (same on every row);
    - ``ratio`` = bytes / data_bytes; ``header_ratio`` = header_bytes / data_bytes.
    """
    is_rp = df["rp_dir"].notna()
    data_bytes = int(df.loc[~is_rp & df["src"].notna(), "frame_len"].sum())
    messages = df[is_rp]
    rp = pd.DataFrame({"rp_dir": messages["rp_dir"], "rp_type_name": messages["rp_type_name"],
                       "bytes": messages["frame_len"].astype("int64"),
                       "inner_bytes": messages["rp_inner_len"].fillna(0).astype("int64")})
    table = rp.groupby(["rp_dir", "rp_type_name"], observed=True).agg(
        messages=("bytes", "size"), bytes=("bytes", "sum"), inner_bytes=("inner_bytes", "sum"))
    total = pd.DataFrame([table.sum()], index=pd.MultiIndex.from_tuples(
        [("all", "all")], names=["rp_dir", "rp_type_name"]))
    table = pd.concat([table, total]).astype("int64")
    table["header_bytes"] = table["bytes"] - table["inner_bytes"]
    table["data_bytes"] = data_bytes
    table["ratio"] = table["bytes"] / data_bytes if data_bytes else np.nan
    table["header_ratio"] = table["header_bytes"] / data_bytes if data_bytes else np.nan
    return table.reset_index()


# ---------------------------------------------------------------------------------------------
# Connections and NAT consistency

def connection_id(df: pd.DataFrame) -> pd.Series:
    """Direction-free connection name per row: 'tcp a:p<>b:q' with the endpoints sorted as
    strings (NaN where ports are missing)."""
    ok = df["sport"].notna() & df["dst"].notna()
    one = df["src"].astype(str) + ":" + df["sport"].astype(str)
    two = df["dst"].astype(str) + ":" + df["dport"].astype(str)
    low, high = one.where(one <= two, two), two.where(one <= two, one)
    name = df["flow"].str.split(" ", n=1).str[0] + " " + low + "<>" + high
    return name.where(ok)


def consistency_violations(matched: pd.DataFrame, original: str | Sequence[str] = "flow_a",
                           translated: str | Sequence[str] = "flow_b",
                           time: str = "time_a") -> pd.DataFrame:
    """Flows whose translation (NAT mapping, LB backend) changed over time.

    `matched` pairs each packet before translation with its translated copy, normally
    ``match_packets(inside, outside, key="nat")`` (columns ``flow_a``, ``flow_b``); lost
    packets (translation missing) are ignored. Packets are grouped by the `original`
    column(s); a violation is an original flow seen with more than one distinct value of the
    `translated` column(s). Also works on RedPlane messages, e.g. original =
    ``("rp_key_addr", "rp_key_port")``, translated = ``("rp_value_addr", "rp_value_port")``,
    time = ``"time"``.

    Returns one row per (violating original flow, translation): ``original``, ``translation``
    (columns joined with ' ' if several), ``first_seen``, ``last_seen`` (s, from column `time`),
    ``packets``; ordered by original, first_seen. Empty when every flow kept one translation.
    """
    orig_cols = _columns(original, matched, strict=True)
    trans_cols = _columns(translated, matched, strict=True)
    rows = matched.dropna(subset=orig_cols + trans_cols)
    pairs = pd.DataFrame({"original": _joined(rows, orig_cols),
                          "translation": _joined(rows, trans_cols), "t": rows[time].to_numpy()})
    seen = pairs.groupby(["original", "translation"], sort=False).agg(
        first_seen=("t", "min"), last_seen=("t", "max"), packets=("t", "size")).reset_index()
    counts = seen.groupby("original")["translation"].transform("size")
    return (seen[counts > 1].sort_values(["original", "first_seen"], kind="stable")
            .reset_index(drop=True))


def _joined(df: pd.DataFrame, cols: list[str]) -> np.ndarray:
    text = df[cols[0]].astype(str)
    for col in cols[1:]:
        text = text + " " + df[col].astype(str)
    return text.to_numpy(object)


def connection_survival(sent: pd.DataFrame, received: pd.DataFrame, failure_time: float,
                        key: str | Sequence[str] = "nat") -> pd.DataFrame:
    """What happened to each TCP connection across a failure.

    `sent` holds packets at the senders' side (before any NAT), `received` at the receivers'
    side; packets are paired with `match_packets(sent, received, key)` (``nat`` ignores the
    source address/port, which a NAT rewrites). One row per directional TCP flow of `sent`
    that carried payload:

    - ``flow`` (at `sent`), ``connection`` (`connection_id`);
    - ``bytes_sent``: payload bytes (``tcp_len``) of the flow's distinct sequence numbers at
      `sent` (a retransmission counts once); ``bytes_delivered``: the same over the segments
      matched at `received`; ``delivered_fraction`` = delivered / sent;
    - ``bytes_after``: payload bytes delivered at `received` after `failure_time`;
    - ``resets``: RST segments of the connection, both directions, at `sent` plus those of its
      translated flows (both directions) at `received`;
    - ``mapping_before`` / ``mapping_after``: the flow at `received` of the last matched
      packet before and the first one after the failure; ``same_mapping`` (NA if either is
      missing);
    - ``survived``: no reset, payload delivered after the failure, and not a changed mapping.
    """
    tcp = sent[(sent["proto"] == 6).fillna(False)]
    matched = match_packets(tcp, received, key, keep=("flow", "tcp_len"))
    rows = [_connection_row(flow, m, failure_time)
            for flow, m in matched.groupby("flow_a", sort=True)]
    out = pd.DataFrame(rows, columns=["flow", "bytes_sent", "bytes_delivered", "bytes_after",
                                      "mapping_before", "mapping_after"])
    out = out[out["bytes_sent"] > 0].reset_index(drop=True)
    out.insert(1, "connection", _flow_connections(tcp, out["flow"]))
    out["delivered_fraction"] = out["bytes_delivered"] / out["bytes_sent"]
    out["resets"] = _resets(tcp, received, out, matched)
    same = out["mapping_before"] == out["mapping_after"]
    out["same_mapping"] = same.astype("boolean").where(
        out["mapping_before"].notna() & out["mapping_after"].notna())
    out["survived"] = ((out["resets"] == 0) & (out["bytes_after"] > 0)
                       & out["same_mapping"].fillna(True).astype(bool))
    return out


def _unique_payload(m: pd.DataFrame) -> int:
    """Payload bytes over distinct sequence numbers (the longest segment per number)."""
    return int(m.groupby("tcp_seq")["tcp_len_a"].max().fillna(0).sum())


def _connection_row(flow: str, m: pd.DataFrame, failure: float) -> list:
    got = m[~m["lost"]]
    before = got[got["time_a"] < failure]
    after = got[got["time_a"] >= failure]
    delivered_after = got[got["time_b"] > failure]
    return [flow, _unique_payload(m), _unique_payload(got), _unique_payload(delivered_after),
            before["flow_b"].iloc[-1] if len(before) else None,
            after["flow_b"].iloc[0] if len(after) else None]


def _flow_connections(tcp: pd.DataFrame, flows: pd.Series) -> list:
    names = dict(zip(tcp["flow"], connection_id(tcp)))
    return [names.get(f) for f in flows]


def _resets(tcp: pd.DataFrame, received: pd.DataFrame, out: pd.DataFrame,
            matched: pd.DataFrame) -> list[int]:
    """RST count per connection of `out`: at `sent` by connection, at `received` by the
    connections of the flow's translations."""
    def rst_by_connection(df: pd.DataFrame) -> pd.Series:
        rst = df[((df["tcp_flags"].fillna(0).astype(int) & TCP_RST) != 0)]
        return connection_id(rst).value_counts()

    sent_rst = rst_by_connection(tcp)
    recv_tcp = received[(received["proto"] == 6).fillna(False)]
    recv_rst = rst_by_connection(recv_tcp)
    translated = dict(zip(recv_tcp["flow"], connection_id(recv_tcp)))
    got = matched[~matched["lost"]]
    flows_b = got.groupby("flow_a")["flow_b"].unique()
    counts = []
    for flow, conn in zip(out["flow"], out["connection"]):
        conns_b = {translated.get(f) for f in flows_b.get(flow, [])} - {None}
        counts.append(int(sent_rst.get(conn, 0)) + sum(int(recv_rst.get(c, 0)) for c in conns_b))
    return counts
