// Regression: `@priority(n)` on const entries.  p4c passes n to BMv2 as the entry priority and BMv2
// picks the matching entry with the numerically SMALLEST priority; an entry without @priority
// gets its 1-based position.  (p4c test table-entries-priority-bmv2.)
#include <core.p4>
#include <v1model.p4>
header h_t { bit<8> k; bit<8> o; }
struct H { h_t h; }
struct M {}
parser P(packet_in b, out H h, inout M m, inout standard_metadata_t sm) {
    state start { b.extract(h.h); transition accept; }
}
control I(inout H h, inout M m, inout standard_metadata_t sm) {
    action set(bit<8> v) { h.h.o = v; }
    table t {
        key = { h.h.k : ternary; }
        actions = { set; NoAction; }
        default_action = NoAction;
        const entries = {
            0x01 &&& 0x0F : set(0xA1) @priority(3);
            0x11          : set(0xA2);
            0x11 &&& 0xFF : set(0xA3) @priority(1);
        }
    }
    apply { t.apply(); sm.egress_spec = 0; }
}
control E(inout H h, inout M m, inout standard_metadata_t sm) { apply {} }
control V(inout H h, inout M m) { apply {} }
control C(inout H h, inout M m) { apply {} }
control D(packet_out b, in H h) { apply { b.emit(h.h); } }
V1Switch(P(), V(), I(), E(), C(), D()) main;
