/* A stateful firewall on the spines, fault-tolerant with RedPlane (or, built with
 * -DREDPLANE_NOFT, without fault tolerance).
 *
 * Traffic from inside (fw_inside) to outside opens a pinhole: the state of the internal
 * endpoint (address, port) is the remote endpoint it talks to, written when the internal
 * endpoint first talks to a new remote endpoint. Traffic from outside to an internal endpoint
 * is admitted only through a pinhole to that remote endpoint. Both directions are keyed by the
 * internal endpoint, so routing keeps them on one spine (symmetric ECMP hashing).
 *
 * Control plane (p4apps/apps.py): fw_inside_src and fw_inside_dst, lpm -> inside, both holding
 * the protected prefixes.
 */
#include <core.p4>
#include <v1model.p4>
#include "include/headers.p4"
#include "redplane/types.p4"

#define REDPLANE_HEADER_T redplane_firewall_t

struct app_meta_t {
    bit<1> outbound;
    bit<1> src_inside;
    bit<1> dst_inside;
}

#include "redplane/spine_types.p4"
#include "include/fabric.p4"

control AppKey(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    action src_inside() { meta.app.src_inside = 1; }
    action dst_inside() { meta.app.dst_inside = 1; }
    table fw_inside_src {
        key = { hdr.ipv4.src: lpm; }
        actions = { src_inside; NoAction; }
        default_action = NoAction();
    }
    table fw_inside_dst {
        key = { hdr.ipv4.dst: lpm; }
        actions = { dst_inside; NoAction; }
        default_action = NoAction();
    }
    apply {
        if (!hdr.tcp.isValid() && !hdr.udp.isValid()) {
            return;
        }
        fw_inside_src.apply();
        fw_inside_dst.apply();
        if (meta.app.src_inside == 1 && meta.app.dst_inside == 0) {
            meta.app.outbound = 1;
            meta.rp.active = 1;
            meta.rp.key = hdr.ipv4.src ++ meta.fabric.l4_sport;
        } else if (meta.app.dst_inside == 1 && meta.app.src_inside == 0) {
            meta.rp.active = 1;
            meta.rp.key = hdr.ipv4.dst ++ meta.fabric.l4_dport;
        }
    }
}

control AppProcess(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    apply {
        if (meta.app.outbound == 1) {
            bit<48> remote = hdr.ipv4.dst ++ meta.fabric.l4_dport;
            if (meta.rp.has_value == 0 || meta.rp.value != remote) {
                meta.rp.new_value = remote;        /* open (or move) the pinhole */
                meta.rp.write = 1;
            }
        } else {
            bit<48> remote = hdr.ipv4.src ++ meta.fabric.l4_sport;
            if (meta.rp.has_value == 0 || meta.rp.value != remote) {
                meta.rp.drop = 1;                  /* no pinhole for this remote endpoint */
            }
        }
    }
}

#include "redplane/redplane.p4"
#include "redplane/spine.p4"
