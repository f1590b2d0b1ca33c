"""Workload planning as data (no root)."""
import pytest

from p4apps.apps import app_named
from testbed.routing import path_spine
from testbed.topology import LeafSpineTopo
from testbed.workload import default_flows, pin_tcp_paths


def test_default_flows_alternate_uploads_and_downloads():
    flows = default_flows(LeafSpineTopo(), probes=2, tcps=4)
    tcp = [f for f in flows if f.kind == "tcp"]
    assert [f.download for f in tcp] == [False, True, False, True]
    assert len({f.port for f in flows}) == len(flows)


@pytest.mark.parametrize("app_name, variant", [("nat", "redplane"), ("firewall", "noft"), ("lb", "redplane")])
def test_pinned_tcp_flows_cross_the_spines_in_turn(app_name, variant):
    topo, app = LeafSpineTopo(), app_named(app_name)
    flows = pin_tcp_paths(default_flows(topo, probes=2, tcps=4), topo, app, variant)
    tcp = [f for f in flows if f.kind == "tcp"]
    crossed = [path_spine(topo, topo.ip_of(f.client), app.destination(topo, f.server), 6, f.sport, f.port,
                          app.hash_modes(topo, variant), anycast=app.anycast(topo)) for f in tcp]
    assert crossed == ["s1", "s1", "s2", "s2"]       # an upload and a download on each
    assert len({f.sport for f in tcp}) == 4 and all(f.sport >= 40000 for f in tcp)
    assert all(f.sport == 0 for f in flows if f.kind == "probe")


def test_pinning_keeps_the_path_where_the_hash_ignores_ports():
    topo, app = LeafSpineTopo(), app_named("nat")
    flows = pin_tcp_paths(default_flows(topo, probes=0, tcps=2), topo, app, "noft")
    assert [f.sport for f in flows] == [40000, 40001]
