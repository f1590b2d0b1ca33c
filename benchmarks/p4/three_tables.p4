// Three tables and a register: an ACL (ternary on the 5-tuple), L3 forwarding (lpm) and an
// egress MAC rewrite (exact on the port), plus a per-flow packet counter kept in a register
// indexed by a CRC16 hash of the 5-tuple.
#include <core.p4>
#include <v1model.p4>

typedef bit<48> mac_t;
typedef bit<32> ip4_t;

header ethernet_t { mac_t dst; mac_t src; bit<16> etherType; }
header ipv4_t {
    bit<4> version; bit<4> ihl; bit<8> diffserv; bit<16> totalLen;
    bit<16> identification; bit<3> flags; bit<13> fragOffset;
    bit<8> ttl; bit<8> protocol; bit<16> hdrChecksum;
    ip4_t srcAddr; ip4_t dstAddr;
}
header l4_t { bit<16> sport; bit<16> dport; }
struct headers_t { ethernet_t ethernet; ipv4_t ipv4; l4_t l4; }
struct meta_t { bit<16> flow; bit<32> seen; }

parser MyParser(packet_in pkt, out headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) {
    state start {
        pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) { 0x800: parse_ipv4; default: accept; }
    }
    state parse_ipv4 {
        pkt.extract(hdr.ipv4);
        transition select(hdr.ipv4.protocol) { 6: parse_l4; 17: parse_l4; default: accept; }
    }
    state parse_l4 { pkt.extract(hdr.l4); transition accept; }
}

control MyVerifyChecksum(inout headers_t hdr, inout meta_t meta) { apply { } }

control MyIngress(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) {
    register<bit<32>>(65536) flow_packets;

    action drop() { mark_to_drop(sm); }
    action permit() { }
    action ipv4_forward(bit<9> port) {
        sm.egress_spec = port;
        hdr.ipv4.ttl = hdr.ipv4.ttl - 1;
    }
    table acl {
        key = {
            hdr.ipv4.srcAddr: ternary; hdr.ipv4.dstAddr: ternary; hdr.ipv4.protocol: ternary;
            hdr.l4.sport: ternary; hdr.l4.dport: ternary;
        }
        actions = { permit; drop; }
        size = 256;
        default_action = permit();
    }
    table ipv4_lpm {
        key = { hdr.ipv4.dstAddr: lpm; }
        actions = { ipv4_forward; drop; }
        size = 1024;
        default_action = drop();
    }
    apply {
        if (!hdr.ipv4.isValid()) { drop(); exit; }
        hash(meta.flow, HashAlgorithm.crc16, 16w0,
             { hdr.ipv4.srcAddr, hdr.ipv4.dstAddr, hdr.ipv4.protocol, hdr.l4.sport, hdr.l4.dport },
             32w65536);
        flow_packets.read(meta.seen, (bit<32>) meta.flow);
        flow_packets.write((bit<32>) meta.flow, meta.seen + 1);
        switch (acl.apply().action_run) {
            drop: { exit; }
            default: { ipv4_lpm.apply(); }
        }
    }
}

control MyEgress(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) {
    action rewrite_macs(mac_t src, mac_t dst) { hdr.ethernet.src = src; hdr.ethernet.dst = dst; }
    table port_macs {
        key = { sm.egress_port: exact; }
        actions = { rewrite_macs; NoAction; }
        size = 64;
        default_action = NoAction();
    }
    apply { port_macs.apply(); }
}

control MyComputeChecksum(inout headers_t hdr, inout meta_t meta) {
    apply {
        update_checksum(hdr.ipv4.isValid(),
            { hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.diffserv, hdr.ipv4.totalLen,
              hdr.ipv4.identification, hdr.ipv4.flags, hdr.ipv4.fragOffset, hdr.ipv4.ttl,
              hdr.ipv4.protocol, hdr.ipv4.srcAddr, hdr.ipv4.dstAddr },
            hdr.ipv4.hdrChecksum, HashAlgorithm.csum16);
    }
}

control MyDeparser(packet_out pkt, in headers_t hdr) {
    apply { pkt.emit(hdr.ethernet); pkt.emit(hdr.ipv4); pkt.emit(hdr.l4); }
}

V1Switch(MyParser(), MyVerifyChecksum(), MyIngress(), MyEgress(), MyComputeChecksum(), MyDeparser()) main;
