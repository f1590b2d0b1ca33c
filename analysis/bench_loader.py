"""Benchmark: `analysis.pcap.load_pcap` against scapy's ``rdpcap`` plus field access.

    python -m analysis.bench_loader [--packets 200000] [--scapy-packets 20000] [--seed 1]
                                    [--repeat 3]

Writes a synthetic pcap (a mix of TCP segments, UDP probes and RedPlane requests/acks carrying
an inner packet) into a temporary directory that is removed afterwards, times `load_pcap` on
the whole file and scapy on its first ``--scapy-packets`` packets (scapy is slow; its rate is
per packet, so the two rates compare), and prints packets per second for both and the ratio.
"""
from __future__ import annotations

import argparse
import random
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

from analysis.pcap import load_pcap
from testbed.redplane.protocol import (APP_LAYOUTS, LEASE_RENEW, RENEW_ACK, SWITCH_PORT,
                                       store_port)
from testbed.traffic.probe import encode_probe

_ETHER = bytes.fromhex("020000000002" "020000000001" "0800")
_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")


# ---------------------------------------------------------------------------------------------
# A fast pcap writer (no scapy)

def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4(src: str, dst: str, proto: int, payload: bytes, ident: int = 0) -> bytes:
    """An IPv4 packet (no options, DF, TTL 64, header checksum filled)."""
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000,
                                   64, proto, 0, _addr(src), _addr(dst)))
    struct.pack_into("!H", header, 10, _checksum(bytes(header)))
    return bytes(header) + payload


def _addr(text: str) -> bytes:
    return bytes(int(part) for part in text.split("."))


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP datagram with checksum 0 (none)."""
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes) -> bytes:
    """A TCP segment without options (checksum left 0)."""
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload


def write_pcap(path: Path, frames: Iterator[tuple[int, bytes]]) -> int:
    """Write (time_ns, Ethernet frame) pairs as a little-endian nanosecond pcap; returns count."""
    count = 0
    with open(path, "wb") as out:
        out.write(_GLOBAL.pack(0xA1B23C4D, 2, 4, 0, 0, 262144, 1))
        for time_ns, frame in frames:
            sec, nsec = divmod(time_ns, 1_000_000_000)
            out.write(_RECORD.pack(sec, nsec, len(frame), len(frame)))
            out.write(frame)
            count += 1
    return count


# ---------------------------------------------------------------------------------------------
# The synthetic mix

def _tcp_frame(rng: random.Random, i: int) -> bytes:
    flow = rng.randrange(64)
    body = tcp(40000 + flow, 80, 1000 + i * 1448, 1, 0x18, bytes(rng.choice((0, 100, 1448))))
    return _ETHER + ipv4(f"10.0.0.{flow + 1}", "10.0.1.1", 6, body, i & 0xFFFF)


def _probe_frame(rng: random.Random, i: int) -> bytes:
    payload = encode_probe(rng.randrange(8), i, 1_700_000_000_000_000_000 + i, 64)
    return _ETHER + ipv4("10.0.0.200", "10.0.1.2", 17, udp(5000, 9000, payload), i & 0xFFFF)


def _redplane_frame(rng: random.Random, i: int) -> bytes:
    layout = APP_LAYOUTS["nat"]
    flow = rng.randrange(64)
    inner = ipv4(f"10.0.0.{flow + 1}", "10.0.1.1", 6, tcp(40000 + flow, 80, i, 0, 0x10, b""))
    key = layout.key_of(key_addr=0x0A000001 + flow, key_port=40000 + flow)
    value = layout.value_of(value_addr=0xC0A80001, value_port=20000 + flow)
    shard = store_port(flow % 4)
    if rng.random() < 0.5:
        message = udp(SWITCH_PORT, shard, layout.pack(LEASE_RENEW, i & 0xFFFF, key, value, inner))
    else:
        message = udp(shard, SWITCH_PORT, layout.pack(RENEW_ACK, i & 0xFFFF, key, value))
    return _ETHER + ipv4("10.0.9.1", "10.0.9.100", 17, message, i & 0xFFFF)


_MAKERS: tuple[Callable[[random.Random, int], bytes], ...] = (_tcp_frame, _probe_frame,
                                                             _redplane_frame)


def synthetic_frames(count: int, seed: int = 1) -> Iterator[tuple[int, bytes]]:
    """`count` frames 10 us apart, cycling TCP, probe and RedPlane packets."""
    rng = random.Random(seed)
    for i in range(count):
        yield 1_700_000_000_000_000_000 + i * 10_000, _MAKERS[i % len(_MAKERS)](rng, i)


# ---------------------------------------------------------------------------------------------
# Timing

def _scapy_fields(path: Path, limit: int) -> int:
    """Read the first `limit` packets with scapy and touch the fields `load_pcap` decodes."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.utils import rdpcap

    import testbed.redplane.scapy_layers  # noqa: F401  (binds the RedPlane layers)
    rows = []
    for pkt in rdpcap(str(path), count=limit):
        row = [pkt.time, len(pkt)]
        if IP in pkt:
            ip = pkt[IP]
            row += [ip.src, ip.dst, ip.proto, ip.id, ip.len]
            l4 = pkt[TCP] if TCP in pkt else pkt[UDP] if UDP in pkt else None
            if l4 is not None:
                row += [l4.sport, l4.dport, len(l4.payload)]
            if TCP in pkt:
                row += [pkt[TCP].seq, pkt[TCP].ack, int(pkt[TCP].flags)]
        rows.append(row)
    return len(rows)


def _timed(func: Callable[[], int]) -> tuple[int, float]:
    started = time.perf_counter()
    count = func()
    return count, time.perf_counter() - started


def run(packets: int, scapy_packets: int, seed: int, repeat: int = 3) -> dict[str, float]:
    """Write the file, time both readers; returns the measured figures.

    `load_pcap` runs `repeat` times (the first run includes one-off costs such as building the
    store-port table); its best time gives the rate. scapy runs once.
    """
    with tempfile.TemporaryDirectory(prefix="bench_loader_") as tmp:
        path = Path(tmp) / "synthetic.pcap"
        write_pcap(path, synthetic_frames(packets, seed))
        size = path.stat().st_size
        runs = [_timed(lambda: len(load_pcap(path))) for _ in range(max(repeat, 1))]
        ours, first_s = runs[0]
        ours_s = min(seconds for _, seconds in runs)
        theirs, theirs_s = _timed(lambda: _scapy_fields(path, min(scapy_packets, packets)))
    return {"packets": ours, "bytes": size, "load_pcap_first_s": first_s, "load_pcap_s": ours_s,
            "load_pcap_pps": ours / ours_s, "scapy_packets": theirs, "scapy_s": theirs_s,
            "scapy_pps": theirs / theirs_s, "ratio": (ours / ours_s) / (theirs / theirs_s)}


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: print the benchmark's figures."""
    parser = argparse.ArgumentParser(prog="python -m analysis.bench_loader",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=200_000, help="packets in the file")
    parser.add_argument("--scapy-packets", type=int, default=20_000,
                        help="packets scapy reads (its rate is scaled per packet)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="load_pcap runs (best counts)")
    args = parser.parse_args(argv)
    r = run(args.packets, args.scapy_packets, args.seed, args.repeat)
    print(f"file: {r['packets']} packets, {r['bytes'] / 1e6:.1f} MB "
          "(TCP, UDP probes, RedPlane requests/acks)")
    print(f"load_pcap:        {r['packets']:>8} packets in {r['load_pcap_s']:7.3f} s = "
          f"{r['load_pcap_pps']:>11,.0f} packets/s (best of {args.repeat}; "
          f"first run {r['load_pcap_first_s']:.3f} s)")
    print(f"scapy rdpcap+get: {r['scapy_packets']:>8} packets in {r['scapy_s']:7.3f} s = "
          f"{r['scapy_pps']:>11,.0f} packets/s")
    print(f"ratio: load_pcap is {r['ratio']:.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
