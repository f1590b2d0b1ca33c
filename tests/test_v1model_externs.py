"""Externs whose effects are visible to the control plane, checked through the Python API."""
import pathlib

import pytest

from testbed.v1model import load
from testbed.v1model.runtime import AssertFailure

PROGRAM = str(pathlib.Path(__file__).parent / "p4" / "externs.p4")


class Clock:
    def __init__(self, t=1000):
        self.t = t

    def __call__(self):
        return self.t


def packet(idx, val, op=0):
    return bytes([idx, op]) + val.to_bytes(4, "big")


def fields(out):
    """Decode out_t from the single output packet."""
    (port, data), = out
    o = data[6:]
    return {"port": port, "old": int.from_bytes(o[0:4], "big"), "color": o[4], "dcolor": o[5],
            "rnd": o[6], "ts_in": int.from_bytes(o[7:13], "big"), "ts_out": int.from_bytes(o[13:19], "big")}


@pytest.fixture
def sw():
    return load(PROGRAM, clock=Clock(), log=True)


def test_register_read_modify_write(sw):
    assert fields(sw.send(0, packet(2, 7)))["old"] == 0
    assert fields(sw.send(0, packet(2, 5)))["old"] == 7
    assert sw.cli("register_read r 2") == "I.r[2]= 12"
    sw.cli("register_write I.r 2 100")
    assert fields(sw.send(0, packet(2, 1)))["old"] == 100
    sw.cli("register_reset r")
    assert sw.cli("register_read r") == "I.r= 0, 0, 0, 0"


def test_register_index_out_of_range_is_ignored(sw):
    out = fields(sw.send(0, packet(9, 7)))
    assert out["old"] == 0
    assert sw.cli("register_read r") == "I.r= 0, 0, 0, 0"


def test_counter_counts_packets_and_bytes(sw):
    for _ in range(3):
        sw.send(0, packet(1, 1))
    assert sw.cli("counter_read c 1") == "I.c[1]=  BmCounterValue(packets=3, bytes=18)"
    sw.cli("counter_reset c")
    assert "packets=0" in sw.cli("counter_read c 1")


def test_unconfigured_meter_is_green_and_configured_meter_marks(sw):
    assert fields(sw.send(0, packet(0, 0)))["color"] == 0
    sw.cli("meter_set_rates mt 0 0.000001:1 0.000002:2")
    colors = [fields(sw.send(0, packet(0, 0)))["color"] for _ in range(3)]
    assert colors == [0, 1, 2]  # green, yellow, red: no time passes, no tokens come back


def test_meter_refills_with_time():
    clock = Clock()
    sw = load(PROGRAM, clock=clock)
    sw.cli("meter_set_rates mt 0 0.001:1 0.001:1")  # 1 packet per ms, burst 1
    assert fields(sw.send(0, packet(0, 0)))["color"] == 0
    assert fields(sw.send(0, packet(0, 0)))["color"] == 2
    clock.t += 1000
    assert fields(sw.send(0, packet(0, 0)))["color"] == 0


def test_direct_meter_colours_per_entry(sw):
    handle_line = sw.cli("table_add t_meter m_read 3 =>").splitlines()[-1]
    handle = int(handle_line.rsplit(" ", 1)[1])
    sw.cli(f"meter_set_rates dm {handle} 0.000001:1 0.000001:1")
    assert [fields(sw.send(0, packet(3, 0)))["dcolor"] for _ in range(2)] == [0, 2]


def test_random_stays_in_range_and_is_reproducible():
    a = [fields(load(PROGRAM, seed=7).send(0, packet(0, 0)))["rnd"] for _ in range(3)]
    sw = load(PROGRAM, seed=7)
    values = [fields(sw.send(0, packet(0, 0)))["rnd"] for _ in range(200)]
    assert all(10 <= v <= 20 for v in values)
    assert len(set(values)) > 5
    assert a == [values[0]] * 3


def test_digest_captures_values(sw):
    sw.send(0, packet(3, 0x01020304, op=1))
    sw.send(0, packet(3, 9, op=0))
    assert sw.digests == [(1, (3, 0x01020304))]


def test_log_msg_formats_placeholders(sw):
    sw.send(0, packet(2, 42))
    assert sw.logs == ["idx=2 val=42"]


def test_assert_false_stops_the_packet(sw):
    with pytest.raises(AssertFailure):
        sw.send(0, packet(0, 0, op=2))


def test_timestamps_are_microseconds_from_the_clock():
    clock = Clock(5_000_000)
    sw = load(PROGRAM, clock=clock)
    out = fields(sw.send(0, packet(0, 0)))
    assert out["ts_in"] == 5_000_000 and out["ts_out"] == 5_000_000


def test_real_clock_starts_near_zero():
    sw = load(PROGRAM)
    out = fields(sw.send(0, packet(0, 0)))
    assert 0 <= out["ts_in"] <= out["ts_out"] < 60_000_000
