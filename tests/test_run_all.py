"""The whole pipeline, briefly: `./run_all.sh --quick` runs every experiment in its CI size and
regenerates every figure into <results>/figures/, each listed in MANIFEST.json with the
experiment directory that produced it (a few minutes; root, Mininet)."""
import json
import os
import re
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def expected_figures() -> dict:
    """experiment name -> figure names, from `run_all.sh --list` (the DATA list)."""
    out = subprocess.run([os.path.join(REPO, "run_all.sh"), "--list"], capture_output=True, text=True,
                         check=True).stdout
    found = {}
    for line in out.splitlines():
        m = re.match(r"(\w+): .*results/figures/\{([\w,]+)\}\.png", line)
        if m:
            found[m.group(1)] = m.group(2).split(",")
    return found


def test_list_names_every_experiment_and_its_figures():
    figures = expected_figures()
    assert set(figures) == {"failover", "latency", "overhead", "throughput", "resources", "lease_sweep",
                            "snapshot", "store_failure"}
    assert "latency_first_packet" in figures["latency"]


@pytest.mark.root
@pytest.mark.slow
def test_run_all_quick_regenerates_every_figure(quick_results):
    results, started, proc = quick_results
    figures_dir = os.path.join(results, "figures")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert os.path.join(figures_dir, "MANIFEST.json") in proc.stdout
    with open(os.path.join(figures_dir, "MANIFEST.json")) as f:
        manifest = json.load(f)
    for experiment, names in expected_figures().items():
        for name in names:
            path = os.path.join(figures_dir, f"{name}.png")
            assert os.path.getsize(path) > 1000, path
            assert os.path.getmtime(path) >= started - 1, f"{path} was not regenerated"
            with open(path, "rb") as f:
                assert f.read(8) == PNG_MAGIC, path
            entry = manifest[f"{name}.png"]
            exp_dir = os.path.join(results, entry["experiment_dir"])
            assert os.path.basename(exp_dir).startswith(experiment + "-"), entry
            assert os.path.exists(os.path.join(exp_dir, f"{name}.png")), entry
            assert any(os.path.exists(os.path.join(d, "provenance.json"))
                       for d in (os.path.join(exp_dir, x) for x in os.listdir(exp_dir)) if os.path.isdir(d)), \
                f"{exp_dir} has no run directory with provenance"
