"""Header layouts and checksums on the fast paths, checked against plain reference code."""
import pathlib
import random
import struct

import pytest

from testbed.v1model import load
from testbed.v1model.hashes import csum16, csum16_int

PROGRAM = str(pathlib.Path(__file__).parent / "p4" / "widths.p4")
WIDTHS = [336, 128, 3, 77, 4, 4, 24, 40, 72, 1, 7]      # field widths of wide_t then odd_t


def reference_csum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def split(value: int, widths) -> list[int]:
    out, shift = [], sum(widths)
    for w in widths:
        shift -= w
        out.append((value >> shift) & ((1 << w) - 1))
    return out


def join(fields, widths) -> int:
    value = 0
    for f, w in zip(fields, widths):
        value = (value << w) | f
    return value


@pytest.mark.parametrize("seed", range(20))
def test_every_field_round_trips_through_unpack_and_pack(seed):
    rng = random.Random(seed)
    sw = load(PROGRAM)
    nbits = sum(WIDTHS)
    if seed == 0:
        value = (1 << nbits) - 1                      # every field at its maximum: all wrap to 0
    else:
        value = rng.getrandbits(nbits)
    data = value.to_bytes(nbits // 8, "big") + b"tail"
    (port, out), = sw.send(0, data)
    expected = [(f + 1) % (1 << w) for f, w in zip(split(value, WIDTHS), WIDTHS)]
    assert port == 1
    assert out == join(expected, WIDTHS).to_bytes(nbits // 8, "big") + b"tail"


def test_short_packet_is_a_parser_error_not_a_crash():
    sw = load(PROGRAM)
    sw.send(0, bytes(50))
    assert sw.stats.parser_errors == 1


@pytest.mark.parametrize("data", [b"", b"\0", b"\0\0\0\0", b"\xff\xff", b"\xff" * 8, b"\x01",
                                  b"\xff\xfe\x00\x01", bytes(range(20)), b"\x45\x00\x00\x54" * 5])
def test_csum16_matches_the_word_sum(data):
    assert csum16(data) == reference_csum16(data)


def test_csum16_random_data_and_integer_form():
    rng = random.Random(7)
    for n in range(2, 80, 2):
        for _ in range(20):
            data = bytes(rng.choice([0, 0xFF, rng.randrange(256)]) for _ in range(n))
            assert csum16(data) == reference_csum16(data)
            assert csum16_int(int.from_bytes(data, "big")) == reference_csum16(data)


@pytest.mark.parametrize("seed", range(10))
def test_update_checksum_over_odd_width_fields_matches_the_word_sum(seed):
    """The generated csum16 (fields summed at their offsets modulo 16) against the plain
    word sum of the packed bytes, zero-padded to whole 16-bit words."""
    rng = random.Random(seed)
    sw = load(str(pathlib.Path(__file__).parent / "p4" / "csum_fields.p4"))
    widths = WIDTHS[2:]
    nbits = sum(widths)                                 # 232
    value = {0: 0, 1: (1 << nbits) - 1}.get(seed, rng.getrandbits(nbits))
    fields = value.to_bytes(nbits // 8, "big")
    (port, out), = sw.send(0, fields + b"\0\0\0\0" + b"tail")
    expected = reference_csum16(fields + b"\0")
    assert port == 1
    assert out == fields + struct.pack("!HH", expected, expected) + b"tail"
