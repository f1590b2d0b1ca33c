// Header fields of many widths (wider than 64 bits, not byte aligned, signed); the ingress
// adds 1 to every field so both the unpack and the pack paths of each layout are exercised.
#include <core.p4>
#include <v1model.p4>

header wide_t {
    bit<336> a;
    bit<128> b;
}

header odd_t {
    bit<3>  c;
    bit<77> d;
    int<4>  e;
    bit<4>  f;
    bit<24> g;
    bit<40> h;
    bit<72> i;
    bit<1>  j;
    bit<7>  k;
}

struct headers_t { wide_t wide; odd_t odd; }
struct meta_t { }

parser P(packet_in pkt, out headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.wide); pkt.extract(hdr.odd); transition accept; }
}

control Nop(inout headers_t hdr, inout meta_t meta) { apply { } }

control Ingress(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) {
    apply {
        hdr.wide.a = hdr.wide.a + 1;
        hdr.wide.b = hdr.wide.b + 1;
        hdr.odd.c = hdr.odd.c + 1;
        hdr.odd.d = hdr.odd.d + 1;
        hdr.odd.e = hdr.odd.e + 1;
        hdr.odd.f = hdr.odd.f + 1;
        hdr.odd.g = hdr.odd.g + 1;
        hdr.odd.h = hdr.odd.h + 1;
        hdr.odd.i = hdr.odd.i + 1;
        hdr.odd.j = hdr.odd.j + 1;
        hdr.odd.k = hdr.odd.k + 1;
        sm.egress_spec = 1;
    }
}

control Egress(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) { apply { } }

control Deparser(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr); } }

V1Switch(P(), Nop(), Ingress(), Egress(), Nop(), Deparser()) main;
