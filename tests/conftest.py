"""Shared pytest fixtures and markers."""
import os

import pytest


def pytest_collection_modifyitems(config, items):
    """Skip tests marked `root` when not running as root."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces, Mininet)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def quick_results(tmp_path_factory):
    """`./run_all.sh --quick` once per session, into a temporary results directory (so the
    user's results/ is untouched): (results dir, start time, the completed process)."""
    import subprocess
    import time
    results = str(tmp_path_factory.mktemp("results"))
    started = time.time()
    proc = subprocess.run([os.path.join(REPO, "run_all.sh"), "--quick"], cwd=REPO, capture_output=True, text=True,
                          timeout=2400, env={**os.environ, "TESTBED_RESULTS": results})
    return results, started, proc


@pytest.fixture
def report(capsys):
    """Print measured figures to the terminal even when pytest captures output."""
    def emit(line: str) -> None:
        with capsys.disabled():
            print(f"\n  [measured] {line}", end="")
    return emit
