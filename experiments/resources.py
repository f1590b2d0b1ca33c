"""Switch resources with and without RedPlane: per app, the fabric's plain spine program (routing
only), the app built without fault tolerance (noft) and the app built with RedPlane.

Each program is loaded by the bundled target (`testbed.v1model.load`: parse, check, compile)
and measured from its registry and checked AST (analysis.experiments.program_resources):
tables, actions, register bits and counters, both declared and used by reachable code, and the
pipeline depth (the longest chain of table applications through ingress plus egress). Table
entries are those the generated control-plane configuration installs on spine s1 of the
default fabric (routing, the app's entries and RedPlane's), counted after configuring an
in-process deployment (testbed.redplane.sim.AppFabric). No Mininet and no root needed.

These are the resources of the P4 programs as written for v1model; they are not Tofino stage,
SRAM or ALU counts (there is no hardware compiler here).

    python experiments/resources.py             # nat, firewall, lb, counter, sketch
    python experiments/resources.py --quick     # nat and sketch
"""
import argparse
import os
import sys

import _env  # noqa: F401  (re-runs with the project's .venv when needed)

import pandas as pd

from analysis import experiments as ax
from analysis.plots import bar_panels
from p4apps import SPINE_P4
from p4apps.apps import APPS, app_named
from testbed.experiment import (experiment_dir, finish_run, in_process_run, record_figure, save_json,
                                write_table)

MEASURED = "in-process: programs loaded by the bundled v1model target, no Mininet"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--apps", default="nat,firewall,lb,counter,sketch", help="comma-separated apps")
    p.add_argument("--quick", action="store_true", help="nat and sketch only (for CI)")
    args = p.parse_args(argv)
    if args.quick:
        args.apps = "nat,sketch"
    for name in args.apps.split(","):
        if name not in APPS:
            p.error(f"--apps: unknown app {name!r} (known: {', '.join(APPS)})")
    return args


def programs(apps: list[str]) -> list[tuple[str, str]]:
    """(app, variant) pairs to measure: the plain fabric spine, then each app noft and redplane."""
    return [("fabric", "fabric")] + [(app, v) for app in apps for v in ("noft", "redplane")]


def configured_spine(app: str, variant: str):
    """Spine s1 of an in-process deployment configured exactly as the testbed configures it."""
    if app == "fabric":
        from testbed.fabric_sim import InProcessFabric
        from testbed.routing import RoutingController
        from testbed.topology import LeafSpineTopo
        fabric = InProcessFabric(LeafSpineTopo())
        RoutingController(fabric.topo, fabric.handles, (), {}).program_all()
        return fabric.switches["s1"]
    from testbed.redplane.sim import AppFabric
    return AppFabric(app, variant).fabric.switches["s1"]


def measure(exp: str, app: str, variant: str) -> str:
    """One program: a run directory with provenance and resources.json."""
    path = SPINE_P4 if app == "fabric" else app_named(app).program_path()
    defines = {} if app == "fabric" else app_named(app).defines(variant)
    run_dir = in_process_run(exp, f"resources-{app}-{variant}",
                             {"app": app, "variant": variant, "program": os.path.relpath(path), "defines": defines},
                             MEASURED)
    spine = configured_spine(app, variant)
    entries = ax.installed_entries(spine)
    save_json(run_dir, "resources", {"app": app, "variant": variant, **ax.program_resources(spine),
                                     "entries": entries["used"], "entries_all": entries["total"],
                                     "entries_by_table": entries})
    finish_run(run_dir)
    return run_dir


def load_rows(run_dirs: list[str]) -> pd.DataFrame:
    rows = []
    for d in run_dirs:
        data = ax.read_json(d, "resources")
        data.pop("entries_by_table", None)
        rows.append(data)
    return ax.resource_table(rows)


def figure(table: pd.DataFrame):
    t = table.assign(register_kbits=(table["used_register_bits"] / 1000).round(1))
    panels = [{"value": "used_tables", "ylabel": "tables", "annotate": True},
              {"value": "used_actions", "ylabel": "actions", "annotate": True},
              {"value": "entries", "ylabel": "entries", "annotate": True, "log": True},
              {"value": "register_kbits", "ylabel": "register_kbits", "log": True},
              {"value": "depth", "ylabel": "depth", "annotate": True}]
    return bar_panels(t, panels, x="app", hue="variant", x_kind="app", kind="variant", ncols=3)


COLUMNS = ["app", "variant", "tables", "used_tables", "entries", "entries_all", "used_actions", "used_registers",
           "used_register_bits", "used_counters", "depth_ingress", "depth_egress", "depth"]


def main(argv=None) -> int:
    args = parse_args(argv)
    exp = experiment_dir("resources")
    print(f"resources -> {exp}\n  measured {MEASURED}")
    run_dirs = []
    for app, variant in programs(args.apps.split(",")):
        run_dirs.append(measure(exp, app, variant))
        print(f"  {app}/{variant}: measured ({run_dirs[-1]})")
    table = load_rows(run_dirs)
    write_table(table, exp, "resources")
    path = record_figure(figure(table), exp, "resources")
    print("\n" + table[COLUMNS].to_string(index=False))
    growth = table[table["variant"] == "redplane"][["app"] + [c for c in table if c.endswith("_vs_noft")]]
    print("\nRedPlane vs noft, relative growth (redplane / noft - 1) of what the program uses:")
    print(growth.round(3).to_string(index=False))
    print("\nused_* = reachable from ingress/egress; depth = longest chain of table applications "
          "(ingress + egress); entries = installed on s1 by the generated configuration (default fabric) into used tables "
          "(entries_all: into every table, as the testbed installs RedPlane's configuration in every variant).")
    print("These are v1model program resources on the bundled target, not Tofino stages or memory.")
    print(f"figure: {path}\ntables: {exp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
