// Regression: `exit` inside an action / nested control must still copy out scalar out/inout
// arguments (P4 spec, "Exit statement": copy-out of the enclosing action or control and all its
// callers is still performed). p4c test gauntlet_exit_combination_3-bmv2.
#include <core.p4>
#include <v1model.p4>
header h_t { bit<8> a; bit<8> b; bit<8> c; }
struct H { h_t h; }
struct M { }
parser P(packet_in pk, out H hdr, inout M m, inout standard_metadata_t sm) {
    state start { pk.extract(hdr.h); transition accept; }
}
control Sub(inout bit<8> x) {
    apply { x = 0x33; exit; }
}
control I(inout H hdr, inout M m, inout standard_metadata_t sm) {
    Sub() sub;
    action set_and_exit(inout bit<8> v) { v = 0x11; exit; }
    apply {
        if (hdr.h.c == 0) {
            set_and_exit(hdr.h.a);     // scalar inout of an action
        } else {
            sub.apply(hdr.h.b);        // scalar inout of a control
        }
        hdr.h.c = 0xff;                // never reached
    }
}
control E(inout H hdr, inout M m, inout standard_metadata_t sm) { apply { } }
control V(inout H hdr, inout M m) { apply { } }
control C(inout H hdr, inout M m) { apply { } }
control D(packet_out pk, in H hdr) { apply { pk.emit(hdr.h); } }
V1Switch(P(), V(), I(), E(), C(), D()) main;
