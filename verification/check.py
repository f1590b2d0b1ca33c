"""Model-check the RedPlane protocol model (verification/redplane.pml) with spin.

Every property is checked on the correct model, and every variant with a known bug (or a
rule of docs/protocol.md that the model showed unsafe) is checked against the property it
must violate. Each check is one spin run: `spin -a` generates the verifier, gcc compiles
it in a temporary directory (removed on every exit path), and pan's report gives the
states stored, the depth reached, the time and the errors.

    python verification/check.py               # all checks, plain table
    python verification/check.py --markdown    # the table as markdown (RESULTS.md)
    python verification/check.py --only mutex --only BUG_NO_WRAP

The exit status is non-zero if a property fails on the correct model, a variant is not
rejected, or a run is incomplete (e.g. pan's search depth was too small).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import signal
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

MODEL = Path(__file__).resolve().parent / "redplane.pml"
MAX_DEPTH = 100_000
HASH_BITS = 24

SAFETY_BOUNDS = {"PKTS": 4, "FAULTS": 2}
LIVENESS_BOUNDS = {"WRITES": 0, "FAULTS": 1}

HOLDS = "holds"
VIOLATED = "violated"
INCOMPLETE = "incomplete"


@dataclass(frozen=True)
class Property:
    name: str
    define: str
    text: str
    liveness: bool = False


PROPERTIES = (
    Property("mutex", "PROP_MUTEX",
             "at most one switch acts on the flow's state with a valid lease"),
    Property("acked", "PROP_ACKED",
             "no write acknowledged to a switch is lost, across replica failure"),
    Property("resume", "PROP_RESUME",
             "a switch taking over resumes from the last committed value and seq"),
    Property("output", "PROP_OUTPUT",
             "a write's output is never released before the write is committed"),
    Property("monotonic", "PROP_MONO",
             "the store never commits an older write after a newer one (wrap-around)"),
    Property("liveness", "LIVENESS",
             "a switch that keeps receiving the flow's packets eventually holds its lease",
             liveness=True),
)
PROPERTY_BY_NAME = {p.name: p for p in PROPERTIES}

# Variant define -> (the property it must violate, what it changes).
VARIANTS = {
    "BUG_GRANT_WHILE_VALID": ("mutex", "store grants a lease while another is valid"),
    "BUG_RELEASE_BEFORE_ACK": ("output", "switch releases a write's output before the ack"),
    "BUG_NO_WRAP": ("monotonic", "sequence numbers compared without wrap-around"),
    "BUG_ACK_BEFORE_TAIL": ("acked", "head acks a write before the tail has it"),
    "BUG_NO_RETRY": ("liveness", "switch never re-sends an unanswered LEASE_NEW"),
    "DOC_PENDING_SINCE": ("mutex", "doc rule: lease expiry from pending_since, acks not matched"),
    "DOC_NO_FENCE": ("acked", "doc rule: a lease grant keeps the committed seq"),
    "DOC_REACK_OLDER": ("output", "doc rule: tail re-acks any write its seq covers"),
    "DOC_INSTALL_RULE": ("acked", "doc rule: a lease ack installs state iff no valid lease"),
}


@dataclass(frozen=True)
class Check:
    """One spin run: a property on the correct model or on one variant."""
    prop: Property
    variant: str | None = None

    @property
    def name(self) -> str:
        return self.variant or self.prop.name

    @property
    def expected(self) -> str:
        return VIOLATED if self.variant else HOLDS

    @property
    def bounds(self) -> dict[str, int]:
        return LIVENESS_BOUNDS if self.prop.liveness else SAFETY_BOUNDS

    def defines(self) -> list[str]:
        names = [self.prop.define] + ([self.variant] if self.variant else [])
        values = [f"{key}={value}" for key, value in self.bounds.items()]
        return [f"-D{item}" for item in names + values]


@dataclass(frozen=True)
class Result:
    check: Check
    verdict: str
    states: int
    depth: int
    seconds: float
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict == self.check.expected


CHECKS = tuple(Check(p) for p in PROPERTIES) + tuple(
    Check(PROPERTY_BY_NAME[prop], variant) for variant, (prop, _) in VARIANTS.items())
CHECK_BY_NAME = {c.name: c for c in CHECKS}


def tools_missing() -> list[str]:
    """The external tools a check needs that are not on PATH."""
    return [tool for tool in ("spin", "gcc") if shutil.which(tool) is None]


_running: set[subprocess.Popen] = set()
_running_lock = threading.Lock()


def _run(cmd: list[str], cwd: str) -> str:
    """Run a tool to completion; it is killed if the checks are interrupted."""
    with subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:
        with _running_lock:
            _running.add(proc)
        try:
            output, _ = proc.communicate()
        finally:
            with _running_lock:
                _running.discard(proc)
    if proc.returncode != 0 and cmd[0] != "./pan":
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{output}")
    return output


def _kill_running() -> None:
    with _running_lock:
        for proc in _running:
            proc.kill()


def _build(check: Check, workdir: str) -> None:
    shutil.copy(MODEL, workdir)
    _run(["spin", *check.defines(), "-a", MODEL.name], workdir)
    mode = ["-DNFAIR=3"] if check.prop.liveness else ["-DSAFETY"]
    _run(["gcc", "-O2", "-w", *mode, "-o", "pan", "pan.c"], workdir)


def _search(check: Check, workdir: str) -> str:
    cycles = ["-a", "-f"] if check.prop.liveness else []
    return _run(["./pan", f"-m{MAX_DEPTH}", f"-w{HASH_BITS}", *cycles], workdir)


def _number(pattern: str, report: str) -> float | None:
    found = re.search(pattern, report)
    return float(found.group(1)) if found else None


def parse_report(check: Check, report: str) -> Result:
    """Turn pan's report into a Result."""
    errors = _number(r"errors: (\d+)", report)
    states = _number(r"([\d.e+]+) states, stored", report)
    depth = _number(r"depth reached (\d+)", report)
    seconds = _number(r"pan: elapsed time ([\d.e+]+) seconds", report)
    if "max search depth too small" in report:
        verdict, note = INCOMPLETE, "max search depth too small"
    elif errors is None or states is None:
        verdict, note = INCOMPLETE, "pan gave no report"
    elif errors > 0:
        verdict, note = VIOLATED, _violation(report)
    elif "pan: error" in report or "out of memory" in report:
        verdict, note = INCOMPLETE, "search aborted"
    else:
        verdict, note = HOLDS, ""
    return Result(check, verdict, int(states or 0), int(depth or 0), seconds or 0.0, note)


def _violation(report: str) -> str:
    found = re.search(r"pan:\d+: (.*?) \(at depth", report)
    return found.group(1) if found else "counterexample found"


def run_check(check: Check) -> Result:
    """Generate, compile and run the verifier for one check."""
    with tempfile.TemporaryDirectory(prefix="redplane-spin-") as workdir:
        _build(check, workdir)
        return parse_report(check, _search(check, workdir))


def run_checks(checks: tuple[Check, ...], jobs: int = 1) -> list[Result]:
    """Run checks, `jobs` at a time; on an interrupt the running tools are killed (each
    worker then removes its temporary directory) and the pending checks are dropped."""
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = [pool.submit(run_check, check) for check in checks]
        return [future.result() for future in futures]
    except BaseException:
        _kill_running()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


COLUMNS = ("model", "property", "expected", "verdict", "states", "depth", "time (s)", "ok")


def _row(result: Result) -> tuple[str, ...]:
    check = result.check
    return (check.variant or "correct", check.prop.name, check.expected, result.verdict,
            f"{result.states:,}", str(result.depth), f"{result.seconds:.1f}",
            "yes" if result.passed else "NO")


def plain_table(results: list[Result]) -> str:
    rows = [COLUMNS] + [_row(r) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    notes = [f"{r.check.name}: {r.note}" for r in results if r.note]
    return "\n".join(lines + ([""] + notes if notes else []))


def markdown_table(results: list[Result]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_row(r)) + " |" for r in results]
    return "\n".join(lines + ["", _legend()])


MODEL_BOUNDS = ("2 switches (one may crash and restart), a 2-replica chain (head or tail may "
                "fail), 1 flow key, leases of 2 ticks (store and switch), 2 writes, a 6-bit "
                "sequence space starting 4 steps before the wrap, 2 request and 2 ack slots "
                "in the network, a chain link of 2")


def _legend() -> str:
    props = "; ".join(f"**{p.name}**: {p.text}" for p in PROPERTIES)
    variants = "; ".join(f"`{v}`: {text}" for v, (_, text) in VARIANTS.items())
    return (f"Properties: {props}.\n\nVariants: {variants}.\n\n"
            f"Bounds: {MODEL_BOUNDS}. Safety runs: {SAFETY_BOUNDS['PKTS']} packets that "
            f"send a request, {SAFETY_BOUNDS['FAULTS']} faults in any mix (message loss, "
            f"request duplication, switch crash, replica failure), unbounded time. "
            f"Liveness run: a packet per tick for ever, reads only, "
            f"{LIVENESS_BOUNDS['FAULTS']} fault and 1 routing change, weak fairness, "
            f"acceptance-cycle search. All searches exhaustive (no bitstate, no "
            f"compression). Time is pan's search time on one core. Generated by "
            f"`python verification/check.py --markdown`.")


def _select(names: list[str]) -> tuple[Check, ...]:
    unknown = [n for n in names if n not in CHECK_BY_NAME]
    if unknown:
        raise SystemExit(f"unknown check(s): {', '.join(unknown)}; "
                         f"known: {', '.join(CHECK_BY_NAME)}")
    return tuple(CHECK_BY_NAME[n] for n in names) if names else CHECKS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only this check (a property name or a variant)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="checks run in parallel (default: number of CPUs)")
    args = parser.parse_args(argv)
    missing = tools_missing()
    if missing:
        print(f"missing tools: {', '.join(missing)}", file=sys.stderr)
        return 2
    results = run_checks(_select(args.only), max(1, args.jobs))
    print(markdown_table(results) if args.markdown else plain_table(results))
    return 0 if all(r.passed for r in results) else 1


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
