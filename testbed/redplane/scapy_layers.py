"""Scapy layers for the RedPlane header, one Packet class per app layout.

The classes are derived from `protocol.APP_LAYOUTS`, never written per app. Importing this
module binds them under UDP ports 4000 (switch) and 8000-8063 (store shards) in both
directions, so ``Ether(raw)`` decodes a RedPlane message and its inner IPv4 packet. NAT,
firewall and load balancer share one byte layout, so the bytes alone cannot tell them apart:
`use_app` sets which class a matching message decodes as (default ``nat``). The sketch layout
is recognised by its length. Outer IPv4/UDP lengths and checksums are left ``None`` on build
and filled in by scapy.
"""
from __future__ import annotations

from scapy.fields import BitField, ByteField, Field, IntField, IPField, ShortField
from scapy.layers.inet import IP, UDP
from scapy.packet import Packet, bind_bottom_up, bind_layers, bind_top_down

from testbed.redplane import protocol
from testbed.redplane.protocol import APP_LAYOUTS, Layout, ProtocolError

_FIXED_WIDTH_FIELDS = {8: ByteField, 16: ShortField, 32: IntField}


def _scapy_field(name: str, bits: int) -> Field:
    """The scapy field for one layout field: addresses as IPv4, whole bytes as ints."""
    if bits == 32 and name.endswith("_addr"):
        return IPField(name, "0.0.0.0")
    if bits in _FIXED_WIDTH_FIELDS:
        return _FIXED_WIDTH_FIELDS[bits](name, 0)
    return BitField(name, 0, bits)


def _class_name(layout: Layout) -> str:
    return "RedPlane" + layout.name.title().replace("_", "")


def _summary(pkt: Packet) -> str:
    udp = pkt.underlayer
    is_ack = isinstance(udp, UDP) and udp.dport == protocol.SWITCH_PORT
    names = protocol.ACK_TYPES if is_ack else protocol.REQUEST_TYPES
    kind = names.get(pkt.type, f"type={pkt.type}")
    return pkt.sprintf(f"RedPlane-{pkt.layout.name} {kind} seq=%seq%")


def layer_class(layout: Layout) -> type[Packet]:
    """Build the scapy Packet class of a layout (``RedPlaneNat`` for ``nat``...)."""
    fields = [_scapy_field(name, bits) for name, bits in layout.fields]
    return type(_class_name(layout), (Packet,), {
        "name": f"RedPlane {layout.name}",
        "fields_desc": fields,
        "layout": layout,
        "mysummary": _summary,
    })


LAYERS: dict[str, type[Packet]] = {name: layer_class(lay) for name, lay in APP_LAYOUTS.items()}
_preferred = ["nat"]


def use_app(app: str) -> None:
    """Decode messages whose bytes fit several layouts as app `app` (NAT, FW and LB clash)."""
    if app not in LAYERS:
        raise ProtocolError(f"unknown app {app!r}; known: {', '.join(LAYERS)}")
    _preferred[0] = app


def _fits(layout: Layout, payload: bytes) -> bool:
    """True if `payload` is this layout's header, alone or followed by one IPv4 packet."""
    try:
        layout.unpack(payload)
    except ProtocolError:
        return False
    return True


def layer_for_payload(payload: bytes) -> type[Packet]:
    """The layer class a UDP payload decodes as: the preferred app if it fits, else the first
    layout that fits, else the preferred app (scapy then shows what does not fit)."""
    candidates = [_preferred[0]] + [name for name in LAYERS if name != _preferred[0]]
    for name in candidates:
        if _fits(APP_LAYOUTS[name], payload):
            return LAYERS[name]
    return LAYERS[_preferred[0]]


class RedPlane(Packet):
    """Dispatcher bound under UDP: decodes as the matching per-app class."""

    name = "RedPlane"
    fields_desc = []

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args, **kargs) -> type[Packet]:
        """DEV: choose the per-app class from the payload bytes."""
        return layer_for_payload(bytes(_pkt or b""))


def _bind_all() -> None:
    ports = [protocol.SWITCH_PORT] + [protocol.STORE_BASE_PORT + s
                                      for s in range(protocol.MAX_SHARDS)]
    for port in ports:
        bind_bottom_up(UDP, RedPlane, dport=port)
        bind_bottom_up(UDP, RedPlane, sport=port)
    for layer in LAYERS.values():
        bind_top_down(UDP, layer, sport=protocol.SWITCH_PORT, dport=protocol.STORE_BASE_PORT)
        bind_layers(layer, IP)


_bind_all()
