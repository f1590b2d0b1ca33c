// update_checksum(csum16) over fields of odd widths (232 bits: padded to whole 16-bit words),
// once unconditionally and once guarded by validity; the ingress only forwards.
#include <core.p4>
#include <v1model.p4>

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
header sums_t { bit<16> plain; bit<16> guarded; }

struct headers_t { odd_t odd; sums_t sums; }
struct meta_t { }

parser P(packet_in pkt, out headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.odd); pkt.extract(hdr.sums); transition accept; }
}

control Nop(inout headers_t hdr, inout meta_t meta) { apply { } }

control Ingress(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) {
    apply { sm.egress_spec = 1; }
}

control Egress(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) { apply { } }

control Compute(inout headers_t hdr, inout meta_t meta) {
    apply {
        update_checksum(true,
            { hdr.odd.c, hdr.odd.d, hdr.odd.e, hdr.odd.f, hdr.odd.g, hdr.odd.h, hdr.odd.i,
              hdr.odd.j, hdr.odd.k },
            hdr.sums.plain, HashAlgorithm.csum16);
        update_checksum(hdr.odd.isValid(),
            { hdr.odd.c, hdr.odd.d, hdr.odd.e, hdr.odd.f, hdr.odd.g, hdr.odd.h, hdr.odd.i,
              hdr.odd.j, hdr.odd.k },
            hdr.sums.guarded, HashAlgorithm.csum16);
    }
}

control Deparser(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr); } }

V1Switch(P(), Nop(), Ingress(), Egress(), Compute(), Deparser()) main;
