/* The v1model blocks of a RedPlane app on a spine: fabric parsing and routing around the
 * RedPlane library and the app's AppKey/AppProcess. Included last by every app. */
#ifndef P4APPS_REDPLANE_SPINE_P4
#define P4APPS_REDPLANE_SPINE_P4

parser SpineParser(packet_in pkt, out headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    FabricHeaderParser() fabric_parser;
    RedPlaneParser() redplane_parser;
    state start {
        fabric_parser.apply(pkt, hdr, meta);
        redplane_parser.apply(pkt, hdr, meta);
        transition accept;
    }
}

control SpineVerifyChecksum(inout headers_t hdr, inout metadata_t meta) { apply { } }

control SpineIngress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    RedPlaneIngress() redplane;
    FabricRouting() routing;
    apply {
        if (hdr.ipv4.isValid() && !hdr.hello.isValid()) {
            redplane.apply(hdr, meta, sm);
        }
        if (meta.rp.drop == 0) {
            routing.apply(hdr, meta, sm);
        }
    }
}

control SpineEgress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    RedPlaneEgress() redplane_egress;
    FabricEgress() fabric_egress;
    apply {
        fabric_egress.apply(hdr, meta, sm);
        redplane_egress.apply(hdr, meta, sm);
    }
}

control SpineComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    FabricComputeChecksum() fabric_checksums;
    RedPlaneComputeChecksum() redplane_checksums;
    apply {
        fabric_checksums.apply(hdr, meta);
        redplane_checksums.apply(hdr, meta);
    }
}

control SpineDeparser(packet_out pkt, in headers_t hdr) {
    apply { pkt.emit(hdr); }
}

V1Switch(SpineParser(), SpineVerifyChecksum(), SpineIngress(), SpineEgress(), SpineComputeChecksum(),
         SpineDeparser()) main;

#endif
