"""The RedPlane switch programs on the bundled target's Python API (an in-process fabric with
the real store state machine): new flows, the read path, writes held until their ack,
retransmission, migration after a spine failure, and the no-fault-tolerance baseline."""
import ipaddress

import pytest
from scapy.all import IP, TCP, UDP, Ether

from testbed.redplane import protocol
from testbed.redplane.sim import AppFabric
from testbed.routing import FabricView

STAT_LEASE_NEW, STAT_WRITE, STAT_RENEW, STAT_RETRANSMIT, STAT_RETRANSMIT_DONE = 0, 1, 3, 6, 7
STAT_GRANT, STAT_STALE_ACK, STAT_WINDOW_DROP, STAT_LEASE_ONLY = 4, 9, 12, 13
F = protocol.SEQ_FENCE


def udp(f, client, server, sport=5555, dport=80, payload=b"hello"):
    _, gw = f.topo.gateway_of(client)
    return bytes(Ether(src=f.topo.mac_of(client), dst=gw) / IP(src=f.topo.ip_of(client), dst=f.topo.ip_of(server))
                 / UDP(sport=sport, dport=dport) / payload)


@pytest.fixture
def nat():
    f = AppFabric("nat")
    return f, f.topo.clients()[0], f.topo.servers()[0]


def spine_of_flow(f):
    return max(f.topo.spines(), key=lambda s: f.fabric.switches[s].stats.received)


def requests(f, kind=None):
    return [r for _, r in f.stores[0].requests if kind is None or r.type == kind]


def registers(f, spine):
    return f.fabric.switches[spine].registry.registers


def flow_regs(f, spine, key) -> dict:
    """The flow's RedPlane registers on `spine`, and its slot index."""
    regs = registers(f, spine)
    idx = regs["SpineIngress.redplane.rp_keys"].cells.index(key)
    names = {"seq": "rp_seqs", "acked": "rp_acked", "value": "rp_values", "expiry": "rp_expiry",
             "written": "rp_written"}
    return {k: regs[f"SpineIngress.redplane.{r}"].cells[idx] for k, r in names.items()} | {"idx": idx}


class Interceptor:
    """Stands between the network and shard 0's store: holds requests and/or acks on demand,
    so that a test can reorder and delay them."""

    def __init__(self, f):
        self.f, self.store = f, f.stores[0]
        self.hold_requests = self.hold_acks = False
        self.requests: list[bytes] = []
        self.acks: list[bytes] = []
        f.fabric.host_handlers[f.heads[0]] = self

    def __call__(self, frame: bytes) -> list[bytes]:
        if self.hold_requests:
            self.requests.append(frame)
            return []
        return self.answer(frame)

    def answer(self, frame: bytes) -> list[bytes]:
        """Let the store handle `frame`; its acks are returned, or kept if acks are held."""
        acks = self.store(frame)
        if self.hold_acks:
            self.acks += acks
            return []
        return acks

    def deliver(self, *frames: bytes) -> None:
        for frame in frames:
            self.f.fabric.host_send(self.f.heads[0], frame)

    @staticmethod
    def message(frame: bytes):
        return protocol.APP_LAYOUTS["nat"].unpack(frame[42:])


def test_config_sets_the_clock_base_and_checks_the_lease_range():
    from testbed.errors import ConfigError
    from testbed.redplane.config import RedPlaneSettings, spine_commands
    from testbed.topology import LeafSpineTopo
    topo = LeafSpineTopo(spines=2, leaves=3, hosts_per_leaf=2)
    settings = RedPlaneSettings()
    first = spine_commands(topo, "s1", settings, ["h5"], clock_base_us=123456789)[0]
    assert first.endswith(" 600000 50000 1 123456789")
    with pytest.raises(ConfigError, match="clock_base_us"):
        spine_commands(topo, "s1", settings, ["h5"], clock_base_us=-1)
    with pytest.raises(ConfigError, match="32-bit timestamp"):
        RedPlaneSettings(lease_ms=5e6, switch_lease_ms=2.2e6).validate()


def test_new_flow_takes_a_lease_then_writes_the_mapping(nat):
    f, c, s = nat
    f.send(c, udp(f, c, s))
    reqs = requests(f)
    assert [r.type for r in reqs[:2]] == [protocol.LEASE_NEW, protocol.LEASE_RENEW]
    write = reqs[1]
    assert write.seq == F + 1                               # after the grant's fence
    pub_addr, pub_port = write.value >> 16, write.value & 0xFFFF
    at_server = Ether(f.seen[s][0])
    assert at_server[IP].src == "10.253.0.1" and (pub_addr >> 24) == 10
    assert at_server[UDP].sport == pub_port
    state = f.stores[0].state
    assert state.get(write.key).value == write.value and state.get(write.key).committed == F + 1
    assert state.get(write.value).value == write.key          # the mirrored reverse mapping
    back = Ether(f.fabric.inbox[c][0])
    assert back[IP].dst == f.topo.ip_of(c) and back[UDP].dport == 5555 and bytes(back[UDP].payload) == b"hello"


def test_read_path_sends_nothing_to_the_store(nat):
    f, c, s = nat
    f.send(c, udp(f, c, s))
    before = len(requests(f))
    for i in range(5):
        f.send(c, udp(f, c, s, payload=b"x%d" % i))
    assert len(requests(f)) == before
    assert len(f.seen[s]) == 6 and len(f.fabric.inbox[c]) == 6


def test_write_is_held_until_acked_and_retransmitted(nat):
    f, c, s = nat
    store = f.stores[0]
    lost = []
    original = store.__call__

    def lose_first_write(frame):
        parsed = store.layout.unpack(frame[42:]) if len(frame) > 42 else None
        if parsed is not None and parsed.type == protocol.LEASE_RENEW and parsed.seq and not lost:
            lost.append(frame)
            return []
        return original(frame)
    f.fabric.host_handlers[f.heads[0]] = lose_first_write
    f.send(c, udp(f, c, s))
    assert lost and f.seen[s] == []                      # the output waits for the ack
    f.advance(f.settings.rto_ms / 1000 / 2)
    assert f.seen[s] == []
    f.advance(f.settings.rto_ms / 1000)
    assert len(f.seen[s]) == 1                           # the agent's copy got through
    spine = spine_of_flow(f)
    assert f.stat(spine, STAT_RETRANSMIT) == 1
    f.advance(f.settings.rto_ms / 1000 * 2)
    assert f.stat(spine, STAT_RETRANSMIT_DONE) >= 1     # later copies are dropped once acked
    assert len(f.seen[s]) == 1


def test_failover_migrates_the_mapping_to_the_other_spine(nat):
    f, c, s = nat
    f.send(c, udp(f, c, s))
    first = Ether(f.seen[s][0])
    old = spine_of_flow(f)
    f.fabric.crash(old)
    f.routing.set_view(FabricView(down_switches=frozenset({old})), "test")
    f.send(c, udp(f, c, s, payload=b"after"))
    assert len(f.seen[s]) == 1                           # queued: the old lease is still valid
    assert f.stores[0].state.waiting_count() == 1
    f.advance(f.settings.lease_ms / 1000 + 0.01)
    assert len(f.seen[s]) == 2
    second = Ether(f.seen[s][1])
    assert (second[IP].src, second[UDP].sport) == (first[IP].src, first[UDP].sport)
    new = [sp for sp in f.topo.spines() if sp != old][0]
    assert f.stat(new, STAT_WRITE) == 0                  # state came from the store, not recreated
    write = requests(f, protocol.LEASE_RENEW)[0]
    # the queued grant (seq 2F+1) came more than L_switch after the request: stale, so the
    # packet asked again and the owner's new grant (3F+1) installed the state
    assert f.stat(new, STAT_STALE_ACK) == 1
    taken = flow_regs(f, new, write.key)                  # continues from the advanced seq
    assert (taken["seq"], taken["acked"], taken["value"]) == (3 * F + 1, 3 * F + 1, write.value)
    assert f.stores[0].state.get(write.key).committed == 3 * F + 1


def test_without_fault_tolerance_failover_remaps_the_flow():
    f = AppFabric("nat", variant="noft")
    c, s = f.topo.clients()[0], f.topo.servers()[0]
    f.send(c, udp(f, c, s))
    first = Ether(f.seen[s][0])
    assert f.stores[0].requests == []
    assert len(f.fabric.inbox[c]) == 1                   # affinity routing brings the reply back
    old = spine_of_flow(f)
    f.fabric.crash(old)
    f.routing.set_view(FabricView(down_switches=frozenset({old})), "test")
    f.send(c, udp(f, c, s))
    second = Ether(f.seen[s][1])
    assert (second[IP].src, second[UDP].sport) != (first[IP].src, first[UDP].sport)


def test_both_directions_on_different_spines():
    f = AppFabric("nat", hash_modes={})                  # plain 5-tuple ECMP both ways
    c, s = f.topo.clients()[0], f.topo.servers()[0]
    split = None
    for sport in range(6000, 6040):
        before = {sp: f.fabric.switches[sp].stats.received for sp in f.topo.spines()}
        f.send(c, udp(f, c, s, sport=sport))
        used = [sp for sp in f.topo.spines() if f.fabric.switches[sp].stats.received > before[sp]]
        if len(used) == 2:
            split = sport
            break
    assert split is not None, "no flow took different spines in each direction"
    back = Ether(f.fabric.inbox[c][-1])
    assert back[UDP].dport == split and back[IP].dst == f.topo.ip_of(c)


def test_renewals_keep_the_lease_and_are_rate_limited(nat):
    f, c, s = nat
    f.send(c, udp(f, c, s))
    spine = spine_of_flow(f)
    for _ in range(100):                                  # 2 s of traffic, 3 switch leases
        f.advance(0.02)
        f.send(c, udp(f, c, s))
    renewals = sum(f.stat(sp, STAT_RENEW) for sp in f.topo.spines())
    assert sum(f.stat(sp, STAT_LEASE_NEW) for sp in f.topo.spines()) == 2   # each key's first lease
    assert 3 <= f.stat(spine, STAT_RENEW) and renewals <= 2 * 2.0 / (f.settings.rto_ms / 1000)
    assert len(requests(f, protocol.LEASE_RENEW)) == renewals + 1   # + the one write
    assert len(f.seen[s]) == 101


def test_tcp_checksums_stay_valid_through_translation(nat):
    f, c, s = nat
    _, gw = f.topo.gateway_of(c)
    pkt = Ether(src=f.topo.mac_of(c), dst=gw) / IP(src=f.topo.ip_of(c), dst=f.topo.ip_of(s)) / TCP(
        sport=4321, dport=80, flags="S", seq=7) / b"data"
    f.send(c, bytes(pkt))
    for frame in (f.seen[s][0], f.fabric.inbox[c][0]):
        p = Ether(frame)
        got = p[TCP].chksum
        del p[TCP].chksum
        assert Ether(bytes(p))[TCP].chksum == got


def udp_to(f, src, dst_ip, sport, dport, payload=b"x"):
    _, gw = f.topo.gateway_of(src)
    return bytes(Ether(src=f.topo.mac_of(src), dst=gw) / IP(src=f.topo.ip_of(src), dst=dst_ip)
                 / UDP(sport=sport, dport=dport) / payload)


def fail_busiest_spine(f):
    old = spine_of_flow(f)
    f.fabric.crash(old)
    f.routing.set_view(FabricView(down_switches=frozenset({old})), "test")
    return old


@pytest.mark.parametrize("variant,survives", [("redplane", True), ("noft", False)])
def test_firewall_pinhole_across_failover(variant, survives):
    f = AppFabric("firewall", variant)
    c, s = f.topo.clients()[0], f.topo.servers()[0]
    reply = udp_to(f, s, f.topo.ip_of(c), 80, 5555)
    f.send(s, reply)
    assert f.fabric.inbox[c] == []                       # no pinhole yet: blocked
    f.send(c, udp_to(f, c, f.topo.ip_of(s), 5555, 80))
    assert len(f.fabric.inbox[c]) == 1                   # the echo came back through the pinhole
    fail_busiest_spine(f)
    f.send(s, reply)
    f.advance(f.settings.lease_ms / 1000 + 0.01)
    assert len(f.fabric.inbox[c]) == (2 if survives else 1)


@pytest.mark.parametrize("variant", ["redplane", "noft"])
def test_load_balancer_keeps_connections_on_their_backend(variant):
    f = AppFabric("lb", variant)
    c = f.topo.clients()[0]
    vip = "10.252.0.1"
    conns = range(7000, 7016)

    def backends():
        out = {}
        for server, frames in f.seen.items():
            for frame in frames:
                out.setdefault(Ether(frame)[UDP].sport, set()).add(server)
        return out
    for sport in conns:
        f.send(c, udp_to(f, c, vip, sport, 80))
    before = backends()
    assert all(len(v) == 1 for v in before.values()) and len(before) == len(conns)
    assert {Ether(x)[IP].src for x in f.fabric.inbox[c]} == {vip}
    fail_busiest_spine(f)
    for sport in conns:
        f.send(c, udp_to(f, c, vip, sport, 80))
    f.advance(f.settings.lease_ms / 1000 + 0.01)
    after = backends()
    moved = [sport for sport in conns if len(after[sport]) > 1]
    if variant == "redplane":
        assert moved == []
        assert len(f.fabric.inbox[c]) == 2 * len(conns)
    else:
        assert moved, "without fault tolerance some connections should change backend"


def sketch_estimate(f, spine, flow):
    regs = f.fabric.switches[spine].registry.registers
    return f.app.estimate(regs["SketchIngress.sketch.sk_cnt"].cells, regs["SketchIngress.sketch.sk_base"].cells, flow)


@pytest.mark.parametrize("variant", ["redplane", "noft"])
def test_sketch_snapshots_bound_the_loss_after_failover(variant):
    f = AppFabric("sketch", variant, snapshot_ms=100)
    c, s = f.topo.clients()[0], f.topo.servers()[0]
    flow = (f.topo.ip_of(c), f.topo.ip_of(s), 17, 5555, 80)
    for _ in range(30):
        f.send(c, udp(f, c, s))
    spine = spine_of_flow(f)
    assert sketch_estimate(f, spine, flow) == 30
    f.advance(0.1)                                         # a snapshot: the 30 are in the store
    snapshots = requests(f, protocol.SNAPSHOT)
    assert len(snapshots) == (32 * len(f.topo.spines()) if variant == "redplane" else 0)
    for _ in range(7):
        f.send(c, udp(f, c, s))                            # counted after the snapshot: at risk
    assert sketch_estimate(f, spine, flow) == 37
    f.fabric.crash(spine)
    survivor = [sp for sp in f.topo.spines() if sp != spine][0]
    from testbed.redplane.agent import restore_triggers
    for frame in restore_triggers(f.topo.node(spine).index):
        f.fabric.inject(survivor, frame)
    assert sketch_estimate(f, survivor, flow) == (30 if variant == "redplane" else 0)


def test_s1_checkpoint_recovers_only_flows_from_before_the_checkpoint():
    from testbed.checkpoint import Checkpointer, DictSink
    f = AppFabric("nat", variant="s1")
    c, s = f.topo.clients()[0], f.topo.servers()[0]
    cp = Checkpointer(f.fabric.handles, DictSink())
    f.send(c, udp(f, c, s, sport=1111))                   # before the checkpoint
    spine = spine_of_flow(f)
    cp.checkpoint_all(f.topo.spines())
    f.send(c, udp(f, c, s, sport=2222))                   # after it
    mapped = {(Ether(x)[IP].src, Ether(x)[UDP].sport) for x in f.seen[s]}
    assert len(mapped) == 2
    f.fabric.crash(spine)
    f.routing.set_view(FabricView(down_switches=frozenset({spine})), "test")
    survivor = [sp for sp in f.topo.spines() if sp != spine][0]
    assert cp.restore(spine, survivor) > 0
    before = [(Ether(x)[UDP].sport) for x in f.seen[s]]
    f.send(c, udp(f, c, s, sport=1111))
    f.send(c, udp(f, c, s, sport=2222))
    after = [(Ether(x)[UDP].sport) for x in f.seen[s][2:]]
    assert after[0] == before[0]                          # checkpointed: same public port
    assert after[1] != before[1]                          # created after the checkpoint: remapped


def test_write_centric_counter_replicates_every_packet():
    f = AppFabric("counter")
    c, s = f.topo.clients()[0], f.topo.servers()[0]
    for _ in range(5):
        f.send(c, udp(f, c, s))
    writes = requests(f, protocol.LEASE_RENEW)
    assert [w.seq for w in writes] == [F + 1, F + 2, F + 3, F + 4, F + 5]
    assert [w.value for w in writes] == [1, 2, 3, 4, 5]
    assert len(f.seen[s]) == 5



# --- the four fixes of verification/README.md ----------------------------------------------------
def lease_us(f) -> int:
    return int(f.settings.switch_lease_ms * 1000)


def forward_key(f, client, sport=5555) -> int:
    """The NAT key of the client's flow (its endpoint)."""
    return int(ipaddress.IPv4Address(f.topo.ip_of(client))) << 16 | sport


def test_delayed_grant_of_an_earlier_request_does_not_extend_the_lease(nat):
    """FIX 1: the ack of LEASE_NEW #1 arriving after the switch sent LEASE_NEW #2 is measured
    from #1's echoed send time, not from #2's (the old pending_since rule)."""
    f, c, s = nat
    icpt = Interceptor(f)
    icpt.hold_acks = True
    f.send(c, udp(f, c, s))
    [first] = requests(f, protocol.LEASE_NEW)
    spine, key = spine_of_flow(f), forward_key(f, c)
    f.advance(f.settings.switch_lease_ms / 1000 + 0.1)
    f.send(c, udp(f, c, s, payload=b"again"))          # still no lease: LEASE_NEW #2
    assert len(requests(f, protocol.LEASE_NEW)) == 2 and first.ts == f.clock() - 700_000
    delayed = icpt.acks.pop(0)
    assert Interceptor.message(delayed).ts == first.ts  # the ack echoes its request's ts
    icpt.deliver(delayed)
    regs = flow_regs(f, spine, key)
    assert regs["expiry"] <= first.ts + lease_us(f) < f.clock()
    assert f.stat(spine, STAT_STALE_ACK) == 1 and f.stat(spine, STAT_GRANT) == 0
    assert len(requests(f, protocol.LEASE_NEW)) == 3   # its packet asked again
    icpt.hold_acks = False
    second = requests(f, protocol.LEASE_NEW)[1]
    icpt.deliver(icpt.acks.pop(0))                      # the ack of #2: fresh
    assert flow_regs(f, spine, key)["expiry"] == second.ts + lease_us(f)
    assert f.stat(spine, STAT_GRANT) == 1


def test_renewal_ack_sets_the_lease_from_its_echoed_send_time(nat):
    f, c, s = nat
    f.send(c, udp(f, c, s))
    spine, key = spine_of_flow(f), forward_key(f, c)
    granted = flow_regs(f, spine, key)["expiry"]
    f.advance(f.settings.switch_lease_ms / 1000 * 0.75)    # less than half the lease left
    icpt = Interceptor(f)
    icpt.hold_acks = True
    f.send(c, udp(f, c, s, payload=b"read"))
    [renewal] = [r for r in requests(f, protocol.LEASE_RENEW) if r.seq == 0 and r.key == key]
    assert (renewal.ts, renewal.value) == (f.clock() % 2**32, 0)
    [ack] = [a for a in icpt.acks if Interceptor.message(a).key == key]
    assert Interceptor.message(ack).ts == renewal.ts
    f.advance(0.2)                                          # the ack is late, but fresh
    icpt.deliver(ack)
    assert flow_regs(f, spine, key)["expiry"] == renewal.ts + lease_us(f) > granted
    f.advance(0.5)                                          # a copy L_switch old: stale
    icpt.deliver(ack)
    assert flow_regs(f, spine, key)["expiry"] == renewal.ts + lease_us(f)
    assert f.stat(spine, STAT_STALE_ACK) == 1


def test_ack_to_a_previous_incarnation_is_ignored(nat):
    """FIX 1: a restarted switch ignores an ack whose echoed time is before its boot, even if
    it is less than L_switch old and the switch asked for the same flow since."""
    f, c, s = nat
    icpt = Interceptor(f)
    icpt.hold_acks = True
    f.send(c, udp(f, c, s))
    spine, key = spine_of_flow(f), forward_key(f, c)
    old_ack = icpt.acks.pop(0)
    f.fabric.crash(spine)
    f.advance(0.1)
    f.fabric.restart(spine)
    f.routing.set_view(FabricView(down_switches=frozenset({spine})), "test")
    f.routing.set_view(FabricView(), "test")
    f.configure(spine)
    f.advance(0.1)
    f.send(c, udp(f, c, s, payload=b"reborn"))          # the new incarnation asks too
    assert spine_of_flow(f) == spine and flow_regs(f, spine, key)["seq"] == 0
    icpt.deliver(old_ack)                                # 0.2 s old: fresh by age alone
    assert f.stat(spine, STAT_STALE_ACK) == 1 and f.stat(spine, STAT_GRANT) == 0
    assert flow_regs(f, spine, key)["expiry"] == 0


def test_late_grant_with_an_older_seq_does_not_roll_the_switch_back(nat):
    """FIX 4: two LEASE_NEWs granted in reverse order; the newer grant is installed, the
    switch's lease lapses, then the older grant's ack (still fresh) only sets the lease."""
    f, c, s = nat
    f.send(c, udp(f, c, s))                              # grant F, mapping write F+1
    spine, key = spine_of_flow(f), forward_key(f, c)
    mapped = flow_regs(f, spine, key)["value"]
    f.advance(f.settings.switch_lease_ms / 1000 + 0.1)   # the switch's lease lapses
    icpt = Interceptor(f)
    icpt.hold_requests = True
    f.send(c, udp(f, c, s, payload=b"p1"))               # LEASE_NEW r1
    f.advance(0.3)
    f.send(c, udp(f, c, s, payload=b"p2"))               # LEASE_NEW r2
    r1, r2 = icpt.requests
    icpt.hold_requests = False
    icpt.hold_acks = True
    icpt.answer(r2)                                      # the store sees r2 first: seq 2F+1
    icpt.answer(r1)                                      # then r1: seq 3F+1
    ack_r2, ack_r1 = icpt.acks
    assert [Interceptor.message(a).seq for a in (ack_r2, ack_r1)] == [2 * F + 1, 3 * F + 1]
    icpt.deliver(ack_r1)
    assert flow_regs(f, spine, key)["seq"] == 3 * F + 1
    f.advance(0.35)                                      # r1's lease is over, r2's ack is fresh
    assert flow_regs(f, spine, key)["expiry"] < f.clock()
    icpt.deliver(ack_r2)
    regs = flow_regs(f, spine, key)
    assert (regs["seq"], regs["acked"], regs["value"]) == (3 * F + 1, 3 * F + 1, mapped)
    assert regs["expiry"] == Interceptor.message(r2).ts + lease_us(f) > f.clock()
    assert f.stat(spine, STAT_LEASE_ONLY) == 1
    assert [bytes(Ether(x)[UDP].payload) for x in f.seen[s]] == [b"hello", b"p1", b"p2"]


def test_tail_acks_only_the_latest_write_and_older_outputs_stay_held():
    """FIX 3: a write older than the committed one is not acked, so its output is not
    released; a duplicate of the latest write is acked again."""
    f = AppFabric("counter")
    c, s = f.topo.clients()[0], f.topo.servers()[0]
    f.send(c, udp(f, c, s, payload=b"w1"))               # grant F, write F+1
    icpt = Interceptor(f)
    icpt.hold_requests = True
    f.send(c, udp(f, c, s, payload=b"w2"))               # write F+2
    f.send(c, udp(f, c, s, payload=b"w3"))               # write F+3
    w2, w3 = icpt.requests
    assert [Interceptor.message(w).seq for w in (w2, w3)] == [F + 2, F + 3]
    icpt.hold_requests = False
    icpt.deliver(*icpt.answer(w3))
    assert icpt.answer(w2) == []                         # older than committed: no ack
    icpt.deliver(*icpt.answer(w3))                       # the latest again: acked
    assert [bytes(Ether(x)[UDP].payload) for x in f.seen[s]] == [b"w1", b"w3", b"w3"]
    assert f.stores[0].state.counters["acks_withheld"] == 1


def test_writes_beyond_the_fence_window_are_dropped_and_counted():
    """At most F-1 unacknowledged writes per flow: a grant's fence then covers all of them."""
    f = AppFabric("counter")
    c, s = f.topo.clients()[0], f.topo.servers()[0]
    f.send(c, udp(f, c, s))                              # grant F, write F+1 acked
    spine, key = spine_of_flow(f), forward_key(f, c)
    regs = flow_regs(f, spine, key)
    assert (regs["seq"], regs["acked"]) == (F + 1, F + 1)
    icpt = Interceptor(f)
    icpt.hold_acks = True                                # nothing gets acked from now on
    f.fabric.switches[spine].cli(f"register_write rp_seqs {regs['idx']} {2 * F - 1}")  # F-2 pending
    f.send(c, udp(f, c, s, payload=b"last"))             # F-1 ahead of acked: sent
    f.send(c, udp(f, c, s, payload=b"over"))             # F ahead: dropped
    assert [w.seq for w in requests(f, protocol.LEASE_RENEW)] == [F + 1, 2 * F]
    assert f.stat(spine, STAT_WINDOW_DROP) == 1
    assert flow_regs(f, spine, key)["seq"] == 2 * F
    icpt.deliver(icpt.acks[-1])                          # the ack of 2F: the window moves on
    f.send(c, udp(f, c, s, payload=b"next"))
    assert requests(f, protocol.LEASE_RENEW)[-1].seq == 2 * F + 1
