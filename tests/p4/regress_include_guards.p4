// Regression (include guards): p4c's core.p4 defines _CORE_P4_ (and v1model.p4 defines _V1_MODEL_P4_); programs and
// shared fragments test it with #ifdef, so the bundled headers must define the same names.
#include <core.p4>
#include <v1model.p4>
header h_t { bit<8> a; }
struct H { h_t h; }
struct M {}
parser P(packet_in b, out H h, inout M m, inout standard_metadata_t sm) {
    state start { b.extract(h.h); transition accept; }
}
control I(inout H h, inout M m, inout standard_metadata_t sm) {
    apply {
#ifdef _CORE_P4_
        h.h.a = h.h.a | 0x01;
#endif
#ifdef _V1_MODEL_P4_
        h.h.a = h.h.a | 0x02;
#endif
        sm.egress_spec = 0;
    }
}
control E(inout H h, inout M m, inout standard_metadata_t sm) { apply {} }
control V(inout H h, inout M m) { apply {} }
control C(inout H h, inout M m) { apply {} }
control D(packet_out b, in H h) { apply { b.emit(h.h); } }
V1Switch(P(), V(), I(), E(), C(), D()) main;
