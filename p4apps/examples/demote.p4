/* Flow-size demotion (PIAS-style multi-level feedback queue marking) on the spines,
 * fault-tolerant with RedPlane (or, built with -DREDPLANE_NOFT, without fault tolerance).
 * The worked example of docs/writing-an-app.md.
 *
 * Packets from the client leaves (demote_clients, lpm on the source address) are keyed by their
 * source endpoint (address, port). The state is the number of IPv4 bytes the flow has sent so
 * far. Each packet leaves with the DSCP of its flow's size before it: high below t1 bytes, mid
 * below t2, low from then on. The count is written on every packet until it reaches t2
 * (write-centric), then never again (read-centric): a long flow stays demoted. A switch that
 * loses the count promotes long flows back into the high class.
 *
 * Control plane (p4apps/apps.py, DemoteApp): demote_clients lpm -> client;
 *   demote_config default action set_thresholds(t1, t2), in bytes.
 */
#include <core.p4>
#include <v1model.p4>
#include "../include/headers.p4"
#include "../redplane/types.p4"

#define REDPLANE_HEADER_T redplane_demote_t

const bit<6> DEMOTE_DSCP_HIGH = 40;     /* CS5 */
const bit<6> DEMOTE_DSCP_MID = 24;      /* CS3 */
const bit<6> DEMOTE_DSCP_LOW = 8;       /* CS1 */

struct app_meta_t {
    bit<48> t1;
    bit<48> t2;
}

#include "../redplane/spine_types.p4"
#include "../include/fabric.p4"

control AppKey(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    action client() { }
    table demote_clients {
        key = { hdr.ipv4.src: lpm; }
        actions = { client; NoAction; }
        default_action = NoAction();
    }
    apply {
        if ((hdr.tcp.isValid() || hdr.udp.isValid()) && demote_clients.apply().hit) {
            meta.rp.active = 1;
            meta.rp.key = hdr.ipv4.src ++ meta.fabric.l4_sport;
        }
    }
}

control AppProcess(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    action set_thresholds(bit<48> t1, bit<48> t2) {
        meta.app.t1 = t1;
        meta.app.t2 = t2;
    }
    table demote_config {
        actions = { set_thresholds; }
        default_action = set_thresholds(4000, 16000);
    }
    action mark(bit<6> dscp) {
        hdr.ipv4.tos = dscp ++ hdr.ipv4.tos[1:0];          /* keep the ECN bits */
    }
    apply {
        demote_config.apply();
        bit<48> sent = meta.rp.value;                      /* 0 for a new flow */
        if (sent < meta.app.t1) {
            mark(DEMOTE_DSCP_HIGH);
        } else if (sent < meta.app.t2) {
            mark(DEMOTE_DSCP_MID);
        } else {
            mark(DEMOTE_DSCP_LOW);
        }
        if (sent < meta.app.t2) {                          /* still counting: a write */
            meta.rp.new_value = sent + (bit<48>)hdr.ipv4.total_len;
            meta.rp.write = 1;
        }
    }
}

#include "../redplane/redplane.p4"
#include "../redplane/spine.p4"
