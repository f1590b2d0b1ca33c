"""Hash and checksum algorithms of v1model, computed as BMv2 computes them (calculations.cpp).

Input is always a byte string: the fields of the data list packed MSB-first with no padding
between fields and zero bits padding the tail to a byte boundary (see `pack_fields`).
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass


def pack_fields(values_and_widths) -> bytes:
    """Concatenate (value, width) pairs bit by bit, MSB first; pad the tail with zero bits."""
    acc, bits = 0, 0
    for value, width in values_and_widths:
        acc = (acc << width) | (value & ((1 << width) - 1))
        bits += width
    pad = (-bits) % 8
    return (acc << pad).to_bytes((bits + pad) // 8, "big")


@dataclass
class CrcParams:
    """A parametrised CRC (the Rocksoft model), as set_crc16/32_parameters configure it."""

    width: int
    poly: int
    init: int
    xor_out: int
    reflect_in: bool
    reflect_out: bool

    def __post_init__(self):
        self._table = _crc_table(self.width, self.poly, self.reflect_in)

    def compute(self, data: bytes) -> int:
        if self.width == 32 and (self.poly, self.init, self.xor_out, self.reflect_in, self.reflect_out) == \
                (0x04C11DB7, 0xFFFFFFFF, 0xFFFFFFFF, True, True):
            return zlib.crc32(data)
        return _crc(self, data)


def _reflect(v: int, width: int) -> int:
    r = 0
    for _ in range(width):
        r = (r << 1) | (v & 1)
        v >>= 1
    return r


def _crc_table(width: int, poly: int, reflected: bool) -> list[int]:
    top, mask = 1 << (width - 1), (1 << width) - 1
    table = []
    for byte in range(256):
        if reflected:
            rpoly = _reflect(poly, width)
            c = byte
            for _ in range(8):
                c = (c >> 1) ^ rpoly if c & 1 else c >> 1
        else:
            c = byte << (width - 8)
            for _ in range(8):
                c = ((c << 1) ^ poly) if c & top else (c << 1)
            c &= mask
        table.append(c)
    return table


def _crc(p: CrcParams, data: bytes) -> int:
    mask = (1 << p.width) - 1
    table = p._table
    if p.reflect_in:
        crc = _reflect(p.init, p.width)
        for b in data:
            crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
        out = crc if p.reflect_out else _reflect(crc, p.width)
    else:
        crc = p.init
        shift = p.width - 8
        for b in data:
            crc = ((crc << 8) & mask) ^ table[((crc >> shift) ^ b) & 0xFF]
        out = _reflect(crc, p.width) if p.reflect_out else crc
    return (out ^ p.xor_out) & mask


CRC16_DEFAULT = (0x8005, 0x0000, 0x0000, True, True)          # CRC-16/ARC
CRC32_DEFAULT = (0x04C11DB7, 0xFFFFFFFF, 0xFFFFFFFF, True, True)
CRC16 = CrcParams(16, *CRC16_DEFAULT)
CRC32 = CrcParams(32, *CRC32_DEFAULT)
CRC_CCITT = CrcParams(16, 0x1021, 0xFFFF, 0x0000, False, False)


def csum16(data: bytes) -> int:
    """Internet checksum (RFC 1071): one's complement of the one's complement sum of 16-bit
    words. The sum with end-around carry is congruent to the data, read as one big-endian
    number, modulo 0xFFFF (2^16 = 1 mod 0xFFFF); it is 0 only for all-zero data."""
    if len(data) % 2:
        data += b"\0"
    return csum16_int(int.from_bytes(data, "big"))


def csum16_int(value: int) -> int:
    """csum16 of data given as a big-endian integer (a whole number of 16-bit words)."""
    s = value % 0xFFFF
    if s == 0 and value:
        s = 0xFFFF
    return s ^ 0xFFFF


def xor16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    r = 0
    for (w,) in struct.iter_unpack("!H", data):
        r ^= w
    return r


def identity(data: bytes) -> int:
    """The first (up to) 8 bytes as a big-endian integer."""
    return int.from_bytes(data[:8], "big")


class HashUnit:
    """The hash algorithms of one switch; the custom CRCs can be re-parametrised at run time."""

    def __init__(self):
        self.crc16_custom = CrcParams(16, *CRC16_DEFAULT)
        self.crc32_custom = CrcParams(32, *CRC32_DEFAULT)

    def function(self, algo: str):
        """The function bytes -> int for a HashAlgorithm member name."""
        table = {
            "crc16": CRC16.compute, "crc32": CRC32.compute,
            "crc16_custom": lambda d: self.crc16_custom.compute(d),
            "crc32_custom": lambda d: self.crc32_custom.compute(d),
            "csum16": csum16, "xor16": xor16, "identity": identity,
            "crcCCITT": CRC_CCITT.compute,
        }
        return table.get(algo)

    def set_parameters(self, width: int, poly: int, init: int, xor_out: int, refl_in: bool, refl_out: bool) -> None:
        p = CrcParams(width, poly, init, xor_out, refl_in, refl_out)
        if width == 16:
            self.crc16_custom = p
        else:
            self.crc32_custom = p
