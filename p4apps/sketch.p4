/* A count-min sketch on the spines (3 rows x SK_WIDTH columns of packet counts per flow), kept
 * fault-tolerant in RedPlane's bounded-inconsistency (snapshot) mode; built with
 * -DREDPLANE_NOFT it takes no snapshots and a failed spine's counts are lost.
 *
 * Every spine counts the packets it forwards into the active copy of a double-buffered sketch.
 * Each snapshot period the switch's agent injects one trigger per column on the CPU port
 * (sketch_ctl_t, op SNAPSHOT, epoch, column). The trigger for column 0 of a new epoch freezes
 * the active copy and switches counting to the other; each trigger then folds the frozen
 * column into the running totals (sk_base) and sends them to the store as a SNAPSHOT request
 * (key = spine index << 5 | column, seq = epoch, value = the three rows), so a snapshot is the
 * state of the whole sketch at one instant. After a spine fails, the controller asks a
 * survivor to restore it (op RESTORE, the failed spine's index): per column the survivor
 * fetches the last snapshot (LEASE_NEW -> MIGRATE_ACK) and adds it to its own totals. The
 * fabric-wide sketch (the sum over spines) then misses at most one period of the failed
 * spine's counts.
 *
 * Control plane: rp_config default action sk_set_config(my_ip, my_index, n_shards);
 *                rp_shards shard -> rp_set_store(head ip).
 */
#include <core.p4>
#include <v1model.p4>
#include "include/headers.p4"
#include "redplane/layouts.p4"

#define SK_WIDTH 32
#define SK_CELLS 96                 /* 3 rows x SK_WIDTH */
const bit<16> ETHERTYPE_SKETCH_CTL = 0x88B6;
const bit<8> SK_OP_SNAPSHOT = 1;
const bit<8> SK_OP_RESTORE = 2;
const bit<16> SK_BARE_UDP_LEN = 8 + REDPLANE_SKETCH_HEADER_BYTES;
const bit<16> SK_BARE_IP_LEN = 20 + SK_BARE_UDP_LEN;

header sketch_ctl_t {
    bit<8>  op;
    bit<8>  spine;
    bit<8>  column;
    bit<16> epoch;
}

struct sketch_meta_t {
    bit<32> my_ip;
    bit<8>  my_index;
    bit<16> n_shards;
    bit<16> shard;
    bit<32> store_ip;
    bit<32> col0;
    bit<32> col1;
    bit<32> col2;
    bit<1>  active;
    bit<1>  drop;
}

struct headers_t {
    ethernet_t ethernet;
    arp_t arp;
    hello_t hello;
    sketch_ctl_t ctl;
    ipv4_t ipv4;
    tcp_t tcp;
    udp_t udp;
    redplane_sketch_t rp;
}

struct metadata_t {
    fabric_meta_t fabric;
    sketch_meta_t sk;
}

#include "include/fabric.p4"

parser SketchParser(packet_in pkt, out headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    FabricHeaderParser() fabric_parser;
    state start {
        transition select(pkt.lookahead<ethernet_t>().ether_type) {
            ETHERTYPE_SKETCH_CTL: parse_ctl;
            default: parse_fabric;
        }
    }
    state parse_ctl {
        pkt.extract(hdr.ethernet);
        pkt.extract(hdr.ctl);
        transition accept;
    }
    state parse_fabric {
        fabric_parser.apply(pkt, hdr, meta);
        transition select(hdr.udp.isValid(), hdr.udp.dport) {
            (true, REDPLANE_SWITCH_PORT): parse_rp;
            default: accept;
        }
    }
    state parse_rp { pkt.extract(hdr.rp); transition accept; }
}

control SketchVerifyChecksum(inout headers_t hdr, inout metadata_t meta) { apply { } }

control Sketch(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    register<bit<32>>(2 * SK_CELLS) sk_cnt;     /* [copy][row][column] counts since the copy's last freeze */
    register<bit<32>>(SK_CELLS) sk_base;        /* [row][column] totals up to the last snapshot */
    register<bit<1>>(1) sk_active;
    register<bit<16>>(1) sk_epoch;

    action sk_set_config(bit<32> my_ip, bit<8> my_index, bit<16> n_shards) {
        meta.sk.my_ip = my_ip;
        meta.sk.my_index = my_index;
        meta.sk.n_shards = n_shards;
    }
    table rp_config {
        actions = { sk_set_config; }
        default_action = sk_set_config(0, 0, 1);
    }
    action rp_set_store(bit<32> ip) { meta.sk.store_ip = ip; }
    table rp_shards {
        key = { meta.sk.shard: exact; }
        actions = { rp_set_store; NoAction; }
        default_action = NoAction();
        size = 64;
    }

    action count_row(bit<32> row, bit<32> col) {
        bit<32> i = ((bit<32>)meta.sk.active * SK_CELLS) + row * SK_WIDTH + col;
        bit<32> c;
        sk_cnt.read(c, i);
        sk_cnt.write(i, c + 1);
    }

    action count() {
        sk_active.read(meta.sk.active, 0);
        hash(meta.sk.col0, HashAlgorithm.crc16, 32w0, { hdr.ipv4.src, hdr.ipv4.dst, hdr.ipv4.protocol,
             meta.fabric.l4_sport, meta.fabric.l4_dport }, (bit<32>)SK_WIDTH);
        hash(meta.sk.col1, HashAlgorithm.crc32, 32w0, { hdr.ipv4.src, hdr.ipv4.dst, hdr.ipv4.protocol,
             meta.fabric.l4_sport, meta.fabric.l4_dport }, (bit<32>)SK_WIDTH);
        hash(meta.sk.col2, HashAlgorithm.csum16, 32w0, { hdr.ipv4.src, hdr.ipv4.dst, hdr.ipv4.protocol,
             meta.fabric.l4_sport, meta.fabric.l4_dport }, (bit<32>)SK_WIDTH);
        count_row(0, meta.sk.col0);
        count_row(1, meta.sk.col1);
        count_row(2, meta.sk.col2);
    }

    /* Fold the frozen copy's cells of one row into the totals; returns the new total. */
    action fold(out bit<32> total, bit<32> row, bit<32> col, bit<1> frozen) {
        bit<32> cell = row * SK_WIDTH + col;
        bit<32> f;
        bit<32> b;
        sk_cnt.read(f, (bit<32>)frozen * SK_CELLS + cell);
        sk_base.read(b, cell);
        total = b + f;
        sk_base.write(cell, total);
        sk_cnt.write((bit<32>)frozen * SK_CELLS + cell, 0);
    }

    action to_store(bit<8> type, bit<16> seq, bit<8> key) {
        hash(meta.sk.shard, HashAlgorithm.crc32, 16w0, { key }, meta.sk.n_shards);
        hdr.ctl.setInvalid();
        hdr.ethernet.ether_type = ETHERTYPE_IPV4;
        hdr.ipv4.setValid();
        hdr.ipv4.version = 4;
        hdr.ipv4.ihl = 5;
        hdr.ipv4.total_len = SK_BARE_IP_LEN;
        hdr.ipv4.ttl = 64;
        hdr.ipv4.protocol = PROTO_UDP;
        hdr.ipv4.src = meta.sk.my_ip;
        hdr.udp.setValid();
        hdr.udp.sport = REDPLANE_SWITCH_PORT;
        hdr.udp.dport = REDPLANE_STORE_BASE_PORT + meta.sk.shard;
        hdr.udp.len = SK_BARE_UDP_LEN;
        hdr.udp.checksum = 0;
        hdr.rp.setValid();
        hdr.rp.type = type;
        hdr.rp.seq = seq;
        hdr.rp.ts = sm.ingress_global_timestamp[31:0];
        hdr.rp.key_column = key;
    }

    action snapshot_column() {
        bit<16> last;
        sk_epoch.read(last, 0);
        sk_active.read(meta.sk.active, 0);
        if (hdr.ctl.column == 0 && hdr.ctl.epoch != last) {
            sk_epoch.write(0, hdr.ctl.epoch);
            meta.sk.active = ~meta.sk.active;
            sk_active.write(0, meta.sk.active);
        }
        bit<1> frozen = ~meta.sk.active;
        bit<32> col = (bit<32>)hdr.ctl.column;
        to_store(REDPLANE_SNAPSHOT, hdr.ctl.epoch, (meta.sk.my_index << 5) | hdr.ctl.column);
        fold(hdr.rp.value_row0, 0, col, frozen);
        fold(hdr.rp.value_row1, 1, col, frozen);
        fold(hdr.rp.value_row2, 2, col, frozen);
    }

    action restore(bit<32> row, bit<32> add) {
        bit<32> b;
        sk_base.read(b, row * SK_WIDTH + (bit<32>)hdr.rp.key_column[4:0]);
        sk_base.write(row * SK_WIDTH + (bit<32>)hdr.rp.key_column[4:0], b + add);
    }

    action consume() {
        mark_to_drop(sm);
        meta.sk.drop = 1;
    }

    apply {
        rp_config.apply();
        if (hdr.ctl.isValid()) {
            if (sm.ingress_port != CPU_PORT) {
                consume();
            } else if (hdr.ctl.op == SK_OP_SNAPSHOT) {
#ifdef REDPLANE_NOFT
                consume();
#else
                snapshot_column();
                rp_shards.apply();
                hdr.ipv4.dst = meta.sk.store_ip;
#endif
            } else {
                to_store(REDPLANE_LEASE_NEW, 0, (hdr.ctl.spine << 5) | hdr.ctl.column);
                rp_shards.apply();
                hdr.ipv4.dst = meta.sk.store_ip;
            }
        } else if (hdr.rp.isValid() && hdr.ipv4.dst == meta.sk.my_ip) {
            if (hdr.rp.type == REDPLANE_MIGRATE_ACK && hdr.rp.key_column[7:5] != meta.sk.my_index[2:0]) {
                restore(0, hdr.rp.value_row0);
                restore(1, hdr.rp.value_row1);
                restore(2, hdr.rp.value_row2);
            }
            consume();
        } else if (hdr.ipv4.isValid() && (hdr.tcp.isValid() || hdr.udp.isValid())) {
            count();
        }
    }
}

control SketchIngress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    Sketch() sketch;
    FabricRouting() routing;
    apply {
        sketch.apply(hdr, meta, sm);
        if (meta.sk.drop == 0) {
            routing.apply(hdr, meta, sm);
        }
    }
}

control SketchEgress(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t sm) {
    FabricEgress() fabric_egress;
    apply { fabric_egress.apply(hdr, meta, sm); }
}

control SketchComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    FabricComputeChecksum() checksums;
    apply { checksums.apply(hdr, meta); }
}

control SketchDeparser(packet_out pkt, in headers_t hdr) {
    apply { pkt.emit(hdr); }
}

V1Switch(SketchParser(), SketchVerifyChecksum(), SketchIngress(), SketchEgress(), SketchComputeChecksum(),
         SketchDeparser()) main;
