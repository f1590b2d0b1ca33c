"""The RedPlane state store: one process serves one shard as one replica of its chain.

Modules: `state` (the pure per-key state machine), `chain` (replication records and the link
to the successor), `control` (the UNIX-socket control commands), `stats` (counters and the
stats dump), `server` (the asyncio server tying them together), `__main__` (the CLI).
"""
from testbed.errors import TestbedError


class StoreError(TestbedError):
    """A state-store failure; the message names the shard, key, peer or flag involved."""
