"""The routing control plane and failure detection, on an in-process 2-spine, 3-leaf fabric."""
import pytest
from scapy.all import ARP, IP, UDP, Ether

from testbed.fabric_sim import InProcessFabric
from testbed.liveness import LivenessMonitor, MonitorSettings
from testbed.routing import FabricView, RoutingController, compute_config
from testbed.topology import LeafSpineTopo


@pytest.fixture
def net():
    topo = LeafSpineTopo(spines=2, leaves=3, hosts_per_leaf=2)
    fab = InProcessFabric(topo)
    ctl = RoutingController(topo, fab.handles)
    ctl.program_all()
    mon = LivenessMonitor(topo, fab.inject, fab.read_rx, MonitorSettings(interval=0.01, multiplier=3))
    return topo, fab, ctl, mon


def udp(topo, src, dst, sport=1234, dport=80):
    _, gw_mac = topo.gateway_of(src)
    return bytes(Ether(src=topo.mac_of(src), dst=gw_mac) / IP(src=topo.ip_of(src), dst=topo.ip_of(dst))
                 / UDP(sport=sport, dport=dport) / b"payload")


def delivered(topo, fab, src, dst, sport=1234):
    for box in fab.inbox.values():
        box.clear()
    fab.host_send(src, udp(topo, src, dst, sport))
    got = fab.inbox[dst]
    return len(got) == 1 and Ether(got[0])[IP].dst == topo.ip_of(dst)


def all_pairs(topo, fab, sport=1234):
    return [(a, b) for a in topo.hosts() for b in topo.hosts()
            if a != b and not delivered(topo, fab, a, b, sport)]


def settle(ctl, mon, rounds):
    for _ in range(rounds):
        view = mon.round()
        if view != ctl.view:
            ctl.set_view(view, "monitor")
    return ctl.view


def test_every_host_reaches_every_other(net):
    topo, fab, ctl, mon = net
    assert all_pairs(topo, fab) == []


def test_forwarded_packet_has_router_macs_and_lower_ttl(net):
    topo, fab, ctl, mon = net
    fab.host_send("h1", udp(topo, "h1", "h3"))
    pkt = Ether(fab.inbox["h3"][0])
    assert pkt.dst == topo.mac_of("h3")
    assert pkt.src == topo.mac_of("l2", topo.port_of("l2", "h3"))
    assert pkt[IP].ttl == 64 - 3            # leaf, spine, leaf
    rebuilt = IP(bytes(pkt[IP]))
    del rebuilt.chksum
    assert pkt[IP].chksum == IP(bytes(rebuilt)).chksum


def test_ecmp_spreads_flows_over_both_spines(net):
    topo, fab, ctl, mon = net
    before = {s: fab.switches[s].stats.received for s in topo.spines()}
    for sport in range(1000, 1100):
        assert delivered(topo, fab, "h1", "h3", sport)
    used = {s: fab.switches[s].stats.received - before[s] for s in topo.spines()}
    assert sum(used.values()) == 100
    assert min(used.values()) >= 25, used


def test_proxy_arp_answers_for_the_gateway(net):
    topo, fab, ctl, mon = net
    gw_ip, gw_mac = topo.gateway_of("h1")
    req = Ether(src=topo.mac_of("h1"), dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=topo.mac_of("h1"), psrc=topo.ip_of("h1"), pdst=gw_ip)
    fab.host_send("h1", bytes(req))
    reply = Ether(fab.inbox["h1"][0])
    assert reply[ARP].op == 2 and reply[ARP].psrc == gw_ip and reply[ARP].hwsrc == gw_mac
    assert reply[ARP].pdst == topo.ip_of("h1")


def test_spine_crash_is_detected_and_routed_around(net):
    topo, fab, ctl, mon = net
    settle(ctl, mon, 5)
    fab.crash("s1")
    rounds = 0
    while "s1" not in ctl.view.down_switches:
        settle(ctl, mon, 1)
        rounds += 1
        assert rounds <= 2
    assert all_pairs(topo, fab, sport=4242) == []
    assert any(e.kind == "reprogrammed" for e in ctl.events if e.subject.startswith("l"))


def test_link_failure_is_detected_within_the_multiplier(net):
    topo, fab, ctl, mon = net
    settle(ctl, mon, 5)
    fab.link_down("l1-s1")
    rounds = 0
    while "l1-s1" not in ctl.view.down_links:
        settle(ctl, mon, 1)
        rounds += 1
        assert rounds <= mon.settings.multiplier + 1
    assert all_pairs(topo, fab, sport=777) == []
    cfg = compute_config(topo, ctl.view)
    assert all(action[1] != topo.port_of("l1", "s1") for action in cfg["l1"].members.values())


def test_restarted_spine_comes_back_empty_and_is_used_again(net):
    topo, fab, ctl, mon = net
    settle(ctl, mon, 5)
    fab.crash("s2")
    settle(ctl, mon, 5)
    fab.restart("s2")
    assert fab.switches["s2"].registry.tables["SpineIngress.routing.ipv4_lpm"].entries == {}
    settle(ctl, mon, 8)
    assert ctl.view == FabricView()
    before = fab.switches["s2"].stats.received
    for sport in range(2000, 2040):
        assert delivered(topo, fab, "h1", "h5", sport)
    assert fab.switches["s2"].stats.received - before >= 10


def test_link_recovery_restores_both_spines(net):
    topo, fab, ctl, mon = net
    settle(ctl, mon, 5)
    fab.link_down("l2-s2")
    settle(ctl, mon, 5)
    assert "l2-s2" in ctl.view.down_links
    fab.link_up("l2-s2")
    settle(ctl, mon, 5)
    assert ctl.view.down_links == frozenset()
    assert compute_config(topo, ctl.view)["l1"].lpm[topo.subnet_of("l2")] == ("to_group", 2, 2, 0)


def test_python_ecmp_replica_predicts_the_spine(net):
    from testbed.routing import path_spine
    topo, fab, ctl, mon = net
    for sport in range(3000, 3030):
        before = {s: fab.switches[s].stats.received for s in topo.spines()}
        assert delivered(topo, fab, "h1", "h3", sport)
        used = [s for s in topo.spines() if fab.switches[s].stats.received > before[s]]
        assert used == [path_spine(topo, topo.ip_of("h1"), topo.ip_of("h3"), 17, sport, 80)]
