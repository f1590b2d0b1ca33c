"""The RedPlane wire format: constants, sequence numbers, sharding, layouts, P4 and scapy."""
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from testbed.redplane import protocol
from testbed.redplane.protocol import (APP_LAYOUTS, Layout, MalformedMessage, Message,
                                       ProtocolError, seq_newer, seq_next, shard_of)

REPO = Path(__file__).resolve().parents[1]
LAYOUTS_P4 = REPO / "p4apps" / "redplane" / "layouts.p4"


def ipv4_packet(payload: bytes = b"hello") -> bytes:
    """A minimal IPv4 header (checksum not needed by the parser) plus `payload`."""
    total = 20 + len(payload)
    return bytes([0x45, 0, total >> 8, total & 0xFF]) + bytes(5) + bytes([17]) + bytes(10) + payload


# --- constants -------------------------------------------------------------------------------
def test_message_type_and_port_constants():
    assert (protocol.LEASE_NEW, protocol.LEASE_RENEW, protocol.SNAPSHOT) == (0, 1, 2)
    assert (protocol.NEW_ACK, protocol.RENEW_ACK, protocol.MIGRATE_ACK,
            protocol.SNAPSHOT_ACK) == (0, 1, 2, 3)
    assert (protocol.SWITCH_PORT, protocol.STORE_BASE_PORT, protocol.MAX_SHARDS,
            protocol.REPLICATION_PORT_OFFSET) == (4000, 8000, 64, 1000)
    assert protocol.store_port(3) == 8003 and protocol.replication_port(3) == 9003
    assert protocol.is_store_port(8063) and not protocol.is_store_port(8064)
    with pytest.raises(ProtocolError, match="shard index 64"):
        protocol.store_port(64)


# --- sequence numbers ---------------------------------------------------------------------------
def test_seq_next_skips_zero():
    assert seq_next(0) == 1
    assert seq_next(1) == 2
    assert seq_next(65534) == 65535
    assert seq_next(65535) == 1


@pytest.mark.parametrize("a, b, newer", [
    (2, 1, True), (1, 2, False), (5, 5, False),
    (1, 65535, True), (65535, 1, False),          # wrap-around
    (32769, 1, False), (1, 32769, False), (32768, 1, True),  # half range
    (1, 0, True), (40000, 0, True), (0, 7, False), (0, 0, False),  # 0 = never written
])
def test_seq_newer(a, b, newer):
    assert seq_newer(a, b) is newer


def test_seq_newer_is_antisymmetric_and_follows_seq_next():
    seq = 65500
    for _ in range(100):
        following = seq_next(seq)
        assert seq_newer(following, seq) and not seq_newer(seq, following)
        seq = following
    assert protocol.seq_not_older(7, 7) and protocol.seq_not_older(8, 7)
    assert not protocol.seq_not_older(6, 7)


def test_seq_advance_is_the_grant_fence_and_skips_zero():
    F = protocol.SEQ_FENCE
    assert F == 4096 and protocol.seq_advance(0, F) == F
    assert protocol.seq_advance(10, F) == 10 + F
    assert protocol.seq_advance(65535, 1) == 1 and protocol.seq_advance(65000, F) == 65000 + F - 65535
    seq = 60000
    for _ in range(F):                       # F - 1 writes after seq are all older than the fence
        seq = seq_next(seq)
        assert seq == protocol.seq_advance(60000, F) or seq_newer(protocol.seq_advance(60000, F), seq)
    with pytest.raises(ProtocolError, match="seq_advance"):
        protocol.seq_advance(70000, 1)


@pytest.mark.parametrize("a, b, distance", [(1, 2, 1), (7, 7, 0), (65535, 1, 1), (65000, 100, 635),
                                            (0, 1, 1)])
def test_seq_distance_counts_writes(a, b, distance):
    assert protocol.seq_distance(a, b) == distance


@pytest.mark.parametrize("now, ts, age", [(100, 40, 60), (5, 0xFFFFFFFB, 10), (7, 7, 0)])
def test_timestamps_wrap_on_32_bits(now, ts, age):
    assert protocol.ts_age(now, ts) == age
    assert protocol.ts_of((1 << 40) + 123) == 123
    assert protocol.ts_newer(now, ts) is (age != 0)
    assert not protocol.ts_newer(ts, now)


# --- sharding ----------------------------------------------------------------------------------
def test_shard_of_is_standard_crc32():
    assert zlib.crc32(b"123456789") == 0xCBF43926  # the CRC-32 check value
    assert shard_of(b"123456789", 64) == 0xCBF43926 % 64
    assert shard_of(b"123456789", 1) == 0


def test_shard_of_layout_key_hashes_big_endian_fields():
    nat = APP_LAYOUTS["nat"]
    key = nat.key_of(key_addr=0x0A000001, key_port=80)
    assert nat.key_to_bytes(key) == bytes([10, 0, 0, 1, 0, 80])
    assert nat.shard_of_key(key, 4) == zlib.crc32(bytes([10, 0, 0, 1, 0, 80])) % 4


def test_shard_of_rejects_bad_shard_count():
    with pytest.raises(ProtocolError, match="n_shards 0"):
        shard_of(b"x", 0)
    with pytest.raises(ProtocolError, match="n_shards 65"):
        shard_of(b"x", 65)


# --- layouts -----------------------------------------------------------------------------------
@pytest.mark.parametrize("app", ["nat", "firewall", "lb"])
def test_endpoint_layouts(app):
    layout = APP_LAYOUTS[app]
    assert layout.key_bits == 48 and layout.value_bits == 48 and layout.header_bytes == 19
    assert [name for name, _ in layout.fields] == [
        "type", "seq", "ts", "key_addr", "key_port", "value_addr", "value_port"]


def test_sketch_layout():
    sketch = APP_LAYOUTS["sketch"]
    assert sketch.key_fields == (("key_column", 8),)
    assert sketch.value_fields == (("value_row0", 32), ("value_row1", 32), ("value_row2", 32))
    assert sketch.header_bytes == 20


def test_pack_puts_fields_at_their_offsets():
    nat = APP_LAYOUTS["nat"]
    key = nat.key_of(key_addr=0x0A000001, key_port=0x1234)
    value = nat.value_of(value_addr=0xC0A80001, value_port=0xABCD)
    data = nat.pack(protocol.LEASE_RENEW, 0x0102, key, value, ts=0xDEADBEEF)
    assert data == bytes([1, 1, 2, 0xDE, 0xAD, 0xBE, 0xEF, 10, 0, 0, 1, 0x12, 0x34,
                          192, 168, 0, 1, 0xAB, 0xCD])
    assert nat.unpack(data).ts == 0xDEADBEEF


@pytest.mark.parametrize("app", sorted(APP_LAYOUTS))
def test_pack_unpack_roundtrip_with_inner_packet(app):
    layout = APP_LAYOUTS[app]
    key, value = (1 << layout.key_bits) - 2, (1 << layout.value_bits) - 3
    inner = ipv4_packet()
    message = layout.unpack(layout.pack(protocol.MIGRATE_ACK, 65535, key, value, inner, ts=2**32 - 1))
    assert message == Message(protocol.MIGRATE_ACK, 65535, key, value, inner, 2**32 - 1)
    assert layout.unpack(layout.pack(0, 0, 0, 0)).inner == b""


def test_key_and_value_parts_roundtrip():
    sketch = APP_LAYOUTS["sketch"]
    value = sketch.value_of(value_row0=1, value_row1=2, value_row2=3)
    assert sketch.value_parts(value) == {"value_row0": 1, "value_row1": 2, "value_row2": 3}
    assert sketch.key_parts(sketch.key_of(key_column=9)) == {"key_column": 9}


@pytest.mark.parametrize("data, why", [
    (bytes(18), "18 bytes, header needs 19"),
    (bytes(19) + b"\x00" * 3, "not an IPv4 packet"),
    (bytes(19) + ipv4_packet() + b"xx", "2 bytes after the inner IPv4 packet"),
    (bytes(19) + ipv4_packet()[:-1], "does not fit"),
])
def test_unpack_rejects_malformed(data, why):
    with pytest.raises(MalformedMessage, match=why):
        APP_LAYOUTS["nat"].unpack(data)


def test_sketch_message_does_not_decode_as_nat():
    sketch_message = APP_LAYOUTS["sketch"].pack(protocol.SNAPSHOT, 1, 3, 7)
    with pytest.raises(MalformedMessage):
        APP_LAYOUTS["nat"].unpack(sketch_message)


def test_pack_rejects_out_of_range_values():
    nat = APP_LAYOUTS["nat"]
    with pytest.raises(ProtocolError, match="seq 65536"):
        nat.pack(0, 65536, 0, 0)
    with pytest.raises(ProtocolError, match="ts 4294967296"):
        nat.pack(0, 0, 0, 0, ts=1 << 32)
    with pytest.raises(ProtocolError, match="key"):
        nat.pack(0, 0, 1 << 48, 0)
    with pytest.raises(ProtocolError, match="key_port=70000"):
        nat.key_of(key_addr=1, key_port=70000)


def test_layout_declaration_is_validated():
    with pytest.raises(ProtocolError, match="duplicate"):
        Layout("bad", (("seq", 8),), ())
    with pytest.raises(ProtocolError, match="duplicate"):
        Layout("bad", (("ts", 8),), ())
    with pytest.raises(ProtocolError, match="whole bytes"):
        Layout("bad", (("key_x", 4),), ())
    with pytest.raises(ProtocolError, match="unknown app 'dns'"):
        protocol.layout_for("dns")


# --- P4 ------------------------------------------------------------------------------------------
def test_p4_header_renders_fields_in_wire_order():
    assert protocol.p4_header(APP_LAYOUTS["nat"]) == (
        "header redplane_nat_t {\n"
        "    bit<8> type;\n"
        "    bit<16> seq;\n"
        "    bit<32> ts;\n"
        "    bit<32> key_addr;\n"
        "    bit<16> key_port;\n"
        "    bit<32> value_addr;\n"
        "    bit<16> value_port;\n"
        "}\n")


def test_checked_in_layouts_p4_matches_generator():
    assert LAYOUTS_P4.read_text() == protocol.p4_layouts_file(), (
        "p4apps/redplane/layouts.p4 is stale: run "
        "`python -m testbed.redplane.protocol p4 > p4apps/redplane/layouts.p4`")


def test_cli_prints_layouts_file():
    result = subprocess.run([sys.executable, "-m", "testbed.redplane.protocol", "p4"],
                            capture_output=True, text=True, timeout=30, check=True)
    assert result.stdout == protocol.p4_layouts_file()
    for app in APP_LAYOUTS:
        assert f"header redplane_{app}_t {{" in result.stdout
    assert "const bit<16> REDPLANE_SEQ_FENCE = 4096;" in result.stdout
    assert "const bit<16> REDPLANE_NAT_HEADER_BYTES = 19;" in result.stdout


# --- scapy layers ----------------------------------------------------------------------------------
def test_scapy_layers_decode_request_and_inner_packet():
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether

    from testbed.redplane.scapy_layers import LAYERS
    inner = IP(src="10.0.0.1", dst="10.0.0.9") / TCP(sport=1234, dport=80)
    header = LAYERS["nat"](type=1, seq=7, ts=0x01020304, key_addr="10.0.0.1", key_port=1234,
                           value_addr="5.5.5.5", value_port=4444)
    frame = Ether() / IP(src="10.1.0.1", dst="10.2.0.5") / UDP(sport=4000, dport=8003) / header / inner
    decoded = Ether(bytes(frame))
    nat = APP_LAYOUTS["nat"]
    expected = nat.pack(1, 7, nat.key_of(key_addr=0x0A000001, key_port=1234),
                        nat.value_of(value_addr=0x05050505, value_port=4444), bytes(inner),
                        ts=0x01020304)
    assert bytes(decoded[UDP].payload) == expected
    assert decoded[UDP].len == 8 + len(expected)
    assert decoded[LAYERS["nat"]].key_port == 1234 and decoded[LAYERS["nat"]].ts == 0x01020304
    assert decoded[LAYERS["nat"]].value_addr == "5.5.5.5"
    assert decoded[TCP].dport == 80


def test_scapy_layers_pick_sketch_by_length_and_honour_use_app():
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    from testbed.redplane import scapy_layers
    sketch = scapy_layers.LAYERS["sketch"](type=3, seq=2, key_column=5, value_row1=9)
    ack = Ether(bytes(Ether() / IP() / UDP(sport=8005, dport=4000) / sketch))
    assert ack.haslayer(scapy_layers.LAYERS["sketch"])
    assert ack[scapy_layers.LAYERS["sketch"]].value_row1 == 9
    raw = bytes(Ether() / IP() / UDP(sport=8000, dport=4000) / scapy_layers.LAYERS["nat"]())
    try:
        scapy_layers.use_app("lb")
        assert Ether(raw).haslayer(scapy_layers.LAYERS["lb"])
    finally:
        scapy_layers.use_app("nat")
    assert Ether(raw).haslayer(scapy_layers.LAYERS["nat"])
