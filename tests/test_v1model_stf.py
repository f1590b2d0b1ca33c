"""Our own STF tests for every v1model feature (tests/p4/*.stf), run by the bundled runner."""
import pathlib
import subprocess
import sys

import pytest

from testbed.v1model.stf import run_stf

P4_DIR = pathlib.Path(__file__).parent / "p4"
STF_TESTS = sorted(p.stem for p in P4_DIR.glob("*.stf"))


@pytest.mark.parametrize("name", STF_TESTS)
def test_stf(name):
    result = run_stf(str(P4_DIR / f"{name}.p4"), str(P4_DIR / f"{name}.stf"))
    assert result.passed, result.report()


def test_runner_reports_a_wrong_expectation(tmp_path):
    text = (P4_DIR / "arith.stf").read_text().replace("F0 21 9C CE 11", "F0 21 9C CE 12")
    stf = tmp_path / "bad.stf"
    stf.write_text(text)
    result = run_stf(str(P4_DIR / "arith.p4"), str(stf))
    assert not result.passed
    assert "first difference at byte 4" in result.report()


def test_runner_reports_missing_and_extra_packets(tmp_path):
    stf = tmp_path / "count.stf"
    stf.write_text("packet 0 01 00 00 00 00 00\nexpect 3 01\n")
    result = run_stf(str(P4_DIR / "tm.p4"), str(stf))
    assert not result.passed
    report = result.report()
    assert "port 2" not in report  # port 2 is not named in the file: not observed
    assert "port 3: expected packet 0" in report


def test_command_line_exit_status(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "testbed.v1model", "stf", str(P4_DIR / "arith.p4"),
                         str(P4_DIR / "arith.stf")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.strip() == "PASS"
    bad = tmp_path / "bad.stf"
    bad.write_text("packet 0 F0\nexpect 2 00\n")
    fail = subprocess.run([sys.executable, "-m", "testbed.v1model", "stf", str(P4_DIR / "arith.p4"), str(bad)],
                          capture_output=True, text=True)
    assert fail.returncode == 1
    assert "FAIL" in fail.stdout
