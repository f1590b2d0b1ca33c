"""A small writer of classic libpcap files, as BMv2 writes `<ifname>_in.pcap`/`<ifname>_out.pcap`.

Format (tcpdump/libpcap "classic" file): a 24-byte global header (magic 0xa1b2c3d4 in native byte
order, version 2.4, snaplen, linktype 1 = Ethernet), then per packet a 16-byte record header
(seconds, microseconds, captured length, original length) and the captured bytes.

Writes go to a large user-space buffer; the owner calls `flush()` periodically (the switch does so
at least once a second) and `close()` at exit, so a reader sees whole records up to the last flush.
"""
from __future__ import annotations

import struct
import time

LINKTYPE_ETHERNET = 1
MAGIC_US = 0xA1B2C3D4
_GLOBAL = struct.Struct("=IHHiIII")
_RECORD = struct.Struct("=IIII")
BUFFER_BYTES = 1 << 20


class PcapWriter:
    """Append packets to a new pcap file at `path` (truncated if it exists)."""

    def __init__(self, path, snaplen: int = 65535, linktype: int = LINKTYPE_ETHERNET):
        self.path = str(path)
        self.snaplen = snaplen
        self.packets = 0
        self._file = open(self.path, "wb", buffering=BUFFER_BYTES)
        self._file.write(_GLOBAL.pack(MAGIC_US, 2, 4, 0, 0, snaplen, linktype))
        self._file.flush()

    def write(self, data: bytes, ts_ns: int | None = None) -> None:
        """Record one packet, stamped `ts_ns` (ns since the epoch; now when None)."""
        usec = (time.time_ns() if ts_ns is None else ts_ns) // 1000
        length = len(data)
        caplen = length if length <= self.snaplen else self.snaplen
        f = self._file
        f.write(_RECORD.pack(usec // 1_000_000, usec % 1_000_000, caplen, length))
        f.write(data if caplen == length else data[:caplen])
        self.packets += 1

    def flush(self) -> None:
        """Push buffered records to the file."""
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        """Flush and close (idempotent)."""
        if not self._file.closed:
            self._file.close()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def __enter__(self) -> "PcapWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_pcap(path) -> list[tuple[float, bytes]]:
    """All (timestamp in s, bytes) records of a classic pcap file (for tests and tools)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < _GLOBAL.size:
        raise ValueError(f"{path}: not a pcap file (only {len(blob)} bytes)")
    magic = struct.unpack_from("=I", blob)[0]
    order = "=" if magic == MAGIC_US else ("<" if struct.unpack_from("<I", blob)[0] == MAGIC_US else ">")
    if struct.unpack_from(order + "I", blob)[0] != MAGIC_US:
        raise ValueError(f"{path}: bad pcap magic {magic:#x}")
    record = struct.Struct(order + "IIII")
    out, pos = [], _GLOBAL.size
    while pos + record.size <= len(blob):
        sec, usec, caplen, _length = record.unpack_from(blob, pos)
        pos += record.size
        out.append((sec + usec / 1e6, blob[pos:pos + caplen]))
        pos += caplen
    return out
