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
