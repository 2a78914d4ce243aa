"""ray-cluster.yaml must offer the resources the code schedules on."""
from pathlib import Path

import yaml

from gantry.cluster.shape import DEFAULT_REGIONS
from gantry.constants import BUILD_CPU, BUILD_MEMORY, BUILDER_RESOURCE, HEAD_RESOURCE, region_resource

CONFIG = yaml.safe_load((Path(__file__).parents[2] / "ray-cluster.yaml").read_text())
TYPES = CONFIG["available_node_types"]


def test_head_offers_the_control_resource():
    head = TYPES[CONFIG["head_node_type"]]
    assert head["resources"].get(HEAD_RESOURCE, 0) >= 1
    assert any(HEAD_RESOURCE in cmd for cmd in CONFIG["head_start_ray_commands"])


def test_builders_offer_cpus_and_memory_to_builds():
    builders = [t for t in TYPES.values() if BUILDER_RESOURCE in t["resources"]]
    assert builders and all(t["resources"][BUILDER_RESOURCE] == 1 for t in builders)
    for t in builders:   # a default build fits, and the node keeps a cpu of its own
        assert 1 <= t["resources"][BUILD_CPU] < t["resources"]["CPU"] and t["resources"][BUILD_MEMORY] >= 4096
    assert sum(t.get("min_workers", 0) for t in builders) >= 2  # a lost builder's build can re-run


def test_every_default_region_has_its_node_type():
    for region in DEFAULT_REGIONS:
        assert TYPES[f"region-{region}"]["resources"].get(region_resource(region), 0) >= 1


def test_setup_installs_gantry_and_the_sandbox():
    setup = " ".join(CONFIG["setup_commands"])
    assert "bubblewrap" in setup and "pip install" in setup and "gantry" in setup


def test_the_head_gets_the_environment_the_api_needs():
    """What `gantry up` gives its Ray nodes for the API (direct ingress on 8000, the proxy's
    body limits, the API's code on the replica's loop), the real cluster's head gets too."""
    from gantry.cluster.serve_api import api_env
    head = " ".join(CONFIG["head_start_ray_commands"])
    assert all(f"{k}={v}" in head for k, v in api_env("https://gantry.example:8000").items()), head
