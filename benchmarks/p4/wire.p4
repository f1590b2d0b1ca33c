// The least a program can do: every frame from port 1 leaves on port 2 unparsed. Its throughput
// is the switch's own cost per frame (receive ring, process call, transmit ring), the floor
// under every other program.
#include <core.p4>
#include <v1model.p4>

struct headers_t { }
struct meta_t { }

parser MyParser(packet_in pkt, out headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) {
    state start { transition accept; }
}
control Nop(inout headers_t hdr, inout meta_t meta) { apply { } }
control MyIngress(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) {
    apply { sm.egress_spec = 2; }
}
control MyEgress(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) { apply { } }
control MyDeparser(packet_out pkt, in headers_t hdr) { apply { } }

V1Switch(MyParser(), Nop(), MyIngress(), MyEgress(), Nop(), MyDeparser()) main;
