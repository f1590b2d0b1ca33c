/* RedPlane types, constants and helper functions (see redplane.p4). Include this before
 * declaring the program's metadata_t, which holds a redplane_meta_t named `rp`. */
#ifndef P4APPS_REDPLANE_TYPES_P4
#define P4APPS_REDPLANE_TYPES_P4

#include "layouts.p4"

#ifndef RP_SLOTS
#define RP_SLOTS 8192
#endif

const bit<32> RP_CPU_SESSION = 99;
const bit<32> RP_RENEW_SESSION = 100;      /* + shard */
/* Header-only messages; every 48-bit-key, 48-bit-value layout has the NAT layout's length. */
const bit<16> RP_BARE_UDP_LEN = 8 + REDPLANE_NAT_HEADER_BYTES;
const bit<16> RP_BARE_IP_LEN = 20 + RP_BARE_UDP_LEN;
const bit<32> RP_BARE_FRAME_LEN = 14 + (bit<32>)RP_BARE_IP_LEN;

/* Counters in rp_stats, by index. */
const bit<8> RP_STAT_LEASE_NEW = 0;
const bit<8> RP_STAT_WRITE = 1;
const bit<8> RP_STAT_WRITE_DUP = 2;
const bit<8> RP_STAT_RENEW = 3;
const bit<8> RP_STAT_GRANT = 4;
const bit<8> RP_STAT_RELEASE = 5;
const bit<8> RP_STAT_RETRANSMIT = 6;
const bit<8> RP_STAT_RETRANSMIT_DONE = 7;
const bit<8> RP_STAT_COLLISION = 8;
const bit<8> RP_STAT_STALE_ACK = 9;
const bit<8> RP_STAT_LOCAL_WRITE = 10;
const bit<8> RP_STAT_APP_DROP = 11;
const bit<8> RP_STAT_WINDOW_DROP = 12;     /* a write F or more ahead of the acked seq: dropped */
const bit<8> RP_STAT_LEASE_ONLY = 13;      /* a fresh lease ack not newer than our state */

struct redplane_meta_t {
    bit<1>  active;        /* set by AppKey */
    @field_list(1) bit<48> key;
    bit<48> value;
    bit<1>  has_value;
    bit<1>  write;         /* set by AppProcess */
    bit<48> new_value;
    bit<1>  drop;          /* set by AppProcess, or by the library when it consumes a packet */
    bit<1>  mirror;        /* NOFT only: also install the reverse mapping (new_value -> key) */
    bit<32> idx;
    bit<16> seq;
    bit<16> acked;
    bit<1>  written;       /* the flow's value was ever written (MIGRATE_ACK, or a write) */
    bit<48> expiry;
    bit<48> renewed;
    bit<48> slot_key;
    @field_list(1) bit<48> now;   /* this switch's clock: ingress timestamp + clock_base, us */
    bit<48> clock_base;
    bit<48> boot;          /* the clock at the first RedPlane packet of this incarnation */
    bit<48> sent;          /* an ack: its request's send time, rebuilt from the echoed ts */
    bit<1>  fresh;         /* an ack: sent by this incarnation less than L_switch ago */
    @field_list(1) bit<32> my_ip;
    @field_list(1) bit<32> store_ip;
    @field_list(1) bit<16> shard;
    @field_list(1) bit<1>  renew;
    bit<48> lease_us;
    bit<48> rto_us;
    bit<16> n_shards;
    bit<1>  clone_cpu;
    bit<1>  lease_ok;
    bit<1>  inner_dirty;   /* the carried (inner) packet was rewritten: fix its checksums */
}

/* Sequence numbers: 16 bits, 0 is reserved for reads; after 65535 comes 1. */
bit<16> rp_seq_next(in bit<16> s) {
    return s == 16w0xFFFF ? 16w1 : s + 1;
}

/* RFC 1982 serial-number comparison; every non-zero number is newer than 0 (never written). */
bool rp_seq_newer(in bit<16> a, in bit<16> b) {
    bit<16> d = a - b;
    return a != 0 && (b == 0 || (d != 0 && d < 16w0x8000));
}

/* How many writes lead from a to b (0 is skipped: from 65535 to 1 is one). */
bit<16> rp_seq_distance(in bit<16> a, in bit<16> b) {
    bit<16> d = b - a;
    return b < a ? d - 1 : d;
}

#endif
