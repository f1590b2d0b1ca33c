"""The one style catalogue: display names, colors, markers, line styles, hatches.

Everything a figure shows about a variant (``redplane``, ``snapshot``, ``s1``, ``noft``) or an
app (``nat``, ``firewall``, ``lb``, ``sketch``) comes from ``style.json`` beside this module,
so every figure names and draws a variant the same way. A name the catalogue does not know gets
its own name as label and a fallback color/marker/line style chosen by a stable hash of the
name (the same in every figure and every run).
"""
from __future__ import annotations

import json
import zlib
from functools import cache
from pathlib import Path
from typing import Iterable

__all__ = ["CATALOGUE_PATH", "KINDS", "axis_label", "bar_kwargs", "catalogue", "entry",
           "failure_kwargs", "figure_kwargs", "label", "line_kwargs", "ordered"]

CATALOGUE_PATH = Path(__file__).with_name("style.json")
KINDS = ("variant", "app")


@cache
def catalogue() -> dict:
    """The parsed ``style.json``."""
    return json.loads(CATALOGUE_PATH.read_text())


def _fallback(name: str) -> dict:
    spare = catalogue()["fallback"]
    pick = zlib.crc32(name.encode())
    return {"label": name, "color": spare["colors"][pick % len(spare["colors"])],
            "marker": spare["markers"][pick % len(spare["markers"])],
            "linestyle": spare["linestyles"][pick % len(spare["linestyles"])], "hatch": ""}


def entry(name: str, kind: str = "variant") -> dict:
    """The catalogue entry of `name` (keys label, color, marker, linestyle, hatch)."""
    if kind not in KINDS:
        raise KeyError(f"unknown style kind {kind!r}; known: {', '.join(KINDS)}")
    return dict(catalogue()[kind].get(str(name)) or _fallback(str(name)))


def label(name: str, kind: str = "variant") -> str:
    """Display name of a variant or app."""
    return entry(name, kind)["label"]


def ordered(names: Iterable[str], kind: str = "variant") -> list[str]:
    """The distinct `names` in catalogue order, unknown names after them, sorted."""
    known = list(catalogue()[kind])
    names = set(map(str, names))
    return [n for n in known if n in names] + sorted(names - set(known))


def line_kwargs(name: str, kind: str = "variant") -> dict:
    """Keyword arguments for ``Axes.plot`` / ``Axes.step`` drawing `name`."""
    e = entry(name, kind)
    return {"label": e["label"], "color": e["color"], "marker": e["marker"],
            "linestyle": e["linestyle"], **catalogue()["line"]}


def bar_kwargs(name: str, kind: str = "variant") -> dict:
    """Keyword arguments for ``Axes.bar`` drawing `name`."""
    e = entry(name, kind)
    return {"label": e["label"], "color": e["color"], "hatch": e["hatch"],
            "edgecolor": "black", "linewidth": 0.5}


def failure_kwargs() -> dict:
    """Keyword arguments for ``Axes.axvline`` marking a failure."""
    return dict(catalogue()["failure"])


def figure_kwargs() -> dict:
    """Keyword arguments for ``matplotlib.figure.Figure`` (size, dpi)."""
    fig = catalogue()["figure"]
    return {"figsize": tuple(fig["figsize"]), "dpi": fig["dpi"]}


def axis_label(key: str) -> str:
    """Axis title by key (``throughput``, ``latency_ms``, ...)."""
    return catalogue()["axis"][key]
