/* Network address translation on the spines, fault-tolerant with RedPlane (or, built with
 * -DREDPLANE_NOFT, without fault tolerance).
 *
 * Outbound packets (source inside, see nat_inside) are keyed by their internal endpoint
 * (address, port); the first one allocates a public endpoint (public address, a port from this
 * spine's range) and writes key -> public endpoint. Inbound packets (to the public address) are
 * keyed by the public endpoint; the store keeps that reverse mapping, committed with the forward
 * one (testbed/store: mirrored values), so both directions are recoverable on any spine, also
 * when they take different spines.
 *
 * Control plane (p4apps/apps.py): nat_public default action set_public(public ip);
 *   nat_inside lpm on source address -> inside; nat_ports (shard, slot) -> use_port(port).
 */
#include <core.p4>
#include <v1model.p4>
#include "include/headers.p4"
#include "redplane/types.p4"

#define REDPLANE_HEADER_T redplane_nat_t

const bit<16> NAT_POOL = 1024;      /* public ports per (spine, shard) */

struct app_meta_t {
    bit<1>  outbound;
    bit<1>  inbound;
    bit<32> public_ip;
    bit<16> slot;
}

#include "redplane/spine_types.p4"
#include "include/fabric.p4"

control AppKey(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    action set_public(bit<32> ip) {
        meta.app.public_ip = ip;
    }
    table nat_public {
        actions = { set_public; }
        default_action = set_public(0);
    }
    action inside() { }
    table nat_inside {
        key = { hdr.ipv4.src: lpm; }
        actions = { inside; NoAction; }
        default_action = NoAction();
    }
    apply {
        if (!hdr.tcp.isValid() && !hdr.udp.isValid()) {
            return;
        }
        nat_public.apply();
        if (hdr.ipv4.dst == meta.app.public_ip) {
            meta.app.inbound = 1;
            meta.rp.active = 1;
            meta.rp.key = hdr.ipv4.dst ++ meta.fabric.l4_dport;
        } else if (nat_inside.apply().hit) {
            meta.app.outbound = 1;
            meta.rp.active = 1;
            meta.rp.key = hdr.ipv4.src ++ meta.fabric.l4_sport;
        }
    }
}

control AppProcess(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    register<bit<16>>(64) nat_next_port;      /* per shard */

    /* The public port comes from this spine's pool for the key's shard: the control plane
     * fills nat_ports with ports whose public endpoint hashes to that same shard, so the store
     * commits the reverse mapping on the shard that holds the forward one. */
    action next_slot() {
        hash(meta.rp.shard, HashAlgorithm.crc32, 16w0, { meta.rp.key }, meta.rp.n_shards);
        bit<16> n;
        nat_next_port.read(n, (bit<32>)meta.rp.shard);
        if (n == 0) {
            random(n, 16w1, NAT_POOL - 1);    /* a restarted spine does not reuse its old ports */
        }
        nat_next_port.write((bit<32>)meta.rp.shard, n + 1);
        meta.app.slot = n & (NAT_POOL - 1);
    }
    action use_port(bit<16> port) {
        meta.rp.new_value = meta.app.public_ip ++ port;
        meta.rp.value = meta.rp.new_value;
        meta.rp.write = 1;
        meta.rp.mirror = 1;
    }
    action no_port() {
        meta.rp.drop = 1;
    }
    table nat_ports {
        key = { meta.rp.shard: exact; meta.app.slot: exact; }
        actions = { use_port; no_port; }
        default_action = no_port();
        size = 65536;
    }

    action set_source(bit<32> addr, bit<16> port) {
        hdr.ipv4.src = addr;
        if (hdr.tcp.isValid()) { hdr.tcp.sport = port; } else { hdr.udp.sport = port; }
        meta.fabric.l4_dirty = 1;
    }

    action set_destination(bit<32> addr, bit<16> port) {
        hdr.ipv4.dst = addr;
        if (hdr.tcp.isValid()) { hdr.tcp.dport = port; } else { hdr.udp.dport = port; }
        meta.fabric.l4_dirty = 1;
    }

    apply {
        if (meta.app.outbound == 1) {
            if (meta.rp.has_value == 0) {
                next_slot();
                nat_ports.apply();
                if (meta.rp.drop == 1) {
                    return;
                }
            }
            set_source(meta.rp.value[47:16], meta.rp.value[15:0]);
        } else if (meta.rp.has_value == 1) {
            set_destination(meta.rp.value[47:16], meta.rp.value[15:0]);
        } else {
            meta.rp.drop = 1;                  /* no mapping for this public endpoint */
        }
    }
}

#include "redplane/redplane.p4"
#include "redplane/spine.p4"
