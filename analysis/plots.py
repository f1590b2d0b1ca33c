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

__all__ = ["latency_cdf_figure", "new_figure", "overhead_figure", "recovery_figure",
           "reply_rate_figure", "throughput_figure"]


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
