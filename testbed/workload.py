"""Workloads as data, run inside a Testbed's hosts with the tools of testbed.traffic.

A `Flow` is one probe stream (UDP, echoed back by the server, so both directions of the app's
state are exercised) or one verified TCP byte stream, from a client host to a server (or, for
the load balancer, to the virtual address served by every backend). `WorkloadRun` starts every
server, waits until each is ready, starts the clients, waits for them to finish (bounded), and
stops whatever is left, on every exit path.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass

from testbed.capture import stop_process
from testbed.errors import TestbedError
from testbed.traffic import read_log, tool_argv, wait_ready

PROBE_PORT_BASE = 7000
TCP_PORT_BASE = 6000


@dataclass(frozen=True)
class Flow:
    kind: str                  # "probe" or "tcp"
    flow_id: int
    client: str
    server: str
    port: int
    rate: float                # probe: packets/s; tcp: Mbit/s (0 = unlimited)
    size: int = 64             # probe packet size (bytes)
    download: bool = False     # tcp: the server sends the stream (tcpflow --reverse)
    sport: int = 0             # tcp: the client's source port (0 = the kernel picks)

    @property
    def name(self) -> str:
        return f"{self.kind}{self.flow_id}"


def default_flows(topo, probes: int = 4, tcps: int = 2, probe_pps: float = 200, tcp_mbps: float = 2.0) -> list[Flow]:
    """Probe and TCP flows from the clients to the servers, round robin, distinct ports; every
    second TCP flow is a download (the server sends), so inbound-only state is exercised too."""
    clients, servers = topo.clients(), topo.servers()
    if not clients or not servers:
        raise TestbedError("workload: the fabric needs client and server hosts")
    flows = []
    for i in range(probes):
        flows.append(Flow("probe", i + 1, clients[i % len(clients)], servers[i % len(servers)],
                          PROBE_PORT_BASE + i, probe_pps))
    for i in range(tcps):
        flows.append(Flow("tcp", 100 + i + 1, clients[i % len(clients)], servers[(i + 1) % len(servers)],
                          TCP_PORT_BASE + i, tcp_mbps, download=i % 2 == 1))
    return flows


def pin_tcp_paths(flows: list[Flow], topo, app, variant: str, spines: tuple = ("s1", "s2"),
                  first_port: int = 40000) -> list[Flow]:
    """The TCP flows with source ports chosen so that their client-to-server packets cross
    `spines` in turn, two flows at a time (flow i crosses spines[(i // 2) % len]: with the
    default flows, an upload and a download on each), as the leaves' ECMP hash will route them
    (the Python replica of the hash, with the app's hash modes); other flows unchanged. Where
    the hash ignores ports (e.g. a variant hashing on addresses only) the flow keeps its path."""
    from dataclasses import replace
    from testbed.routing import path_spine
    modes, anycast = app.hash_modes(topo, variant), app.anycast(topo)
    out, used, i = [], set(), 0
    for flow in flows:
        if flow.kind == "tcp":
            src, dst, want = topo.ip_of(flow.client), app.destination(topo, flow.server), spines[(i // 2) % len(spines)]
            free = [p for p in range(first_port, first_port + 4000) if p not in used]
            sport = next((p for p in free if path_spine(topo, src, dst, 6, p, flow.port, modes,
                                                        anycast=anycast) == want), free[0])
            used.add(sport)
            flow, i = replace(flow, sport=sport), i + 1
        out.append(flow)
    return out


@dataclass
class FlowResult:
    flow: Flow
    exit_code: int | None
    client_log: str
    server_logs: list
    summary: dict

    def to_dict(self) -> dict:
        return {**asdict(self.flow), "exit_code": self.exit_code, "client_log": self.client_log,
                **{f"summary_{k}": v for k, v in self.summary.items() if not isinstance(v, (dict, list))}}


class WorkloadRun:
    def __init__(self, tb, flows: list[Flow], duration: float, destination=None):
        self.tb, self.flows, self.duration = tb, flows, duration
        self.destination = destination or (lambda flow: tb.topo.ip_of(flow.server))
        self.dir = os.path.join(tb.run_dir, "traffic")
        os.makedirs(self.dir, exist_ok=True)
        self.servers: list[tuple[Flow, str, subprocess.Popen]] = []
        self.clients: list[tuple[Flow, subprocess.Popen]] = []

    # -- start --------------------------------------------------------------------------------------
    def start(self) -> "WorkloadRun":
        self.tb.own(self.stop)          # stopped at teardown too, whatever ends the run
        self._write_flows()
        try:
            for flow in self.flows:
                for host in self._server_hosts(flow):
                    self._start_server(flow, host)
            for flow in self.flows:
                self._start_client(flow)
        except BaseException:
            self.stop()
            raise
        return self

    def _write_flows(self) -> None:
        """traffic/flows.json: every flow with its client address and destination, for analysis."""
        rows = [{**asdict(f), "name": f.name, "client_ip": self.tb.topo.ip_of(f.client), "dst": self.destination(f)}
                for f in self.flows]
        with open(os.path.join(self.dir, "flows.json"), "w") as out:
            json.dump(rows, out, indent=1)

    def _server_hosts(self, flow: Flow) -> list[str]:
        """The backends of the load balancer all serve its virtual address; else the server."""
        if self.destination(flow) != self.tb.topo.ip_of(flow.server):
            return self.tb.topo.servers()
        return [flow.server]

    def _start_server(self, flow: Flow, host: str) -> None:
        log = os.path.join(self.dir, f"{flow.name}.server.{host}.csv")
        span = self.duration + 30
        if flow.kind == "probe":
            argv = tool_argv("probe", "recv", port=flow.port, echo=True, duration=span, log=log)
        else:
            argv = tool_argv("tcpflow", "server", port=flow.port, duration=span, log=log, reverse=flow.download,
                             rate=flow.rate if flow.download else None)
        proc = self._popen(host, argv)
        self.servers.append((flow, log, proc))
        wait_ready(proc, timeout=15)

    def _start_client(self, flow: Flow) -> None:
        log = os.path.join(self.dir, f"{flow.name}.client.csv")
        dst = self.destination(flow)
        if flow.kind == "probe":
            argv = tool_argv("probe", "send", dst=dst, dport=flow.port, rate=flow.rate, size=flow.size,
                             duration=self.duration, flow=flow.flow_id, echo=True, log=log)
        else:
            argv = tool_argv("tcpflow", "client", dst=dst, port=flow.port, duration=self.duration,
                             rate=None if flow.download else flow.rate, flow=flow.flow_id, finish_timeout=15,
                             reverse=flow.download, sport=flow.sport or None, log=log)
        proc = self._popen(flow.client, argv)
        self.clients.append((flow, proc))
        wait_ready(proc, timeout=15)

    def _popen(self, host: str, argv: list[str]) -> subprocess.Popen:
        proc = self.tb.host(host).popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.tb.manifest.pid(proc.pid, f"traffic {argv[2].rsplit('.', 1)[-1]} on {host}")
        return proc

    # -- finish -------------------------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> list[FlowResult]:
        """Wait for every client (bounded), stop the servers, and collect the results."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.duration + 40)
        codes = {}
        for flow, proc in self.clients:
            try:
                codes[flow.name] = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                codes[flow.name] = None
        self.stop()
        return [self._result(flow, codes.get(flow.name)) for flow, _ in self.clients]

    def _result(self, flow: Flow, code) -> FlowResult:
        client_log = os.path.join(self.dir, f"{flow.name}.client.csv")
        servers = [log for f, log, _ in self.servers if f is flow]
        try:
            summary = read_log(client_log).summary or {}
        except (OSError, TestbedError, ValueError):
            summary = {}
        return FlowResult(flow, code, client_log, servers, summary)

    def stop(self) -> None:
        for _, proc in self.clients:
            if proc.poll() is None:
                stop_process(proc)
        for _, _, proc in self.servers:
            if proc.poll() is None:
                stop_process(proc)
        for proc in [p for _, p in self.clients] + [p for _, _, p in self.servers]:
            if proc.stderr is not None:
                proc.stderr.close()
