"""Bad input never half-runs: programs are rejected at load time with file:line:col, bad
control-plane commands raise CommandError naming the command, malformed packets are handled
as BMv2 handles them."""
import pathlib
import re

import pytest

from testbed.v1model import CommandError, P4Error, load

P4_DIR = pathlib.Path(__file__).parent / "p4"

TEMPLATE = """#include <core.p4>
#include <v1model.p4>
header h_t { bit<8> a; bit<16> b; }
struct headers_t { h_t h; }
struct meta_t { bit<8> m; }
parser P(packet_in pkt, out headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.h); transition accept; }
}
control VC(inout headers_t hdr, inout meta_t meta) { apply { } }
control I(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) {
%s
}
control E(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t hdr, inout meta_t meta) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr.h); } }
V1Switch(P(), VC(), I(), E(), CC(), D()) main;
"""
BODY_LINE = 11  # line of the first line of the ingress body in TEMPLATE


def load_body(tmp_path, body):
    path = tmp_path / "prog.p4"
    path.write_text(TEMPLATE % body)
    return load(str(path))


BAD_BODIES = [
    ("apply { hdr.h.a = hdr.h.b; }", 0, "expected bit<8>, got bit<16>"),
    ("apply { hdr.h.a = hdr.h.a + hdr.h.b; }", 0, "different types: bit<8> and bit<16>"),
    ("apply { hdr.h.zz = 1; }", 0, "has no field 'zz'"),
    ("apply { nosuch = 1; }", 0, "unknown name 'nosuch'"),
    ("apply { hdr.h.a = 300; }", 0, "does not fit in bit<8>"),
    ("apply { bit<8> x = hdr.h.b[16:9]; }", 0, "out of range"),
    ("action a(bit<8> v) { hdr.h.a = v; }\n    apply { a(); }", 1, "takes 1 arguments, got 0"),
    ("apply { if (hdr.h.a) { } }", 0, "not bool"),
    ("apply { sm.egress_spec = 1 }", 0, "expected ';'"),
    ("table t { key = { hdr.h.a: fuzzy; } actions = { NoAction; } }\n    apply { t.apply(); }", 0, "unknown match kind"),
    ("table t { key = { hdr.h.a: exact; } actions = { NoAction; } default_action = nope(); }\n    apply { }", 0, "is not an action"),
    ("register<bit<8>>(4) r;\n    apply { r.read(hdr.h.a); }", 1, "takes 2 arguments, got 1"),
    ("apply { hash(hdr.h.a, HashAlgorithm.crc16, 8w0, { hdr.h.a }, 16w4); mark_to_drop(sm, sm); }", 0, "arguments, got 2"),
]


@pytest.mark.parametrize("body,line_offset,message", BAD_BODIES)
def test_bad_program_is_rejected_with_location(tmp_path, body, line_offset, message):
    with pytest.raises(P4Error) as info:
        load_body(tmp_path, body)
    text = str(info.value)
    assert message in text
    m = re.match(r"(.+):(\d+):(\d+): error: ", text)
    assert m, text
    assert m.group(1).endswith("prog.p4")
    assert int(m.group(2)) == BODY_LINE + line_offset


def test_missing_include_names_the_file(tmp_path):
    path = tmp_path / "inc.p4"
    path.write_text('#include "nothere.p4"\n')
    with pytest.raises(P4Error, match=r"inc.p4:1:1: error: #include file 'nothere.p4' not found"):
        load(str(path))


def test_unterminated_conditional(tmp_path):
    path = tmp_path / "cond.p4"
    path.write_text("#ifdef X\nheader h_t { bit<8> a; }\n")
    with pytest.raises(P4Error, match=r"cond.p4:1:1: error: #if without matching #endif"):
        load(str(path))


def test_unsupported_feature_is_rejected_at_load(tmp_path):
    body = ("action_selector(HashAlgorithm.crc16, 32w64, 32w14) sel;\n"
            "    table t { key = { hdr.h.a: exact; } actions = { NoAction; } implementation = sel; }\n"
            "    apply { t.apply(); }")
    with pytest.raises(P4Error, match="not supported by this target"):
        load_body(tmp_path, body)


def test_program_without_main(tmp_path):
    path = tmp_path / "nomain.p4"
    path.write_text("#include <core.p4>\n#include <v1model.p4>\n")
    with pytest.raises(P4Error, match="no `main`"):
        load(str(path))


# -- control-plane commands ------------------------------------------------------------------------
@pytest.fixture
def tables():
    return load(str(P4_DIR / "tables.p4"))


BAD_COMMANDS = [
    ("table_add nosuch set_exact 1 => 2", "table_add: no table named 'nosuch'"),
    ("table_add t_exact nosuch 1 => 2", "no action of table I.t_exact named 'nosuch'"),
    ("table_add t_exact set_exact 1 2 => 2", "needs 1 match fields"),
    ("table_add t_exact set_exact 1 => ", "takes 1 parameters"),
    ("table_add t_exact set_exact 1 => 256", "does not fit in 8 bits"),
    ("table_add t_exact set_exact zz => 1", "'zz' is not a number"),
    ("table_add t_lpm set_lpm 0x1200 => 1", "needs value/prefix-length"),
    ("table_add t_lpm set_lpm 0x1200/17 => 1", "prefix length 17 out of range"),
    ("table_add t_tern set_tern 0x10&&&0xF0 5 => 1", "needs a priority"),
    ("table_add t_range set_range 5->3 => 1 1", "range 5->3 is empty"),
    ("table_add t_const set_c 1&&&1 => 1 1", "const entries"),
    ("table_delete t_exact 99", "INVALID_HANDLE"),
    ("register_read nosuch 0", "no register named 'nosuch'"),
    ("counter_read t_exact_counter 5", "INVALID_HANDLE"),
    ("mc_node_associate 9 0", "INVALID_MGID"),
    ("mirroring_add 40000 1", "session id must be in 0..32767"),
    ("frobnicate", "unknown command 'frobnicate'"),
    ("meter_set_rates nosuch 0 1:1 2:2", "no meter named"),
]


@pytest.mark.parametrize("command,message", BAD_COMMANDS)
def test_bad_command_raises_with_command_name(tables, command, message):
    with pytest.raises(CommandError) as info:
        tables.cli(command)
    assert message in str(info.value)


def test_duplicate_entry_is_refused(tables):
    tables.cli("table_add t_exact set_exact 1 => 2")
    with pytest.raises(CommandError, match="DUPLICATE_ENTRY"):
        tables.cli("table_add t_exact set_exact 1 => 3")


def test_script_error_names_the_line(tables):
    with pytest.raises(CommandError, match="line 2: table_add"):
        tables.cli_script("table_add t_exact set_exact 1 => 2\ntable_add t_exact set_exact => 2\n")


# -- malformed packets -----------------------------------------------------------------------------
@pytest.mark.parametrize("data", [b"", b"\x01", bytes(range(256)) * 6, b"\xff" * 3])
def test_truncated_or_garbage_packets_never_crash(data):
    sw = load(str(P4_DIR / "parser.p4"))
    out = sw.send(0, data)
    assert len(out) == 1
    port, sent = out[0]
    assert port == 1
    assert sent.endswith(data[2:] if len(data) >= 2 else data)
