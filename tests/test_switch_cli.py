"""The runtime-CLI client of the bundled switch: the simple_switch_CLI stand-in, its exit
status and error messages, the Python client, and the control protocol. A switch without
interfaces needs no privileges, so most of these run as any user."""
from __future__ import annotations

import errno
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.v1model.client import SwitchClient, SwitchConnectionError, commands_of, main as cli_main
from testbed.v1model.errors import CommandError
from testbed.v1model.process import SwitchProcess

ROOT = Path(__file__).resolve().parents[1]
THREE = ROOT / "benchmarks" / "p4" / "three_tables.p4"
THREE_COMMANDS = ROOT / "benchmarks" / "p4" / "three_tables_commands.txt"


@pytest.fixture(scope="module")
def switch(tmp_path_factory):
    log = tmp_path_factory.mktemp("cli") / "switch.log"
    sw = SwitchProcess(THREE, {}, thrift_port=0, log_file=log, name="cli-test")
    sw.start(timeout=30)
    yield sw
    assert sw.stop() == 0


def run_cli(switch, *args, stdin: str | None = None, file: Path | None = None):
    argv = [sys.executable, "-m", "testbed.v1model", "cli", "--thrift-port", str(switch.thrift_port), *args]
    if file is not None:
        argv.append(str(file))
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60)


def test_commands_of_skips_blanks_and_comments():
    text = "\n# comment\n// comment\n  table_clear acl  \n\nregister_reset flow_packets\n"
    assert list(commands_of(text)) == [(4, "table_clear acl"), (6, "register_reset flow_packets")]


def test_command_file_prints_what_simple_switch_cli_prints(switch, tmp_path):
    switch.cli("reset_state")
    result = run_cli(switch, file=THREE_COMMANDS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Entry has been added with handle") == 6
    assert "Adding entry to ternary match table MyIngress.acl" in result.stdout
    assert result.stderr == ""


def test_failed_commands_are_reported_and_later_ones_still_run(switch, tmp_path):
    switch.cli("reset_state")
    script = tmp_path / "s1-commands.txt"
    script.write_text("register_write flow_packets 1 5\n"
                      "table_add no_such_table drop 1 =>\n"
                      "# a comment\n"
                      "register_write flow_packets 2 6\n"
                      "register_read flow_packets 99999999\n"
                      "register_read flow_packets 2\n")
    result = run_cli(switch, file=script)
    assert result.returncode == 1
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"{script}:2: error: table_add: no table named 'no_such_table'")
    assert errors[1].startswith(f"{script}:5: error: register_read")
    assert len(errors) == 2
    assert result.stdout.strip().endswith("MyIngress.flow_packets[2]= 6")


def test_commands_from_stdin_like_simple_switch_cli(switch):
    switch.cli("reset_state")
    result = run_cli(switch, stdin="table_add ipv4_lpm ipv4_forward 10.0.0.0/8 => 3\ntable_num_entries ipv4_lpm\n")
    assert result.returncode == 0
    assert result.stdout.splitlines()[-1] == "1"
    bad = run_cli(switch, stdin="table_add ipv4_lpm ipv4_forward 10.0.0.0/8\n")
    assert bad.returncode == 1 and bad.stderr.startswith("<stdin>:1: error: ")


def test_no_switch_listening_exits_2_naming_the_address(capsys):
    with socket.socket() as s:                      # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert cli_main(["--thrift-port", str(port), "/dev/null"]) == 2
    assert f"cannot connect to the switch at 127.0.0.1:{port}" in capsys.readouterr().err


def test_unreadable_command_file_exits_64(capsys):
    assert cli_main(["--thrift-port", "1", "/nonexistent/commands.txt"]) == 64
    assert "cannot read /nonexistent/commands.txt" in capsys.readouterr().err


def test_python_client_cli_errors_and_scripts(switch):
    with SwitchClient(switch.thrift_port, host="localhost", timeout=10) as c:
        c.cli("reset_state")
        assert "Entry has been added with handle" in c.cli(
            "table_add port_macs rewrite_macs 1 => 00:00:00:00:01:fe 00:00:00:00:01:01")
        with pytest.raises(CommandError, match="no table named 'nope'"):
            c.cli("table_clear nope")
        with pytest.raises(CommandError, match="unknown command 'frobnicate'"):
            c.cli("frobnicate")
        with pytest.raises(CommandError, match=r"^line 3: "):
            c.run_script("register_write flow_packets 0 1\n\nregister_write nope 0 1\nregister_reset flow_packets\n")
        replies = c.run_script("register_read flow_packets 0\ntable_clear nope\n", stop_on_error=False)
        assert [r["ok"] for r in replies] == [True, False] and replies[1]["line"] == 2
        info = c.switch_info()
        assert info["pid"] == switch.pid and info["ports"] == {} and info["thrift_port"] == switch.thrift_port
        assert c.stats()["received"] == 0
        assert "switch_info" in c.cli("help") and "table_add" in c.cli("help")


def test_several_clients_at_once_and_large_replies(switch):
    switch.cli("reset_state")
    clients = [SwitchClient(switch.thrift_port).connect() for _ in range(3)]
    try:
        for i in range(200):
            clients[i % 3].cli(f"table_add ipv4_lpm ipv4_forward 10.{i}.0.0/16 => {i % 7 + 1}")
        dump = clients[1].cli("table_dump ipv4_lpm")
        assert dump.count("Dumping entry") == 200 and len(dump) > 20000
        assert clients[2].cli("table_num_entries ipv4_lpm") == "200"
    finally:
        for c in clients:
            c.close()


def test_protocol_is_one_json_line_per_command(switch):
    with socket.create_connection(("127.0.0.1", switch.thrift_port), timeout=10) as s:
        s.sendall(b"table_num_entries acl\n\nnot_a_command\n")
        reader = s.makefile("rb")
        replies = [json.loads(reader.readline()) for _ in range(3)]
    assert replies[0]["ok"] and replies[0]["error"] is None
    assert replies[1] == {"ok": True, "output": "", "error": None}
    assert not replies[2]["ok"] and "unknown command" in replies[2]["error"]


def test_a_misbehaving_client_does_not_hurt_the_switch(switch):
    with socket.create_connection(("127.0.0.1", switch.thrift_port), timeout=10) as s:
        s.sendall(b"\xff\xfe garbage \x00\n")
        assert not json.loads(s.makefile("rb").readline())["ok"]
    with socket.create_connection(("127.0.0.1", switch.thrift_port), timeout=10) as s:
        with pytest.raises((OSError, EOFError)) as hung_up:     # an over-long line: the switch hangs up
            s.sendall(b"x" * (4 << 20))
            s.shutdown(socket.SHUT_WR)               # ENOTCONN if the reset came first
            if not s.recv(65536):
                raise EOFError
    assert isinstance(hung_up.value, EOFError) or hung_up.value.errno in (errno.ECONNRESET, errno.EPIPE,
                                                                          errno.ENOTCONN)
    assert switch.running and switch.cli("table_num_entries acl").isdigit()


def test_connection_errors_are_typed():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = SwitchClient(port, timeout=2)
    with pytest.raises(SwitchConnectionError, match=f"127.0.0.1:{port}"):
        client.cli("switch_info")


def test_console_scripts_are_installed():
    bindir = Path(sys.executable).parent
    for name in ("p4sim-switch", "p4sim-cli"):
        result = subprocess.run([str(bindir / name), "-h"], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0 and "--thrift-port" in result.stdout
