"""analysis.plots and analysis.style: figures have the expected artists and catalogue labels."""
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from analysis import metrics, plots, style

VARIANTS = ["noft", "redplane", "s1"]  # deliberately not in catalogue order


def legend_texts(fig: Figure) -> list[str]:
    legend = fig.axes[0].get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def bars(fig: Figure) -> list[Rectangle]:
    return [p for p in fig.axes[0].patches if isinstance(p, Rectangle)]


def test_catalogue_covers_every_variant_and_app():
    for name in ("redplane", "noft", "s1", "snapshot"):
        entry = style.entry(name)
        assert entry["label"] and entry["color"].startswith("#") and entry["marker"]
    for app in ("nat", "firewall", "lb", "sketch"):
        assert style.label(app, "app")
    colors = [style.entry(n)["color"] for n in ("redplane", "noft", "s1", "snapshot")]
    assert len(set(colors)) == 4
    assert style.ordered(VARIANTS) == ["redplane", "s1", "noft"]


def test_unknown_names_get_a_stable_fallback():
    first, again = style.entry("mystery"), style.entry("mystery")
    assert first == again and first["label"] == "mystery"
    with pytest.raises(KeyError):
        style.entry("nat", kind="colour")


def timeline_frame() -> pd.DataFrame:
    frames = []
    for variant in VARIANTS:
        df = pd.DataFrame({"point": "h2", "flow": "f", "time": 100 + np.arange(40) * 0.1,
                           "bytes": 1000, "packets": 1})
        df["rate_bps"] = df["bytes"] * 8 / 0.1
        df["variant"] = variant
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def test_throughput_figure_has_one_line_per_variant_and_the_failure(tmp_path):
    fig = plots.throughput_figure(timeline_frame(), failure_time=101.0)
    assert isinstance(fig, Figure) and isinstance(fig.canvas, FigureCanvasAgg)
    ax = fig.axes[0]
    assert len(ax.lines) == 4  # three variants + the failure marker
    expected = [style.label(v) for v in ("redplane", "s1", "noft")] + \
        [style.failure_kwargs()["label"]]
    assert legend_texts(fig) == expected
    assert ax.lines[0].get_color() == style.entry("redplane")["color"]
    assert ax.lines[0].get_xdata()[0] == pytest.approx(-1.0)
    assert ax.get_xlabel() == style.axis_label("time_since_failure")
    fig.savefig(tmp_path / "throughput.png")
    assert (tmp_path / "throughput.png").stat().st_size > 0


def test_throughput_figure_uses_metrics_output():
    df = pd.DataFrame({"time": 50 + np.arange(20) * 0.05, "frame_len": 1500,
                       "point": "h2", "flow": "f"})
    timeline = metrics.throughput_timeline(df, bin_s=0.1).assign(variant="redplane")
    fig = plots.throughput_figure(timeline)
    assert len(fig.axes[0].lines) == 1 and legend_texts(fig) == ["RedPlane"]


def test_latency_cdf_figure():
    rng = np.random.default_rng(1)
    lat = pd.concat([pd.DataFrame({"variant": v, "latency": rng.exponential(0.001, 100)})
                     for v in ("redplane", "noft")], ignore_index=True)
    fig = plots.latency_cdf_figure(lat)
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and legend_texts(fig) == [style.label("redplane"),
                                                        style.label("noft")]
    assert ax.lines[0].get_ydata()[-1] == 1.0
    assert ax.lines[0].get_xdata().max() == pytest.approx(
        lat.loc[lat.variant == "redplane", "latency"].max() * 1e3)


def test_overhead_figure_has_one_bar_per_app_and_variant():
    table = pd.DataFrame([(app, var, 0.01 * i) for i, (app, var) in enumerate(
        [(a, v) for a in ("nat", "firewall", "lb") for v in ("redplane", "snapshot")])],
        columns=["app", "variant", "ratio"])
    table = table[~((table.app == "lb") & (table.variant == "snapshot"))]
    fig = plots.overhead_figure(table)
    assert len(bars(fig)) == 5
    assert legend_texts(fig) == [style.label("redplane"), style.label("snapshot")]
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == [style.label(a, "app") for a in ("nat", "firewall", "lb")]
    assert sorted(b.get_height() for b in bars(fig)) == pytest.approx([0, .01, .02, .03, .04])


@pytest.mark.parametrize("plot", ["cdf", "box"])
def test_recovery_figure(plot):
    rec = pd.DataFrame({"variant": ["redplane"] * 3 + ["s1"] * 3,
                        "time_to_first": [0.1, 0.2, 0.3, 1.0, 2.0, np.nan]})
    fig = plots.recovery_figure(rec, plot=plot)
    ax = fig.axes[0]
    if plot == "cdf":
        assert len(ax.lines) == 2 and legend_texts(fig) == ["RedPlane", style.label("s1")]
        assert ax.lines[1].get_ydata()[-1] == pytest.approx(2 / 3)  # one flow never recovered
    else:
        ticks = [t.get_text() for t in ax.get_xticklabels()]
        assert ticks == ["RedPlane", style.label("s1")]
    with pytest.raises(ValueError):
        plots.recovery_figure(rec, plot="violin")
