// Arithmetic, bit operations, casts, slices, concatenation and saturation on bit<> and int<>.
#include <core.p4>
#include <v1model.p4>

header calc_t {
    bit<8> a;  bit<8> b;  int<8> sa;  int<8> sb;
    bit<8> add;  bit<8> sub;  bit<8> mul;  bit<8> satadd;  bit<8> satsub;
    int<8> ssatadd;  int<8> ssatsub;  bit<8> shl;  bit<8> shr;  int<8> sshr;
    bit<16> cat;  bit<4> slice;  bit<4> neg4;
    bit<8> div;  bit<8> mod;  bit<8> band;  bit<8> bor;  bit<8> bxor;  bit<8> bnot;
    bit<8> cast_trunc;  bit<16> cast_ext;  bit<16> cast_sext;  bit<8> cmp;  bit<8> tern;
}
struct headers_t { calc_t c; }
struct meta_t { }

parser P(packet_in pkt, out headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    state start { pkt.extract(h.c); transition accept; }
}
control VC(inout headers_t h, inout meta_t m) { apply { } }
control I(inout headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    apply {
        h.c.add = h.c.a + h.c.b;
        h.c.sub = h.c.a - h.c.b;
        h.c.mul = h.c.a * h.c.b;
        h.c.satadd = h.c.a |+| h.c.b;
        h.c.satsub = h.c.a |-| h.c.b;
        h.c.ssatadd = h.c.sa |+| h.c.sb;
        h.c.ssatsub = h.c.sa |-| h.c.sb;
        h.c.shl = h.c.a << 3;
        h.c.shr = h.c.a >> 2;
        h.c.sshr = h.c.sa >> 2;
        h.c.cat = h.c.a ++ h.c.b;
        h.c.slice = h.c.a[7:4];
        h.c.neg4 = -h.c.b[7:4];
        h.c.div = h.c.a / 3;
        h.c.mod = h.c.a % 7;
        h.c.band = h.c.a & h.c.b;
        h.c.bor = h.c.a | h.c.b;
        h.c.bxor = h.c.a ^ h.c.b;
        h.c.bnot = ~h.c.a;
        h.c.cast_trunc = (bit<8>)(h.c.a ++ h.c.b);
        h.c.cast_ext = (bit<16>)h.c.a;
        h.c.cast_sext = (bit<16>)(int<16>)h.c.sa;
        h.c.cmp = (h.c.a > h.c.b ? 8w1 : 8w0) | (h.c.sa < h.c.sb ? 8w2 : 8w0);
        h.c.tern = h.c.a == h.c.b ? 8w1 : 8w2;
        sm.egress_spec = 2;
    }
}
control E(inout headers_t h, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t h, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t h) { apply { pkt.emit(h.c); } }
V1Switch(P(), VC(), I(), E(), CC(), D()) main;
