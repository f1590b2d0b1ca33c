// Regression: `&&`, `||` and `?:` must not evaluate the skipped operand, also when it calls a
// function with out/inout arguments (whose side effects must then not happen).


#include <core.p4>
#include <v1model.p4>
header h_t { bit<8> a; bit<8> b; bit<8> c; bit<8> d; }
struct H { h_t h; }
struct M {}
bool touch(inout bit<8> x) { x = 0xEE; return true; }
parser P(packet_in b, out H h, inout M m, inout standard_metadata_t sm) {
    state start { b.extract(h.h); transition accept; }
}
control I(inout H h, inout M m, inout standard_metadata_t sm) {
    apply {
        bool r;
        r = true || touch(h.h.a);             // touch must not run
        r = false && touch(h.h.b);            // touch must not run
        r = (h.h.d == 0) ? true : touch(h.h.c);   // touch must not run when d == 0
        sm.egress_spec = 0;
    }
}
control E(inout H h, inout M m, inout standard_metadata_t sm) { apply {} }
control V(inout H h, inout M m) { apply {} }
control C(inout H h, inout M m) { apply {} }
control D(packet_out b, in H h) { apply { b.emit(h.h); } }
V1Switch(P(), V(), I(), E(), C(), D()) main;
