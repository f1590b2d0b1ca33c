"""analysis.pcap: the loader against known packets, malformed input, file variants and scapy."""
import random
import struct
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, CookedLinux, Dot1Q, Ether
from scapy.packet import Padding, Raw
from scapy.utils import rdpcap, wrpcap

from analysis.pcap import (COLUMNS, PcapFormatError, empty_frame, load_pcap, load_pcaps,
                           match_packets)
from testbed.redplane import protocol, scapy_layers
from testbed.redplane.protocol import APP_LAYOUTS
from testbed.traffic.probe import FLAG_ECHO, decode_probe, encode_probe

NAT = APP_LAYOUTS["nat"]
T0 = 1_700_000_000


def write_raw_pcap(path, frames, order="<", nano=False, linktype=1, times_ns=None,
                   wirelens=None):
    """A classic pcap written by hand: any byte order, us or ns, any frames and lengths."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)]
    for i, frame in enumerate(frames):
        t = times_ns[i] if times_ns else (T0 + i) * 10**9
        sec, ns = divmod(t, 10**9)
        wire = wirelens[i] if wirelens else len(frame)
        out.append(struct.pack(order + "IIII", sec, ns if nano else ns // 1000, len(frame), wire))
        out.append(bytes(frame))
    path.write_bytes(b"".join(out))
    return path


def udp_packet(src, dst, sport, dport, payload, **ip):
    return Ether() / IP(src=src, dst=dst, **ip) / UDP(sport=sport, dport=dport) / Raw(payload)


def nat_message(type_, seq, key, value, inner=b"", ts=0xA1B2C3D4):
    key_int = NAT.key_of(key_addr=key[0], key_port=key[1])
    value_int = NAT.value_of(value_addr=value[0], value_port=value[1])
    return NAT.pack(type_, seq, key_int, value_int, inner, ts=ts)


def at(seconds) -> Decimal:
    """An exact capture time T0 + `seconds` (microsecond resolution, as pcap stores it)."""
    return Decimal(T0) + Decimal(round(seconds * 1e6)) / 10**6


def stamp(packets, start=1.0, step=0.001):
    for i, pkt in enumerate(packets):
        pkt.time = at(start + i * step)
    return packets


# --- known packets ---------------------------------------------------------------------------
def test_tcp_and_udp_fields(tmp_path):
    pkts = stamp([
        Ether() / IP(src="10.0.0.1", dst="10.0.1.1", id=77, ttl=9) /
        TCP(sport=1234, dport=80, seq=4_000_000_000, ack=5, flags="PA") / Raw(b"x" * 100),
        udp_packet("10.0.0.2", "10.0.1.2", 5555, 53, b"y" * 10),
    ])
    wrpcap(str(tmp_path / "h1_eth0.pcap"), pkts)
    df = load_pcap(tmp_path / "h1_eth0.pcap")
    tcp, udp = df.iloc[0], df.iloc[1]
    assert list(df["point"]) == ["h1_eth0", "h1_eth0"]
    assert (tcp["src"], tcp["dst"], tcp["proto"], tcp["ip_id"], tcp["ttl"]) == \
        ("10.0.0.1", "10.0.1.1", 6, 77, 9)
    assert (tcp["sport"], tcp["dport"], tcp["tcp_seq"], tcp["tcp_ack"]) == \
        (1234, 80, 4_000_000_000, 5)
    assert tcp["tcp_flags"] == 0x18 and tcp["tcp_len"] == 100 and pd.isna(tcp["udp_len"])
    assert tcp["flow"] == "tcp 10.0.0.1:1234>10.0.1.1:80"
    assert udp["udp_len"] == 10 and udp["flow"] == "udp 10.0.0.2:5555>10.0.1.2:53"
    assert df["frame_len"].tolist() == [len(p) for p in pkts]
    assert df["time_ns"].tolist() == [(T0 + 1) * 10**9, (T0 + 1) * 10**9 + 1_000_000]
    assert not df["malformed"].any()


def test_probe_fields_agree_with_decode_probe(tmp_path):
    payloads = [encode_probe(7, seq, 1_700_000_000_123_456_789 + seq, 64) for seq in range(5)]
    payloads.append(encode_probe(9, 3, 42, 40, echo_ns=99, flags=FLAG_ECHO))
    payloads.append(b"TBPR" + bytes(10))          # magic but too short: not a probe
    wrpcap(str(tmp_path / "p.pcap"), [udp_packet("10.0.0.1", "10.0.0.2", 1, 9000, p)
                                      for p in payloads])
    df = load_pcap(tmp_path / "p.pcap")
    for row, payload in zip(df.itertuples(), payloads):
        probe = decode_probe(payload)
        if probe is None:
            assert pd.isna(row.probe_seq) and pd.isna(row.probe_echo)
            continue
        assert (row.probe_flow, row.probe_seq, row.probe_send_ns, row.probe_echo) == \
            (probe.flow, probe.seq, probe.send_ns, probe.is_echo)
    assert not df["malformed"].any()


def test_redplane_request_with_inner_packet_and_ack(tmp_path):
    inner = bytes(IP(src="10.0.0.5", dst="10.0.1.1") / TCP(sport=3333, dport=80))
    request = nat_message(protocol.LEASE_NEW, 7, (0x0A000005, 3333), (0xC0A80001, 20000), inner)
    ack = nat_message(protocol.RENEW_ACK, 0, (0x0A000005, 3333), (0xC0A80001, 20000))
    pkts = [udp_packet("10.0.9.1", "10.0.9.2", protocol.SWITCH_PORT, protocol.store_port(3),
                       request),
            udp_packet("10.0.9.2", "10.0.9.1", protocol.store_port(3), protocol.SWITCH_PORT, ack)]
    wrpcap(str(tmp_path / "rp.pcap"), pkts)
    df = load_pcap(tmp_path / "rp.pcap")
    req, ack_row = df.iloc[0], df.iloc[1]
    decoded = NAT.unpack(request)
    assert (req["rp_dir"], req["rp_type"], req["rp_type_name"], req["rp_seq"]) == \
        ("request", 0, "LEASE_NEW", 7)
    assert (req["rp_key"], req["rp_value"]) == (decoded.key, decoded.value)
    assert req["rp_ts"] == ack_row["rp_ts"] == 0xA1B2C3D4
    assert (req["rp_key_addr"], req["rp_key_port"]) == ("10.0.0.5", 3333)
    assert (req["rp_value_addr"], req["rp_value_port"]) == ("192.168.0.1", 20000)
    assert req["rp_inner_len"] == len(inner) == 40     # after the 19-byte header (ts included)
    assert req["inner_flow"] == "tcp 10.0.0.5:3333>10.0.1.1:80"
    assert (ack_row["rp_dir"], ack_row["rp_type_name"], ack_row["rp_inner_len"]) == \
        ("ack", "RENEW_ACK", 0)
    assert pd.isna(ack_row["inner_src"]) and not df["malformed"].any()


def test_sketch_layout_decodes_a_96_bit_value(tmp_path):
    sketch = APP_LAYOUTS["sketch"]
    value = sketch.value_of(value_row0=1, value_row1=2, value_row2=3)
    message = sketch.pack(protocol.SNAPSHOT, 4, 17, value)
    wrpcap(str(tmp_path / "s.pcap"), [udp_packet("10.0.9.1", "10.0.9.2", 4000, 8000, message)])
    row = load_pcap(tmp_path / "s.pcap", app="sketch").iloc[0]
    assert (row["rp_type_name"], row["rp_seq"], row["rp_key_column"]) == ("SNAPSHOT", 4, 17)
    assert row["rp_value"] == value and row["rp_value_row2"] == 3


# --- malformed input -------------------------------------------------------------------------
def _frame(pkt) -> bytes:
    return bytes(pkt)


def malformed_frames():
    """(frame, wire length or None, is malformed) cases."""
    good_tcp = _frame(Ether() / IP(src="1.1.1.1", dst="2.2.2.2") / TCP() / Raw(b"z" * 20))
    bad_version = bytearray(good_tcp)
    bad_version[14] = 0x55
    long_total = bytearray(good_tcp)
    long_total[16:18] = (200).to_bytes(2, "big")
    bad_offset = bytearray(good_tcp)
    bad_offset[14 + 20 + 12] = 0x30
    udp_short = bytearray(_frame(udp_packet("1.1.1.1", "2.2.2.2", 1, 2, b"abc")))
    udp_short[14 + 20 + 4:14 + 20 + 6] = (4).to_bytes(2, "big")
    udp_long = bytearray(_frame(udp_packet("1.1.1.1", "2.2.2.2", 1, 2, b"abc")))
    udp_long[14 + 20 + 4:14 + 20 + 6] = (400).to_bytes(2, "big")
    rp_short = _frame(udp_packet("1.1.1.1", "2.2.2.2", 4000, 8000, b"\x00" * 5))
    rp_bad_inner = _frame(udp_packet("1.1.1.1", "2.2.2.2", 4000, 8000,
                                     nat_message(0, 1, (1, 2), (3, 4)) + b"garbage!!!"))
    garbage = b"\xff" * 12 + b"\x08\x00" + bytes(random.Random(5).randrange(256)
                                                 for _ in range(60))
    garbage = garbage[:14] + b"\xf5" + garbage[15:]
    return [
        (good_tcp, None, False),
        (_frame(Ether() / ARP()), None, False),
        (_frame(Ether() / IPv6() / UDP()), None, False),
        (good_tcp[:10], None, True),                 # shorter than Ethernet
        (good_tcp[:24], None, True),                 # IPv4 header cut
        (bytes(bad_version), None, True),
        (bytes(long_total), None, True),             # IPv4 longer than the frame
        (good_tcp[:44], len(good_tcp), True),        # snaplen cut the TCP header
        (good_tcp[:54], len(good_tcp), False),       # snaplen cut the payload only
        (bytes(bad_offset), None, True),             # TCP data offset 3
        (bytes(udp_short), None, True),
        (bytes(udp_long), None, True),
        (rp_short, None, True),                      # RedPlane header cut
        (rp_bad_inner, None, True),                  # tail is not one IPv4 packet
        (garbage, None, True),
    ]


def test_malformed_packets_are_flagged_not_raised(tmp_path):
    cases = malformed_frames()
    frames = [f for f, _, _ in cases]
    wirelens = [w or len(f) for f, w, _ in cases]
    df = load_pcap(write_raw_pcap(tmp_path / "bad.pcap", frames, wirelens=wirelens))
    assert df["malformed"].tolist() == [bad for _, _, bad in cases]
    assert df["malformed"].sum() == 11
    cut_tcp = df.iloc[7]
    assert cut_tcp["src"] == "1.1.1.1" and pd.isna(cut_tcp["tcp_seq"]) and pd.isna(cut_tcp["sport"])
    assert df.iloc[8]["tcp_len"] == 20 and df.iloc[8]["caplen"] < df.iloc[8]["frame_len"]
    bad_inner = df.iloc[13]
    assert bad_inner["rp_type_name"] == "LEASE_NEW" and pd.isna(bad_inner["inner_src"])


def test_random_garbage_never_raises(tmp_path):
    rng = random.Random(11)
    frames = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 120))) for _ in range(300)]
    frames += [b"\x00" * 12 + b"\x08\x00\x45" + f[:80] for f in frames[:100]]
    df = load_pcap(write_raw_pcap(tmp_path / "garbage.pcap", frames))
    assert len(df) == 400 and df["malformed"].sum() > 0


def test_file_cut_in_the_middle_of_a_record(tmp_path):
    pkts = [_frame(udp_packet("1.1.1.1", "2.2.2.2", 1, 2, b"a" * 50)) for _ in range(3)]
    path = write_raw_pcap(tmp_path / "cut.pcap", pkts)
    path.write_bytes(path.read_bytes()[:-30])
    df = load_pcap(path)
    assert len(df) == 3 and df["malformed"].tolist() == [False, False, True]
    path.write_bytes(path.read_bytes()[:24 + 2 * (16 + len(pkts[0])) + 7])
    assert len(load_pcap(path)) == 2  # a partial record header is no packet


# --- file variants ---------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_byte_orders_and_timestamp_resolutions(tmp_path, order, nano):
    frames = [_frame(Ether() / IP(src="10.0.0.1", dst="10.0.0.2", id=i) / TCP(seq=i))
              for i in range(3)]
    times = [T0 * 10**9 + 123_456_789 + i for i in range(3)]
    df = load_pcap(write_raw_pcap(tmp_path / "v.pcap", frames, order, nano, times_ns=times))
    expected = times if nano else [t // 1000 * 1000 for t in times]
    assert df["time_ns"].tolist() == expected
    assert df["time"].to_numpy() == pytest.approx(np.array(expected) / 1e9, abs=1e-6)
    assert df["ip_id"].tolist() == [0, 1, 2] and df["tcp_seq"].tolist() == [0, 1, 2]


def test_linux_cooked_capture(tmp_path):
    pkt = CookedLinux(pkttype=0, lladdrtype=1, proto=0x0800) / IP(src="1.2.3.4", dst="5.6.7.8") \
        / UDP(sport=9, dport=10) / Raw(b"q" * 7)
    wrpcap(str(tmp_path / "sll.pcap"), [pkt])
    row = load_pcap(tmp_path / "sll.pcap").iloc[0]
    assert (row["eth_type"], row["src"], row["udp_len"], row["malformed"]) == \
        (0x0800, "1.2.3.4", 7, False)


def test_vlan_tag_and_ip_options(tmp_path):
    pkt = Ether() / Dot1Q(vlan=5) / IP(src="1.1.1.1", dst="2.2.2.2", options=b"\x01" * 4) / \
        UDP(sport=1, dport=2) / Raw(b"abc")
    wrpcap(str(tmp_path / "vlan.pcap"), [pkt])
    row = load_pcap(tmp_path / "vlan.pcap").iloc[0]
    assert (row["eth_type"], row["sport"], row["udp_len"], row["malformed"]) == \
        (0x0800, 1, 3, False)


def test_empty_and_foreign_files(tmp_path):
    (tmp_path / "empty.pcap").write_bytes(b"")
    df = load_pcap(tmp_path / "empty.pcap")
    assert len(df) == 0 and list(df.columns) == list(empty_frame().columns)
    assert df["tcp_seq"].dtype == "Int64"
    (tmp_path / "text.pcap").write_bytes(b"this is not a capture file at all")
    with pytest.raises(PcapFormatError, match="not a pcap"):
        load_pcap(tmp_path / "text.pcap")
    (tmp_path / "ng.pcap").write_bytes(struct.pack("<I", 0x0A0D0D0A) + bytes(40))
    with pytest.raises(PcapFormatError, match="pcapng"):
        load_pcap(tmp_path / "ng.pcap")


def test_columns_are_documented(tmp_path):
    wrpcap(str(tmp_path / "one.pcap"), [udp_packet("1.1.1.1", "2.2.2.2", 1, 2, b"")])
    columns = load_pcap(tmp_path / "one.pcap").columns
    undocumented = [c for c in columns if c not in COLUMNS and not c.startswith("rp_")]
    assert undocumented == []


# --- run directories and matching ------------------------------------------------------------
def test_load_pcaps_from_a_run_directory(tmp_path):
    (tmp_path / "pcaps").mkdir()
    wrpcap(str(tmp_path / "h1_eth0.pcap"), [udp_packet("1.1.1.1", "2.2.2.2", 1, 2, b"a")] * 2)
    wrpcap(str(tmp_path / "pcaps" / "s1_eth1.pcap"), [udp_packet("1.1.1.1", "2.2.2.2", 1, 2, b"")])
    (tmp_path / "pcaps" / "s1_eth2.pcap").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("ignored")
    df = load_pcaps(tmp_path)
    assert df["point"].tolist() == ["h1_eth0", "h1_eth0", "pcaps/s1_eth1"]
    labelled = load_pcaps({"client": tmp_path / "h1_eth0.pcap"})
    assert set(labelled["point"]) == {"client"}
    assert len(load_pcaps(tmp_path / "pcaps")) == 1


def probe_stream(flow, seqs, start, interval, dport=9000):
    pkts = [udp_packet("10.0.0.1", "10.0.1.1", 5000, dport, encode_probe(flow, s, 0, 64))
            for s in seqs]
    for s, pkt in zip(seqs, pkts):
        pkt.time = at(start + s * interval)
    return pkts


def test_match_packets_gives_latency_and_loss(tmp_path):
    sent = probe_stream(1, range(100), 0.0, 0.01)
    received = probe_stream(1, [s for s in range(100) if s % 10 != 3], 0.002, 0.01)
    wrpcap(str(tmp_path / "a.pcap"), sent)
    wrpcap(str(tmp_path / "b.pcap"), received)
    m = match_packets(load_pcap(tmp_path / "a.pcap"), load_pcap(tmp_path / "b.pcap"))
    assert len(m) == 100 and m["lost"].sum() == 10
    assert m.loc[m["lost"], "probe_seq"].tolist() == list(range(3, 100, 10))
    got = m[~m["lost"]]
    assert (got["latency_ns"] == 2_000_000).all()
    assert got["latency"].to_numpy() == pytest.approx(0.002, abs=1e-9)
    assert m.loc[m["lost"], "latency"].isna().all()
    assert {"flow_a", "flow_b", "time_a", "time_b", "occurrence"} <= set(m.columns)


def test_match_packets_pairs_duplicates_in_order(tmp_path):
    a = probe_stream(1, [0, 1], 0.0, 0.01) + probe_stream(1, [1], 0.05, 0.01)
    b = probe_stream(1, [0, 1], 0.001, 0.01)
    wrpcap(str(tmp_path / "a.pcap"), sorted(a, key=lambda p: p.time))
    wrpcap(str(tmp_path / "b.pcap"), b)
    m = match_packets(load_pcap(tmp_path / "a.pcap"), load_pcap(tmp_path / "b.pcap"))
    assert m[["probe_seq", "occurrence", "lost"]].values.tolist() == \
        [[0, 0, False], [1, 0, False], [1, 1, True]]


# --- cross-check with scapy --------------------------------------------------------------------
def random_packet(rng: random.Random):
    src, dst = f"10.0.{rng.randrange(4)}.{rng.randrange(1, 255)}", f"10.1.0.{rng.randrange(1, 9)}"
    kind = rng.choice(["tcp", "tcp_opt", "udp", "probe", "rp_req", "rp_ack", "icmp", "arp",
                       "vlan", "ipopt", "frag"])
    ip = IP(src=src, dst=dst, id=rng.randrange(65536), ttl=rng.randrange(1, 256))
    payload = Raw(bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 50, 300]))))
    tcp = TCP(sport=rng.randrange(1, 65536), dport=rng.choice([80, 443, 5001]),
              seq=rng.randrange(2**32), ack=rng.randrange(2**32), flags=rng.randrange(256))
    if kind == "tcp":
        return Ether() / ip / tcp / payload
    if kind == "tcp_opt":
        tcp.options = [("MSS", 1460), ("NOP", None), ("WScale", 7)]
        return Ether() / ip / tcp / payload
    if kind == "udp":
        return Ether() / ip / UDP(sport=rng.randrange(1, 3000), dport=53) / payload
    if kind == "probe":
        payload = encode_probe(rng.randrange(2**32), rng.randrange(2**32), rng.randrange(2**63),
                               32 + rng.randrange(64), flags=rng.choice([0, FLAG_ECHO]))
        return Ether() / ip / UDP(sport=5000, dport=9000) / Raw(payload)
    if kind in ("rp_req", "rp_ack"):
        key, value = (rng.randrange(2**32), rng.randrange(65536)), (rng.randrange(2**32), 7)
        shard = protocol.store_port(rng.randrange(64))
        if kind == "rp_ack":
            return Ether() / ip / UDP(sport=shard, dport=4000) / Raw(nat_message(
                rng.randrange(4), rng.randrange(65536), key, value))
        inner = bytes(IP(src=src, dst=dst) / UDP(sport=rng.randrange(65536), dport=80) / payload)
        return Ether() / ip / UDP(sport=4000, dport=shard) / Raw(nat_message(
            rng.randrange(3), rng.randrange(65536), key, value, rng.choice([b"", inner])))
    if kind == "icmp":
        return Ether() / ip / ICMP() / payload
    if kind == "arp":
        return Ether() / ARP(psrc=src, pdst=dst)
    if kind == "vlan":
        return Ether() / Dot1Q(vlan=rng.randrange(4096)) / ip / tcp / payload
    if kind == "ipopt":
        ip.options = b"\x01" * 8
        return Ether() / ip / UDP(sport=1, dport=2) / payload
    ip.frag = 100
    return Ether() / ip / Raw(b"fragment body")


def scapy_view(pkt) -> dict:
    """The values scapy decodes, under the loader's column names."""
    row = {"frame_len": len(pkt), "time_ns": int(pkt.time * 10**9)}
    if IP not in pkt:
        return row
    ip = pkt[IP]
    row.update(src=ip.src, dst=ip.dst, proto=ip.proto, ip_id=ip.id, ip_len=ip.len, ttl=ip.ttl)
    padding = len(pkt[Padding]) if Padding in pkt else 0
    if TCP in pkt and ip.frag == 0:
        tcp = pkt[TCP]
        row.update(sport=tcp.sport, dport=tcp.dport, tcp_seq=tcp.seq, tcp_ack=tcp.ack,
                   tcp_flags=int(tcp.flags), tcp_len=len(tcp.payload) - padding)
    if UDP in pkt and ip.frag == 0:
        udp = pkt[UDP]
        row.update(sport=udp.sport, dport=udp.dport, udp_len=udp.len - 8)
        row.update(_probe_view(bytes(udp.payload)))
        row.update(_redplane_view(pkt))
    return row


def _probe_view(payload: bytes) -> dict:
    probe = decode_probe(payload)
    if probe is None:
        return {}
    return {"probe_flow": probe.flow, "probe_seq": probe.seq, "probe_send_ns": probe.send_ns,
            "probe_echo": probe.is_echo}


def _redplane_view(pkt) -> dict:
    layer = scapy_layers.LAYERS["nat"]
    if layer not in pkt:
        return {}
    rp = pkt[layer]
    row = {"rp_type": rp.type, "rp_seq": rp.seq, "rp_key_addr": rp.key_addr,
           "rp_key_port": rp.key_port, "rp_value_addr": rp.value_addr,
           "rp_value_port": rp.value_port}
    inner = pkt.getlayer(IP, 2)
    if inner is not None:
        row.update(inner_src=inner.src, inner_dst=inner.dst, inner_proto=inner.proto)
    return row


def test_loader_agrees_with_scapy_field_by_field(tmp_path):
    rng = random.Random(2021)
    pkts = [random_packet(rng) for _ in range(400)]
    stamp(pkts, step=0.000_123)
    wrpcap(str(tmp_path / "mix.pcap"), pkts)
    df = load_pcap(tmp_path / "mix.pcap")
    assert not df["malformed"].any()
    checked = 0
    for i, pkt in enumerate(rdpcap(str(tmp_path / "mix.pcap"))):
        expected = scapy_view(pkt)
        for column, value in expected.items():
            assert df.at[i, column] == value, (i, column, pkt.summary())
            checked += 1
        assert df.loc[i, [c for c in ("tcp_seq", "probe_seq", "rp_type", "inner_src")
                          if c not in expected]].isna().all(), (i, pkt.summary())
    assert checked > 3000
