"""The analysis notebooks (analysis/*.ipynb): stored clean, together reproducing every figure
of `run_all.sh --list`, and executing without error against a quick run (root, Mininet)."""
import re
import sys
import time

import nbformat
import pytest

from analysis import notebook as nb
from test_run_all import expected_figures

NOTEBOOKS = nb.notebooks()
CELL_TIMEOUT = 600          # seconds per cell; a notebook takes seconds on a quick run
CHECKED_FIGURE = re.compile(r"""check_figure\(\s*\w+\s*,\s*\w+\s*,\s*["'](\w+)["']""")


def read(path):
    return nbformat.read(path, as_version=4)


def code(book) -> str:
    return "\n".join(c.source for c in book.cells if c.cell_type == "code")


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4, NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_valid_and_stored_without_outputs(path):
    book = read(path)
    nbformat.validate(book)
    for i, cell in enumerate(book.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} cell {i} has stored outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_opens_with_its_question_then_finds_its_results(path):
    book = read(path)
    intro, params = book.cells[0], book.cells[1]
    assert intro.cell_type == "markdown" and intro.source.startswith("# "), path.name
    for words in ("paper", "measured", "bundled", "Caveats"):
        assert words in intro.source, f"{path.name}: the first cell should say {words!r}"
    assert params.cell_type == "code" and "parameters" in params.metadata.get("tags", [])
    assert 'os.environ.get("TESTBED_RESULTS"' in params.source and "nb.experiment_dir(RESULTS" in params.source
    assert any(c.cell_type == "markdown" for c in book.cells[2:]), f"{path.name} has no commentary"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_checks_what_it_recomputes(path):
    source = code(read(path))
    assert "nb.check_table(" in source, f"{path.name} recomputes no table against the experiment's"
    assert CHECKED_FIGURE.search(source), f"{path.name} re-plots no figure"


def test_notebooks_reproduce_every_figure_of_run_all():
    wanted = {name for names in expected_figures().values() for name in names}
    checked = {name for path in NOTEBOOKS for name in CHECKED_FIGURE.findall(code(read(path)))}
    assert wanted <= checked, f"no notebook re-plots {sorted(wanted - checked)}"


def test_a_notebook_without_results_says_how_to_make_them(tmp_path):
    with pytest.raises(nb.NotebookFailed) as failed:
        nb.execute(NOTEBOOKS[0], results=tmp_path, timeout=120)
    message = str(failed.value)
    assert "cell 1 failed" in message and "nb.experiment_dir(RESULTS" in message
    assert "MissingResults" in message and "run sudo ./run_all.sh --quick first" in message


def test_the_kernel_is_this_interpreter(tmp_path):
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os, sys\nprint(sys.executable)\nprint(os.environ['TESTBED_RESULTS'])\nprint(os.getcwd())")])
    path = tmp_path / "probe.ipynb"
    nbformat.write(book, path)
    assert nb.kernel_manager().kernel_spec.argv[0] == sys.executable
    out = nb.execute(path, results="/somewhere", timeout=120).cells[0].outputs[0]["text"].split()
    assert out == [sys.executable, "/somewhere", str(tmp_path)]


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_a_quick_run(path, quick_results):
    results, _, proc = quick_results
    assert proc.returncode == 0, "run_all.sh --quick failed:\n" + proc.stdout[-3000:] + proc.stderr[-3000:]
    start = time.monotonic()
    try:
        book = nb.execute(path, results=results, timeout=CELL_TIMEOUT)
    except nb.NotebookFailed as e:
        pytest.fail(str(e), pytrace=False)
    shown = [o for c in book.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert shown, f"{path.name} displayed no figure"
    print(f"{path.name}: {time.monotonic() - start:.1f} s")
