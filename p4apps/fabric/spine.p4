/* A spine (aggregation) switch running no application: IPv4 routing towards the leaves and
 * liveness probes. Apps (p4apps/*.p4) replace it on the spines. */
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

parser SpineParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                  inout standard_metadata_t sm) {
    FabricHeaderParser() fabric_parser;
    state start {
        fabric_parser.apply(pkt, hdr, meta);
        transition accept;
    }
}

control SpineVerifyChecksum(inout headers_t hdr, inout metadata_t meta) { apply { } }

control SpineIngress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    FabricRouting() routing;
    apply { routing.apply(hdr, meta, sm); }
}

control SpineEgress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    FabricEgress() fabric_egress;
    apply { fabric_egress.apply(hdr, meta, sm); }
}

control SpineComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    FabricComputeChecksum() checksums;
    apply { checksums.apply(hdr, meta); }
}

control SpineDeparser(packet_out pkt, in headers_t hdr) {
    apply { pkt.emit(hdr); }
}

V1Switch(SpineParser(), SpineVerifyChecksum(), SpineIngress(), SpineEgress(), SpineComputeChecksum(),
         SpineDeparser()) main;
