// Regression: a header whose fields total 9 bits.  p4c's BMv2 back end appends a padding field
// (_padding, 7 bits) so the header occupies 2 bytes on the wire; extract consumes 2 bytes and
// emit writes 2 bytes.  p4c test table-entries-ternary-bmv2 (41-bit header) relies on this.
#include <core.p4>
#include <v1model.p4>
header h_t { bit<8> a; bit<1> v; }
struct H { h_t h; }
struct M {}
parser P(packet_in b, out H h, inout M m, inout standard_metadata_t sm) {
    state start { b.extract(h.h); transition accept; }
}
control I(inout H h, inout M m, inout standard_metadata_t sm) {
    apply { h.h.a = h.h.a + 1; sm.egress_spec = 0; }
}
control E(inout H h, inout M m, inout standard_metadata_t sm) { apply {} }
control V(inout H h, inout M m) { apply {} }
control C(inout H h, inout M m) { apply {} }
control D(packet_out b, in H h) { apply { b.emit(h.h); } }
V1Switch(P(), V(), I(), E(), C(), D()) main;
