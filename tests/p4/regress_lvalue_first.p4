// Regression: in `lhs = rhs`, the l-value (including a runtime stack index) is evaluated before
// the right-hand side (P4 spec, "Assignment statement"). Here the RHS call writes the index.
// p4c test gauntlet_index_7-bmv2.
#include <core.p4>
#include <v1model.p4>
header e_t { bit<8> i; }
header h_t { bit<8> a; }
struct H { e_t e; h_t[2] s; }
struct M { }
bit<8> zero_it(inout bit<8> x) { x = 0; return 0x77; }
parser P(packet_in pk, out H hdr, inout M m, inout standard_metadata_t sm) {
    state start { pk.extract(hdr.e); pk.extract(hdr.s.next); pk.extract(hdr.s.next); transition accept; }
}
control I(inout H hdr, inout M m, inout standard_metadata_t sm) {
    apply { hdr.s[hdr.e.i].a = zero_it(hdr.e.i); }
}
control E(inout H hdr, inout M m, inout standard_metadata_t sm) { apply { } }
control V(inout H hdr, inout M m) { apply { } }
control C(inout H hdr, inout M m) { apply { } }
control D(packet_out pk, in H hdr) { apply { pk.emit(hdr); } }
V1Switch(P(), V(), I(), E(), C(), D()) main;
