/* An L4 load balancer on the spines with per-connection consistency, fault-tolerant with
 * RedPlane (or, built with -DREDPLANE_NOFT, without fault tolerance).
 *
 * Connections to the virtual address (lb_vip) are keyed by the client endpoint (address,
 * port); a connection's first packet picks a backend at random and writes client endpoint ->
 * backend endpoint; later packets go to the same backend. Replies from a backend (lb_backend
 * on the source address) are keyed by the client endpoint too and leave with the virtual
 * address as source. Routing keeps both directions on one spine (ECMP on the client endpoint).
 *
 * Control plane (p4apps/apps.py): lb_vip default action set_vip(vip, number of backends);
 * lb_backends index -> set_backend(address); lb_backend source address -> from_backend.
 */
#include <core.p4>
#include <v1model.p4>
#include "include/headers.p4"
#include "redplane/types.p4"

#define REDPLANE_HEADER_T redplane_lb_t

struct app_meta_t {
    bit<1>  to_vip;
    bit<32> vip;
    bit<16> backends;
    bit<16> choice;
    bit<32> backend;
}

#include "redplane/spine_types.p4"
#include "include/fabric.p4"

control AppKey(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    action set_vip(bit<32> vip, bit<16> backends) {
        meta.app.vip = vip;
        meta.app.backends = backends;
    }
    table lb_vip {
        actions = { set_vip; }
        default_action = set_vip(0, 0);
    }
    action from_backend() { }
    table lb_backend {
        key = { hdr.ipv4.src: exact; }
        actions = { from_backend; NoAction; }
        default_action = NoAction();
    }
    apply {
        if (!hdr.tcp.isValid() && !hdr.udp.isValid()) {
            return;
        }
        lb_vip.apply();
        if (hdr.ipv4.dst == meta.app.vip) {
            meta.app.to_vip = 1;
            meta.rp.active = 1;
            meta.rp.key = hdr.ipv4.src ++ meta.fabric.l4_sport;
        } else if (lb_backend.apply().hit) {
            meta.rp.active = 1;
            meta.rp.key = hdr.ipv4.dst ++ meta.fabric.l4_dport;
        }
    }
}

control AppProcess(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    action set_backend(bit<32> addr) { meta.app.backend = addr; }
    action no_backend() { meta.rp.drop = 1; }
    table lb_backends {
        key = { meta.app.choice: exact; }
        actions = { set_backend; no_backend; }
        default_action = no_backend();
        size = 256;
    }
    apply {
        if (meta.app.to_vip == 1) {
            if (meta.rp.has_value == 0) {
                random(meta.app.choice, 16w0, meta.app.backends - 1);
                lb_backends.apply();
                if (meta.rp.drop == 1) {
                    return;
                }
                meta.rp.new_value = meta.app.backend ++ meta.fabric.l4_dport;
                meta.rp.value = meta.rp.new_value;
                meta.rp.write = 1;
            }
            hdr.ipv4.dst = meta.rp.value[47:16];
        } else if (meta.rp.has_value == 1) {
            hdr.ipv4.src = meta.app.vip;
        } else {
            meta.rp.drop = 1;                      /* a reply for a connection we do not know */
        }
        meta.fabric.l4_dirty = 1;
    }
}

#include "redplane/redplane.p4"
#include "redplane/spine.p4"
