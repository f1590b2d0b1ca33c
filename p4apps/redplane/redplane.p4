/* RedPlane for v1model: the switch side of the replication protocol (docs/protocol.md).
 *
 * An app includes this file after declaring its headers, its metadata and two controls:
 *
 *   control AppKey(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm)
 *       sets meta.rp.active = 1 for packets the app handles, and meta.rp.key (48 bits).
 *   control AppProcess(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm)
 *       runs only while this switch holds the flow's lease; reads meta.rp.value and
 *       meta.rp.has_value; transforms the packet; to change the state it sets meta.rp.write = 1
 *       and meta.rp.new_value; to drop the packet it sets meta.rp.drop = 1.
 *
 * (after including redplane/types.p4 before its metadata_t) and uses RedPlaneParser (a sub-parser after FabricHeaderParser), RedPlaneIngress (before
 * FabricRouting, which must be skipped when meta.rp.drop == 1), RedPlaneEgress and
 * RedPlaneComputeChecksum. Requirements on the program's types:
 *   headers_t:  ..., ipv4_t ipv4; tcp_t tcp; udp_t udp; REDPLANE_HEADER_T rp;
 *               ipv4_t inner_ipv4; tcp_t inner_tcp; udp_t inner_udp;   (in this order)
 *   metadata_t: fabric_meta_t fabric; redplane_meta_t rp; ...
 * with REDPLANE_HEADER_T a 48-bit-key, 48-bit-value layout from layouts.p4.
 *
 * Compile-time modes (one source, three variants):
 *   default      RedPlane, linearizable mode: leases, sequenced writes with the output
 *                piggybacked and released on the ack, rate-limited renewals, retransmission.
 *   -DREDPLANE_NOFT  no fault tolerance: the same state, kept only in this switch.
 * The S1 checkpoint baseline is the NOFT variant plus testbed/checkpoint.py.
 *
 * Per-flow state lives in registers indexed by a hash of the key; the key is stored to detect
 * collisions. Acks are applied by the data plane directly, no control-plane round trip.
 * Times are microseconds: ingress_global_timestamp plus clock_base, which the control plane
 * sets per incarnation so that the clock never runs backwards across restarts. Requests carry
 * the clock's low 32 bits in `ts`; acks echo it (docs/protocol.md section 5).
 *
 * Control plane (testbed/redplane/config.py generates it):
 *   rp_config      default action rp_set_config(my_ip, lease_us, rto_us, n_shards, clock_base)
 *   rp_shards      shard -> rp_set_store(store head ip)
 *   rp_port_dmac   egress port -> rp_set_dmac(next-hop mac)   (for renewal clones)
 *   mirroring sessions: RP_CPU_SESSION -> CPU_PORT; RP_RENEW_SESSION + s -> port towards shard s
 */
#ifndef P4APPS_REDPLANE_P4
#define P4APPS_REDPLANE_P4

parser RedPlaneParser(packet_in pkt, inout headers_t hdr, inout metadata_t meta) {
    state start {
        transition select(hdr.udp.isValid(), hdr.udp.dport) {
            (true, REDPLANE_SWITCH_PORT): parse_rp;
            (true, 8000 .. 8063): parse_rp;
            default: accept;
        }
    }
    state parse_rp {
        pkt.extract(hdr.rp);
        transition select(hdr.udp.len) {
            RP_BARE_UDP_LEN: accept;
            default: parse_inner_ipv4;
        }
    }
    state parse_inner_ipv4 {
        pkt.extract(hdr.inner_ipv4);
        transition select(hdr.inner_ipv4.ihl, hdr.inner_ipv4.frag_offset, hdr.inner_ipv4.protocol) {
            (5, 0, PROTO_TCP): parse_inner_tcp;
            (5, 0, PROTO_UDP): parse_inner_udp;
            default: accept;
        }
    }
    state parse_inner_tcp { pkt.extract(hdr.inner_tcp); transition accept; }
    state parse_inner_udp { pkt.extract(hdr.inner_udp); transition accept; }
}

control RedPlaneIngress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    register<bit<48>>(RP_SLOTS) rp_keys;
    register<bit<48>>(RP_SLOTS) rp_values;
    register<bit<16>>(RP_SLOTS) rp_seqs;
    register<bit<16>>(RP_SLOTS) rp_acked;
    register<bit<1>>(RP_SLOTS) rp_written;
    register<bit<48>>(RP_SLOTS) rp_expiry;
    register<bit<48>>(RP_SLOTS) rp_renewed;
    register<bit<48>>(1) rp_boot;
    counter<bit<8>>(16, CounterType.packets) rp_stats;

    AppKey() app_key;
    AppProcess() app_process;

    action rp_set_config(bit<32> my_ip, bit<48> lease_us, bit<48> rto_us, bit<16> n_shards,
                         bit<48> clock_base) {
        meta.rp.my_ip = my_ip;
        meta.rp.lease_us = lease_us;
        meta.rp.rto_us = rto_us;
        meta.rp.n_shards = n_shards;
        meta.rp.clock_base = clock_base;
    }
    table rp_config {
        actions = { rp_set_config; }
        default_action = rp_set_config(0, 1000000, 50000, 1, 0);
    }

    /* The clock, and the boot time: the clock at the first packet once configured. Every
     * request of this incarnation is sent at or after it; an ack echoing an older time answers
     * a previous incarnation. */
    action read_clock() {
        meta.rp.now = sm.ingress_global_timestamp + meta.rp.clock_base;
        rp_boot.read(meta.rp.boot, 0);
        if (meta.rp.boot == 0 && meta.rp.my_ip != 0) {
            meta.rp.boot = meta.rp.now;
            rp_boot.write(0, meta.rp.now);
        }
    }

    action rp_set_store(bit<32> ip) { meta.rp.store_ip = ip; }
    action rp_no_store() { meta.rp.store_ip = 0; }
    table rp_shards {
        key = { meta.rp.shard: exact; }
        actions = { rp_set_store; rp_no_store; }
        default_action = rp_no_store();
        size = 64;
    }

    /* -- register slots ---------------------------------------------------------------- */
    action slot_index() {
        hash(meta.rp.idx, HashAlgorithm.crc16, 32w0, { meta.rp.key }, (bit<32>)RP_SLOTS);
    }

    action slot_read() {
        rp_keys.read(meta.rp.slot_key, meta.rp.idx);
        rp_values.read(meta.rp.value, meta.rp.idx);
        rp_seqs.read(meta.rp.seq, meta.rp.idx);
        rp_acked.read(meta.rp.acked, meta.rp.idx);
        rp_written.read(meta.rp.written, meta.rp.idx);
        rp_expiry.read(meta.rp.expiry, meta.rp.idx);
        rp_renewed.read(meta.rp.renewed, meta.rp.idx);
    }

    action slot_claim() {
        rp_keys.write(meta.rp.idx, meta.rp.key);
        rp_values.write(meta.rp.idx, 0);
        rp_seqs.write(meta.rp.idx, 0);
        rp_acked.write(meta.rp.idx, 0);
        rp_written.write(meta.rp.idx, 0);
        rp_expiry.write(meta.rp.idx, 0);
        rp_renewed.write(meta.rp.idx, 0);
        meta.rp.slot_key = meta.rp.key;
        meta.rp.value = 0;
        meta.rp.seq = 0;
        meta.rp.acked = 0;
        meta.rp.written = 0;
        meta.rp.expiry = 0;
        meta.rp.renewed = 0;
    }

    /* -- building messages to the store ------------------------------------------------ */
    action encapsulate(bit<8> type, bit<16> seq, bit<48> value) {
        hash(meta.rp.shard, HashAlgorithm.crc32, 16w0, { meta.rp.key }, meta.rp.n_shards);
        hdr.inner_ipv4 = hdr.ipv4;
        hdr.inner_tcp = hdr.tcp;
        hdr.inner_udp = hdr.udp;
        hdr.tcp.setInvalid();
        hdr.udp.setValid();
        hdr.udp.sport = REDPLANE_SWITCH_PORT;
        hdr.udp.dport = REDPLANE_STORE_BASE_PORT + meta.rp.shard;
        hdr.udp.len = RP_BARE_UDP_LEN + hdr.inner_ipv4.total_len;
        hdr.udp.checksum = 0;
        hdr.ipv4.ihl = 5;
        hdr.ipv4.tos = 0;
        hdr.ipv4.total_len = RP_BARE_IP_LEN + hdr.inner_ipv4.total_len;
        hdr.ipv4.identification = 0;
        hdr.ipv4.flags = 0;
        hdr.ipv4.frag_offset = 0;
        hdr.ipv4.ttl = 64;
        hdr.ipv4.protocol = PROTO_UDP;
        hdr.ipv4.src = meta.rp.my_ip;
        hdr.rp.setValid();
        hdr.rp.type = type;
        hdr.rp.seq = seq;
        hdr.rp.ts = meta.rp.now[31:0];
        hdr.rp.key_addr = meta.rp.key[47:16];
        hdr.rp.key_port = meta.rp.key[15:0];
        hdr.rp.value_addr = value[47:16];
        hdr.rp.value_port = value[15:0];
        meta.fabric.l4_dirty = 0;
    }

    action decapsulate() {
        hdr.ipv4 = hdr.inner_ipv4;
        hdr.tcp = hdr.inner_tcp;
        hdr.udp = hdr.inner_udp;
        hdr.rp.setInvalid();
        hdr.inner_ipv4.setInvalid();
        hdr.inner_tcp.setInvalid();
        hdr.inner_udp.setInvalid();
        meta.fabric.l4_sport = hdr.tcp.isValid() ? hdr.tcp.sport : hdr.udp.sport;
        meta.fabric.l4_dport = hdr.tcp.isValid() ? hdr.tcp.dport : hdr.udp.dport;
        meta.fabric.l4_len = hdr.ipv4.total_len - 20;
    }

    action consume() {
        mark_to_drop(sm);
        meta.rp.drop = 1;
    }

    /* -- acks from the store -------------------------------------------------------------- */
    /* The send time of the request an ack answers, rebuilt from the echoed 32-bit ts (its
     * age, in wrap-around arithmetic), and whether it is fresh: sent by this incarnation (not
     * before boot) less than L_switch ago. */
    action ack_sent_time() {
        bit<32> age = meta.rp.now[31:0] - hdr.rp.ts;
        meta.rp.sent = meta.rp.now - (bit<48>)age;
        meta.rp.fresh = (bit<48>)age < meta.rp.lease_us && (bit<48>)age <= meta.rp.now
                        && meta.rp.sent >= meta.rp.boot ? 1w1 : 1w0;
    }

    /* The store's lease runs at least L from the request's arrival: ours ends L_switch after
     * its send time. */
    action extend_lease() {
        bit<48> until = meta.rp.sent + meta.rp.lease_us;
        if (until > meta.rp.expiry) {
            meta.rp.expiry = until;
            rp_expiry.write(meta.rp.idx, until);
        }
    }

    action install_state() {
        meta.rp.value = hdr.rp.value_addr ++ hdr.rp.value_port;
        meta.rp.seq = hdr.rp.seq;
        meta.rp.acked = hdr.rp.seq;
        meta.rp.written = hdr.rp.type == REDPLANE_MIGRATE_ACK ? 1w1 : 1w0;
        rp_values.write(meta.rp.idx, meta.rp.value);
        rp_seqs.write(meta.rp.idx, meta.rp.seq);
        rp_acked.write(meta.rp.idx, meta.rp.seq);
        rp_written.write(meta.rp.idx, meta.rp.written);
        rp_stats.count(RP_STAT_GRANT);
    }

    /* A grant (NEW or MIGRATE). Fresh: it sets the lease, and installs its state if we have
     * none or its seq is newer than ours (a later grant: our unacknowledged writes are fenced
     * off and their retransmissions will be dropped); otherwise only the lease. Stale: ignored.
     * Either way the carried packet then takes the normal path (without a lease it asks again). */
    action on_grant() {
        ack_sent_time();
        if (meta.rp.slot_key != meta.rp.key || meta.rp.fresh == 0) {
            rp_stats.count(RP_STAT_STALE_ACK);
            return;
        }
        extend_lease();
        if (meta.rp.seq == 0 || rp_seq_newer(hdr.rp.seq, meta.rp.seq)) {
            install_state();
        } else {
            rp_stats.count(RP_STAT_LEASE_ONLY);
        }
    }

    action on_renewal_ack() {
        ack_sent_time();
        if (meta.rp.slot_key == meta.rp.key && meta.rp.seq != 0 && meta.rp.fresh == 1) {
            extend_lease();
        } else {
            rp_stats.count(RP_STAT_STALE_ACK);
        }
        consume();
    }

    action on_write_ack() {
        if (meta.rp.slot_key == meta.rp.key && rp_seq_newer(hdr.rp.seq, meta.rp.acked)) {
            rp_acked.write(meta.rp.idx, hdr.rp.seq);
        }
        if (hdr.inner_ipv4.isValid()) {
            decapsulate();
            rp_stats.count(RP_STAT_RELEASE);
        } else {
            consume();
        }
    }

    /* Returns with meta.rp.drop set if the message was consumed, or with the carried packet
     * decapsulated; meta.rp.active = 1 means it is a data packet for the app path. */
    action receive_ack() {
        meta.rp.key = hdr.rp.key_addr ++ hdr.rp.key_port;
        slot_index();
        slot_read();
        if (hdr.rp.type == REDPLANE_NEW_ACK || hdr.rp.type == REDPLANE_MIGRATE_ACK) {
            on_grant();
            decapsulate();
            meta.rp.active = 1;
        } else if (hdr.rp.type == REDPLANE_RENEW_ACK && hdr.rp.seq == 0) {
            on_renewal_ack();
        } else if (hdr.rp.type == REDPLANE_RENEW_ACK) {
            on_write_ack();
        } else {
            consume();
        }
    }

    /* A copy of a write request the agent re-injects after the RTO: send it again unless it
     * has been acknowledged meanwhile. */
    action receive_retransmission() {
        meta.rp.key = hdr.rp.key_addr ++ hdr.rp.key_port;
        slot_index();
        slot_read();
        if (meta.rp.slot_key != meta.rp.key || !rp_seq_newer(hdr.rp.seq, meta.rp.acked)) {
            rp_stats.count(RP_STAT_RETRANSMIT_DONE);
            consume();
        } else {
            rp_stats.count(RP_STAT_RETRANSMIT);
            meta.rp.clone_cpu = 1;
        }
    }

    /* -- the data path -------------------------------------------------------------------- */
    action lease_new() {
        if (meta.rp.slot_key != meta.rp.key) {
            slot_claim();
        }
        encapsulate(REDPLANE_LEASE_NEW, 0, 0);
        rp_stats.count(RP_STAT_LEASE_NEW);
    }

    action send_write() {
        if (meta.rp.write == 1) {
            meta.rp.seq = rp_seq_next(meta.rp.seq);
            meta.rp.value = meta.rp.new_value;
            rp_seqs.write(meta.rp.idx, meta.rp.seq);
            rp_values.write(meta.rp.idx, meta.rp.value);
            rp_written.write(meta.rp.idx, 1);
            meta.rp.clone_cpu = 1;
            rp_stats.count(RP_STAT_WRITE);
        } else {
            rp_stats.count(RP_STAT_WRITE_DUP);
        }
        meta.rp.inner_dirty = meta.fabric.l4_dirty;
        encapsulate(REDPLANE_LEASE_RENEW, meta.rp.seq, meta.rp.value);
    }

    action maybe_renew() {
        bit<48> left = meta.rp.expiry - meta.rp.now;
        if (left < (meta.rp.lease_us >> 1) && meta.rp.now - meta.rp.renewed >= meta.rp.rto_us) {
            rp_renewed.write(meta.rp.idx, meta.rp.now);
            hash(meta.rp.shard, HashAlgorithm.crc32, 16w0, { meta.rp.key }, meta.rp.n_shards);
            meta.rp.renew = 1;
            rp_stats.count(RP_STAT_RENEW);
        }
    }

    /* Address a request to its shard's head; with no store configured it is dropped. */
    action to_store() {
        hdr.ipv4.dst = meta.rp.store_ip;
        if (meta.rp.store_ip == 0) {
            consume();
        }
    }

    action local_write() {
        meta.rp.seq = rp_seq_next(meta.rp.seq);
        rp_seqs.write(meta.rp.idx, meta.rp.seq);
        rp_acked.write(meta.rp.idx, meta.rp.seq);
        rp_values.write(meta.rp.idx, meta.rp.new_value);
        rp_stats.count(RP_STAT_LOCAL_WRITE);
    }

    /* At most F-1 unacknowledged writes per flow, so that a grant's fence (F) covers them all. */
    action window_drop() {
        rp_stats.count(RP_STAT_WINDOW_DROP);
        consume();
    }

    apply {
        rp_config.apply();
        read_clock();
        if (hdr.rp.isValid()) {
            if (hdr.udp.dport == REDPLANE_SWITCH_PORT && hdr.ipv4.dst == meta.rp.my_ip) {
                receive_ack();
            } else if (sm.ingress_port == CPU_PORT && hdr.ipv4.src == meta.rp.my_ip) {
                receive_retransmission();
            }
            if (meta.rp.active == 0) {
                return;             /* consumed, released, or a message in transit */
            }
            meta.rp.active = 0;     /* a granted packet: now an ordinary data packet */
        }
        app_key.apply(hdr, meta, sm);
        if (meta.rp.active == 0) {
            return;
        }
        slot_index();
        slot_read();
#ifdef REDPLANE_NOFT
        if (meta.rp.slot_key != meta.rp.key) {
            if (meta.rp.slot_key != 0) {
                rp_stats.count(RP_STAT_COLLISION);
                consume();
                return;
            }
            slot_claim();
        }
        meta.rp.has_value = meta.rp.acked == 0 ? 1w0 : 1w1;
        app_process.apply(hdr, meta, sm);
        if (meta.rp.drop == 1) {
            rp_stats.count(RP_STAT_APP_DROP);
            mark_to_drop(sm);
            return;
        }
        if (meta.rp.write == 1) {
            local_write();
            if (meta.rp.mirror == 1) {
                bit<48> forward_key = meta.rp.key;
                meta.rp.key = meta.rp.new_value;
                slot_index();
                rp_keys.write(meta.rp.idx, meta.rp.key);
                rp_values.write(meta.rp.idx, forward_key);
                rp_seqs.write(meta.rp.idx, 1);
                rp_acked.write(meta.rp.idx, 1);
            }
        }
#else
        meta.rp.lease_ok = meta.rp.slot_key == meta.rp.key && meta.rp.expiry > meta.rp.now ? 1w1 : 1w0;
        if (meta.rp.lease_ok == 0 && meta.rp.slot_key != meta.rp.key && meta.rp.slot_key != 0
                && meta.rp.expiry > meta.rp.now) {
            rp_stats.count(RP_STAT_COLLISION);
            consume();
            return;
        }
        if (meta.rp.lease_ok == 0) {
            lease_new();
            rp_shards.apply();
            to_store();
            return;
        }
        meta.rp.has_value = meta.rp.written;
        app_process.apply(hdr, meta, sm);
        if (meta.rp.drop == 1) {
            rp_stats.count(RP_STAT_APP_DROP);
            mark_to_drop(sm);
            return;
        }
        if (meta.rp.write == 1
                && rp_seq_distance(meta.rp.acked, rp_seq_next(meta.rp.seq)) >= REDPLANE_SEQ_FENCE) {
            window_drop();
            return;
        }
        if (meta.rp.write == 1 || meta.rp.acked != meta.rp.seq) {
            send_write();
            rp_shards.apply();
            to_store();
        } else {
            maybe_renew();
            if (meta.rp.renew == 1) {
                rp_shards.apply();
                clone_preserving_field_list(CloneType.I2E, RP_RENEW_SESSION + (bit<32>)meta.rp.shard, 1);
            }
        }
#endif
    }
}

control RedPlaneEgress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    action rp_set_dmac(bit<48> mac) { hdr.ethernet.dst = mac; }
    table rp_port_dmac {
        key = { sm.egress_port: exact; }
        actions = { rp_set_dmac; NoAction; }
        default_action = NoAction();
    }

    /* Turn the ingress clone of a forwarded packet into a header-only renewal request. */
    action build_renewal() {
        hdr.tcp.setInvalid();
        hdr.inner_ipv4.setInvalid();
        hdr.inner_tcp.setInvalid();
        hdr.inner_udp.setInvalid();
        hdr.udp.setValid();
        hdr.udp.sport = REDPLANE_SWITCH_PORT;
        hdr.udp.dport = REDPLANE_STORE_BASE_PORT + meta.rp.shard;
        hdr.udp.len = RP_BARE_UDP_LEN;
        hdr.udp.checksum = 0;
        hdr.ipv4.ihl = 5;
        hdr.ipv4.tos = 0;
        hdr.ipv4.total_len = RP_BARE_IP_LEN;
        hdr.ipv4.identification = 0;
        hdr.ipv4.flags = 0;
        hdr.ipv4.frag_offset = 0;
        hdr.ipv4.ttl = 64;
        hdr.ipv4.protocol = PROTO_UDP;
        hdr.ipv4.src = meta.rp.my_ip;
        hdr.ipv4.dst = meta.rp.store_ip;
        hdr.rp.setValid();
        hdr.rp.type = REDPLANE_LEASE_RENEW;
        hdr.rp.seq = 0;
        hdr.rp.ts = meta.rp.now[31:0];
        hdr.rp.key_addr = meta.rp.key[47:16];
        hdr.rp.key_port = meta.rp.key[15:0];
        hdr.rp.value_addr = 0;
        hdr.rp.value_port = 0;
        truncate(RP_BARE_FRAME_LEN);
    }

    apply {
        if (sm.instance_type == 1) {
            if (meta.rp.renew == 1) {
                build_renewal();
                rp_port_dmac.apply();
            } else {
                mark_to_drop(sm);
            }
        } else if (sm.instance_type == 0 && meta.rp.clone_cpu == 1) {
            clone(CloneType.E2E, RP_CPU_SESSION);
        }
    }
}

control RedPlaneComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply {
        update_checksum(hdr.inner_ipv4.isValid(),
            { hdr.inner_ipv4.version, hdr.inner_ipv4.ihl, hdr.inner_ipv4.tos, hdr.inner_ipv4.total_len,
              hdr.inner_ipv4.identification, hdr.inner_ipv4.flags, hdr.inner_ipv4.frag_offset,
              hdr.inner_ipv4.ttl, hdr.inner_ipv4.protocol, hdr.inner_ipv4.src, hdr.inner_ipv4.dst },
            hdr.inner_ipv4.checksum, HashAlgorithm.csum16);
        update_checksum_with_payload(hdr.inner_tcp.isValid() && meta.rp.inner_dirty == 1,
            { hdr.inner_ipv4.src, hdr.inner_ipv4.dst, 8w0, hdr.inner_ipv4.protocol,
              hdr.inner_ipv4.total_len - 20,
              hdr.inner_tcp.sport, hdr.inner_tcp.dport, hdr.inner_tcp.seq, hdr.inner_tcp.ack,
              hdr.inner_tcp.data_offset, hdr.inner_tcp.reserved, hdr.inner_tcp.flags,
              hdr.inner_tcp.window, hdr.inner_tcp.urgent },
            hdr.inner_tcp.checksum, HashAlgorithm.csum16);
        update_checksum_with_payload(hdr.inner_udp.isValid() && meta.rp.inner_dirty == 1
                                     && hdr.inner_udp.checksum != 0,
            { hdr.inner_ipv4.src, hdr.inner_ipv4.dst, 8w0, hdr.inner_ipv4.protocol,
              hdr.inner_ipv4.total_len - 20, hdr.inner_udp.sport, hdr.inner_udp.dport, hdr.inner_udp.len },
            hdr.inner_udp.checksum, HashAlgorithm.csum16);
    }
}

#endif
