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


class CrashingProc:
    """A switch process that `crash()` takes down in the middle of a command: its control
    connection is closed first (client None) while the process still looks alive."""

    def __init__(self, owner, error):
        self.owner, self.error, self.running, self.client = owner, error, True, object()

    def cli(self, command):
        if self.owner is not None:
            self.owner.proc = None          # crash() ran meanwhile
        self.client = None
        raise self.error


def p4switch_stub(make_proc):
    import threading
    import types
    from testbed.p4switch import P4Switch
    node = types.SimpleNamespace(lock=threading.Lock(), name="s1", proc=None)
    node.proc = make_proc(node)
    node._went_down = lambda proc: P4Switch._went_down(node, proc)
    return node, P4Switch.cli


def test_a_command_racing_a_crash_reports_switch_down():
    """The S1 checkpointer read a register while s1 was crashed: the 'not started' error of a
    closed control connection must read as SwitchDown, which the checkpointer skips."""
    import pytest
    from testbed.errors import ConfigError
    for make in (lambda node: CrashingProc(node, ConfigError("switch s1: not started")),
                 lambda node: CrashingProc(None, ConfigError("switch s1: not started"))):
        node, cli = p4switch_stub(make)
        with pytest.raises(SwitchDown, match="s1 is down"):
            cli(node, "register_read rp_keys")


def test_a_failing_command_on_a_live_switch_is_not_switch_down():
    import pytest
    from testbed.v1model.errors import CommandError

    class Alive:
        running, client = True, object()

        def cli(self, command):
            raise CommandError("register_read: no register nope")

    node, cli = p4switch_stub(lambda node: Alive())
    with pytest.raises(CommandError):
        cli(node, "register_read nope")
