"""Figures from metric DataFrames. Each function returns a matplotlib Figure on the Agg canvas.

No pyplot: figures are built as ``matplotlib.figure.Figure`` objects, so nothing global changes
and nothing is shown; save them with ``fig.savefig(path)``. Names, colors, markers and line
styles come only from `analysis.style`. The series a figure compares are the values of a
``hue`` column (default ``variant``), drawn in catalogue order.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis import style
from analysis.metrics import latency_cdf

__all__ = ["bar_panels", "cdf_panels", "draw_bars", "draw_lines", "latency_cdf_figure", "line_panels", "log_axis",
           "new_figure", "overhead_figure", "panel_figure", "recovery_figure", "reply_rate_figure",
           "throughput_figure", "timeline_panels"]


def new_figure() -> tuple[Figure, Axes]:
    """A catalogue-sized figure with one axes, attached to an Agg canvas."""
    fig = Figure(**style.figure_kwargs())
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _finish(fig: Figure, ax: Axes, xlabel: str, ylabel: str) -> Figure:
    ax.set_xlabel(style.axis_label(xlabel))
    ax.set_ylabel(style.axis_label(ylabel))
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def throughput_figure(timeline: pd.DataFrame, failure_time: float | None = None,
                      hue: str = "variant", kind: str = "variant") -> Figure:
    """Throughput over time, one line per `hue` value, the failure marked.

    `timeline` is `metrics.throughput_timeline` output plus a `hue` column; rates of all other
    groups in a bin are added. x = bin start - `failure_time` (s; absolute if None),
    y = Mbit/s.
    """
    fig, ax = new_figure()
    origin = failure_time or 0.0
    totals = timeline.groupby([hue, "time"], observed=True)["rate_bps"].sum().reset_index()
    for name in style.ordered(totals[hue], kind):
        rows = totals[totals[hue].astype(str) == name]
        ax.plot(rows["time"] - origin, rows["rate_bps"] / 1e6, **style.line_kwargs(name, kind))
    if failure_time is not None:
        ax.axvline(0.0, **style.failure_kwargs())
    return _finish(fig, ax, "time_since_failure", "throughput")


def latency_cdf_figure(latencies: pd.DataFrame, hue: str = "variant", value: str = "latency",
                       kind: str = "variant") -> Figure:
    """Latency CDF, one line per `hue` value; `value` in seconds, drawn in ms."""
    fig, ax = new_figure()
    for name in style.ordered(latencies[hue], kind):
        cdf = latency_cdf(latencies.loc[latencies[hue].astype(str) == name, value])
        ax.step(cdf["latency"] * 1e3, cdf["fraction"], where="post",
                **style.line_kwargs(name, kind))
    ax.set_ylim(0, 1.01)
    return _finish(fig, ax, "latency_ms", "cdf")


def overhead_figure(table: pd.DataFrame, x: str = "app", hue: str = "variant",
                    value: str = "ratio", x_kind: str = "app", kind: str = "variant") -> Figure:
    """Grouped bars: one group per `x` value (e.g. app), one bar per `hue` value in it.

    `table` has one row per (x, hue) with the bar height in `value` (e.g. the ``ratio`` of
    `metrics.replication_overhead`'s ``('all', 'all')`` row). Missing pairs leave a hole.
    """
    fig, ax = new_figure()
    groups, series = style.ordered(table[x], x_kind), style.ordered(table[hue], kind)
    width = 0.8 / max(len(series), 1)
    for i, name in enumerate(series):
        rows = table[table[hue].astype(str) == name]
        heights_by_group = dict(zip(rows[x].astype(str), rows[value].astype(float)))
        at = [j for j, g in enumerate(groups) if g in heights_by_group]
        heights = [heights_by_group[groups[j]] for j in at]
        ax.bar(np.array(at) + (i - (len(series) - 1) / 2) * width, heights, width,
               **style.bar_kwargs(name, kind))
    ax.set_xticks(range(len(groups)), [style.label(g, x_kind) for g in groups])
    return _finish_bars(fig, ax)


def _finish_bars(fig: Figure, ax: Axes) -> Figure:
    ax.set_ylabel(style.axis_label("overhead"))
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def recovery_figure(recovery: pd.DataFrame, hue: str = "variant",
                    value: str = "time_to_first", plot: str = "cdf",
                    kind: str = "variant") -> Figure:
    """Recovery time per flow (s), per `hue` value: a CDF (``plot='cdf'``) or boxes ('box').

    `recovery` is `metrics.recovery_time` output plus a `hue` column; flows that never recovered
    (NaN) are left out of the CDF, whose curve therefore ends below 1.
    """
    if plot not in ("cdf", "box"):
        raise ValueError(f"plot must be 'cdf' or 'box', not {plot!r}")
    fig, ax = new_figure()
    names = style.ordered(recovery[hue], kind)
    samples = [recovery.loc[recovery[hue].astype(str) == n, value].astype(float) for n in names]
    if plot == "box":
        return _recovery_boxes(fig, ax, names, samples, kind)
    for name, sample in zip(names, samples):
        cdf = latency_cdf(sample)
        ax.step(cdf["latency"], cdf["fraction"] * len(cdf) / max(len(sample), 1), where="post",
                **style.line_kwargs(name, kind))
    ax.set_ylim(0, 1.01)
    return _finish(fig, ax, "recovery_s", "cdf")


def _recovery_boxes(fig: Figure, ax: Axes, names: list[str], samples: list[pd.Series],
                    kind: str) -> Figure:
    boxes = ax.boxplot([s.dropna().to_numpy() for s in samples], patch_artist=True)
    for patch, name in zip(boxes["boxes"], names):
        patch.set_facecolor(style.entry(name, kind)["color"])
    ax.set_xticks(range(1, len(names) + 1), [style.label(n, kind) for n in names])
    ax.set_ylabel(style.axis_label("recovery_s"))
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def reply_rate_figure(timeline: pd.DataFrame, facet: str = "app", hue: str = "variant",
                      value: str = "pps", ylabel: str = "probe_rate") -> Figure:
    """One panel per `facet` value, one line per `hue` value: `value` over `t` (seconds since
    the failure, which is marked at 0). `timeline` has columns t, value, facet, hue."""
    panels = style.ordered(timeline[facet], facet)
    w, h = style.figure_kwargs()["figsize"]
    fig = Figure(figsize=(w * min(len(panels), 3), h), dpi=style.figure_kwargs()["dpi"])
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, panel in zip(axes, panels):
        rows = timeline[timeline[facet].astype(str) == panel]
        for name in style.ordered(rows[hue], hue):
            series = rows[rows[hue].astype(str) == name].sort_values("t")
            ax.plot(series["t"], series[value], **style.line_kwargs(name, hue))
        ax.axvline(0.0, **style.failure_kwargs())
        ax.set_title(style.label(panel, facet))
        ax.set_xlabel(style.axis_label("time_since_failure"))
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(style.axis_label(ylabel))
    axes[0].legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


def failover_figure(probe_tl: pd.DataFrame, tcp_tl: pd.DataFrame, facet: str = "app",
                    hue: str = "variant") -> Figure:
    """The failover figure: per app (columns), echoed probe rate of every probe flow (top row)
    and goodput of the TCP connections through the failed spine (bottom row), one line per
    variant, over time since the failure."""
    panels = style.ordered(pd.concat([probe_tl[facet], tcp_tl[facet]]), facet)
    w, h = style.figure_kwargs()["figsize"]
    fig = Figure(figsize=(w * min(len(panels), 3), h * 2), dpi=style.figure_kwargs()["dpi"])
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(panels), squeeze=False, sharex=True)
    for row, (tl, value, ylabel) in enumerate(((probe_tl, "pps", "probe_rate"), (tcp_tl, "mbps", "tcp_goodput"))):
        for ax, panel in zip(axes[row], panels):
            rows = tl[tl[facet].astype(str) == panel]
            for name in style.ordered(rows[hue], hue):
                series = rows[rows[hue].astype(str) == name].sort_values("t")
                ax.plot(series["t"], series[value], **style.line_kwargs(name, hue))
            ax.axvline(0.0, **style.failure_kwargs())
            ax.grid(True, alpha=0.3)
            if row == 0:
                ax.set_title(style.label(panel, facet))
            else:
                ax.set_xlabel(style.axis_label("time_since_failure"))
        axes[row][0].set_ylabel(style.axis_label(ylabel))
    axes[0][0].legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Multi-panel figures for the experiment scripts. A `*_kind` of None means the values are
# plain data (a workload, a replica position) shown as they are; otherwise they are catalogue
# names of that kind. Series (`hue`) are always drawn with catalogue styling.

def panel_figure(n: int, ncols: int = 3) -> tuple[Figure, list[Axes]]:
    """A figure with `n` panels in rows of at most `ncols`, each of catalogue size."""
    ncols = max(1, min(n, ncols))
    nrows = int(np.ceil(n / ncols))
    w, h = style.figure_kwargs()["figsize"]
    fig = Figure(figsize=(w * ncols, h * nrows), dpi=style.figure_kwargs()["dpi"])
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def log_axis(ax: Axes, which: str = "x") -> None:
    """A log scale with plain numbers as labels (1, 2, 5, 10 rather than 10^0) and no labels on
    minor ticks."""
    from matplotlib.ticker import FuncFormatter, NullFormatter
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _name(value, kind: str | None) -> str:
    return str(value) if kind is None else style.label(str(value), kind)


def _order(values, kind: str | None) -> list[str]:
    if kind is None:
        return list(dict.fromkeys(str(v) for v in values))
    return style.ordered(values, kind)


def draw_bars(ax: Axes, table: pd.DataFrame, x: str, hue: str, value: str,
              x_kind: str | None = "app", kind: str = "variant", low: str | None = None,
              high: str | None = None, annotate: bool = False) -> None:
    """Grouped bars on `ax`: one group per `x` value, one bar per `hue` value present in the
    group (centred on the group), height `value`; optional error bars from the absolute
    columns `low`/`high`; `annotate` writes each height above its bar."""
    groups, series = _order(table[x], x_kind), style.ordered(table[hue], kind)
    width = 0.8 / max(len(series), 1)
    present = {g: [n for n in series if n in set(table.loc[table[x].astype(str) == g, hue].astype(str))]
               for g in groups}
    for name in series:                          # series outside, so the legend is in catalogue order
        kw = style.bar_kwargs(name, kind)
        for j, group in enumerate(groups):
            if name not in present[group]:
                continue
            rec = table[(table[x].astype(str) == group) & (table[hue].astype(str) == name)].iloc[0]
            height = float(rec[value])
            pos = j + (present[group].index(name) - (len(present[group]) - 1) / 2) * width
            err = None
            if low is not None and high is not None:
                err = np.array([[max(height - float(rec[low]), 0)], [max(float(rec[high]) - height, 0)]])
            ax.bar([pos], [height], width, yerr=err, capsize=2 if err is not None else 0, **kw)
            kw.pop("label", None)
            if annotate:
                ax.annotate(_short(height), (pos, height), ha="center", va="bottom", fontsize="x-small")
    ax.set_xticks(range(len(groups)), [_name(g, x_kind) for g in groups])
    ax.grid(True, axis="y", alpha=0.3)


def _short(value: float) -> str:
    """A bar label: 3 significant digits, thousands as k, millions as M."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _figure_legend(fig: Figure, ax: Axes) -> None:
    """The legend of `ax`'s series above all panels, in one row."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=len(handles), frameon=False, fontsize="small")
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_size_inches()[1]))


def bar_panels(table: pd.DataFrame, panels: list[dict], x: str = "app", hue: str = "variant",
               x_kind: str | None = "app", kind: str = "variant", ncols: int = 3) -> Figure:
    """One grouped-bar panel per entry of `panels`: dicts with ``value`` (column), ``ylabel``
    (catalogue axis key), optional ``low``/``high`` (error-bar columns), ``log`` (log y
    axis), ``annotate``, ``rows`` (a boolean mask selecting the table rows of that panel)
    and ``title`` (plain text). The legend is on the first panel."""
    fig, axes = panel_figure(len(panels), ncols)
    for ax, p in zip(axes, panels):
        rows = table[p["rows"]] if "rows" in p else table
        draw_bars(ax, rows, x, hue, p["value"], x_kind, kind, p.get("low"), p.get("high"),
                  p.get("annotate", False))
        ax.set_ylabel(style.axis_label(p["ylabel"]))
        if p.get("log"):
            ax.set_yscale("log")
        if p.get("title"):
            ax.set_title(p["title"], fontsize="medium")
    fig.tight_layout()
    _figure_legend(fig, axes[0])
    return fig


def draw_lines(ax: Axes, table: pd.DataFrame, x: str, y: str, hue: str, kind: str = "variant",
               low: str | None = None, high: str | None = None) -> None:
    """One line per `hue` value of `y` against `x` (sorted by x), markers on every point,
    an optional band between the columns `low` and `high`."""
    for name in style.ordered(table[hue], kind):
        rows = table[table[hue].astype(str) == name].sort_values(x)
        kw = style.line_kwargs(name, kind)
        kw["markevery"] = 1
        ax.plot(rows[x], rows[y], **kw)
        if low is not None and high is not None:
            ax.fill_between(rows[x], rows[low], rows[high], color=kw["color"], alpha=0.15, linewidth=0)
    ax.grid(True, alpha=0.3)


def line_panels(table: pd.DataFrame, panels: list[dict], hue: str = "app", kind: str = "app",
                ncols: int = 2) -> Figure:
    """One line panel per entry of `panels`: dicts with ``x``, ``y`` (columns), ``xlabel``,
    ``ylabel`` (catalogue axis keys), optional ``low``/``high`` (band columns), ``rows``
    (mask), ``hue``/``kind`` (override), ``title``, ``logx``, ``reference`` (a list of
    (x, y) points drawn as a dashed black line, e.g. a bound) with ``reference_label``."""
    fig, axes = panel_figure(len(panels), ncols)
    for ax, p in zip(axes, panels):
        rows = table[p["rows"]] if "rows" in p else table
        draw_lines(ax, rows, p["x"], p["y"], p.get("hue", hue), p.get("kind", kind), p.get("low"), p.get("high"))
        if p.get("reference") is not None:
            xs, ys = zip(*p["reference"]) if len(p["reference"]) else ((), ())
            ax.plot(xs, ys, color="black", linestyle="--", linewidth=1.0, label=p.get("reference_label"))
        ax.set_xlabel(style.axis_label(p["xlabel"]))
        ax.set_ylabel(style.axis_label(p["ylabel"]))
        if p.get("logx"):
            log_axis(ax, "x")
        if p.get("title"):
            ax.set_title(p["title"], fontsize="medium")
        ax.set_ylim(bottom=0)
        ax.legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


def cdf_panels(df: pd.DataFrame, facet: str, hue: str = "variant", value: str = "rtt",
               facet_kind: str | None = "app", kind: str = "variant", xlabel: str = "rtt_ms",
               ncols: int = 3, logx: bool = False, scale: float = 1e3) -> Figure:
    """One CDF panel per `facet` value, one step line per `hue` value in it; `value` is
    multiplied by `scale` (default s -> ms)."""
    names = _order(df[facet], facet_kind)
    fig, axes = panel_figure(len(names), ncols)
    for ax, panel in zip(axes, names):
        rows = df[df[facet].astype(str) == panel]
        for name in style.ordered(rows[hue], kind):
            cdf = latency_cdf(rows.loc[rows[hue].astype(str) == name, value])
            ax.step(cdf["latency"] * scale, cdf["fraction"], where="post", **style.line_kwargs(name, kind))
        ax.set_title(_name(panel, facet_kind), fontsize="medium")
        ax.set_xlabel(style.axis_label(xlabel))
        ax.set_ylabel(style.axis_label("cdf"))
        ax.set_ylim(0, 1.01)
        if logx:
            log_axis(ax, "x")
        ax.grid(True, alpha=0.3)
        ax.legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


def timeline_panels(timeline: pd.DataFrame, facet: str, hue: str, value: str = "pps",
                    facet_kind: str | None = None, kind: str = "variant",
                    xlabel: str = "time_since_failure", ylabel: str = "probe_rate",
                    ncols: int = 3) -> Figure:
    """Like `reply_rate_figure`, for facets that are plain data (facet_kind None): one panel
    per `facet` value, one line per `hue` value of `value` over ``t``, the event at t = 0."""
    names = _order(timeline[facet], facet_kind)
    fig, axes = panel_figure(len(names), ncols)
    for ax, panel in zip(axes, names):
        rows = timeline[timeline[facet].astype(str) == panel]
        for name in style.ordered(rows[hue], kind):
            series = rows[rows[hue].astype(str) == name].sort_values("t")
            ax.plot(series["t"], series[value], **style.line_kwargs(name, kind))
        ax.axvline(0.0, **style.failure_kwargs())
        ax.set_title(_name(panel, facet_kind), fontsize="medium")
        ax.set_xlabel(style.axis_label(xlabel))
        ax.set_ylabel(style.axis_label(ylabel))
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig
