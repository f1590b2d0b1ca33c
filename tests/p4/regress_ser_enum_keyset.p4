// Regression: a table key of serializable enum type accepts keyset expressions of the enum's
// underlying type (the key is implicitly cast to it; P4 spec "Implicit casts").
// p4c test table-entries-ser-enum-bmv2.
#include <core.p4>
#include <v1model.p4>
enum bit<16> E16 { A = 10, B = 0xab00 }
header h_t { E16 f; bit<8> res; }
struct H { h_t h; }
struct M { }
parser P(packet_in pk, out H hdr, inout M m, inout standard_metadata_t sm) {
    state start { pk.extract(hdr.h); transition accept; }
}
control I(inout H hdr, inout M m, inout standard_metadata_t sm) {
    action set(bit<8> v) { hdr.h.res = v; }
    table t {
        key = { hdr.h.f : ternary; }
        actions = { set; NoAction; }
        const entries = {
            ((bit<16>)E16.B) &&& 0xff00 : set(1);
            E16.A : set(2);
        }
    }
    apply { t.apply(); }
}
control E(inout H hdr, inout M m, inout standard_metadata_t sm) { apply { } }
control V(inout H hdr, inout M m) { apply { } }
control C(inout H hdr, inout M m) { apply { } }
control D(packet_out pk, in H hdr) { apply { pk.emit(hdr.h); } }
V1Switch(P(), V(), I(), E(), C(), D()) main;
