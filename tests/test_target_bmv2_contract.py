"""The BMv2 target's side of the contract, against stand-in tools (real BMv2 and p4c are not
installable here): how p4c-bm2-ss and simple_switch are invoked, readiness on the Thrift port,
and a long-lived simple_switch_CLI session (prompt-delimited replies, errors detected)."""
import json
import os
import socket
import stat
import sys
import textwrap

import pytest

from testbed.errors import ConfigError
from testbed.targets import TargetError, target_named
from testbed.v1model.errors import CommandError

FAKE_P4C = """
import json, sys
args = sys.argv[1:]
out = args[args.index("-o") + 1]
json.dump({"argv": args}, open(out, "w"))
sys.exit(3 if "bad.p4" in args[-1] else 0)
"""

FAKE_SWITCH = """
import json, os, signal, socket, sys, time
args = sys.argv[1:]
json.dump(args, open(os.environ["FAKE_RECORD"], "w"))
port = int(args[args.index("--thrift-port") + 1])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(8)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    time.sleep(0.05)
"""

FAKE_CLI = """
import sys
print("Obtaining JSON from switch...\\nDone\\nControl utility for runtime P4 table manipulation")
sys.stdout.write("RuntimeCmd: "); sys.stdout.flush()
for line in sys.stdin:
    cmd = line.strip()
    if cmd.startswith("table_add"):
        print("Adding entry to lpm match table ipv4_lpm\\nEntry has been added with handle 7")
    elif cmd.startswith("register_read"):
        print("hello_rx= 1, 2, 3")
    else:
        print("Error: Invalid command: " + cmd)
    sys.stdout.write("RuntimeCmd: "); sys.stdout.flush()
"""


@pytest.fixture
def fake_bmv2(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("p4c-bm2-ss", FAKE_P4C), ("simple_switch", FAKE_SWITCH), ("simple_switch_CLI", FAKE_CLI)):
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_RECORD", str(tmp_path / "switch-argv.json"))
    return tmp_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bmv2_is_refused_with_a_clear_error_when_its_tools_are_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match=r"bmv2 is not usable here \(not on the PATH: simple_switch"):
        target_named("bmv2")


def test_compile_runs_p4c_bm2_ss_with_the_defines(fake_bmv2):
    target = target_named("bmv2")
    art = target.prepare("p4apps/nat.p4", {"REDPLANE_NOFT": "1"}, str(fake_bmv2))
    argv = json.load(open(art.path))["argv"]
    assert argv[:2] == ["--p4v", "16"] and "-D" in argv and "REDPLANE_NOFT=1" in argv
    assert argv[-1] == "p4apps/nat.p4" and art.path.endswith(".json")
    with pytest.raises(TargetError, match="p4c-bm2-ss failed on bad.p4"):
        target.prepare("bad.p4", {}, str(fake_bmv2))


def test_launch_waits_for_thrift_and_keeps_one_cli_session(fake_bmv2):
    target = target_named("bmv2")
    art = target.prepare("p4apps/nat.p4", {}, str(fake_bmv2))
    port = free_port()
    sw = target.launch(art, {1: "s1-eth1", 510: "s1-cpu"}, name="s1", thrift_port=port, device_id=3,
                       log_file=str(fake_bmv2 / "s1.log"), pcap_dir=str(fake_bmv2 / "pcaps"))
    try:
        argv = json.load(open(fake_bmv2 / "switch-argv.json"))
        assert argv[:4] == ["-i", "1@s1-eth1", "-i", "510@s1-cpu"]
        assert ["--thrift-port", str(port), "--device-id", "3"] == argv[5:9] and argv[-1] == art.path
        assert sw.cli("table_add ipv4_lpm fwd 10.0.0.0/8 => 1").endswith("handle 7")
        assert sw.cli("register_read hello_rx") == "hello_rx= 1, 2, 3"
        with pytest.raises(CommandError, match="bogus"):
            sw.cli("bogus")
        assert sw.cli("register_read hello_rx") == "hello_rx= 1, 2, 3"     # the session survives an error
    finally:
        sw.stop()
    assert not sw.running
