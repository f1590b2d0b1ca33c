// Regression: header fields of struct type (allowed by the P4_16 spec: a header may contain structs of
// bit/int/bool/serializable-enum fields; p4c flattens them for BMv2).  Used by p4c tests
// issue383-bmv2 and bvec_union-bmv2.
#include <core.p4>
#include <v1model.p4>
struct pair_t { bit<4> hi; bit<4> lo; }
header h_t { bit<8> a; pair_t p; }
struct H { h_t h; }
struct M {}
parser P(packet_in b, out H h, inout M m, inout standard_metadata_t sm) {
    state start { b.extract(h.h); transition accept; }
}
control I(inout H h, inout M m, inout standard_metadata_t sm) {
    apply {
        h.h.a = (bit<8>)h.h.p.hi;      // read a nested field
        h.h.p.lo = 0xF;                // write a nested field
        sm.egress_spec = 0;
    }
}
control E(inout H h, inout M m, inout standard_metadata_t sm) { apply {} }
control V(inout H h, inout M m) { apply {} }
control C(inout H h, inout M m) { apply {} }
control D(packet_out b, in H h) { apply { b.emit(h.h); } }
V1Switch(P(), V(), I(), E(), C(), D()) main;
