// The hash extern: crc32, crc16, csum16, xor16, identity, base + hash % max, non-byte-aligned
// data (zero bits pad the tail), and crc16_custom re-parametrised from the control plane.
#include <core.p4>
#include <v1model.p4>

header in_t  { bit<16> a; bit<8> b; bit<4> c; bit<4> pad; }
header out_t { bit<32> crc32; bit<16> crc16; bit<16> csum; bit<16> xor; bit<32> ident;
               bit<16> modmax; bit<16> custom; }
struct headers_t { in_t i; out_t o; }
struct meta_t { }

parser P(packet_in pkt, out headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    state start { pkt.extract(h.i); transition accept; }
}
control VC(inout headers_t h, inout meta_t m) { apply { } }
control I(inout headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    apply {
        h.o.setValid();
        hash(h.o.crc32, HashAlgorithm.crc32, 32w0, { h.i.a, h.i.b, h.i.c }, 64w0x100000000);
        hash(h.o.crc16, HashAlgorithm.crc16, 16w0, { h.i.a, h.i.b, h.i.c }, 32w65536);
        hash(h.o.csum, HashAlgorithm.csum16, 16w0, { h.i.a, h.i.b }, 32w65536);
        hash(h.o.xor, HashAlgorithm.xor16, 16w0, { h.i.a, h.i.b }, 32w65536);
        hash(h.o.ident, HashAlgorithm.identity, 32w0, { h.i.a, h.i.b, h.i.c }, 64w0x100000000);
        hash(h.o.modmax, HashAlgorithm.crc16, 16w100, { h.i.a }, 16w10);
        hash(h.o.custom, HashAlgorithm.crc16_custom, 16w0, { h.i.a, h.i.b }, 32w65536);
        sm.egress_spec = 1;
    }
}
control E(inout headers_t h, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t h, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t h) { apply { pkt.emit(h.i); pkt.emit(h.o); } }
V1Switch(P(), VC(), I(), E(), CC(), D()) main;
