// More language and parser features: lookahead of a header, parser value sets, header stack
// push_front/pop_front, for loops, a keyless table with a const default action, exit inside an
// action, and return from a control's apply block.
#include <core.p4>
#include <v1model.p4>

header first_t { bit<8> kind; bit<8> op; }
header e_t { bit<8> v; }
header res_t { bit<8> path; bit<8> sum; bit<8> ret; bit<8> nvalid; }
struct headers_t { res_t r; first_t f; e_t[3] s; }
struct meta_t { bit<8> path; }

parser P(packet_in pkt, out headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    value_set<bit<8>>(4) pvs;
    state start {
        first_t peek = pkt.lookahead<first_t>();
        transition select(peek.kind) {
            pvs: via_pvs;
            0x01: plain;
            default: accept;
        }
    }
    state via_pvs { m.path = 2; transition plain; }
    state plain { pkt.extract(h.f); pkt.extract(h.s.next); transition accept; }
}

control VC(inout headers_t h, inout meta_t m) { apply { } }

control I(inout headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    action set_ret(bit<8> v) { h.r.ret = v; }
    action do_exit() { exit; }
    table keyless {
        actions = { set_ret; }
        const default_action = set_ret(0x33);
    }
    apply {
        h.r.setValid();
        h.r.path = m.path;
        bit<8> sum = 0;
        for (bit<8> i = 1; i <= 4; i = i + 1) {
            sum = sum + i;
        }
        h.r.sum = sum;
        if (h.f.op == 1) {
            h.s.push_front(1);
            h.s[0].setValid();
            h.s[0].v = 0xAA;
        } else if (h.f.op == 2) {
            h.s.pop_front(1);
        }
        keyless.apply();
        h.r.nvalid = (h.s[0].isValid() ? 8w1 : 0) + (h.s[1].isValid() ? 8w1 : 0) + (h.s[2].isValid() ? 8w1 : 0);
        sm.egress_spec = 1;
        if (h.f.op == 3) {
            do_exit();
        }
        h.r.ret = h.r.ret + 1;
        if (h.f.op == 4) {
            return;
        }
        h.r.path = h.r.path + 0x10;
    }
}

control E(inout headers_t h, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t h, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t h) { apply { pkt.emit(h); } }
V1Switch(P(), VC(), I(), E(), CC(), D()) main;
