"""What `gantry up` starts in a home that ran a stack before (cluster/shape.py)."""
import pytest

from gantry.cluster.shape import BuilderSpec, HostSpec, Shape, to_start

RAN = Shape(api_port=8123, regions=["us", "eu"], builders=[BuilderSpec(2.0, 2048), BuilderSpec(1.0, 1024)],
            hosts=[HostSpec("us-a-h0", "us", "us-a"), HostSpec("eu-a-h0", "eu", "eu-a"),
                   HostSpec("web-9", "eu", "eu-a", projects=("web",), max_down_mbps=8)], s3_bwlimit_mbps=5)


def test_a_new_home_gets_the_defaults():
    s = to_start(None, memory_mb_per_cpu=4096)
    assert (s.api_port, s.regions, s.builders) == (8000, ["us-east", "eu-west", "ap-south"], [BuilderSpec(1.0, 4096)])
    assert len(s.hosts) == 12 and s.hosts[0] == HostSpec("us-east-a-h0", "us-east", "us-east-a")
    assert not s.plain_http   # TLS unless asked otherwise


def test_up_with_no_flag_brings_back_what_the_home_ran(tmp_path):
    """A stack of 2 regions x 3 hosts, killed mid-deployment, came back as 3 regions x 4 hosts on
    another API port."""
    RAN.save(tmp_path / "shape.json")
    was = Shape.load(tmp_path / "shape.json")
    assert was == RAN and to_start(was) == RAN   # ports, regions, builders' sizes, added hosts and their flags
    plain = to_start(RAN, plain_http=True)
    plain.save(tmp_path / "shape.json")
    assert to_start(Shape.load(tmp_path / "shape.json")).plain_http   # plain HTTP stays asked for...
    assert not to_start(plain, plain_http=False).plain_http           # ...until TLS is asked for again


def test_a_flag_overrides_only_its_part():
    s = to_start(RAN, api_port=9000, regions=("us",), builders=3, builder_cpus=0.5)
    assert s.api_port == 9000 and s.regions == ["us"] and s.builders == [BuilderSpec(0.5, 2048)] * 3
    assert s.hosts == [HostSpec("us-a-h0", "us", "us-a")]   # the hosts of a region left out go with it
    assert to_start(RAN, hosts_per_dc=1).hosts == [HostSpec("us-a-h0", "us", "us-a"), HostSpec("eu-a-h0", "eu", "eu-a")]


def test_a_shape_file_that_says_nothing_usable_is_a_clear_error(tmp_path):
    (tmp_path / "shape.json").write_text('{"regions": ["us"]}')
    with pytest.raises(ValueError, match="does not say what the stack was"):
        Shape.load(tmp_path / "shape.json")
    (tmp_path / "shape.json").write_text("{not json")
    with pytest.raises(ValueError, match="does not say what the stack was"):
        Shape.load(tmp_path / "shape.json")
    assert Shape.load(tmp_path / "none.json") is None


def test_a_running_stacks_shape_is_what_its_processes_were_started_as():
    from gantry.topology import Region, StackConfig
    cfg = StackConfig(home="/h", redis_url="", regions=[Region("us", "", ""), Region("eu", "", "")], s3_access_key="",
                      s3_secret_key="", jwt_secret_file="", api_url="https://127.0.0.1:8123", ca_file="/h/tls/ca.pem")
    pids = {"redis": {"pid": 1}, "s3-us": {"pid": 2, "bwlimit_mbps": 5},
            "ray-builder-0": {"pid": 3, "builder": {"cpus": 2.0, "memory_mb": 2048}},
            "ray-builder-1": {"pid": 4, "builder": {"cpus": 1.0, "memory_mb": 1024}},
            "host-us-a-h0": {"pid": 5, "host": True, "spec": {"host_id": "us-a-h0", "region": "us", "dc": "us-a",
                                                              "projects": [], "max_up_mbps": 0, "max_down_mbps": 0,
                                                              "peers": True}},
            "host-eu-a-h0": {"pid": 6, "host": True, "spec": {"host_id": "eu-a-h0", "region": "eu", "dc": "eu-a",
                                                              "projects": [], "max_up_mbps": 0, "max_down_mbps": 0,
                                                              "peers": True}},
            "host-web-9": {"pid": 7, "host": True, "spec": {"host_id": "web-9", "region": "eu", "dc": "eu-a",
                                                            "projects": ["web"], "max_up_mbps": 0, "max_down_mbps": 8,
                                                            "peers": True}}}
    assert Shape.of(cfg, pids) == Shape(api_port=8123, regions=["us", "eu"], builders=RAN.builders,
                                        hosts=sorted(RAN.hosts, key=lambda h: f"host-{h.host_id}"), s3_bwlimit_mbps=5)
    plain = StackConfig(**{**cfg.__dict__, "ca_file": "", "api_url": "http://127.0.0.1:8123"})
    assert Shape.of(plain, pids).plain_http and not Shape.of(cfg, pids).plain_http
