"""The S1 checkpointer with stand-in switches: what it saves and what a crash mid-checkpoint does."""
from testbed.checkpoint import STATE_REGISTERS, Checkpointer, DictSink
from testbed.errors import SwitchDown


class FakeSwitch:
    """Answers register_read for the state registers; `die_after` reads, then it is down."""

    def __init__(self, cells: dict, die_after: int | None = None):
        self.cells, self.die_after, self.reads = cells, die_after, 0

    def cli(self, command: str) -> str:
        if self.die_after is not None and self.reads >= self.die_after:
            raise SwitchDown("down")
        self.reads += 1
        name = command.split()[1]
        values = self.cells[name]
        return f"{name}= " + ", ".join(map(str, values))


def switch(keys, **kw):
    return FakeSwitch({r: [k * (i + 1) for k in keys] for i, r in enumerate(STATE_REGISTERS)}, **kw)


def test_checkpoint_saves_occupied_slots_only():
    cp = Checkpointer({"s1": switch([0, 5, 0, 7])}, DictSink())
    saved = cp.checkpoint("s1")
    assert sorted(saved.slots) == [1, 3] and saved.slots[3] == (7, 14, 21, 28)


def test_a_switch_dying_during_a_checkpoint_is_skipped_and_keeps_its_last_one():
    sink = DictSink()
    s1, s2 = switch([4, 0]), switch([0, 9])
    cp = Checkpointer({"s1": s1, "s2": s2}, sink)
    cp.checkpoint_all(["s1", "s2"])
    first = sink.get("s1")
    s1.die_after = s1.reads + 2                 # crashes after two of its four registers
    s2.cells["rp_keys"] = [0, 11]
    cp.checkpoint_all(["s1", "s2"])
    assert cp.skipped == 1 and sink.get("s1") == first
    assert {cells[0] for cells in sink.get("s2")["slots"].values()} == {11}
