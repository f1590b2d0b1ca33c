/* A write-centric app for comparison: a per-flow packet counter kept with RedPlane in
 * linearizable mode, so every packet is a replicated write whose output waits for the store's
 * ack (built with -DREDPLANE_NOFT the counter is local). The sketch (sketch.p4) shows the same
 * kind of state in bounded-inconsistency mode instead.
 *
 * Flows are keyed by their source endpoint; the counter covers packets from the client leaves
 * (counter_inside, lpm on the source address).
 */
#include <core.p4>
#include <v1model.p4>
#include "include/headers.p4"
#include "redplane/types.p4"

#define REDPLANE_HEADER_T redplane_nat_t

struct app_meta_t {
    bit<1> counted;
}

#include "redplane/spine_types.p4"
#include "include/fabric.p4"

control AppKey(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    action inside() { }
    table counter_inside {
        key = { hdr.ipv4.src: lpm; }
        actions = { inside; NoAction; }
        default_action = NoAction();
    }
    apply {
        if ((hdr.tcp.isValid() || hdr.udp.isValid()) && counter_inside.apply().hit) {
            meta.rp.active = 1;
            meta.rp.key = hdr.ipv4.src ++ meta.fabric.l4_sport;
        }
    }
}

control AppProcess(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    apply {
        meta.rp.new_value = meta.rp.value + 1;
        meta.rp.write = 1;
    }
}

#include "redplane/redplane.p4"
#include "redplane/spine.p4"
