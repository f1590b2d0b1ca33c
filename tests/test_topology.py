"""Topology as data: validation, addressing, ports, and the Mininet export (no root needed)."""
import ipaddress
import json

import pytest

from testbed.errors import ConfigError
from testbed.topology import FabricSpec, LeafSpineTopo, LinkParams, canonical_link_key


@pytest.fixture(scope="module")
def big():
    """4 spines x 8 leaves x 4 hosts."""
    return LeafSpineTopo(spines=4, leaves=8, hosts_per_leaf=4)


@pytest.mark.parametrize("data, message", [
    ({"spines": 0}, "spines: must be >= 1, got 0"),
    ({"leaves": 255}, "leaves: must be <= 254, got 255"),
    ({"hosts_per_leaf": "2"}, "hosts_per_leaf: must be an integer, got '2'"),
    ({"spines": True}, "spines: must be an integer, got True"),
    ({"link": {"loss": 120}}, "link.loss: must be <= 100, got 120"),
    ({"link": {"bw": 0}}, "link.bw: must be > 0, got 0"),
    ({"link": {"delay_ms": -1}}, "link.delay_ms: must be >= 0, got -1"),
    ({"link": {"max_queue": 0}}, "link.max_queue: must be >= 1, got 0"),
    ({"link": {"jitter": 1}}, "link.jitter: unknown key"),
    ({"colour": "red"}, "colour: unknown key"),
    ({"clients": ["h99"]}, "clients[0]: unknown host 'h99'"),
    ({"clients": ["h1"], "stores": ["h2", "h1"]}, "stores[1]: host 'h1' already listed"),
    ({"clients": "h1"}, "clients: must be a list"),
    ({"leaf_roles": [["client", "client"]]}, "leaf_roles: must have one entry per leaf (3)"),
    ({"leaf_roles": [["client"], ["server"], ["store"]]}, "leaf_roles[0]: must have one role"),
    ({"leaf_roles": [["client", "x"], ["server"] * 2, ["store"] * 2]},
     "leaf_roles[0][1]: unknown role 'x'"),
    ({"leaf_roles": [["client"] * 2] * 3, "stores": ["h1"]}, "leaf_roles: cannot be combined"),
    ({"link_overrides": {"l1-s9": {"loss": 1}}}, "link_overrides.l1-s9: no such link"),
    ({"link_overrides": {"h1-l2": {}}}, "link_overrides.h1-l2: no such link"),
    ({"link_overrides": {"s1-s2": {}}}, "link_overrides.s1-s2: a link joins"),
    ({"link_overrides": {"l1-s1": {"loss": -2}}}, "link_overrides.l1-s1.loss: must be >= 0"),
    ({"link_overrides": {"l1-s1": {"bogus": 1}}}, "link_overrides.l1-s1.bogus: unknown key"),
])
def test_validation_errors_name_key_and_value(data, message):
    with pytest.raises(ConfigError) as info:
        FabricSpec.from_dict(data)
    assert message in str(info.value)


def test_spec_round_trips_through_dict_and_json():
    spec = FabricSpec(spines=3, leaves=4, hosts_per_leaf=3, clients=["h1", "h2"],
                      servers=("h4",), stores=["h7", "h10"],
                      link={"bw": 100, "delay_ms": 0.5, "max_queue": 100},
                      link_overrides={"s2-l3": {"loss": 1.5}})
    data = json.loads(json.dumps(spec.to_dict()))
    assert FabricSpec.from_dict(data) == spec
    assert spec.link_params("l3-s2") == LinkParams(bw=100, delay_ms=0.5, loss=1.5, max_queue=100)
    leaf_roles = FabricSpec(leaves=2, hosts_per_leaf=1, leaf_roles=[["client"], ["store"]])
    assert FabricSpec.from_dict(leaf_roles.to_dict()) == leaf_roles
    assert hash(spec) == hash(FabricSpec.from_dict(data))


def test_default_roles_cycle_by_leaf():
    topo = LeafSpineTopo(spines=2, leaves=4, hosts_per_leaf=2)
    assert topo.clients() == ["h1", "h2", "h7", "h8"]
    assert topo.servers() == ["h3", "h4"]
    assert topo.stores() == ["h5", "h6"]


def test_role_lists_and_leaf_roles():
    topo = LeafSpineTopo(leaves=2, hosts_per_leaf=2, clients=["h1"], stores=["h3", "h4"])
    assert (topo.clients(), topo.servers(), topo.stores()) == (["h1"], [], ["h3", "h4"])
    assert topo.role_of("h2") == "none"
    topo = LeafSpineTopo(leaves=2, hosts_per_leaf=2,
                         leaf_roles=[["client", "store"], ["server", "store"]])
    assert topo.stores() == ["h2", "h4"] and topo.servers() == ["h3"]


def test_names_and_counts(big):
    assert big.spines() == [f"s{i}" for i in range(1, 5)]
    assert big.leaves() == [f"l{i}" for i in range(1, 9)]
    assert big.hosts() == [f"h{i}" for i in range(1, 33)]
    assert len(big.links()) == 32 + 4 * 8
    assert big.hosts_of_leaf("l3") == ["h9", "h10", "h11", "h12"]
    assert big.leaf_of("h12") == "l3"


def test_addresses_are_deterministic_and_unique(big):
    ips = [big.ip_of(n) for n in big.nodes()]
    assert len(set(ips)) == len(ips)
    macs = [big.mac_of(n) for n in big.nodes()]
    macs += [big.mac_of(s, p) for s in big.switches() for p in range(1, len(big.neighbours(s)) + 1)]
    assert len(set(macs)) == len(macs)
    assert all(int(m.split(":")[0], 16) & 0x02 for m in macs)  # locally administered
    again = LeafSpineTopo(spines=4, leaves=8, hosts_per_leaf=4)
    assert again.describe() == big.describe()


def test_addressing_plan(big):
    assert big.ip_of("h10") == "10.0.3.3"
    assert big.subnet_of("l3") == "10.0.3.0/24"
    assert big.mac_of("h10") == "02:00:0a:00:03:03"
    assert big.gateway_of("h10") == ("10.0.3.1", big.mac_of("l3", 2))
    assert big.redplane_ip("s4") == "10.255.0.4"
    assert big.ip_of("l8") == "10.254.0.8"
    assert big.dpid_of("s2") == "0000000000000002" and big.device_id_of("l1") == 257
    for host in big.hosts():
        net = ipaddress.ip_network(big.subnet_of(big.leaf_of(host)))
        assert ipaddress.ip_address(big.ip_of(host)) in net
        assert ipaddress.ip_address(big.gateway_of(host)[0]) in net


def test_ports_consistent_in_both_directions(big):
    for link in big.links():
        assert big.port_of(link.node1, link.node2) == link.port1
        assert big.port_of(link.node2, link.node1) == link.port2
        assert big.peer_of_port(link.node1, link.port1) == link.node2
        assert big.peer_of_port(link.node2, link.port2) == link.node1
        assert link.intf1 == f"{link.node1}-eth{link.port1}"
    for node in big.nodes():
        ports = [big.port_of(node, n) for n in big.neighbours(node)]
        first = 0 if big.node(node).kind == "host" else 1
        assert ports == list(range(first, first + len(ports)))


def test_port_order_hosts_then_spines(big):
    assert big.neighbours("l2") == ["h5", "h6", "h7", "h8", "s1", "s2", "s3", "s4"]
    assert big.neighbours("s3") == [f"l{i}" for i in range(1, 9)]
    assert [(u.node2, u.port1, u.port2) for u in big.uplinks("l2")] == \
        [("s1", 5, 2), ("s2", 6, 2), ("s3", 7, 2), ("s4", 8, 2)]
    assert big.intf_of("h1", "l1") == "h1-eth0"


def test_lookups_reject_unknown_nodes(big):
    with pytest.raises(ConfigError, match="node: unknown node 'x9'"):
        big.ip_of("x9")
    with pytest.raises(ConfigError, match="is a spine, expected a leaf"):
        big.subnet_of("s1")
    with pytest.raises(ConfigError, match="not adjacent"):
        big.port_of("l1", "l2")


def test_link_keys_are_canonical():
    assert canonical_link_key("k", "s2-l1") == "l1-s2"
    assert canonical_link_key("k", "l1-h1") == "h1-l1"
    topo = LeafSpineTopo(spines=2, leaves=2, hosts_per_leaf=1)
    assert topo.link_by_key("s2-l1").key == "l1-s2"


def test_mininet_export_matches_data():
    topo = LeafSpineTopo(spines=2, leaves=2, hosts_per_leaf=2, link={"bw": 10},
                         link_overrides={"l1-s1": {"delay_ms": 2}})
    mn = topo.mininet_topo()
    assert set(mn.switches()) == {"s1", "s2", "l1", "l2"}
    assert set(mn.hosts()) == {"h1", "h2", "h3", "h4"}
    assert mn.port("l1", "s2") == (topo.port_of("l1", "s2"), topo.port_of("s2", "l1"))
    info = mn.linkInfo("l1", "s1")
    assert info["intfName1"] == "l1-eth3" and info["delay"] == "2ms" and info["bw"] == 10
    assert mn.nodeInfo("h3")["ip"] == "10.0.2.2/24"
    assert "ip" not in mn.nodeInfo("s1")
