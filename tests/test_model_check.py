"""Model checking of the RedPlane protocol (verification/): every property must hold on the
correct model and every variant with a known bug must be rejected with a counterexample."""
import importlib.util
import os
import sys
from pathlib import Path

import pytest

CHECK_PY = Path(__file__).resolve().parents[1] / "verification" / "check.py"


def _load_check_module():
    spec = importlib.util.spec_from_file_location("redplane_model_check", CHECK_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


check = _load_check_module()
MISSING = check.tools_missing()

if MISSING and os.environ.get("CI") == "true":        # CI installs them: missing is a defect
    raise RuntimeError(f"model checking needs {', '.join(MISSING)}; install.sh should have installed them")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(MISSING), reason=f"model checking needs {', '.join(MISSING)} "
                                             "(apt-get install spin gcc)"),
]

PROPERTY_CHECKS = [c for c in check.CHECKS if c.variant is None]
VARIANT_CHECKS = [c for c in check.CHECKS if c.variant is not None]


def _describe(result) -> str:
    return (f"{result.check.name}: expected {result.check.expected}, got {result.verdict} "
            f"({result.states} states, depth {result.depth}) {result.note}")


@pytest.mark.parametrize("model_check", PROPERTY_CHECKS, ids=lambda c: c.name)
def test_property_holds_on_correct_model(model_check):
    result = check.run_check(model_check)
    assert result.verdict == check.HOLDS, _describe(result)


@pytest.mark.parametrize("model_check", VARIANT_CHECKS, ids=lambda c: c.name)
def test_buggy_variant_is_rejected(model_check):
    result = check.run_check(model_check)
    assert result.verdict == check.VIOLATED, _describe(result)


def test_every_property_and_variant_is_checked():
    assert {c.prop.name for c in PROPERTY_CHECKS} == {p.name for p in check.PROPERTIES}
    assert {c.variant for c in VARIANT_CHECKS} == set(check.VARIANTS)


def test_report_with_too_small_depth_is_incomplete():
    report = ("error: max search depth too small\n"
              "State-vector 116 byte, depth reached 99, errors: 0\n"
              "      158 states, stored\npan: elapsed time 0.1 seconds\n")
    result = check.parse_report(PROPERTY_CHECKS[0], report)
    assert result.verdict == check.INCOMPLETE and not result.passed
