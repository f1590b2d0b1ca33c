"""What the notebooks in analysis/ share: finding the experiment directory behind a figure,
listing its run directories, checking recomputed tables and re-plotted figures against what the
experiment wrote, a few readers of raw run data, and running the notebooks.

    from analysis import notebook as nb
    RESULTS = nb.results_dir()                      # $TESTBED_RESULTS, else <repo>/results
    EXP = nb.experiment_dir(RESULTS, "failover")    # from <results>/figures/MANIFEST.json
    nb.runs_index(EXP)                              # one row per run directory
    nb.check_table(mine, EXP, "summary", keys=["app", "variant"])   # raises TableMismatch
    nb.check_figure(fig, EXP, "failover")           # raises FigureMismatch
    nb.show(fig)                                    # display an analysis.plots figure

Nothing here runs an experiment; everything reads what `run_all.sh` left in the results
directory. From the shell, ``python -m analysis.notebook [--results DIR] [--save DIR]``
executes every notebook in a fresh kernel of this interpreter (``--clear`` strips outputs).
"""
from __future__ import annotations

import importlib.util
import io
import json
import os
import sys
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["FigureMismatch", "HINT", "MissingResults", "NotebookFailed", "REPO", "TableMismatch",
           "check_figure", "check_table", "clear_outputs", "execute", "experiment_dir", "experiment_script",
           "figure_difference", "figure_png", "kernel_manager", "logged_replies", "manifest", "notebooks", "probe_spines",
           "read_table", "results_dir", "run_dirs", "runs_index", "same_sources", "show", "tool_logs", "topology"]

REPO = Path(__file__).resolve().parent.parent
HINT = "run sudo ./run_all.sh --quick first"
FIGURE_DPI = 130                     # what testbed.experiment.record_figure saves with


class MissingResults(FileNotFoundError):
    """The results a notebook needs are not there; the message says how to make them."""


class TableMismatch(AssertionError):
    """A table recomputed from the run directories differs from the one the experiment wrote."""


# ---------------------------------------------------------------------------------------------
# Finding the data

def results_dir(environ: Mapping[str, str] | None = None) -> Path:
    """$TESTBED_RESULTS if set (as run_all.sh and the experiments use it), else <repo>/results."""
    env = os.environ if environ is None else environ
    return Path(env.get("TESTBED_RESULTS") or REPO / "results")


def manifest(results: str | os.PathLike) -> dict:
    """<results>/figures/MANIFEST.json: figure file name -> {experiment_dir, made, argv}."""
    path = Path(results) / "figures" / "MANIFEST.json"
    if not path.is_file():
        raise MissingResults(f"no {path}: no experiment has recorded a figure there; {HINT}")
    return json.loads(path.read_text())


def experiment_dir(results: str | os.PathLike, figure: str) -> Path:
    """The experiment directory that produced `figure` ('failover' or 'failover.png'), as the
    manifest records it (relative to `results`)."""
    name = figure if figure.endswith(".png") else f"{figure}.png"
    entry = manifest(results).get(name)
    if entry is None:
        raise MissingResults(f"{Path(results) / 'figures' / 'MANIFEST.json'} lists no {name}; {HINT}")
    path = Path(results) / entry["experiment_dir"]
    if not path.is_dir():
        raise MissingResults(f"{name} was made in {path}, which no longer exists; {HINT}")
    return path


def run_dirs(exp_dir: str | os.PathLike) -> list[Path]:
    """The run directories of an experiment (subdirectories with a provenance.json), in the
    order they were made (their names start with the time)."""
    return sorted(p for p in Path(exp_dir).iterdir() if (p / "provenance.json").is_file())


def runs_index(exp_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per run directory, from its provenance.json: ``run`` (the directory's name),
    ``name``, ``app``, ``variant``, ``status`` (missing if the run never finished), ``target``
    (the switch target's name), ``measured`` (how: an in-process note, else 'Mininet'),
    ``path``."""
    rows = []
    for path in run_dirs(exp_dir):
        prov = json.loads((path / "provenance.json").read_text())
        cfg, targets = prov.get("config", {}), prov.get("targets", {})
        rows.append({"run": path.name, "name": cfg.get("name"), "app": cfg.get("app"),
                     "variant": cfg.get("variant"), "status": prov.get("status"),
                     "target": (targets.get("switches") or {}).get("name"),
                     "measured": targets.get("measured", "Mininet"), "path": path})
    return pd.DataFrame(rows, columns=["run", "name", "app", "variant", "status", "target", "measured", "path"])


def topology(run_dir: str | os.PathLike):
    """The fabric of a run (a LeafSpineTopo: clients(), servers(), stores(), spines()), rebuilt
    from its provenance.json."""
    from analysis.runs import config
    from testbed.runconfig import RunConfig
    return RunConfig.from_dict(config(str(run_dir))).topology()


def same_sources(run_dir: str | os.PathLike, paths: Sequence[str] = ("p4apps", "testbed", "analysis"),
                 repo: str | os.PathLike = REPO) -> bool:
    """True when the code under `paths` is now what the run used: the run was made from a
    clean checkout (provenance.json's git state) and `git diff` finds no change to `paths`
    between that commit and the working tree. False when unknown (no git, a dirty run)."""
    import subprocess
    git = json.loads(Path(run_dir, "provenance.json").read_text()).get("git") or {}
    if not git.get("commit") or git.get("dirty"):
        return False
    try:
        proc = subprocess.run(["git", "-c", f"safe.directory={repo}", "-C", str(repo), "diff", "--quiet",
                               git["commit"], "--", *paths], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def read_table(exp_dir: str | os.PathLike, name: str) -> pd.DataFrame:
    """The tidy table <exp_dir>/<name>.csv the experiment wrote (testbed.experiment.write_table)."""
    path = Path(exp_dir) / f"{name}.csv"
    if not path.is_file():
        raise MissingResults(f"no table {path}; {HINT}")
    return pd.read_csv(path)


def experiment_script(name: str):
    """The experiment script experiments/<name>.py as a module (its analysis and figure
    functions; importing it runs no experiment)."""
    folder = REPO / "experiments"
    path = folder / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"no experiment script {path}")
    module_name = f"experiment_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))          # the scripts import their _env helper
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------
# Checking recomputed tables

def _as_written(df: pd.DataFrame) -> pd.DataFrame:
    """`df` after a round trip through CSV, so its dtypes are those of a table read back."""
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    buf.seek(0)
    return pd.read_csv(buf)


def _sorted(df: pd.DataFrame, keys: Sequence[str] | None) -> pd.DataFrame:
    return (df.sort_values(list(keys), kind="stable") if keys else df).reset_index(drop=True)


def check_table(ours: pd.DataFrame, exp_dir: str | os.PathLike, name: str,
                keys: Sequence[str] | None = None, ignore: Iterable[str] = (),
                rtol: float = 1e-6, atol: float = 1e-9) -> pd.DataFrame:
    """Assert that `ours` (recomputed here) equals the experiment's <exp_dir>/<name>.csv.

    Both are compared as written to CSV (same dtypes), rows ordered by `keys` (if given),
    the columns of `ignore` left out (e.g. absolute paths); numbers within `rtol`/`atol`.
    Raises TableMismatch naming the table and the first differences; returns the stored table.
    """
    stored = read_table(exp_dir, name)
    drop = list(ignore)
    mine = _sorted(_as_written(ours).drop(columns=drop, errors="ignore"), keys)
    theirs = _sorted(stored.drop(columns=drop, errors="ignore"), keys)
    problem = _difference(mine, theirs, rtol, atol)
    if problem:
        raise TableMismatch(f"{name}.csv in {exp_dir}: recomputed table differs: {problem}")
    return stored


def _difference(mine: pd.DataFrame, theirs: pd.DataFrame, rtol: float, atol: float) -> str:
    """'' if the frames agree, else a short description of how they differ."""
    if list(mine.columns) != list(theirs.columns):
        return f"columns {list(mine.columns)} != stored {list(theirs.columns)}"
    if len(mine) != len(theirs):
        return f"{len(mine)} rows != stored {len(theirs)}"
    bad = []
    for col in mine.columns:
        rows = np.flatnonzero(~_same(mine[col], theirs[col], rtol, atol))
        bad += [f"row {r} {col}: {mine[col].iloc[r]!r} != stored {theirs[col].iloc[r]!r}" for r in rows[:3]]
    return "; ".join(bad[:6])


def _same(a: pd.Series, b: pd.Series, rtol: float, atol: float) -> np.ndarray:
    both_missing = (a.isna() & b.isna()).to_numpy()
    if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b) \
            and not pd.api.types.is_bool_dtype(a) and not pd.api.types.is_bool_dtype(b):
        x, y = a.to_numpy(float), b.to_numpy(float)
        return both_missing | np.isclose(x, y, rtol=rtol, atol=atol)
    return both_missing | (a.astype(str).to_numpy() == b.astype(str).to_numpy())


# ---------------------------------------------------------------------------------------------
# Raw data the analysis package reads from pcaps, read from the tools' logs instead

def logged_replies(run_dir: str | os.PathLike, pattern: str = "*.client.csv") -> pd.DataFrame:
    """Echoed probe replies as the probe senders logged them (traffic/<pattern>), in the
    shape of `analysis.pcap` packet rows that `analysis.runs.probe_recovery` and
    `analysis.metrics.probe_gaps` read: ``time``/``time_ns`` = the reply's kernel receive
    time, ``probe_flow``, ``probe_seq``, ``probe_echo`` (True), plus ``rtt`` (s) and ``log``.
    An independent second source for what the client pcaps show."""
    from analysis.experiments import probe_rtts
    rtts = probe_rtts(str(run_dir), pattern)
    return pd.DataFrame({"time": rtts["recv_ns"] / 1e9, "time_ns": rtts["recv_ns"],
                         "probe_flow": rtts["flow"], "probe_seq": rtts["seq"], "probe_echo": True,
                         "rtt": rtts["rtt"], "log": rtts["log"]})


def _first_probes(packets: pd.DataFrame, echo: bool) -> pd.DataFrame:
    """The first probe (or echo) of each probe flow in `packets`, by capture time."""
    if packets.empty or "probe_flow" not in packets:
        return packets.iloc[0:0]
    rows = packets[packets["probe_flow"].notna() & (packets["probe_echo"].fillna(False).astype(bool) == echo)]
    return rows.sort_values("time", kind="stable").groupby(rows["probe_flow"].astype("int64")).head(1)


def probe_spines(run_dir: str | os.PathLike, at_clients: pd.DataFrame, at_servers: pd.DataFrame) -> dict:
    """Per probe flow id: the spines its two directions crossed ('s1', 's1+s2'...), from its
    first probe captured at the clients and its first echo captured at the servers, through
    the fabric's ECMP hash (as `analysis.runs.flow_spines` does for TCP flows)."""
    from analysis.runs import config
    from p4apps.apps import app_named
    from testbed.routing import path_spine
    cfg, topo = config(str(run_dir)), topology(run_dir)
    app = app_named(cfg["app"]) if cfg.get("app") else None
    modes = app.hash_modes(topo, cfg["variant"]) if app else {}
    anycast = app.anycast(topo) if app else ()
    seen: dict = {}
    for frame in (_first_probes(at_clients, False), _first_probes(at_servers, True)):
        for p in frame.itertuples():
            seen.setdefault(int(p.probe_flow), set()).add(
                path_spine(topo, p.src, p.dst, int(p.proto), int(p.sport), int(p.dport), modes, anycast=anycast))
    return {flow: "+".join(sorted(spines)) for flow, spines in seen.items()}


# ---------------------------------------------------------------------------------------------
# Figures

def figure_png(fig) -> bytes:
    """`fig` as PNG bytes, saved the way the experiments save their figures."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
    return buf.getvalue()


def show(fig):
    """An IPython image of `fig` (the analysis.plots figures use no pyplot, so a notebook
    displays them through this)."""
    from IPython.display import Image
    return Image(data=figure_png(fig), format="png")


def figure_difference(fig, png_path: str | os.PathLike) -> float:
    """Fraction of pixels where `fig` (saved as the experiments save) differs from the PNG at
    `png_path`; 1.0 if the images do not even have the same size."""
    from matplotlib.image import imread
    mine = imread(io.BytesIO(figure_png(fig)), format="png")
    theirs = imread(str(png_path), format="png")
    if mine.shape != theirs.shape:
        return 1.0
    return float(np.any(np.abs(mine - theirs) > 1e-6, axis=-1).mean())


class FigureMismatch(AssertionError):
    """A re-plotted figure differs from the one the experiment recorded."""


def check_figure(fig, exp_dir: str | os.PathLike, name: str, tolerance: float = 0.002) -> float:
    """Assert that `fig` looks like the experiment's <exp_dir>/<name>.png: at most `tolerance`
    of the pixels differ (0 when drawn from the same tables with the same matplotlib and
    style.json). Returns the fraction of differing pixels; raises FigureMismatch otherwise."""
    path = Path(exp_dir) / f"{name}.png"
    if not path.is_file():
        raise MissingResults(f"no figure {path}; {HINT}")
    diff = figure_difference(fig, path)
    if diff > tolerance:
        raise FigureMismatch(f"{name}.png: {diff:.1%} of the pixels differ from {path} (different data, "
                             f"matplotlib or analysis/style.json than the experiment's? re-run run_all.sh)")
    return diff


def tool_logs(run_dir: str | os.PathLike, pattern: str = "*.csv") -> pd.DataFrame:
    """One row per traffic-tool log of a run (traffic/<pattern>): ``log`` (file name), ``tool``,
    ``mode``, then the arguments the tool was started with (rate, duration, dst, flow...)."""
    from testbed.traffic import read_log
    rows = []
    for path in sorted(Path(run_dir, "traffic").glob(pattern)):
        if path.suffix != ".csv":
            continue
        meta = read_log(str(path)).meta
        rows.append({"log": path.name, "tool": meta.get("tool"), "mode": meta.get("mode"), **meta.get("args", {})})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Executing the notebooks (tests/test_notebooks.py, and `python -m analysis.notebook`)

NOTEBOOKS = Path(__file__).resolve().parent


class NotebookFailed(RuntimeError):
    """A notebook cell raised (or timed out); the message names the cell and shows it."""


def notebooks() -> list[Path]:
    """The notebooks of analysis/, by name."""
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def kernel_manager():
    """A kernel manager for 'python3' that always starts this interpreter's ipykernel
    (sys.executable), whatever kernelspecs are installed for the user or the system."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager
    return KernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[]))


def execute(path: str | os.PathLike, results: str | os.PathLike | None = None, timeout: float = 300):
    """Run every cell of the notebook at `path` in a fresh kernel (working directory: the
    notebook's folder; TESTBED_RESULTS = `results` if given) and return the executed notebook
    (the file is not changed). Raises NotebookFailed with the failing cell's number, source
    and error."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError
    path = Path(path)
    book = nbformat.read(path, as_version=4)
    env = dict(os.environ)
    if results is not None:
        env["TESTBED_RESULTS"] = str(results)
    client = NotebookClient(book, timeout=timeout, km=kernel_manager(),
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute(env=env)
    except (CellExecutionError, CellTimeoutError) as e:
        raise NotebookFailed(_failure(path, book, e)) from None
    return book


def _failure(path: Path, book, error: Exception) -> str:
    """Which cell of `book` failed, its source and the error."""
    for i, cell in enumerate(book.cells):
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            e = errors[0]
            return (f"{path.name}: cell {i} failed:\n{cell.source}\n--> {e.get('ename')}: {e.get('evalue')}")
    return f"{path.name}: {type(error).__name__}: {error}"


def clear_outputs(book):
    """`book` without outputs, execution counts and per-run metadata (as stored in git)."""
    for cell in book.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        for key in ("execution", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
    return book


def main(argv: list[str] | None = None) -> int:
    """python -m analysis.notebook [--results DIR] [--save DIR | --clear] [NOTEBOOK...]"""
    import argparse
    import time
    import nbformat
    p = argparse.ArgumentParser(prog="python -m analysis.notebook",
                                description="Execute the analysis notebooks against a results directory.")
    p.add_argument("notebooks", nargs="*", type=Path, help="default: every analysis/*.ipynb")
    p.add_argument("--results", help="results directory (default: $TESTBED_RESULTS, else <repo>/results)")
    p.add_argument("--timeout", type=float, default=300, help="seconds per cell (default 300)")
    p.add_argument("--save", type=Path, help="write the executed notebooks (with outputs) into this directory")
    p.add_argument("--clear", action="store_true", help="only strip the notebooks' outputs in place, run nothing")
    args = p.parse_args(argv)
    failed = 0
    for path in args.notebooks or notebooks():
        if args.clear:
            nbformat.write(clear_outputs(nbformat.read(path, as_version=4)), path)
            continue
        start = time.monotonic()
        try:
            book = execute(path, args.results, args.timeout)
        except NotebookFailed as e:
            print(f"FAILED {e}", file=sys.stderr)
            failed += 1
            continue
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            nbformat.write(book, args.save / path.name)
        print(f"ok     {path.name} ({time.monotonic() - start:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
