// Regression: parser error codes of extract(hdr, n) for a varbit header, as BMv2's extract_VL
// (src/bm_sim/parser.cpp): n % 8 != 0 -> ParserInvalidArgument; then not enough bytes ->
// PacketTooShort; then n > max -> HeaderTooShort. p4c test test-parserinvalidargument-error-bmv2.
#include <core.p4>
#include <v1model.p4>
header len_t { bit<8> n; bit<8> err; }
header v_t { varbit<16> v; }
struct H { len_t l; v_t v; }
struct M { }
parser P(packet_in pk, out H hdr, inout M m, inout standard_metadata_t sm) {
    state start { pk.extract(hdr.l); pk.extract(hdr.v, (bit<32>)hdr.l.n); transition accept; }
}
control I(inout H hdr, inout M m, inout standard_metadata_t sm) {
    apply {
        if (sm.parser_error == error.ParserInvalidArgument) { hdr.l.err = 6; }
        else if (sm.parser_error == error.HeaderTooShort) { hdr.l.err = 4; }
        else if (sm.parser_error == error.PacketTooShort) { hdr.l.err = 1; }
    }
}
control E(inout H hdr, inout M m, inout standard_metadata_t sm) { apply { } }
control V(inout H hdr, inout M m) { apply { } }
control C(inout H hdr, inout M m) { apply { } }
control D(packet_out pk, in H hdr) { apply { pk.emit(hdr.l); } }
V1Switch(P(), V(), I(), E(), C(), D()) main;
