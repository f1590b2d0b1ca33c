// Parser features: lookahead, select on tuples with masks, ranges and don't-care, header
// stacks (next/last), varbit extraction, advance, verify, and BMv2's parser-error behaviour
// (parsing stops, the packet still goes through ingress, unparsed bytes stay payload).
#include <core.p4>
#include <v1model.p4>

error { BadThing }

header first_t { bit<8> kind; bit<8> len; }
header elem_t  { bit<7> val; bit<1> more; }
header var_t   { bit<8> fixed; varbit<64> data; }
header after_t { bit<16> x; }
header out_t   { bit<8> err; bit<8> peek; bit<8> nstack; bit<8> path; }

struct headers_t { out_t res; first_t first; elem_t[3] s; var_t v; after_t after; }
struct meta_t { bit<8> peek; bit<8> path; }

parser P(packet_in pkt, out headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    state start {
        m.peek = pkt.lookahead<bit<8>>();
        pkt.extract(h.first);
        transition select(h.first.kind, h.first.len) {
            (0x01, _): parse_stack;
            (0x02 &&& 0xFE, _): parse_var;
            (0x10 .. 0x1F, _): parse_adv;
            (0x20, _): parse_verify;
            default: accept;
        }
    }
    state parse_stack {
        m.path = 1;
        pkt.extract(h.s.next);
        transition select(h.s.last.more) {
            1: parse_stack;
            default: accept;
        }
    }
    state parse_var {
        m.path = 2;
        pkt.extract(h.v, (bit<32>)h.first.len << 3);
        transition accept;
    }
    state parse_adv {
        m.path = 3;
        pkt.advance(16);
        pkt.extract(h.after);
        transition accept;
    }
    state parse_verify {
        m.path = 4;
        verify(h.first.len == 1, error.BadThing);
        transition accept;
    }
}

control VC(inout headers_t h, inout meta_t m) { apply { } }

control I(inout headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    apply {
        h.res.setValid();
        h.res.peek = m.peek;
        h.res.path = m.path;
        h.res.nstack = (h.s[0].isValid() ? 8w1 : 0) + (h.s[1].isValid() ? 8w1 : 0) + (h.s[2].isValid() ? 8w1 : 0);
        if (sm.parser_error == error.NoError) { h.res.err = 0; }
        else if (sm.parser_error == error.PacketTooShort) { h.res.err = 1; }
        else if (sm.parser_error == error.StackOutOfBounds) { h.res.err = 3; }
        else if (sm.parser_error == error.HeaderTooShort) { h.res.err = 4; }
        else if (sm.parser_error == error.BadThing) { h.res.err = 9; }
        else { h.res.err = 0xFF; }
        sm.egress_spec = 1;
    }
}

control E(inout headers_t h, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t h, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t h) { apply { pkt.emit(h); } }

V1Switch(P(), VC(), I(), E(), CC(), D()) main;
