"""S1, the checkpoint-recovery baseline: a control-plane process periodically reads every
spine's per-flow state registers and saves them to the store; when a spine fails, its last
checkpoint is written into a survivor's registers. Flows created (or changed) since the last
checkpoint are lost, and the period is bounded by how fast the control plane can read the data
plane: the two costs RedPlane avoids.

The state registers are the RedPlane library's (rp_keys, rp_values, rp_seqs, rp_acked) of an
app built without fault tolerance (variant s1 = noft + this module). The checkpoint sink is any
object with put(name, snapshot) / get(name): the store's control socket in Mininet
(testbed/store control commands `put`/`get`), a dict in tests.
"""
from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field

from testbed.errors import SwitchDown

STATE_REGISTERS = ("rp_keys", "rp_values", "rp_seqs", "rp_acked")


def read_register(client, name: str) -> list[int]:
    """All cells of a register through the runtime CLI (`name= v0, v1, ...`)."""
    text = client.cli(f"register_read {name}")
    return [int(v) for v in re.findall(r"-?\d+", text.partition("=")[2])]


@dataclass
class Checkpoint:
    """Occupied slots of one switch: slot index -> (key, value, seq, acked)."""

    taken_at: float
    slots: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"taken_at": self.taken_at, "slots": {str(k): list(v) for k, v in self.slots.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "Checkpoint":
        return cls(d["taken_at"], {int(k): tuple(v) for k, v in d["slots"].items()})


class DictSink:
    """Keeps checkpoints in memory (tests, or a run without a store)."""

    def __init__(self):
        self.saved: dict = {}

    def put(self, name: str, checkpoint: dict) -> None:
        self.saved[name] = checkpoint

    def get(self, name: str) -> dict | None:
        return self.saved.get(name)


class StoreSink:
    """Checkpoints kept by a store replica, through its control socket."""

    def __init__(self, control_path: str):
        self.path = control_path

    def put(self, name: str, checkpoint: dict) -> None:
        from testbed.store.control import send_command
        send_command(self.path, f"checkpoint_put {name} {json.dumps(checkpoint, separators=(',', ':'))}")

    def get(self, name: str) -> dict | None:
        from testbed.store.control import send_command
        return send_command(self.path, f"checkpoint_get {name}")["checkpoint"]


class Checkpointer:
    def __init__(self, clients: dict, sink, clock=time.monotonic):
        self.clients = clients
        self.sink = sink
        self.clock = clock
        self.taken = 0
        self.restored_slots = 0
        self.skipped = 0

    def checkpoint(self, switch: str) -> Checkpoint:
        """Read the state registers of `switch` and save the occupied slots."""
        values = [read_register(self.clients[switch], r) for r in STATE_REGISTERS]
        slots = {i: cells for i, cells in enumerate(zip(*values)) if cells[0] != 0}
        cp = Checkpoint(self.clock(), slots)
        self.sink.put(switch, cp.to_dict())
        self.taken += 1
        return cp

    def checkpoint_all(self, alive) -> None:
        """Checkpoint every switch of `alive`; one that goes down meanwhile is skipped (its
        previous checkpoint stays, as a controller could not read a dead switch either)."""
        for switch in alive:
            try:
                self.checkpoint(switch)
            except SwitchDown:
                self.skipped += 1

    def restore(self, failed: str, survivor: str) -> int:
        """Write the failed switch's last checkpoint into the survivor's free slots; returns
        the number of slots restored (slots the survivor already uses are kept)."""
        saved = self.sink.get(failed)
        if not saved:
            return 0
        client = self.clients[survivor]
        in_use = read_register(client, STATE_REGISTERS[0])
        n = 0
        for idx, cells in Checkpoint.from_dict(saved).slots.items():
            if in_use[idx] == 0:
                for reg, value in zip(STATE_REGISTERS, cells):
                    client.cli(f"register_write {reg} {idx} {value}")
                n += 1
        self.restored_slots += n
        return n


class CheckpointThread(threading.Thread):
    """Checkpoints every live switch every `period` seconds until `stop` is set."""

    def __init__(self, checkpointer: Checkpointer, alive, period: float, stop: threading.Event):
        super().__init__(name="s1-checkpointer", daemon=True)
        self.cp, self.alive, self.period, self.stop_event = checkpointer, alive, period, stop
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop_event.wait(self.period):
                self.cp.checkpoint_all(self.alive())
        except BaseException as e:
            self.error = e
