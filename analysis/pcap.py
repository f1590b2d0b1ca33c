"""Classic pcap files to pandas DataFrames, one row per packet, decoded with numpy.

`load_pcap` reads a whole libpcap file (either byte order, microsecond or nanosecond magic;
link types Ethernet with an optional 802.1Q tag, Linux cooked capture SLL and SLL2, raw IP),
walks the record headers once in Python and then decodes every header field for all packets
at once by gathering bytes from the file buffer with numpy. `load_pcaps` does this for every
pcap of a run directory and adds the capture point. `match_packets` pairs the copies of the
same packets seen at two capture points: latency and loss.

Decoding, layer by layer (a layer is decoded only if the one below it was):

- link: the Ethernet/SLL header; ``eth_type`` (after one VLAN tag, if any).
- IPv4 (``eth_type`` 0x0800): addresses, protocol, id, TTL, total length. IPv6 and ARP rows
  keep only the link columns. Non-first fragments carry no transport header.
- TCP / UDP: ports; TCP sequence, ack, flags and payload length; UDP payload length.
- probe (`testbed.traffic.probe`): UDP payloads that start with the probe magic and version.
- RedPlane (`testbed.redplane.protocol`): UDP messages to or from the switch port 4000 or a
  store port 8000-8063 that are not probes, decoded with one app layout (default ``nat``), and
  the 5-tuple of the inner IPv4 packet they carry.

A packet whose headers are cut (by the capture length or the end of the file) or inconsistent
(IPv4 version or lengths, TCP data offset, UDP length, RedPlane header or inner packet) never
raises: it gets ``malformed = True`` and missing values from the first bad layer up. Columns are
listed in `COLUMNS` (name -> meaning and unit); missing values are ``<NA>`` in nullable integer
columns and NaN in string columns, so ``isna()`` tests both.

Conventions: times are seconds (``time``, float64) and nanoseconds (``time_ns``, int64) since the
Unix epoch, as written by the capturing kernel; lengths are bytes; IPv4 addresses are
dotted-quad strings (readable, and equal across files without a shared category table).
"""
from __future__ import annotations

import os
import re
import socket
import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from testbed.errors import TestbedError
from testbed.redplane import protocol
from testbed.redplane.protocol import Layout, layout_for
from testbed.traffic import probe as probe_format

__all__ = ["COLUMNS", "MATCH_KEYS", "PcapFormatError", "empty_frame", "load_pcap",
           "load_pcaps", "match_packets", "read_packets"]


class PcapFormatError(TestbedError):
    """A file is not a classic pcap this loader reads (bad magic, short header, link type)."""


# ---------------------------------------------------------------------------------------------
# The columns

COLUMNS: dict[str, str] = {
    "time": "capture time, s since the Unix epoch (float64)",
    "time_ns": "capture time, ns since the Unix epoch (int64)",
    "point": "capture point: the label given, else the file name without .pcap (str)",
    "caplen": "bytes captured (int64)",
    "frame_len": "bytes of the frame on the wire, link header included (int64)",
    "malformed": "a header the loader decodes is cut or inconsistent (bool)",
    "eth_type": "EtherType after at most one VLAN tag (UInt16)",
    "src": "IPv4 source address, dotted quad (str)",
    "dst": "IPv4 destination address, dotted quad (str)",
    "proto": "IPv4 protocol number (UInt8)",
    "ip_id": "IPv4 identification (UInt16)",
    "ip_len": "IPv4 total length, bytes (Int32)",
    "ttl": "IPv4 time to live (UInt8)",
    "sport": "TCP/UDP source port (UInt16)",
    "dport": "TCP/UDP destination port (UInt16)",
    "tcp_seq": "TCP sequence number, 0..2^32-1 (Int64)",
    "tcp_ack": "TCP acknowledgement number, 0..2^32-1 (Int64)",
    "tcp_flags": "TCP flags byte: FIN 1, SYN 2, RST 4, PSH 8, ACK 16, URG 32, ECE 64, CWR 128 "
                 "(UInt8)",
    "tcp_len": "TCP payload bytes: IPv4 total length - IPv4 header - TCP header (Int32)",
    "udp_len": "UDP payload bytes: UDP length - 8 (Int32)",
    "flow": "directional 5-tuple 'tcp 10.0.0.1:5000>10.0.1.1:80' ('icmp a>b' without ports) (str)",
    "probe_flow": "probe header: flow id (Int64)",
    "probe_seq": "probe header: sequence number (Int64)",
    "probe_send_ns": "probe header: sender clock at send, ns since the epoch (Int64)",
    "probe_echo": "probe header: reply from a reflector (boolean)",
    "rp_dir": "RedPlane message direction: 'request' (to a store port) or 'ack' (str)",
    "rp_type": "RedPlane type field (UInt8)",
    "rp_type_name": "RedPlane type name for the direction, e.g. LEASE_NEW, RENEW_ACK (str)",
    "rp_seq": "RedPlane seq field (UInt16)",
    "rp_ts": "RedPlane ts field: the switch's send time in us mod 2^32, echoed by acks (UInt32)",
    "rp_key": "RedPlane key: its fields concatenated, first most significant (Int64; object of "
              "int if > 63 bits)",
    "rp_value": "RedPlane value, likewise (Int64; object of int if > 63 bits)",
    "rp_<field>": "each key/value field of the app layout; 32-bit *_addr fields as dotted quads",
    "rp_inner_len": "bytes of the inner IPv4 packet after the RedPlane header, 0 if none (Int32)",
    "inner_src": "inner IPv4 source address (str)",
    "inner_dst": "inner IPv4 destination address (str)",
    "inner_proto": "inner IPv4 protocol (UInt8)",
    "inner_sport": "inner TCP/UDP source port (UInt16)",
    "inner_dport": "inner TCP/UDP destination port (UInt16)",
    "inner_flow": "inner packet's directional 5-tuple, as `flow` (str)",
}

MATCH_KEYS: dict[str, tuple[str, ...]] = {
    "probe": ("probe_flow", "probe_seq", "probe_echo"),
    "ip": ("src", "dst", "proto", "ip_id", "sport", "dport"),
    "tcp": ("src", "dst", "sport", "dport", "ip_id", "tcp_seq", "tcp_ack"),
    "nat": ("dst", "dport", "proto", "ip_id", "tcp_seq", "tcp_ack"),
}
"""Named keys of `match_packets`: the columns that identify one packet at two points.
``nat`` leaves out the source, which a NAT rewrites (TCP only: it needs ``tcp_seq``)."""

# ---------------------------------------------------------------------------------------------
# File format: global header, record headers

_MAGICS = {  # magic as read little-endian -> (byte order, nanoseconds per fraction unit)
    0xA1B2C3D4: ("<", 1000),
    0xD4C3B2A1: (">", 1000),
    0xA1B23C4D: ("<", 1),
    0x4D3CB2A1: (">", 1),
}
_PCAPNG_MAGIC = 0x0A0D0D0A
_GLOBAL_HEADER_LEN = 24
_RECORD_HEADER_LEN = 16

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_LINUX_SLL2 = 276


@dataclass(frozen=True)
class _Records:
    """Where each packet's bytes are in the file, and its record header fields."""

    data: bytes
    linktype: int
    start: np.ndarray      # int64 file offset of the packet's first byte
    caplen: np.ndarray     # int64 bytes of the packet present in the file
    wirelen: np.ndarray    # int64 original length
    time_ns: np.ndarray    # int64
    cut: np.ndarray        # bool: the record runs past the end of the file


def _global_header(data: bytes, name: str) -> tuple[str, int, int]:
    """(byte order, ns per timestamp fraction unit, link type) from the pcap global header."""
    if len(data) < _GLOBAL_HEADER_LEN:
        raise PcapFormatError(f"{name}: {len(data)} bytes, shorter than a pcap header")
    magic = struct.unpack_from("<I", data)[0]
    if magic == _PCAPNG_MAGIC:
        raise PcapFormatError(f"{name}: pcapng is not read here; convert it with "
                              "'editcap -F pcap' or capture with tcpdump -w")
    if magic not in _MAGICS:
        raise PcapFormatError(f"{name}: not a pcap file (magic {magic:#010x})")
    order, frac_ns = _MAGICS[magic]
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF
    return order, frac_ns, linktype


def _record_offsets(data: bytes, order: str) -> tuple[list[int], list[int]]:
    """File offsets of the record headers and their captured lengths (one pass)."""
    caplen_at = struct.Struct(order + "I").unpack_from
    offsets: list[int] = []
    caplens: list[int] = []
    pos, size = _GLOBAL_HEADER_LEN, len(data)
    while pos + _RECORD_HEADER_LEN <= size:
        incl = caplen_at(data, pos + 8)[0]
        offsets.append(pos)
        caplens.append(incl)
        pos += _RECORD_HEADER_LEN + incl
    return offsets, caplens


def _u32_at(buf: np.ndarray, pos: np.ndarray, order: str) -> np.ndarray:
    """The 32-bit unsigned integers at `pos` (all in range) in byte order `order`, as int64."""
    out = np.zeros(len(pos), np.int64)
    shifts = (0, 8, 16, 24) if order == "<" else (24, 16, 8, 0)
    for i, shift in enumerate(shifts):
        out |= buf[pos + i].astype(np.int64) << shift
    return out


def _read_records(data: bytes, name: str = "pcap") -> _Records:
    """Parse the global header and every record header of the classic pcap in `data`.

    A last record cut short by the end of the file keeps the bytes that are there (``cut``);
    fewer than 16 trailing bytes are ignored. Raises `PcapFormatError` for a bad file header.
    """
    order, frac_ns, linktype = _global_header(data, name)
    offsets, caplens = _record_offsets(data, order)
    buf = np.frombuffer(data, np.uint8)
    rec = np.asarray(offsets, np.int64)
    wanted = np.asarray(caplens, np.int64)
    start = rec + _RECORD_HEADER_LEN
    caplen = np.minimum(wanted, len(data) - start)
    time_ns = _u32_at(buf, rec, order) * 1_000_000_000 + _u32_at(buf, rec + 4, order) * frac_ns
    wirelen = np.maximum(_u32_at(buf, rec + 12, order), caplen)
    return _Records(data, linktype, start, caplen, wirelen, time_ns, caplen < wanted)


# ---------------------------------------------------------------------------------------------
# Gathering header fields from the byte buffer

class _Bytes:
    """The captured bytes of n packets, and vectorised big-endian reads from them."""

    def __init__(self, rec: _Records) -> None:
        self.data = rec.data
        self.buf = np.frombuffer(rec.data, np.uint8)
        self.start = rec.start
        self.end = rec.start + rec.caplen
        self.wire_end = rec.start + rec.wirelen
        self.n = len(rec.start)

    def has(self, pos: np.ndarray, width: int | np.ndarray, where: np.ndarray) -> np.ndarray:
        """Rows of `where` whose bytes ``pos .. pos+width-1`` were captured."""
        return where & (pos + width <= self.end)

    def uint(self, pos: np.ndarray, width: int, where: np.ndarray) -> np.ndarray:
        """Big-endian unsigned `width`-byte integers at `pos` (0 outside `where`), as uint64.

        Every row of `where` must satisfy ``has(pos, width)``.
        """
        idx = np.where(where, pos, 0)
        out = np.zeros(self.n, np.uint64)
        for i in range(width):
            out = (out << np.uint64(8)) | self.buf[idx + i].astype(np.uint64)
        return np.where(where, out, np.uint64(0))

    def bits(self, pos: np.ndarray, bit_offset: int, bits: int, where: np.ndarray):
        """The `bits`-wide big-endian field starting `bit_offset` bits after `pos`.

        uint64 array when the field spans at most 8 bytes, else an object array of ints.
        """
        first, lead = divmod(bit_offset, 8)
        span = (lead + bits + 7) // 8
        if span > 8:
            return self._wide_bits(pos + first, lead, bits, span, where)
        raw = self.uint(pos + first, span, where)
        return (raw >> np.uint64(span * 8 - lead - bits)) & np.uint64((1 << bits) - 1)

    def _wide_bits(self, pos, lead, bits, span, where) -> np.ndarray:
        out = np.zeros(self.n, object)
        for row in np.flatnonzero(where):
            at = int(pos[row])
            raw = int.from_bytes(self.data[at:at + span], "big")
            out[row] = (raw >> (span * 8 - lead - bits)) & ((1 << bits) - 1)
        return out


def _nullable(values: np.ndarray, valid: np.ndarray, dtype: str):
    """A pandas nullable array of `dtype` (``Int64``, ``UInt16``, ``boolean``...): `values`
    where `valid`, <NA> elsewhere."""
    values = np.where(valid, values, 0)
    if dtype == "boolean":
        return pd.arrays.BooleanArray(values.astype(bool), ~valid)
    return pd.arrays.IntegerArray(values.astype(dtype.lower()), ~valid)


_STRING_DTYPE = "str" if int(pd.__version__.split(".")[0]) >= 3 else object
"""pandas >= 3: the default string dtype (missing = NaN); before: object (missing = None)."""


def _text(values: np.ndarray) -> pd.Series:
    """A string column from an object array of str and None (missing)."""
    return pd.Series(values, dtype=_STRING_DTYPE)


def _objects(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Object array of `values` where valid, None elsewhere."""
    out = np.full(len(valid), None, object)
    out[valid] = values[valid]
    return out


def _format_unique(keys: np.ndarray, valid: np.ndarray, fmt: Callable[[int], str]) -> np.ndarray:
    """Object array of ``fmt(key)`` for the valid rows of the uint64 `keys`, None elsewhere.

    Each distinct key is formatted once (hash-based factorisation, no per-row Python).
    """
    out = np.full(len(valid), None, object)
    if valid.any():
        codes, uniq = pd.factorize(keys[valid])
        labels = np.empty(len(uniq), object)
        labels[:] = [fmt(int(u)) for u in uniq]
        out[valid] = labels[codes]
    return out


def _dotted(address) -> str:
    return socket.inet_ntoa(int(address).to_bytes(4, "big"))


def _ipv4_strings(addresses: np.ndarray, valid: np.ndarray) -> pd.Series:
    """Dotted quads of uint32 `addresses` where valid, None elsewhere."""
    return _text(_format_unique(addresses, valid, _dotted))


# ---------------------------------------------------------------------------------------------
# Link layer

@dataclass
class _Layer:
    """One decoded layer: where the next header starts, and rows that decoded."""

    ok: np.ndarray
    next_pos: np.ndarray


def _ethernet(pk: _Bytes) -> tuple[_Layer, np.ndarray]:
    every = np.ones(pk.n, bool)
    ok = pk.has(pk.start, 14, every)
    eth_type = pk.uint(pk.start + 12, 2, ok)
    tagged = ok & ((eth_type == 0x8100) | (eth_type == 0x88A8))
    tag_ok = pk.has(pk.start, 18, tagged)
    eth_type = np.where(tag_ok, pk.uint(pk.start + 16, 2, tag_ok), eth_type)
    return _Layer(ok & (~tagged | tag_ok), pk.start + np.where(tagged, 18, 14)), eth_type


def _sll(pk: _Bytes) -> tuple[_Layer, np.ndarray]:
    ok = pk.has(pk.start, 16, np.ones(pk.n, bool))
    return _Layer(ok, pk.start + 16), pk.uint(pk.start + 14, 2, ok)


def _sll2(pk: _Bytes) -> tuple[_Layer, np.ndarray]:
    ok = pk.has(pk.start, 20, np.ones(pk.n, bool))
    return _Layer(ok, pk.start + 20), pk.uint(pk.start, 2, ok)


def _raw_ip(pk: _Bytes) -> tuple[_Layer, np.ndarray]:
    ok = pk.has(pk.start, 1, np.ones(pk.n, bool))
    version = pk.uint(pk.start, 1, ok) >> np.uint64(4)
    eth_type = np.select([version == 4, version == 6], [0x0800, 0x86DD], 0).astype(np.uint64)
    return _Layer(ok & (eth_type != 0), pk.start), eth_type


_LINK_DECODERS = {
    LINKTYPE_ETHERNET: _ethernet,
    LINKTYPE_LINUX_SLL: _sll,
    LINKTYPE_LINUX_SLL2: _sll2,
    LINKTYPE_RAW: _raw_ip,
    LINKTYPE_IPV4: _raw_ip,
}

# ---------------------------------------------------------------------------------------------
# IPv4, TCP, UDP

_PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 47: "gre", 132: "sctp"}


def _ipv4_header(pk: _Bytes, at: np.ndarray, where: np.ndarray, wire_len: np.ndarray):
    """Validate IPv4 headers at `at`: version 4, IHL >= 5 captured, IHL <= total <= `wire_len`.

    Returns (ok, header bytes, total length); rows of `where` that fail are malformed.
    """
    head = pk.has(at, 20, where)
    first = pk.uint(at, 1, head).astype(np.int64)
    ihl = (first & 0x0F) * 4
    total = pk.uint(at + 2, 2, head).astype(np.int64)
    ok = head & (first >> 4 == 4) & (ihl >= 20) & (total >= ihl) & (total <= wire_len)
    return pk.has(at, ihl, ok), ihl, total


def _ports(pk: _Bytes, at: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return pk.uint(at, 2, ok), pk.uint(at + 2, 2, ok)


class _Decoder:
    """Decodes every layer of one file's packets into named columns."""

    def __init__(self, rec: _Records, layout: Layout) -> None:
        if rec.linktype not in _LINK_DECODERS:
            raise PcapFormatError(f"link type {rec.linktype} is not decoded (known: "
                                  f"{', '.join(map(str, _LINK_DECODERS))})")
        self.rec = rec
        self.pk = _Bytes(rec)
        self.layout = layout
        self.cols: dict[str, object] = {}
        self.malformed = rec.cut.copy()

    def run(self) -> dict[str, object]:
        """All columns (without ``point``), in `COLUMNS` order."""
        self._record_columns()
        link, eth_type = _LINK_DECODERS[self.rec.linktype](self.pk)
        self.malformed |= ~link.ok
        self.cols["eth_type"] = _nullable(eth_type, link.ok, "UInt16")
        ip = self._ipv4(link, eth_type)
        tcp = self._tcp(ip)
        udp = self._udp(ip)
        self._ports_and_flow(ip, tcp, udp)
        is_probe = self._probe(udp)
        self._redplane(udp, ~is_probe)
        self.cols["malformed"] = self.malformed
        return self.cols

    def _record_columns(self) -> None:
        rec = self.rec
        self.cols.update(time=rec.time_ns / 1e9, time_ns=rec.time_ns, caplen=rec.caplen,
                         frame_len=rec.wirelen)

    def _ipv4(self, link: _Layer, eth_type: np.ndarray) -> _Layer:
        pk, cols = self.pk, self.cols
        is_ip = link.ok & (eth_type == 0x0800)
        at = link.next_pos
        ok, ihl, total = _ipv4_header(pk, at, is_ip, pk.wire_end - at)
        self.malformed |= is_ip & ~ok
        self.src, self.dst = pk.uint(at + 12, 4, ok), pk.uint(at + 16, 4, ok)
        self.proto = pk.uint(at + 9, 1, ok)
        fragment = pk.uint(at + 6, 2, ok) & np.uint64(0x1FFF)
        cols["src"] = _ipv4_strings(self.src, ok)
        cols["dst"] = _ipv4_strings(self.dst, ok)
        cols["proto"] = _nullable(self.proto, ok, "UInt8")
        cols["ip_id"] = _nullable(pk.uint(at + 4, 2, ok), ok, "UInt16")
        cols["ip_len"] = _nullable(total, ok, "Int32")
        cols["ttl"] = _nullable(pk.uint(at + 8, 1, ok), ok, "UInt8")
        self.ip_ok = ok
        self.l4_len = total - ihl
        return _Layer(ok & (fragment == 0), at + ihl)

    def _tcp(self, ip: _Layer) -> _Layer:
        pk, at = self.pk, ip.next_pos
        is_tcp = ip.ok & (self.proto == 6)
        head = pk.has(at, 20, is_tcp) & (self.l4_len >= 20)
        offset = (pk.uint(at + 12, 1, head) >> np.uint64(4)).astype(np.int64) * 4
        ok = head & (offset >= 20) & (offset <= self.l4_len)
        self.malformed |= is_tcp & ~ok
        self.cols["tcp_seq"] = _nullable(pk.uint(at + 4, 4, ok), ok, "Int64")
        self.cols["tcp_ack"] = _nullable(pk.uint(at + 8, 4, ok), ok, "Int64")
        self.cols["tcp_flags"] = _nullable(pk.uint(at + 13, 1, ok), ok, "UInt8")
        self.cols["tcp_len"] = _nullable(self.l4_len - offset, ok, "Int32")
        return _Layer(ok, at + offset)

    def _udp(self, ip: _Layer) -> _Layer:
        pk, at = self.pk, ip.next_pos
        is_udp = ip.ok & (self.proto == 17)
        head = pk.has(at, 8, is_udp) & (self.l4_len >= 8)
        length = pk.uint(at + 4, 2, head).astype(np.int64)
        ok = head & (length >= 8) & (length <= self.l4_len)
        self.malformed |= is_udp & ~ok
        self.udp_len = length - 8
        self.cols["udp_len"] = _nullable(self.udp_len, ok, "Int32")
        return _Layer(ok, at + 8)

    def _ports_and_flow(self, ip: _Layer, tcp: _Layer, udp: _Layer) -> None:
        has_ports = tcp.ok | udp.ok
        self.sport, self.dport = _ports(self.pk, ip.next_pos, has_ports)
        self.cols["sport"] = _nullable(self.sport, has_ports, "UInt16")
        self.cols["dport"] = _nullable(self.dport, has_ports, "UInt16")
        self.cols["flow"] = _flow_strings(self.src, self.dst, self.proto, self.sport,
                                          self.dport, self.ip_ok, has_ports)

    def _probe(self, udp: _Layer) -> np.ndarray:
        fields = _probe_fields()
        size = probe_format.PROBE_STRUCT.size
        cand = self.pk.has(udp.next_pos, size, udp.ok & (self.udp_len >= size))
        for name, expected in (("magic", probe_format.PROBE_MAGIC),
                               ("version", probe_format.PROBE_VERSION)):
            cand &= self._probe_item(fields[name], udp.next_pos, cand) == _as_int(expected)
        for name, column in (("flow", "probe_flow"), ("seq", "probe_seq"),
                             ("send_ns", "probe_send_ns")):
            self.cols[column] = _nullable(self._probe_item(fields[name], udp.next_pos, cand),
                                          cand, "Int64")
        flags = self._probe_item(fields["flags"], udp.next_pos, cand)
        echo = (flags & np.uint64(probe_format.FLAG_ECHO)) != 0
        self.cols["probe_echo"] = _nullable(echo, cand, "boolean")
        return cand

    def _probe_item(self, item: tuple[int, int], pos: np.ndarray, where: np.ndarray):
        offset, size = item
        return self.pk.uint(pos + offset, size, where)

    def _redplane(self, udp: _Layer, candidates: np.ndarray) -> None:
        store = _store_port_table()
        on_port = udp.ok & candidates & ((self.sport == protocol.SWITCH_PORT) |
                                         (self.dport == protocol.SWITCH_PORT) |
                                         store[self.sport] | store[self.dport])
        size = self.layout.header_bytes
        at = udp.next_pos
        ok = self.pk.has(at, size, on_port & (self.udp_len >= size))
        self.malformed |= on_port & ~ok
        is_ack = _is_ack(self.sport, self.dport, store)
        self._redplane_header(at, ok, is_ack)
        inner_len = self.udp_len - size
        self.cols["rp_inner_len"] = _nullable(inner_len, ok, "Int32")
        self._inner(at + size, ok & (inner_len > 0), inner_len)

    def _redplane_header(self, at: np.ndarray, ok: np.ndarray, is_ack: np.ndarray) -> None:
        cols, layout = self.cols, self.layout
        cols["rp_dir"] = _text(_objects(np.where(is_ack, "ack", "request").astype(object), ok))
        rp_type = self.pk.bits(at, 0, protocol.TYPE_BITS, ok)
        cols["rp_type"] = _nullable(rp_type, ok, "UInt8")
        cols["rp_type_name"] = _type_names(rp_type, is_ack, ok)
        offsets = _bit_offsets(layout.fields)
        cols["rp_seq"] = _nullable(self.pk.bits(at, offsets["seq"], protocol.SEQ_BITS, ok),
                                   ok, "UInt16")
        cols["rp_ts"] = _nullable(self.pk.bits(at, offsets["ts"], protocol.TS_BITS, ok), ok, "UInt32")
        key_at = offsets[layout.key_fields[0][0]]
        cols["rp_key"] = _int_column(self.pk.bits(at, key_at, layout.key_bits, ok), ok,
                                     layout.key_bits)
        cols["rp_value"] = _int_column(self.pk.bits(at, key_at + layout.key_bits,
                                                    layout.value_bits, ok), ok, layout.value_bits)
        for name, bits in layout.key_fields + layout.value_fields:
            values = self.pk.bits(at, offsets[name], bits, ok)
            cols[f"rp_{name}"] = (_ipv4_strings(values, ok) if _is_address(name, bits)
                                  else _int_column(values, ok, bits))

    def _inner(self, at: np.ndarray, present: np.ndarray, inner_len: np.ndarray) -> None:
        pk, cols = self.pk, self.cols
        ok, ihl, total = _ipv4_header(pk, at, present, inner_len)
        ok &= total == inner_len
        self.malformed |= present & ~ok
        src, dst = pk.uint(at + 12, 4, ok), pk.uint(at + 16, 4, ok)
        proto = pk.uint(at + 9, 1, ok)
        first = ok & ((pk.uint(at + 6, 2, ok) & np.uint64(0x1FFF)) == 0)
        has_ports = pk.has(at + ihl, 4, first & ((proto == 6) | (proto == 17))
                           & (total - ihl >= 4))
        sport, dport = _ports(pk, at + ihl, has_ports)
        cols["inner_src"] = _ipv4_strings(src, ok)
        cols["inner_dst"] = _ipv4_strings(dst, ok)
        cols["inner_proto"] = _nullable(proto, ok, "UInt8")
        cols["inner_sport"] = _nullable(sport, has_ports, "UInt16")
        cols["inner_dport"] = _nullable(dport, has_ports, "UInt16")
        cols["inner_flow"] = _flow_strings(src, dst, proto, sport, dport, ok, has_ports)


def _flow_strings(src, dst, proto, sport, dport, ok, has_ports) -> pd.Series:
    """'tcp 10.0.0.1:5000>10.0.1.1:80' per row ('proto a>b' without ports), NaN if not IPv4."""
    addresses = (src << np.uint64(32)) | dst
    rest = ((proto << np.uint64(33)) | (has_ports.astype(np.uint64) << np.uint64(32))
            | (sport << np.uint64(16)) | dport)
    address_code, address_uniq = pd.factorize(addresses)
    rest_code, rest_uniq = pd.factorize(rest)
    combined = address_code.astype(np.uint64) * np.uint64(len(rest_uniq)) + rest_code

    def label(code: int) -> str:
        pair, other = divmod(code, len(rest_uniq))
        return _flow_label(int(address_uniq[pair]), int(rest_uniq[other]))
    return _text(_format_unique(combined, ok, label))


def _flow_label(addresses: int, rest: int) -> str:
    proto, has_ports = rest >> 33, (rest >> 32) & 1
    name = _PROTO_NAMES.get(proto, str(proto))
    src, dst = _dotted(addresses >> 32), _dotted(addresses & 0xFFFFFFFF)
    if not has_ports:
        return f"{name} {src}>{dst}"
    return f"{name} {src}:{(rest >> 16) & 0xFFFF}>{dst}:{rest & 0xFFFF}"


# ---------------------------------------------------------------------------------------------
# Probe and RedPlane declarations, turned into offsets

_PROBE_ITEM_NAMES = ("magic", "version", "flags", "reserved", "flow", "seq", "send_ns", "echo_ns")
"""Names of the items of `probe.PROBE_HEADER`, in order (as documented in testbed.traffic.probe)."""

_STRUCT_ITEM = re.compile(r"(\d*)([xcbB?hHiIlLqQnNefdspP])")


def _struct_items(fmt: str) -> list[tuple[int, int]]:
    """(offset, size) of each item of a struct format ('4s' is one item; 'x' is none)."""
    order, body = (fmt[0], fmt[1:]) if fmt[:1] in "@=<>!" else ("@", fmt)
    items, prefix = [], ""
    for count, code in _STRUCT_ITEM.findall(body):
        repeat = 1 if code in "sp" else int(count or 1)
        for _ in range(repeat):
            size_fmt = (count if code in "sp" else "") + code
            prefix += size_fmt
            if code != "x":
                size = struct.calcsize(order + size_fmt)
                items.append((struct.calcsize(order + prefix) - size, size))
    return items


@cache
def _probe_fields() -> dict[str, tuple[int, int]]:
    """Offset and size of each probe header item, from `probe.PROBE_HEADER`."""
    items = _struct_items(probe_format.PROBE_HEADER)
    if len(items) != len(_PROBE_ITEM_NAMES):
        raise TestbedError(f"probe header {probe_format.PROBE_HEADER!r} has {len(items)} "
                           f"items; analysis.pcap knows {_PROBE_ITEM_NAMES}: update it")
    return dict(zip(_PROBE_ITEM_NAMES, items))


def _as_int(value: bytes | int) -> int:
    return int.from_bytes(value, "big") if isinstance(value, bytes) else int(value)


@cache
def _store_port_table() -> np.ndarray:
    """Boolean lookup table over all 65536 ports: `protocol.is_store_port`."""
    return np.array([protocol.is_store_port(port) for port in range(1 << 16)], bool)


def _is_ack(sport: np.ndarray, dport: np.ndarray, store: np.ndarray) -> np.ndarray:
    """Ack = sent to the switch port, or from a store port to a non-store port."""
    return (dport == protocol.SWITCH_PORT) | (store[sport] & ~store[dport])


@cache
def _type_name_table() -> np.ndarray:
    """Names by [is_ack, type] for all 256 type values."""
    table = np.empty((2, 256), object)
    for is_ack, names in ((0, protocol.REQUEST_TYPES), (1, protocol.ACK_TYPES)):
        table[is_ack] = [names.get(t, f"type={t}") for t in range(256)]
    return table


def _type_names(rp_type: np.ndarray, is_ack: np.ndarray, ok: np.ndarray) -> np.ndarray:
    return _text(_objects(_type_name_table()[is_ack.astype(int), rp_type.astype(int)], ok))


def _bit_offsets(fields: Sequence[tuple[str, int]]) -> dict[str, int]:
    """Bit offset of each field from the start of the header."""
    offsets, at = {}, 0
    for name, bits in fields:
        offsets[name] = at
        at += bits
    return offsets


def _is_address(name: str, bits: int) -> bool:
    """Layout fields shown as IPv4 addresses (the scapy layer's convention)."""
    return bits == 32 and name.endswith("_addr")


def _int_column(values: np.ndarray, ok: np.ndarray, bits: int):
    """Int64 for up to 63 bits, UInt64 for 64, else an object column of ints (None if missing)."""
    if bits <= 63:
        return _nullable(values, ok, "Int64")
    if bits == 64:
        return _nullable(values, ok, "UInt64")
    return _objects(values, ok)


# ---------------------------------------------------------------------------------------------
# Public API

def _layout(app: str | Layout) -> Layout:
    return app if isinstance(app, Layout) else layout_for(app)


def _column_order(names: Iterable[str]) -> list[str]:
    """`COLUMNS` order, with the layout's ``rp_<field>`` columns in place of the placeholder."""
    names = list(names)
    extra = [c for c in names if c not in COLUMNS]
    order: list[str] = []
    for name in COLUMNS:
        order += extra if name == "rp_<field>" else [name] if name in names else []
    return order


def _frame(cols: Mapping[str, object], n: int, point: str) -> pd.DataFrame:
    cols = dict(cols)
    cols["point"] = _text(np.full(n, point, object))
    return pd.DataFrame({name: cols[name] for name in _column_order(cols)})


def read_packets(data: bytes, label: str = "pcap", app: str | Layout = "nat") -> pd.DataFrame:
    """Decode the classic pcap bytes `data` into a DataFrame (see `load_pcap`)."""
    records = _read_records(data, label)
    return _frame(_Decoder(records, _layout(app)).run(), len(records.start), label)


def load_pcap(path: str | os.PathLike, label: str | None = None,
              app: str | Layout = "nat") -> pd.DataFrame:
    """One row per packet of the classic pcap at `path`, columns as in `COLUMNS`.

    label: the ``point`` of every row (default: the file name without its suffix).
    app: the RedPlane layout (`protocol.APP_LAYOUTS` name or a `Layout`) for ``rp_*`` columns.
    Rows are in file order. An empty (0-byte) file gives an empty frame with all columns;
    a file that is not a classic pcap raises `PcapFormatError`.
    """
    path = Path(path)
    data = path.read_bytes()
    if not data:
        data = _empty_pcap_header()
    return read_packets(data, label if label is not None else path.stem, app)


def _empty_pcap_header() -> bytes:
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET)


def _labelled_paths(source) -> list[tuple[str, Path]]:
    """(label, path) pairs: a run directory's ``**/*.pcap``, a mapping, or paths."""
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        root = Path(source)
        return [(p.relative_to(root).with_suffix("").as_posix(), p)
                for p in sorted(root.rglob("*.pcap"))]
    if isinstance(source, (str, os.PathLike)):
        source = [source]
    if isinstance(source, Mapping):
        return [(str(label), Path(p)) for label, p in source.items()]
    return [(Path(p).stem, Path(p)) for p in source]


def load_pcaps(source: str | os.PathLike | Mapping[str, str | os.PathLike]
               | Iterable[str | os.PathLike], app: str | Layout = "nat") -> pd.DataFrame:
    """All packets of several pcaps, concatenated in file order, with their ``point``.

    source: a run directory (every ``*.pcap`` below it, sorted; the point is the path relative
    to the directory without ``.pcap``, e.g. ``s1_s1-eth1``), a mapping label -> path, or an
    iterable of paths (point = file name without suffix).
    """
    frames = [load_pcap(path, label, app) for label, path in _labelled_paths(source)]
    if not frames:
        return empty_frame(app)
    return pd.concat(frames, ignore_index=True)


def empty_frame(app: str | Layout = "nat") -> pd.DataFrame:
    """An empty packet frame with every column and dtype `load_pcap` produces."""
    return read_packets(_empty_pcap_header(), "", app)


# ---------------------------------------------------------------------------------------------
# Matching packets across capture points

def _key_columns(key: str | Sequence[str]) -> list[str]:
    if isinstance(key, str):
        if key not in MATCH_KEYS:
            raise KeyError(f"unknown match key {key!r}; named keys: {', '.join(MATCH_KEYS)}")
        return list(MATCH_KEYS[key])
    return list(key)


def _numbered(df: pd.DataFrame, key: list[str], keep: Sequence[str]) -> pd.DataFrame:
    """Rows with a complete key, in time order, numbered per key (0 = first copy)."""
    rows = df.dropna(subset=key).sort_values("time_ns", kind="stable")
    rows = rows[key + ["time", "time_ns"] + [c for c in keep if c not in key]].copy()
    rows["occurrence"] = rows.groupby(key, sort=False).cumcount()
    rows["time_ns"] = rows["time_ns"].astype("Int64")  # stays exact through the left merge
    return rows


def match_packets(df_a: pd.DataFrame, df_b: pd.DataFrame,
                  key: str | Sequence[str] = "probe",
                  keep: Sequence[str] = ("flow",)) -> pd.DataFrame:
    """Pair each packet seen at point A with the same packet seen at point B.

    key: a name from `MATCH_KEYS` or a list of columns identifying a packet at both points.
    Only rows whose key columns are all present take part. The k-th copy of a key at A (in
    time order) is paired with the k-th copy at B, so retransmitted duplicates pair in order.

    Returns one row per packet of A with a complete key, columns: the key columns,
    ``occurrence`` (k), ``time_a``/``time_b`` (s), ``time_ns_a``/``time_ns_b`` (Int64 ns),
    ``latency`` (time_b - time_a, s, float64; NaN if lost), ``latency_ns`` (Int64),
    ``lost`` (bool: no copy at B), and ``<c>_a``/``<c>_b`` for each column c of `keep`.
    Packets seen only at B are not reported.
    """
    cols = _key_columns(key)
    a = _numbered(df_a, cols, keep)
    b = _numbered(df_b, cols, keep)
    merged = a.merge(b, how="left", on=cols + ["occurrence"], suffixes=("_a", "_b"))
    lost = merged["time_ns_b"].isna().to_numpy()
    merged["latency_ns"] = merged["time_ns_b"] - merged["time_ns_a"]
    merged["latency"] = merged["latency_ns"].astype("float64") / 1e9
    merged["lost"] = lost
    return merged.reset_index(drop=True)
