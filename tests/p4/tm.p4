// The traffic manager: unicast, drop (port 511 and mark_to_drop), multicast groups with
// replication ids, I2E and E2E clones through mirroring sessions, resubmit and recirculate
// preserving @field_list metadata, egress drop, and truncate.
#include <core.p4>
#include <v1model.p4>

header op_t { bit<8> op; bit<8> itype; bit<8> rid; bit<8> eport; bit<8> fl; bit<8> lost; }
struct headers_t { op_t o; }
struct meta_t {
    @field_list(1) bit<8> keep;
    bit<8> lost;
}

parser P(packet_in pkt, out headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    state start { pkt.extract(h.o); transition accept; }
}
control VC(inout headers_t h, inout meta_t m) { apply { } }

control I(inout headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    apply {
        sm.egress_spec = 2;
        if (h.o.op == 2) {
            sm.mcast_grp = 1;
        } else if (h.o.op == 3) {
            sm.mcast_grp = 1;
            mark_to_drop(sm);
        } else if (h.o.op == 4) {
            sm.egress_spec = 511;
        } else if (h.o.op == 5) {
            m.keep = 0x42;
            m.lost = 0x43;
            clone_preserving_field_list(CloneType.I2E, 5, 1);
        } else if (h.o.op == 6) {
            if (sm.instance_type == 0) {
                m.keep = 0x44;
                resubmit_preserving_field_list(1);
            } else {
                h.o.fl = m.keep;
                h.o.lost = (bit<8>)sm.instance_type;
            }
        } else if (h.o.op == 7 && sm.instance_type == 4) {
            h.o.fl = m.keep;
        }
    }
}

control E(inout headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    apply {
        h.o.itype = (bit<8>)sm.instance_type;
        h.o.rid = (bit<8>)sm.egress_rid;
        h.o.eport = (bit<8>)sm.egress_port;
        if (h.o.op == 5) {
            h.o.fl = m.keep;
            h.o.lost = m.lost;
        } else if (h.o.op == 7 && h.o.fl == 0) {
            m.keep = 0x45;
            recirculate_preserving_field_list(1);
        } else if (h.o.op == 8 && sm.instance_type == 0) {
            clone(CloneType.E2E, 6);
        } else if (h.o.op == 10) {
            mark_to_drop(sm);
        } else if (h.o.op == 11) {
            truncate(3);
        }
    }
}

control CC(inout headers_t h, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t h) { apply { pkt.emit(h.o); } }

V1Switch(P(), VC(), I(), E(), CC(), D()) main;
