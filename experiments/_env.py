"""Lets `sudo python experiments/<x>.py` work with whatever `python` sudo finds: if the project
is not importable here but ./install.sh made .venv, re-run the script with .venv's Python."""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PYTHON = os.path.join(REPO, ".venv", "bin", "python")


def ensure_project() -> None:
    try:
        import testbed  # noqa: F401
        return
    except ImportError:
        pass
    if os.path.exists(VENV_PYTHON) and os.path.realpath(sys.executable) != os.path.realpath(VENV_PYTHON):
        os.execv(VENV_PYTHON, [VENV_PYTHON] + sys.argv)
    sys.exit("the testbed package is not installed: run ./install.sh first (see README.md)")


ensure_project()
