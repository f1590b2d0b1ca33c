"""The whole testbed as one context manager.

    with Testbed(RunConfig(app="nat", variant="redplane")) as tb:
        tb.host("h1").cmd(...)
        tb.crash_switch("s1")
        ...

Entering builds everything the configuration describes, in order: run directory and
provenance, target artifacts, the Mininet fabric of P4 switches, routing, the app's
configuration, the store chains, failure detection (BFD-like probes), the S1 checkpointer, and
captures. Every step registers its undo on an ExitStack, so leaving the block (normally, by an
exception or by Ctrl-C) tears down exactly what was built, in reverse order; a manifest on disk
lists every process and interface as it is created, for `python -m testbed.cleanup`.

Link impairment (`netem`, `netem_clear`, the `netem` failure events) uses the kernel's netem
qdisc where the kernel has one, else the bundled switch's port impairment (`port_impair`, see
`testbed.v1model.impair`) on the link's switch end(s), so that `end=X` still impairs what X
transmits. The mechanism is in provenance.json (`targets.link_impairment`, and every action in
`link_impairments`) and in events.csv (`mechanism`). A restarted switch comes back without the
port impairments of failure events, as a restarted device would (a kernel netem qdisc stays on
its interface); the links' own configured delay, loss and queue limit (fabric.link) are put back
on its ports, since they stand for the link, not for the device.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import asdict

from mininet.link import TCLink
from mininet.net import Mininet

from p4apps import LEAF_P4, SPINE_P4
from testbed import provenance
from testbed.capture import CaptureSet
from testbed.checkpoint import Checkpointer, CheckpointThread, StoreSink
from testbed.errors import ConfigError, TestbedError
from testbed.failures import EventLog, FailureEvent, Netem, link_interfaces, netem, netem_clear, play
from testbed.liveness import LivenessMonitor, MonitorSettings, MonitorThread, parse_register_dump
from testbed.p4switch import P4Switch, SwitchDown
from testbed.routing import FabricView, RoutingController
from testbed.runconfig import RunConfig
from testbed.stores import StoreCluster
from testbed.targets import target_named

RESULTS = os.environ.get("TESTBED_RESULTS") or os.path.join(provenance.REPO, "results")   # where runs go
THRIFT_BASE = 9190
FABRIC_MTU = 9000


class Testbed:
    def __init__(self, config: RunConfig, results_dir: str = RESULTS, run_id: str | None = None):
        config.validate()
        self.config = config
        self.topo = config.topology()
        self.run_id = run_id or f"{time.strftime('%Y%m%d-%H%M%S')}-{config.name}-{os.getpid()}"
        self.run_dir = os.path.join(results_dir, self.run_id)
        self.app = None
        if config.app is not None:
            from p4apps.apps import app_named
            self.app = app_named(config.app)
        self.net = None
        self.routing = None
        self.stores = None
        self.monitor = None
        self.captures = None
        self.checkpointer = None
        self.stop_event = threading.Event()
        self.shard_handles: dict = {}
        self._stack = ExitStack()
        self._sockets: dict = {}
        self._tool_owners: list = []        # stop() of what runs on hosts (workloads, tools)
        self._static_impairments: dict = {}  # link key -> Netem standing in for its delay/loss
        self._link_impairment: str | None = None
        self.impairments: list = []         # netem / netem_clear done, for provenance

    # -- context manager --------------------------------------------------------------------
    def __enter__(self) -> "Testbed":
        try:
            self._build()
        except BaseException as e:
            try:
                self._stack.close()
            finally:
                if os.path.exists(os.path.join(self.run_dir, "provenance.json")):
                    provenance.finish(self.run_dir, f"build failed: {type(e).__name__}: {e}")
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        status = "ok" if exc[0] is None else f"{exc[0].__name__}: {exc[1]}"
        try:
            self._stack.close()
        finally:
            if os.path.exists(os.path.join(self.run_dir, "provenance.json")):
                provenance.finish(self.run_dir, status, {"routing_events": self.routing_events(),
                                                         "link_impairments": self.impairments})

    def _build(self) -> None:
        self._stack.enter_context(MachineLock(self.run_id))
        self._run_dir()
        target = target_named(self.config.target)
        artifacts = self._artifacts(target)
        provenance.write_provenance(self.run_dir, self.config.to_dict(),
                                    {"switches": target.describe(), "link_impairment": self.link_impairment()})
        self.manifest = provenance.Manifest(self.run_dir, self.run_id)
        self._stack.callback(self._close_manifest)
        self._mininet(target, artifacts)
        self._stack.callback(self._stop_tools)        # runs before Mininet stops
        self._apply_static_impairments()
        self._routing()
        if self.app is not None:
            self._stores()
            for spine in self.topo.spines():
                self.configure_app(spine)
        self._monitor()
        if self.app is not None and self.config.variant == "s1":
            self._checkpointer()
        self._captures()
        self.wait_converged()

    def _run_dir(self) -> None:
        for sub in ("", "logs", "pcaps"):
            os.makedirs(os.path.join(self.run_dir, sub), exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix="rp-")          # short paths for UNIX sockets
        self._stack.callback(shutil.rmtree, self.tmp, True)

    # -- switches ----------------------------------------------------------------------------
    def _artifacts(self, target) -> dict:
        work = os.path.join(self.run_dir, "build")
        os.makedirs(work, exist_ok=True)
        leaf = target.prepare(LEAF_P4, {}, work)
        if self.app is None:
            spine = target.prepare(SPINE_P4, {}, work)
        else:
            spine = target.prepare(self.app.program_path(), self.app.defines(self.config.variant), work)
        return {"leaf": leaf, "spine": spine}

    def _mininet(self, target, artifacts) -> None:
        net = Mininet(build=False, controller=None, autoSetMacs=False, autoStaticArp=False, link=TCLink)
        for i, sw in enumerate(self.topo.switches()):
            kind = "spine" if sw in self.topo.spines() else "leaf"
            net.addSwitch(sw, cls=P4Switch, target=target, artifact=artifacts[kind], thrift_port=THRIFT_BASE + i,
                          device_id=self.topo.device_id_of(sw), run_dir=self.run_dir, trace=self.config.trace,
                          pcap=self.config.switch_pcaps, agent=self._agent_opts(kind), seed=self.config.seed * 1000 + i,
                          dpid=self.topo.dpid_of(sw))
        for h in self.topo.hosts():
            opts = self.topo.node_opts(h)
            net.addHost(h, ip=opts["ip"], mac=opts["mac"], defaultRoute=opts["defaultRoute"])
        for link in self.topo.links():
            net.addLink(link.node1, link.node2, port1=link.port1, port2=link.port2, intfName1=link.intf1,
                        intfName2=link.intf2, **self._link_opts(link))
        self.net = net
        self._stack.callback(self._stop_mininet)
        net.build()
        self._record_mininet()
        self._fabric_mtu()
        net.start()
        for sw in self.switches():
            self._record_switch(sw)
        for h in self.topo.hosts():
            self._prepare_host(net.get(h))

    def _fabric_mtu(self) -> None:
        """Jumbo frames inside the fabric: a RedPlane request carries a whole host packet plus
        47 bytes of headers (IPv4, UDP, the 19-byte RedPlane header), so every switch port and
        the stores' interfaces get FABRIC_MTU while clients and servers keep 1500 (as a
        data-centre fabric would be configured)."""
        for link in self.topo.links():
            for node in (link.node1, link.node2):
                if node in self.topo.switches() or self.topo.role_of(node) == "store":
                    self.net.get(node).cmd(f"ip link set dev {link.intf_on(node)} mtu {FABRIC_MTU}")

    def _agent_opts(self, kind: str):
        if kind != "spine" or self.app is None or self.config.variant != "redplane":
            return None
        snapshot = self.config.snapshot_ms if self.app.snapshot_mode else 0
        return {"rto_ms": self.config.redplane.rto_ms, "snapshot_ms": snapshot}

    def _link_opts(self, link) -> dict:
        """TCLink options of `link`. Without kernel netem, its delay, loss and queue limit become
        a port impairment of the bundled switches instead (applied once they run)."""
        params = self.topo.spec.link_params(link.key) if hasattr(self.topo, "spec") else None
        opts = params.mininet_opts() if params is not None else {}
        if ("delay" in opts or "loss" in opts or "max_queue_size" in opts) and not netem_available():
            if self.config.target != "bundled":
                raise ConfigError(f"fabric.link ({link.key}): delay, loss and max_queue need the kernel's netem "
                                  f"qdisc, which this kernel lacks (the bundled target can stand in for it)")
            for key in ("delay", "loss", "max_queue_size"):
                opts.pop(key, None)
            self._static_impairments[link.key] = Netem(loss=params.loss, delay_ms=params.delay_ms,
                                                       limit=params.max_queue)
        return opts

    def _apply_static_impairments(self, switch: str | None = None) -> None:
        """Put the links' configured delay/loss on the switch ports (all, or `switch`'s links)."""
        for key, impairment in self._static_impairments.items():
            if switch is None or switch in key.split("-"):
                self.netem(key, impairment)

    def _record_mininet(self) -> None:
        for node in self.net.hosts:
            self.manifest.pid(node.pid, f"mininet host {node.name}")
        for link in self.topo.links():
            for intf in (link.intf1, link.intf2):
                self.manifest.interface(intf)

    def _record_switch(self, sw: P4Switch) -> None:
        self.manifest.interface(sw.cpu_intf)
        for pid in sw.pids():
            self.manifest.pid(pid, f"switch {sw.name}")

    # -- processes on hosts --------------------------------------------------------------------
    def own(self, stop) -> None:
        """Register `stop()` of something running on the hosts (a workload, tools): called at
        teardown, before Mininet stops, on every exit path."""
        self._tool_owners.append(stop)

    def _stop_tools(self) -> None:
        """Stop the registered owners, then any other listed process that is not a switch, a
        store or a Mininet host (their owners stop those): SIGTERM, then SIGKILL."""
        errors = []
        for stop in reversed(self._tool_owners):
            try:
                stop()
            except Exception as e:            # keep tearing down; report at the end
                errors.append(e)
        for pid, what in self.manifest.running(skip=OWNED_PIDS):
            _terminate(pid)
        if errors:
            raise TestbedError(f"stopping host processes failed: {errors[0]!r}") from errors[0]

    def _close_manifest(self) -> None:
        """Last step of teardown: anything listed still alive is killed; the manifest says
        "clean" only if nothing survives."""
        for pid, _ in self.manifest.running():
            _terminate(pid, grace=0.5)
        left = self.manifest.running()
        self.manifest.close("clean" if not left else "dirty: " + ", ".join(f"{pid} ({what})" for pid, what in left))

    def _prepare_host(self, host) -> None:
        """Software switches forward what they receive: checksum offload must be off."""
        for intf in host.intfList():
            if intf.name != "lo":
                host.cmd(f"ethtool -K {intf.name} rx off tx off sg off >/dev/null 2>&1")

    def _stop_mininet(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()
        self.net.stop()

    def switches(self) -> list[P4Switch]:
        return [self.net.get(s) for s in self.topo.switches()]

    def switch(self, name: str) -> P4Switch:
        return self.net.get(name)

    def host(self, name: str):
        return self.net.get(name)

    # -- routing and failure detection --------------------------------------------------------
    def _routing(self) -> None:
        anycast = self.app.anycast(self.topo) if self.app else ()
        modes = self.app.hash_modes(self.topo, self.config.variant) if self.app else {}
        self.routing = RoutingController(self.topo, {s.name: s for s in self.switches()}, anycast, modes)
        self.routing.program_all()

    def _monitor(self) -> None:
        spec = self.config.monitor
        settings = MonitorSettings(spec.interval_ms / 1000, spec.multiplier)
        self.monitor = LivenessMonitor(self.topo, self.inject, self._read_rx, settings)
        thread = MonitorThread(self.monitor, self._on_view, self.stop_event)
        thread.start()
        self._stack.callback(self._join, thread)

    def _join(self, thread) -> None:
        self.stop_event.set()
        thread.join(timeout=10)
        if getattr(thread, "error", None) is not None:
            raise TestbedError(f"{thread.name} failed: {thread.error!r}") from thread.error

    def inject(self, switch: str, frame: bytes) -> None:
        """Put a frame on a switch's CPU port (root namespace, the switch's own veth)."""
        sock = self._sockets.get(switch)
        if sock is None:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            sock.bind((self.switch(switch).cpu_host_intf, 0))
            self._sockets[switch] = sock
        try:
            sock.send(frame)
        except OSError:
            pass                                 # a switch being restarted: the next round retries

    def _read_rx(self, switch: str):
        try:
            return parse_register_dump(self.switch(switch).cli("register_read hello_rx"))
        except (SwitchDown, TestbedError):
            return None

    def _on_view(self, view: FabricView) -> None:
        returning = self.routing.view.down_switches - view.down_switches
        for name in returning:
            if self.app is not None and name in self.topo.spines():
                self.configure_app(name)
        if self.checkpointer is not None:
            self._restore_checkpoints(view.down_switches - self.routing.view.down_switches, view)
        self.routing.set_view(view, "monitor")

    def _restore_checkpoints(self, failed: set, view: FabricView) -> None:
        """S1: a failed spine's last checkpoint goes into every live spine before traffic is
        moved to them (as the controller would on detection)."""
        for name in sorted(failed & set(self.topo.spines())):
            for survivor in self.topo.spines():
                if survivor not in view.down_switches and self.switch(survivor).alive:
                    n = self.checkpointer.restore(name, survivor)
                    self.routing.note("s1 restore", name, f"{n} flows into {survivor}")

    def wait_converged(self, timeout: float = 30.0) -> FabricView:
        """Wait until the monitor sees every switch and link up (or what is known failed)."""
        deadline = time.monotonic() + timeout
        rounds = self.monitor.round_no + self.config.monitor.multiplier + 2
        while self.monitor.round_no < rounds or self.routing.view != self.monitor.view:
            if time.monotonic() > deadline:
                raise TestbedError(f"the fabric did not converge within {timeout} s (view: {self.monitor.view})")
            time.sleep(self.config.monitor.interval_ms / 1000)
        return self.routing.view

    def routing_events(self) -> list:
        if self.routing is None:
            return []
        return [(e.time, e.kind, e.subject, e.detail) for e in self.routing.events]

    # -- the app and the stores ----------------------------------------------------------------
    def configure_app(self, spine: str) -> None:
        """Install the app's and RedPlane's configuration on a spine (at start and after a restart)."""
        sw = self.switch(spine)
        heads = [chain[0].host.name for chain in self.stores.chains]
        commands = self.app.redplane_commands(self.topo, spine, self.config.redplane, heads,
                                              sw.clock_base_us)
        for cmd in commands:
            out = sw.cli(cmd)
            if cmd.startswith("table_add rp_shards"):
                self.shard_handles[(spine, int(cmd.split()[3]))] = int(out.rsplit(" ", 1)[1])
        for cmd in self.app.spine_commands(self.topo, spine, len(heads)):
            sw.cli(cmd)

    def _stores(self) -> None:
        chains = self.config.stores.chains(self.topo)
        hosts = {h: self.net.get(h) for h in self.topo.stores()}
        self.stores = StoreCluster(chains, hosts, self.app.layout, self.config.redplane.lease_ms, self.tmp,
                                   os.path.join(self.run_dir, "logs"), self.app.mirror_values)
        self._stack.callback(self.stores.stop)
        self.stores.start()
        for chain in self.stores.chains:
            for replica in chain:
                self.manifest.pid(replica.proc.pid, f"store {replica.name}")

    def _checkpointer(self) -> None:
        sink = StoreSink(self.stores.heads()[0].control)
        self.checkpointer = Checkpointer({s: self.switch(s) for s in self.topo.spines()}, sink)
        alive = lambda: [s for s in self.topo.spines() if self.switch(s).alive]
        thread = CheckpointThread(self.checkpointer, alive, self.config.checkpoint_ms / 1000, self.stop_event)
        thread.start()
        self._stack.callback(self._join, thread)

    # -- failures --------------------------------------------------------------------------------
    def crash_switch(self, name: str) -> None:
        self.switch(name).crash()

    def restart_switch(self, name: str) -> None:
        sw = self.switch(name)
        sw.restart()
        self._record_switch(sw)
        self._apply_static_impairments(name)      # the links' own delay/loss, not failure events

    def link_down(self, key: str, end: str | None = None) -> None:
        for node, intf in self._ends(key, end):
            from testbed.failures import link_down
            link_down(self._where(node), intf)

    def link_up(self, key: str, end: str | None = None) -> None:
        for node, intf in self._ends(key, end):
            from testbed.failures import link_up
            link_up(self._where(node), intf)

    def _ends(self, key, end):
        event = FailureEvent(0.0, "link_down", key, {"end": end} if end else {})
        return link_interfaces(self.topo, event)

    def _where(self, node: str):
        return self.net.get(node) if node in self.topo.hosts() else _ROOT

    def crash_store(self, host: str) -> None:
        """Kill every replica on `host` and repair their chains (re-pointing switches at new heads)."""
        for replica in self.stores.replicas_on(host):
            replica.kill()
            if self.stores.remove(replica):
                self._repoint(replica.shard)

    def restart_store(self, host: str) -> None:
        """Start fresh replicas on `host` for the shards it served, as new tails."""
        shards = [s for s, names in enumerate(self.config.stores.chains(self.topo)) if host in names]
        for shard in shards:
            replica = self.stores.rejoin(host, shard)
            self.manifest.pid(replica.proc.pid, f"store {replica.name}")

    def _repoint(self, shard: int) -> None:
        head = self.stores.chains[shard][0]
        from testbed.redplane.config import RENEW_SESSION
        for spine in self.topo.spines():
            sw = self.switch(spine)
            if not sw.alive or (spine, shard) not in self.shard_handles:
                continue
            sw.cli(f"table_modify rp_shards rp_set_store {self.shard_handles[(spine, shard)]} {head.ip}")
            port = self.topo.port_of(spine, self.topo.leaf_of(head.host.name))
            sw.cli(f"mirroring_add {RENEW_SESSION + shard} {port}")

    # Link impairment: the kernel's netem qdisc where there is one, else the bundled switch's
    # port impairment (testbed.v1model.impair) at the switch end(s) of the link. Either way
    # `end` X impairs what X transmits on the link: netem on X's interface, or port_impair
    # `out` on X when X is a switch, `in` on the switch at the other end when X is a host.
    # A restarted switch comes back without port impairments (kernel netem stays on the veth).
    def link_impairment(self) -> str:
        """How netem events are carried out here: "netem" or "switch-port"."""
        if self._link_impairment is None:
            self._link_impairment = "netem" if netem_available() else "switch-port"
        return self._link_impairment

    def netem(self, key: str, impairment: Netem, end: str | None = None) -> str:
        """Impair link `key` (one `end`, or both directions); returns the mechanism used."""
        mechanism, points = self.link_impairment(), []
        for node, intf in self._ends(key, end):
            if mechanism == "netem":
                netem(self._where(node), intf, impairment)
                points.append(f"{node}:{intf}")
            else:
                points.append(self._port_impair(key, node, impairment))
        self._note_impairment("netem", key, end, mechanism, points, impairment)
        return mechanism

    def netem_clear(self, key: str, end: str | None = None) -> str:
        """Remove what `netem` put on link `key` (no-op where there is none); returns the
        mechanism used. A switch that is down has nothing to clear."""
        mechanism, points = self.link_impairment(), []
        for node, intf in self._ends(key, end):
            if mechanism == "netem":
                netem_clear(self._where(node), intf)
                points.append(f"{node}:{intf}")
            else:
                points.append(self._port_impair(key, node, None))
        self._note_impairment("netem_clear", key, end, mechanism, points)
        return mechanism

    def impair_point(self, key: str, node: str) -> tuple[str, int, str]:
        """(switch, port, direction) of the port impairment acting on what `node` sends on `key`."""
        link = self.topo.link_by_key(key)
        switches = self.topo.switches()
        if node in switches:
            return node, link.port_on(node), "out"
        peer = link.peer_of(node)
        if peer not in switches:
            raise TestbedError(f"netem on {key}: neither end is a switch, and this kernel has no netem qdisc")
        return peer, link.port_on(peer), "in"

    def _port_impair(self, key: str, node: str, impairment: Netem | None) -> str:
        """Set (None: clear) the port impairment standing for netem on `node`'s end of `key`."""
        if self.config.target != "bundled":
            raise TestbedError(f"netem on {key}: this kernel has no netem qdisc, and only the bundled "
                               f"target can impair its ports (target is {self.config.target})")
        switch, port, direction = self.impair_point(key, node)
        point = f"{switch}:{port}/{direction}"
        if impairment is None:
            try:
                self.switch(switch).cli(f"port_impair_clear {port} {direction}")
            except SwitchDown:
                return point + " (switch down)"
        else:
            self.switch(switch).cli(f"port_impair {port} {direction} {' '.join(impairment.port_impair_args())}")
        return point

    def _note_impairment(self, action: str, key: str, end: str | None, mechanism: str, points: list,
                         impairment: Netem | None = None) -> None:
        """Keep what was done for provenance.json (`link_impairments`)."""
        self.impairments.append({"time_ns": time.time_ns(), "action": action, "link": key, "end": end,
                                 "mechanism": mechanism, "points": points,
                                 "impairment": None if impairment is None else asdict(impairment)})

    def failure_handlers(self) -> dict:
        """Handlers for `testbed.failures.play`, one per event kind."""
        return {
            "switch_crash": lambda e: self.crash_switch(e.target),
            "switch_restart": lambda e: self.restart_switch(e.target),
            "link_down": lambda e: self.link_down(e.target, e.params.get("end")),
            "link_up": lambda e: self.link_up(e.target, e.params.get("end")),
            "store_crash": lambda e: self.crash_store(e.target),
            "store_restart": lambda e: self.restart_store(e.target),
            "netem": lambda e: self.netem(e.target, Netem.from_params(e.params), e.params.get("end")),
            "netem_clear": lambda e: self.netem_clear(e.target, e.params.get("end")),
        }

    def play_failures(self, start: float | None = None) -> threading.Thread:
        """Play the configured timeline in a thread (times from `start`, default now); the log is
        written to <run>/events.csv."""
        log = EventLog(os.path.join(self.run_dir, "events.csv"))
        self._stack.callback(log.close)
        results = []
        thread = threading.Thread(target=lambda: results.extend(play(self.config.timeline(), self.failure_handlers(),
                                                                     log, start, self.stop_event)),
                                  name="failures", daemon=True)
        thread.results = results
        thread.start()
        self._stack.callback(thread.join, 30)
        return thread

    # -- captures ---------------------------------------------------------------------------------
    def _captures(self) -> None:
        points = []
        for point in self.config.capture:
            if point == "hosts":
                points += [self.topo.links_of(h)[0].intf_on(h) for h in self.topo.hosts()]
            else:
                points.append(point)
        if not points:
            return
        self.captures = CaptureSet(os.path.join(self.run_dir, "pcaps"))
        for intf in points:
            node = intf.split("-eth")[0]
            self.captures.add(self.net.get(node) if node in self.topo.hosts() else _ROOT, intf, node=node)
        self._stack.callback(self.captures.stop)
        self.captures.start()


class MachineLock:
    """One Testbed per machine at a time: interface names and control ports are fixed, so a
    second one waits (bounded, saying for whom) until the first has torn down."""

    PATH = "/run/redplane-testbed.lock" if os.path.isdir("/run") else "/tmp/redplane-testbed.lock"

    def __init__(self, run_id: str, timeout: float | None = None):
        self.run_id = run_id
        self.timeout = float(os.environ.get("TESTBED_LOCK_TIMEOUT", 900)) if timeout is None else timeout
        self.fd = None

    def __enter__(self) -> "MachineLock":
        fd = os.open(self.PATH, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline, told = time.monotonic() + self.timeout, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise TestbedError(f"another testbed ({_holder(fd)}) still runs on this machine after "
                                       f"{self.timeout:.0f} s; see {self.PATH} (TESTBED_LOCK_TIMEOUT)")
                if not told:
                    print(f"waiting for another testbed on this machine to finish ({_holder(fd)})", flush=True)
                    told = True
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, run {self.run_id}\n".encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        os.ftruncate(self.fd, 0)
        os.close(self.fd)             # releases the lock


def _holder(fd: int) -> str:
    return os.pread(fd, 200, 0).decode(errors="replace").strip() or "holder unknown"


OWNED_PIDS = ("switch ", "store ", "mininet host ")


def _terminate(pid: int, grace: float = 2.0) -> None:
    """SIGTERM `pid` (a process this run started, checked by start time), SIGKILL after `grace`."""
    started = provenance.process_start_time(pid)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 1.0)):
        if not provenance.still_running(pid, started):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and provenance.still_running(pid, started):
            time.sleep(0.02)


def _root_popen(argv, **kwargs):
    import subprocess
    return subprocess.Popen(argv, **kwargs)


_ROOT = _root_popen


def netem_available() -> bool:
    """True if this kernel can run the netem qdisc (Mininet's delay/loss need it). Probed on
    the loopback of a throw-away network namespace, never on the machine's own interfaces."""
    import subprocess
    probe = subprocess.run(["unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root", "netem"],
                           capture_output=True, text=True)
    return probe.returncode == 0
