// Stateful and utility externs, checked through the Python API (tests/test_v1model_externs.py):
// register, counter, meter, direct_meter, random, digest, log_msg, assert, timestamps.
#include <core.p4>
#include <v1model.p4>

header in_t  { bit<8> idx; bit<8> op; bit<32> val; }
header out_t { bit<32> old; bit<8> color; bit<8> dcolor; bit<8> rnd; bit<48> ts_in; bit<48> ts_out; }
struct headers_t { in_t i; out_t o; }
struct meta_t { bit<8> dcolor; }
struct digest_t { bit<8> idx; bit<32> val; }

parser P(packet_in pkt, out headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    state start { pkt.extract(h.i); transition accept; }
}
control VC(inout headers_t h, inout meta_t m) { apply { } }

control I(inout headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    register<bit<32>, bit<8>>(4) r;
    counter<bit<8>>(4, CounterType.packets_and_bytes) c;
    meter<bit<8>>(2, MeterType.packets) mt;
    direct_meter<bit<8>>(MeterType.packets) dm;

    action m_read() { dm.read(m.dcolor); }
    table t_meter {
        key = { h.i.idx: exact; }
        actions = { m_read; NoAction; }
        meters = dm;
        default_action = NoAction();
    }

    apply {
        h.o.setValid();
        bit<32> old;
        r.read(old, h.i.idx);
        r.write(h.i.idx, old + h.i.val);
        h.o.old = old;
        c.count(h.i.idx);
        mt.execute_meter(h.i.idx, h.o.color);
        t_meter.apply();
        h.o.dcolor = m.dcolor;
        random(h.o.rnd, 8w10, 8w20);
        if (h.i.op == 1) {
            digest<digest_t>(1, { h.i.idx, h.i.val });
        }
        log_msg("idx={} val={}", { h.i.idx, h.i.val });
        if (h.i.op == 2) {
            assert(false);
        }
        h.o.ts_in = sm.ingress_global_timestamp;
        sm.egress_spec = 1;
    }
}
control E(inout headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    apply { h.o.ts_out = sm.egress_global_timestamp; }
}
control CC(inout headers_t h, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t h) { apply { pkt.emit(h.i); pkt.emit(h.o); } }
V1Switch(P(), VC(), I(), E(), CC(), D()) main;
