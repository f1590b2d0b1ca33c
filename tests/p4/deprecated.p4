// Deprecated v1model forms programs still use: clone3 and resubmit with a list of fields to
// preserve; a mirroring session that clones to a multicast group; a packet whose priority is
// beyond the configured queues is dropped.
#include <core.p4>
#include <v1model.p4>

header o_t { bit<8> op; bit<8> itype; bit<8> rid; bit<8> eport; bit<8> x; bit<8> y; }
struct headers_t { o_t o; }
struct meta_t { bit<8> a; bit<8> b; }

parser P(packet_in pkt, out headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    state start { pkt.extract(h.o); transition accept; }
}
control VC(inout headers_t h, inout meta_t m) { apply { } }
control I(inout headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    apply {
        sm.egress_spec = 2;
        if (h.o.op == 1) {
            m.a = 0x11;
            m.b = 0x22;
            clone3(CloneType.I2E, 9, { m.a });
        } else if (h.o.op == 2) {
            if (sm.instance_type == 0) {
                m.a = 0x33;
                m.b = 0x44;
                resubmit({ m.a });
            } else {
                h.o.x = m.a;
                h.o.y = m.b;
            }
        } else if (h.o.op == 4) {
            sm.priority = 1;
        }
    }
}
control E(inout headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    apply {
        h.o.itype = (bit<8>)sm.instance_type;
        h.o.rid = (bit<8>)sm.egress_rid;
        h.o.eport = (bit<8>)sm.egress_port;
        if (h.o.op == 1) {
            h.o.x = m.a;
            h.o.y = m.b;
        }
    }
}
control CC(inout headers_t h, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t h) { apply { pkt.emit(h.o); } }
V1Switch(P(), VC(), I(), E(), CC(), D()) main;
