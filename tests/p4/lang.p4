// Language features: functions with return and out parameters, a control instantiated twice
// with constructor arguments, a sub-parser, enums and serializable enums (casts, switch with
// fall-through and default), structs and struct equality, tuples, header copies, header
// unions, and exit.
#include <core.p4>
#include <v1model.p4>

enum Color { Red, Green, Blue }
enum bit<8> Op { Add = 1, Sub = 2, Nop = 0x10 }

header a_t { bit<8> x; bit<8> y; }
header b_t { bit<16> z; }
header_union u_t { a_t a; b_t b; }
header res_t { bit<8> f; bit<8> g; bit<8> color; bit<8> sw; bit<8> cnt; bit<8> eq; bit<8> u; bit<8> after_exit; }
struct pair_t { bit<8> lo; bit<8> hi; }
struct headers_t { res_t r; a_t a; a_t a2; u_t u; }
struct meta_t { }

bit<8> add_sat(in bit<8> x, in bit<8> y) { return x |+| y; }
void split(in bit<16> v, out bit<8> hi, out bit<8> lo) { hi = v[15:8]; lo = v[7:0]; }

control Adder(inout bit<8> v)(bit<8> k) {
    apply { v = v + k; }
}

parser SubP(packet_in pkt, out a_t a) {
    state start { pkt.extract(a); transition accept; }
}

parser P(packet_in pkt, out headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    SubP() sub;
    state start {
        sub.apply(pkt, h.a);
        transition select(h.a.x) {
            0xFF: parse_b;
            default: parse_a2;
        }
    }
    state parse_a2 { pkt.extract(h.u.a); transition accept; }
    state parse_b { pkt.extract(h.u.b); transition accept; }
}

control VC(inout headers_t h, inout meta_t m) { apply { } }

control I(inout headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    Adder(3) add3;
    Adder(10) add10;
    apply {
        h.r.setValid();
        h.r.f = add_sat(h.a.x, h.a.y);
        bit<8> hi;
        bit<8> lo;
        split(16w0xABCD, hi, lo);
        h.r.g = hi ^ lo;
        Color c = h.a.y > 10 ? Color.Blue : Color.Green;
        if (c == Color.Blue) { h.r.color = 3; } else { h.r.color = 2; }
        Op op = (Op)h.a.x;
        switch (op) {
            Op.Add: { h.r.sw = 1; }
            Op.Sub:
            Op.Nop: { h.r.sw = 2; }
            default: { h.r.sw = 9; }
        }
        bit<8> cnt = 0;
        add3.apply(cnt);
        add10.apply(cnt);
        h.r.cnt = cnt;
        pair_t p1 = { 1, 2 };
        pair_t p2 = { lo = 1, hi = 2 };
        h.r.eq = (p1 == p2) ? 8w1 : 8w0;
        tuple<bit<8>, bit<8>> t = { 7, 8 };
        h.a2 = h.a;
        h.a2.y = t[1];
        h.r.u = h.u.a.isValid() ? 8w1 : (h.u.b.isValid() ? 8w2 : 8w0);
        sm.egress_spec = 1;
        if (h.a.x == 0xEE) {
            exit;
        }
        h.r.after_exit = 1;
    }
}

control E(inout headers_t h, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t h, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t h) { apply { pkt.emit(h); } }
V1Switch(P(), VC(), I(), E(), CC(), D()) main;
