"""The RedPlane wire format, declared once (docs/protocol.md sections 1, 2 and 4).

Everything that reads or writes RedPlane messages derives from this module: the P4 headers
(`p4_header`, and the CLI below that renders `p4apps/redplane/layouts.p4`), the state store's
parser, the scapy layers and the pcap analysis.

A message is ``type (8) | seq (16) | ts (32) | key fields | value fields | inner IPv4 packet
(optional)``, all fields big-endian. `ts` is the switch's clock in microseconds, truncated to 32
bits: requests carry their send time and every ack echoes its request's. Keys and values are
handled as unsigned integers: the concatenation of their fields, first field most significant.

CLI: ``python -m testbed.redplane.protocol p4 > p4apps/redplane/layouts.p4``
"""
from __future__ import annotations

import argparse
import struct
import sys
import zlib
from dataclasses import dataclass
from typing import Iterable, NamedTuple

from testbed.errors import TestbedError

# --- message types (docs/protocol.md section 1) ---------------------------------------------
LEASE_NEW = 0
LEASE_RENEW = 1
SNAPSHOT = 2
REQUEST_TYPES = {LEASE_NEW: "LEASE_NEW", LEASE_RENEW: "LEASE_RENEW", SNAPSHOT: "SNAPSHOT"}

NEW_ACK = 0
RENEW_ACK = 1
MIGRATE_ACK = 2
SNAPSHOT_ACK = 3
ACK_TYPES = {NEW_ACK: "NEW_ACK", RENEW_ACK: "RENEW_ACK", MIGRATE_ACK: "MIGRATE_ACK",
             SNAPSHOT_ACK: "SNAPSHOT_ACK"}

# --- UDP/TCP ports -----------------------------------------------------------------------------
SWITCH_PORT = 4000
STORE_BASE_PORT = 8000
MAX_SHARDS = 64
REPLICATION_PORT_OFFSET = 1000

# --- fixed header part ---------------------------------------------------------------------------
TYPE_BITS = 8
SEQ_BITS = 16
SEQ_MODULUS = 1 << SEQ_BITS
SEQ_HALF = 1 << (SEQ_BITS - 1)
SEQ_READ = 0  # reserved: a read / renewal, never a write's sequence number
SEQ_FENCE = 4096  # F: a lease grant advances the committed seq by F (docs/protocol.md, 3)
TS_BITS = 32
TS_MODULUS = 1 << TS_BITS
TS_HALF = 1 << (TS_BITS - 1)
FIXED_BITS = TYPE_BITS + SEQ_BITS + TS_BITS
_FIXED = struct.Struct("!BHI")


class ProtocolError(TestbedError):
    """A layout declaration or a value does not fit the RedPlane wire format."""


class MalformedMessage(ProtocolError):
    """Bytes that do not decode as a RedPlane message of the expected layout."""


# --- ports -------------------------------------------------------------------------------------
def _check_shard(shard: int) -> None:
    if not 0 <= shard < MAX_SHARDS:
        raise ProtocolError(f"shard index {shard} out of range 0..{MAX_SHARDS - 1}")


def store_port(shard: int) -> int:
    """UDP port of the head replica of `shard` (8000 + shard)."""
    _check_shard(shard)
    return STORE_BASE_PORT + shard


def replication_port(shard: int) -> int:
    """TCP port of chain replication between the replicas of `shard` (9000 + shard)."""
    return store_port(shard) + REPLICATION_PORT_OFFSET


def is_store_port(port: int) -> bool:
    """True for the UDP ports the switch parser treats as store ports (8000..8063)."""
    return STORE_BASE_PORT <= port < STORE_BASE_PORT + MAX_SHARDS


# --- sequence numbers (docs/protocol.md section 2) ----------------------------------------------
def seq_next(seq: int) -> int:
    """The sequence number after `seq`: 1, 2, ..., 65535, 1, ... (0 is never produced)."""
    return seq % (SEQ_MODULUS - 1) + 1


def seq_newer(a: int, b: int) -> bool:
    """True if `a` is newer than `b`: RFC 1982 on 16 bits, ``0 < (a - b) mod 2^16 < 2^15``.

    0 is reserved and means "no write yet": every non-zero number is newer than 0 and 0 is
    newer than nothing. (Without this rule a first write numbered 32768..65535 would be "older"
    than a key that was never written.)
    """
    if a == SEQ_READ:
        return False
    if b == SEQ_READ:
        return True
    return 0 < (a - b) % SEQ_MODULUS < SEQ_HALF


def seq_not_older(a: int, b: int) -> bool:
    """True if `a` is `b` or newer than `b`."""
    return a == b or seq_newer(a, b)


def seq_advance(seq: int, steps: int) -> int:
    """`seq` moved `steps` numbers on (0 skipped): ``seq_advance(0, F) == F``. A lease grant
    advances the committed seq by `SEQ_FENCE`, so every write sent before it is older."""
    if not 0 <= seq < SEQ_MODULUS or steps < 0:
        raise ProtocolError(f"seq_advance({seq}, {steps}): seq must be 0..65535, steps >= 0")
    return (seq - 1 + steps) % (SEQ_MODULUS - 1) + 1


def seq_distance(a: int, b: int) -> int:
    """How many writes lead from `a` to `b` (0 skipped): ``seq_distance(65535, 1) == 1``."""
    d = (b - a) % SEQ_MODULUS
    return d - 1 if b < a else d


# --- timestamps (docs/protocol.md sections 1 and 5) ------------------------------------------------
def ts_of(us: int) -> int:
    """The `ts` field of a request sent at switch time `us` (microseconds): the low 32 bits."""
    return us % TS_MODULUS


def ts_age(now_ts: int, ts: int) -> int:
    """Microseconds from `ts` to `now_ts` on the 32-bit wrapping clock."""
    return (now_ts - ts) % TS_MODULUS


def ts_newer(a: int, b: int) -> bool:
    """True if time `a` is after `b`: serial-number comparison on 32 bits."""
    return 0 < (a - b) % TS_MODULUS < TS_HALF


# --- sharding (docs/protocol.md section 4) -------------------------------------------------------
def shard_of(key: bytes, n_shards: int) -> int:
    """Shard of a flow key: standard CRC-32 (zlib, = P4 HashAlgorithm.crc32) of the key bytes mod n."""
    if not 1 <= n_shards <= MAX_SHARDS:
        raise ProtocolError(f"n_shards {n_shards} out of range 1..{MAX_SHARDS}")
    return zlib.crc32(key) % n_shards


# --- layouts -----------------------------------------------------------------------------------
Field = tuple[str, int]  # (name, bits)


class Message(NamedTuple):
    """A decoded RedPlane message; `key` and `value` are the integers of the concatenated fields."""

    type: int
    seq: int
    key: int
    value: int
    inner: bytes = b""
    ts: int = 0


def _join(fields: Iterable[Field], values: Iterable[int]) -> int:
    number = 0
    for (name, bits), part in zip(fields, values, strict=True):
        if not 0 <= part < (1 << bits):
            raise ProtocolError(f"field {name}={part} does not fit in {bits} bits")
        number = (number << bits) | part
    return number


def _split(fields: tuple[Field, ...], number: int) -> dict[str, int]:
    parts: dict[str, int] = {}
    for name, bits in reversed(fields):
        parts[name] = number & ((1 << bits) - 1)
        number >>= bits
    return dict(reversed(list(parts.items())))


def _ipv4_packet_length(data: bytes) -> int:
    """Total length of the IPv4 packet at the start of `data`; raises if it is not one."""
    if len(data) < 20 or data[0] >> 4 != 4 or data[0] & 0x0F < 5:
        raise MalformedMessage(f"inner packet of {len(data)} bytes is not an IPv4 packet")
    total = int.from_bytes(data[2:4], "big")
    if not (data[0] & 0x0F) * 4 <= total <= len(data):
        raise MalformedMessage(f"inner IPv4 total length {total} does not fit {len(data)} bytes")
    return total


@dataclass(frozen=True)
class Layout:
    """One app's RedPlane header: fixed `type`, `seq` and `ts`, then its key and value fields."""

    name: str
    key_fields: tuple[Field, ...]
    value_fields: tuple[Field, ...]

    def __post_init__(self) -> None:
        names = ["type", "seq", "ts"] + [n for n, _ in self.key_fields + self.value_fields]
        if len(set(names)) != len(names):
            raise ProtocolError(f"layout {self.name}: duplicate field names in {names}")
        if any(bits <= 0 for _, bits in self.key_fields + self.value_fields):
            raise ProtocolError(f"layout {self.name}: every field needs a positive width")
        if (self.key_bits + self.value_bits) % 8:
            raise ProtocolError(f"layout {self.name}: key + value bits must be whole bytes")

    @property
    def key_bits(self) -> int:
        """Width of the key in bits."""
        return sum(bits for _, bits in self.key_fields)

    @property
    def value_bits(self) -> int:
        """Width of the value in bits."""
        return sum(bits for _, bits in self.value_fields)

    @property
    def key_bytes_len(self) -> int:
        """Width of the key in bytes, rounded up (the bytes hashed by `shard_of`)."""
        return (self.key_bits + 7) // 8

    @property
    def header_bytes(self) -> int:
        """Length of the RedPlane header (type, seq, ts, key, value) in bytes."""
        return (FIXED_BITS + self.key_bits + self.value_bits) // 8

    @property
    def fields(self) -> tuple[Field, ...]:
        """All header fields in wire order, including `type`, `seq` and `ts`."""
        fixed = (("type", TYPE_BITS), ("seq", SEQ_BITS), ("ts", TS_BITS))
        return fixed + self.key_fields + self.value_fields

    def key_of(self, **parts: int) -> int:
        """The key integer from its named fields, e.g. ``key_of(key_addr=.., key_port=..)``."""
        return _join(self.key_fields, (parts[name] for name, _ in self.key_fields))

    def value_of(self, **parts: int) -> int:
        """The value integer from its named fields."""
        return _join(self.value_fields, (parts[name] for name, _ in self.value_fields))

    def key_parts(self, key: int) -> dict[str, int]:
        """The named fields of a key integer."""
        return _split(self.key_fields, key)

    def value_parts(self, value: int) -> dict[str, int]:
        """The named fields of a value integer."""
        return _split(self.value_fields, value)

    def key_to_bytes(self, key: int) -> bytes:
        """The key's wire bytes (big-endian), as hashed by the switch and by `shard_of`."""
        self._check_width("key", key, self.key_bits)
        return key.to_bytes(self.key_bytes_len, "big")

    def shard_of_key(self, key: int, n_shards: int) -> int:
        """Shard of a key integer (see `shard_of`)."""
        return shard_of(self.key_to_bytes(key), n_shards)

    def _check_width(self, what: str, number: int, bits: int) -> None:
        if not 0 <= number < (1 << bits):
            raise ProtocolError(f"layout {self.name}: {what} {number} does not fit in {bits} bits")

    def pack(self, type: int, seq: int, key: int, value: int, inner: bytes = b"", *,
             ts: int = 0) -> bytes:
        """Encode a message: header followed by the optional inner IPv4 packet."""
        self._check_width("type", type, TYPE_BITS)
        self._check_width("seq", seq, SEQ_BITS)
        self._check_width("ts", ts, TS_BITS)
        self._check_width("key", key, self.key_bits)
        self._check_width("value", value, self.value_bits)
        body = (key << self.value_bits) | value
        body_len = self.header_bytes - _FIXED.size
        return _FIXED.pack(type, seq, ts) + body.to_bytes(body_len, "big") + bytes(inner)

    def unpack(self, data: bytes) -> Message:
        """Decode a message; raises `MalformedMessage` if it is short or its tail is not exactly
        one IPv4 packet (which also catches most layout mismatches)."""
        if len(data) < self.header_bytes:
            raise MalformedMessage(
                f"layout {self.name}: {len(data)} bytes, header needs {self.header_bytes}")
        type_, seq, ts = _FIXED.unpack_from(data)
        body = int.from_bytes(data[_FIXED.size:self.header_bytes], "big")
        inner = bytes(data[self.header_bytes:])
        extra = len(inner) - _ipv4_packet_length(inner) if inner else 0
        if extra:
            raise MalformedMessage(f"layout {self.name}: {extra} bytes after the inner IPv4 packet")
        value_mask = (1 << self.value_bits) - 1
        return Message(type_, seq, body >> self.value_bits, body & value_mask, inner, ts)


def _endpoint_layout(name: str) -> Layout:
    """NAT / firewall / load balancer: key and value are an IPv4 endpoint (address, port)."""
    return Layout(name,
                  key_fields=(("key_addr", 32), ("key_port", 16)),
                  value_fields=(("value_addr", 32), ("value_port", 16)))


SKETCH_ROWS = 3
APP_LAYOUTS: dict[str, Layout] = {
    "nat": _endpoint_layout("nat"),
    "firewall": _endpoint_layout("firewall"),
    "lb": _endpoint_layout("lb"),
    "sketch": Layout("sketch",
                     key_fields=(("key_column", 8),),
                     value_fields=tuple((f"value_row{i}", 32) for i in range(SKETCH_ROWS))),
    # p4apps/examples/demote.p4 (docs/writing-an-app.md): key = client endpoint; value = the
    # flow's byte count as one 48-bit number. The field names are the ones redplane.p4 uses.
    "demote": Layout("demote",
                     key_fields=(("key_addr", 32), ("key_port", 16)),
                     value_fields=(("value_addr", 32), ("value_port", 16))),
}


def layout_for(app: str) -> Layout:
    """The layout of app `app`; raises `ProtocolError` naming the known apps."""
    try:
        return APP_LAYOUTS[app]
    except KeyError:
        raise ProtocolError(f"unknown app {app!r}; known: {', '.join(APP_LAYOUTS)}") from None


# --- P4 rendering ------------------------------------------------------------------------------
def p4_type_name(layout: Layout) -> str:
    """Name of the P4 header type of a layout, e.g. ``redplane_nat_t``."""
    return f"redplane_{layout.name}_t"


def p4_header(layout: Layout) -> str:
    """The P4_16 ``header`` declaration of the RedPlane header for `layout`."""
    lines = [f"header {p4_type_name(layout)} {{"]
    lines += [f"    bit<{bits}> {name};" for name, bits in layout.fields]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _p4_constants() -> list[str]:
    consts = [("bit<8>", f"REDPLANE_{n}", v) for v, n in REQUEST_TYPES.items()]
    consts += [("bit<8>", f"REDPLANE_{n}", v) for v, n in ACK_TYPES.items()]
    consts += [("bit<16>", "REDPLANE_SWITCH_PORT", SWITCH_PORT),
               ("bit<16>", "REDPLANE_STORE_BASE_PORT", STORE_BASE_PORT),
               ("bit<16>", "REDPLANE_MAX_SHARDS", MAX_SHARDS),
               ("bit<16>", "REDPLANE_SEQ_READ", SEQ_READ),
               ("bit<16>", "REDPLANE_SEQ_FENCE", SEQ_FENCE)]
    return [f"const {typ} {name} = {value};" for typ, name, value in consts]


def _p4_header_lengths() -> list[str]:
    return [f"const bit<16> REDPLANE_{layout.name.upper()}_HEADER_BYTES = {layout.header_bytes};"
            for layout in APP_LAYOUTS.values()]


def p4_layouts_file() -> str:
    """The whole generated ``layouts.p4``: constants, then every app layout's header type."""
    head = ["// Generated by `python -m testbed.redplane.protocol p4`; do not edit.",
            "// Source of truth: testbed/redplane/protocol.py (see docs/protocol.md).",
            "#ifndef REDPLANE_LAYOUTS_P4",
            "#define REDPLANE_LAYOUTS_P4",
            ""]
    body = _p4_constants() + _p4_header_lengths()
    headers = [p4_header(layout) for layout in APP_LAYOUTS.values()]
    return ("\n".join(head + body) + "\n\n" + "\n".join(headers)
            + "\n#endif  // REDPLANE_LAYOUTS_P4\n")


def main(argv: list[str] | None = None) -> int:
    """CLI: ``p4`` prints the generated P4 layouts file to stdout."""
    parser = argparse.ArgumentParser(prog="python -m testbed.redplane.protocol",
                                     description="RedPlane wire format tools")
    parser.add_argument("command", choices=["p4"],
                        help="p4: print the P4_16 RedPlane header declarations of all app layouts")
    parser.parse_args(argv)
    sys.stdout.write(p4_layouts_file())
    return 0


if __name__ == "__main__":
    sys.exit(main())
