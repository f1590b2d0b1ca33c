/* A leaf (top-of-rack) switch: hosts below, spines above. Plain IPv4 routing with ECMP over the
 * live spines, proxy ARP for its hosts, and liveness probes. */
#include <core.p4>
#include <v1model.p4>
#include "../include/headers.p4"

struct headers_t {
    ethernet_t ethernet;
    arp_t arp;
    hello_t hello;
    ipv4_t ipv4;
    tcp_t tcp;
    udp_t udp;
}

struct metadata_t {
    fabric_meta_t fabric;
}

#include "../include/fabric.p4"

parser LeafParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                  inout standard_metadata_t sm) {
    FabricHeaderParser() fabric_parser;
    state start {
        fabric_parser.apply(pkt, hdr, meta);
        transition accept;
    }
}

control LeafVerifyChecksum(inout headers_t hdr, inout metadata_t meta) { apply { } }

control LeafIngress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    FabricRouting() routing;
    apply { routing.apply(hdr, meta, sm); }
}

control LeafEgress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    FabricEgress() fabric_egress;
    apply { fabric_egress.apply(hdr, meta, sm); }
}

control LeafComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    FabricComputeChecksum() checksums;
    apply { checksums.apply(hdr, meta); }
}

control LeafDeparser(packet_out pkt, in headers_t hdr) {
    apply { pkt.emit(hdr); }
}

V1Switch(LeafParser(), LeafVerifyChecksum(), LeafIngress(), LeafEgress(), LeafComputeChecksum(),
         LeafDeparser()) main;
