// Regression: operands are evaluated left to right (P4_16 spec, "Order of evaluation").  In
// `a + bump(a)` the left operand must be read BEFORE bump() increments it.  The hoisted
// call must not run before the left operand is read.
#include <core.p4>
#include <v1model.p4>
header h_t { bit<8> a; bit<8> b; }
struct H { h_t h; }
struct M {}
bit<8> bump(inout bit<8> x) { x = x + 1; return 0; }
parser P(packet_in b, out H h, inout M m, inout standard_metadata_t sm) {
    state start { b.extract(h.h); transition accept; }
}
control I(inout H h, inout M m, inout standard_metadata_t sm) {
    apply {
        h.h.b = h.h.a + bump(h.h.a);
        sm.egress_spec = 0;
    }
}
control E(inout H h, inout M m, inout standard_metadata_t sm) { apply {} }
control V(inout H h, inout M m) { apply {} }
control C(inout H h, inout M m) { apply {} }
control D(packet_out b, in H h) { apply { b.emit(h.h); } }
V1Switch(P(), V(), I(), E(), C(), D()) main;
