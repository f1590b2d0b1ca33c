/* Protocol headers shared by every program of the fabric (leaves, spines, apps). */
#ifndef P4APPS_HEADERS_P4
#define P4APPS_HEADERS_P4

const bit<16> ETHERTYPE_IPV4  = 0x0800;
const bit<16> ETHERTYPE_ARP   = 0x0806;
const bit<16> ETHERTYPE_HELLO = 0x88B5;   /* fabric liveness probes (see fabric.p4) */
const bit<8>  PROTO_TCP = 6;
const bit<8>  PROTO_UDP = 17;
const bit<16> ARP_REQUEST = 1;
const bit<16> ARP_REPLY = 2;

header ethernet_t {
    bit<48> dst;
    bit<48> src;
    bit<16> ether_type;
}

header arp_t {
    bit<16> htype;
    bit<16> ptype;
    bit<8>  hlen;
    bit<8>  plen;
    bit<16> op;
    bit<48> sha;
    bit<32> spa;
    bit<48> tha;
    bit<32> tpa;
}

/* A liveness probe: injected on a switch's CPU port with the port to send it out of; the
 * neighbour records `round` per ingress port, and the routing controller reads those records. */
header hello_t {
    bit<16> port;
    bit<32> round;
}

header ipv4_t {
    bit<4>  version;
    bit<4>  ihl;
    bit<8>  tos;
    bit<16> total_len;
    bit<16> identification;
    bit<3>  flags;
    bit<13> frag_offset;
    bit<8>  ttl;
    bit<8>  protocol;
    bit<16> checksum;
    bit<32> src;
    bit<32> dst;
}

header tcp_t {
    bit<16> sport;
    bit<16> dport;
    bit<32> seq;
    bit<32> ack;
    bit<4>  data_offset;
    bit<4>  reserved;
    bit<8>  flags;
    bit<16> window;
    bit<16> checksum;
    bit<16> urgent;
}

header udp_t {
    bit<16> sport;
    bit<16> dport;
    bit<16> len;
    bit<16> checksum;
}

/* The fabric's per-packet metadata (see fabric.p4). */
const bit<9> CPU_PORT = 510;

struct fabric_meta_t {
    bit<16> l4_sport;
    bit<16> l4_dport;
    bit<16> l4_len;       /* IPv4 payload length, for the L4 pseudo-header */
    bit<16> ecmp_group;
    bit<16> ecmp_size;
    bit<16> ecmp_idx;
    bit<8>  hash_mode;    /* see FabricRouting.to_group */
    bit<1>  l4_dirty;     /* an app rewrote addresses or ports: recompute L4 checksums */
}

const bit<8> TCP_FIN = 0x01;
const bit<8> TCP_SYN = 0x02;
const bit<8> TCP_RST = 0x04;
const bit<8> TCP_ACK = 0x10;

#endif
