"""A Mininet switch node that runs a P4 program on a target (bundled v1model or BMv2).

The node runs in the root namespace, like Mininet's other software switches, attached to its
Mininet interfaces by raw sockets, plus a CPU port: a veth pair `<name>-cpu` (attached to the
switch as port CPU_PORT) and `<name>-cpuh` (the host side, used by the liveness monitor and the
RedPlane agent). It owns its switch process, its agent process and its CPU veth pair, and
removes all three in `stop`. `crash` kills the processes abruptly and keeps the interfaces (a
dead switch's links stay plugged in); `restart` starts an empty data plane again.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from mininet.node import Switch

from testbed.errors import SwitchDown, TestbedError
from testbed.targets import Artifact, Target

CPU_PORT = 510


class P4Switch(Switch):
    def __init__(self, name, target: Target = None, artifact: Artifact = None, thrift_port: int = 9090,
                 device_id: int = 0, run_dir: str = ".", trace: bool = False, pcap: bool = False,
                 agent: dict | None = None, seed: int = 0, start_timeout: float = 20.0, **params):
        super().__init__(name, **params)
        self.target, self.artifact = target, artifact
        self.thrift_port, self.device_id, self.seed = thrift_port, device_id, seed
        self.run_dir, self.trace, self.pcap, self.agent_opts = run_dir, trace, pcap, agent
        self.start_timeout = start_timeout
        self.proc = None
        self.agent = None
        self.lock = threading.Lock()
        self.generation = 0
        self.clock_base_us = 0      # host monotonic clock (us) just before the last launch
        self.cpu_intf, self.cpu_host_intf = f"{name}-cpu", f"{name}-cpuh"

    # -- Mininet hooks --------------------------------------------------------------------------
    def start(self, controllers):
        self._cpu_veth()
        self.launch()

    def stop(self, deleteIntfs=True):
        self.halt()
        self._delete_cpu_veth()
        super().stop(deleteIntfs)

    # -- life cycle -----------------------------------------------------------------------------
    def data_ports(self) -> dict:
        return {port: intf.name for intf, port in self.ports.items() if intf.name != "lo"}

    def launch(self) -> None:
        """Start the switch (empty data plane) and, for RedPlane spines, its agent."""
        ports = self.data_ports()
        ports[CPU_PORT] = self.cpu_intf
        self.generation += 1
        logs = os.path.join(self.run_dir, "logs")
        pcaps = os.path.join(self.run_dir, "pcaps", self.name) if self.pcap else None
        if pcaps:
            os.makedirs(pcaps, exist_ok=True)
        log = os.path.join(logs, f"{self.name}.{self.generation}.log")
        self.clock_base_us = time.monotonic_ns() // 1000
        self.proc = self.target.launch(self.artifact, ports, name=self.name, thrift_port=self.thrift_port,
                                       device_id=self.device_id, log_file=log, pcap_dir=pcaps,
                                       trace=self.trace, seed=self.seed + self.generation,
                                       timeout=self.start_timeout)
        if self.agent_opts is not None:
            self._start_agent(logs)

    def _start_agent(self, logs: str) -> None:
        argv = [sys.executable, "-m", "testbed.redplane.agent", "--intf", self.cpu_host_intf,
                "--rto-ms", str(self.agent_opts["rto_ms"])]
        if self.agent_opts.get("snapshot_ms"):
            argv += ["--snapshot-ms", str(self.agent_opts["snapshot_ms"])]
        with open(os.path.join(logs, f"{self.name}.agent.{self.generation}.log"), "wb") as log:
            self.agent = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def halt(self) -> None:
        """Stop the switch and its agent cleanly (pcaps flushed)."""
        self._stop_agent(graceful=True)
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def crash(self) -> None:
        """Kill the switch and its agent at once, as a hardware failure would."""
        self._stop_agent(graceful=False)
        if self.proc is not None:
            _kill(self.proc)
            self.proc = None

    def restart(self) -> None:
        """Bring the switch back with an empty data plane."""
        if self.proc is not None:
            raise TestbedError(f"switch {self.name} is running; crash or halt it first")
        self.launch()

    def _stop_agent(self, graceful: bool) -> None:
        if self.agent is None:
            return
        import signal
        try:
            os.killpg(self.agent.pid, signal.SIGTERM if graceful else signal.SIGKILL)
            self.agent.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.agent.pid, signal.SIGKILL)
            self.agent.wait()
        self.agent = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.running

    def pids(self) -> list[int]:
        """Processes this node owns now (for the run's cleanup manifest)."""
        return [p for p in (getattr(self.proc, "pid", None), getattr(self.agent, "pid", None)) if p]

    # -- control ---------------------------------------------------------------------------------
    def cli(self, command: str) -> str:
        """One runtime-CLI command; SwitchDown if the switch is down or dies meanwhile."""
        with self.lock:
            proc = self.proc            # crash() may clear self.proc meanwhile (it takes no lock)
            if proc is None:
                raise SwitchDown(f"{self.name} is down")
            try:
                return proc.cli(command)
            except Exception as e:
                if self._went_down(proc):
                    raise SwitchDown(f"{self.name} is down ({command}: {e})") from e
                raise

    def stats(self) -> dict:
        """The switch's counters (see SwitchProcess.stats), serialised with other commands."""
        with self.lock:
            proc = self.proc
            if proc is None:
                raise SwitchDown(f"{self.name} is down")
            try:
                return proc.stats()
            except Exception as e:
                if self._went_down(proc):
                    raise SwitchDown(f"{self.name} is down (stats: {e})") from e
                raise

    def _went_down(self, proc) -> bool:
        """`proc` was crashed, stopped or replaced while a command to it was under way (a
        crash closes its control connection before the process is gone)."""
        return proc is not self.proc or not proc.running or getattr(proc, "client", True) is None

    # -- the CPU port ----------------------------------------------------------------------------
    def _cpu_veth(self) -> None:
        """Create the CPU-port veth pair; one that exists already belongs to someone else."""
        if os.path.exists(f"/sys/class/net/{self.cpu_intf}"):
            raise TestbedError(f"interface {self.cpu_intf} already exists: another testbed runs on this "
                               "machine, or a crashed run left it (python -m testbed.cleanup removes it)")
        self._own_cpu_veth = True
        subprocess.run(["ip", "link", "add", self.cpu_intf, "type", "veth", "peer", "name", self.cpu_host_intf],
                       check=True, capture_output=True)
        for intf in (self.cpu_intf, self.cpu_host_intf):
            subprocess.run(["ip", "link", "set", intf, "mtu", "9000", "up"], check=True, capture_output=True)
            subprocess.run(["ethtool", "-K", intf, "tx", "off", "rx", "off"], capture_output=True)

    def _delete_cpu_veth(self) -> None:
        if getattr(self, "_own_cpu_veth", False) and os.path.exists(f"/sys/class/net/{self.cpu_intf}"):
            subprocess.run(["ip", "link", "del", self.cpu_intf], capture_output=True)


def _kill(proc) -> None:
    """SIGKILL a switch process (no pcap flush, no goodbye), then reap it."""
    import signal
    if hasattr(proc, "kill"):
        proc.kill()
        return
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, TypeError):
        pass
    proc.stop(timeout=1.0)
