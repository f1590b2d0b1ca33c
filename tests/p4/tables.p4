// Tables: exact, lpm, ternary (with priorities), range, optional keys, const entries (earlier
// entries win), default actions, hit/miss/action_run, and a direct counter.
#include <core.p4>
#include <v1model.p4>

header k_t {
    bit<8> e;  bit<16> l;  bit<8> t;  bit<8> r;  bit<8> o;
    bit<8> r_exact;  bit<8> r_lpm;  bit<8> r_tern;  bit<8> r_range;  bit<8> r_opt;  bit<8> r_const;
    bit<8> flags;
}
struct headers_t { k_t k; }
struct meta_t { }

parser P(packet_in pkt, out headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    state start { pkt.extract(h.k); transition accept; }
}
control VC(inout headers_t h, inout meta_t m) { apply { } }

control I(inout headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    direct_counter(CounterType.packets_and_bytes) t_exact_counter;

    action set_exact(bit<8> v) { h.k.r_exact = v; }
    action set_lpm(bit<8> v)   { h.k.r_lpm = v; }
    action set_tern(bit<8> v)  { h.k.r_tern = v; }
    action set_range(bit<8> v) { h.k.r_range = v; }
    action set_opt(bit<8> v)   { h.k.r_opt = v; }
    action set_c(bit<8> v)     { h.k.r_const = v; }

    table t_exact {
        key = { h.k.e: exact; }
        actions = { set_exact; NoAction; }
        default_action = NoAction();
        counters = t_exact_counter;
    }
    table t_lpm {
        key = { h.k.l: lpm; }
        actions = { set_lpm; NoAction; }
        default_action = NoAction();
    }
    table t_tern {
        key = { h.k.t: ternary; h.k.e: exact; }
        actions = { set_tern; NoAction; }
        default_action = NoAction();
    }
    table t_range {
        key = { h.k.r: range; }
        actions = { set_range; }
        default_action = set_range(0xEE);
    }
    table t_opt {
        key = { h.k.o: optional; }
        actions = { set_opt; NoAction; }
        default_action = NoAction();
    }
    table t_const {
        key = { h.k.t: ternary; }
        actions = { set_c; }
        const entries = {
            0x03 &&& 0x0F : set_c(1);
            0x13 : set_c(2);
            _ : set_c(3);
        }
    }

    apply {
        if (t_exact.apply().hit) { h.k.flags = h.k.flags | 1; }
        switch (t_lpm.apply().action_run) {
            set_lpm: { h.k.flags = h.k.flags | 2; }
            NoAction: { h.k.flags = h.k.flags | 4; }
        }
        if (!t_tern.apply().miss) { h.k.flags = h.k.flags | 8; }
        t_range.apply();
        t_opt.apply();
        t_const.apply();
        sm.egress_spec = 1;
    }
}

control E(inout headers_t h, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t h, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t h) { apply { pkt.emit(h.k); } }

V1Switch(P(), VC(), I(), E(), CC(), D()) main;
