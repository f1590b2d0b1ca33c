// Regression: (a) a control instance passed as constructor argument whose parameter has a
// control *type* (`control Twice(...)(Step s)`), shared by reference; (b) direct type invocation
// `Bump.apply(x)` of a control without constructor parameters (P4 spec "Direct type invocation").
// p4c test issue1566-bmv2.
#include <core.p4>
#include <v1model.p4>
header h_t { bit<8> a; bit<8> b; }
struct H { h_t h; }
struct M { }
control Step(inout bit<8> x);
control Bump(inout bit<8> x) { apply { x = x + 1; } }
control Twice(inout bit<8> x)(Step s) { apply { s.apply(x); s.apply(x); } }
control Outer(inout bit<8> x) {
    Bump() b;
    Twice(b) t;
    apply { t.apply(x); }
}
parser P(packet_in pk, out H hdr, inout M m, inout standard_metadata_t sm) {
    state start { pk.extract(hdr.h); transition accept; }
}
control I(inout H hdr, inout M m, inout standard_metadata_t sm) {
    apply {
        Outer.apply(hdr.h.a);      // direct invocation: a = a + 2
        Bump.apply(hdr.h.b);       // direct invocation: b = b + 1
    }
}
control E(inout H hdr, inout M m, inout standard_metadata_t sm) { apply { } }
control V(inout H hdr, inout M m) { apply { } }
control C(inout H hdr, inout M m) { apply { } }
control D(packet_out pk, in H hdr) { apply { pk.emit(hdr.h); } }
V1Switch(P(), V(), I(), E(), C(), D()) main;
