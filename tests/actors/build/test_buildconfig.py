import pytest

from gantry.actors.build.buildconfig import Bounds, ConfigError, check_build, load

B = Bounds(900, 3600)


def write(tmp_path, text):
    (tmp_path / "gantry.toml").write_text(text)
    return tmp_path


def test_valid_config(tmp_path):
    cfg = load(write(tmp_path, '[build]\ncommand = "make"\noutput = "dist"\ntimeout = 60\n'), B)
    assert (cfg.command, cfg.output, cfg.timeout_s) == ("make", "dist", 60.0)


def test_default_timeout(tmp_path):
    assert load(write(tmp_path, '[build]\ncommand = "make"\noutput = "out"\n'), B).timeout_s == 900


@pytest.mark.parametrize("text,message", [
    (None, "has no gantry.toml"),
    ("[build\n", "not valid TOML"),
    ("[deploy]\nstart='x'\n", "build command is missing"),
    ('[build]\noutput = "dist"\n', "command"),
    ('[build]\ncommand = "make"\n', "output"),
    ('[build]\ncommand = "make"\noutput = "/etc"\n', "inside the repository"),
    ('[build]\ncommand = "make"\noutput = "../x"\n', "inside the repository"),
    ('[build]\ncommand = "make"\noutput = "d"\ntimeout = -1\n', "timeout"),
    ('[build]\ncommand = "make"\noutput = "d"\ntimeout = 99999\n', "timeout"),
    ('[build]\ncommand = "make"\noutput = "d"\ntimeout = "soon"\n', "timeout"),
])
def test_invalid_configs_say_why(tmp_path, text, message):
    if text is not None:
        write(tmp_path, text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(tmp_path, B)


def test_deploy_hooks_are_read_when_present(tmp_path):
    cfg = load(write(tmp_path, '[build]\ncommand = "make"\noutput = "d"\n[deploy]\nstart = "./run"\nhealth = "./check"\n'), B)
    assert (cfg.deploy_start, cfg.deploy_health) == ("./run", "./check")
    assert load(write(tmp_path, '[build]\ncommand = "make"\noutput = "d"\n'), B).deploy_start == ""
    with pytest.raises(ConfigError, match="deploy"):
        load(write(tmp_path, '[build]\ncommand = "m"\noutput = "d"\n[deploy]\nstart = 3\n'), B)


PROJECT = ({"command": "make", "output": "out", "cache": ["~/.ccache"], "cpus": 2.0}, {"health": "./ok"})


def test_a_commit_without_gantry_toml_builds_from_the_project_settings(tmp_path):
    cfg = load(tmp_path, B, PROJECT)
    assert (cfg.command, cfg.output, cfg.cache, cfg.cpus, cfg.deploy_health, cfg.source) == \
        ("make", "out", ("~/.ccache",), 2.0, "./ok", "project")
    assert cfg.timeout_s == 900 and cfg.fetch == "" and not cfg.submodules


def test_gantry_toml_wins_field_by_field(tmp_path):
    write(tmp_path, '[build]\ncommand = "make all"\nfetch = "true"\n')
    cfg = load(tmp_path, B, PROJECT)
    assert (cfg.command, cfg.output, cfg.fetch, cfg.cpus, cfg.source) == ("make all", "out", "true", 2.0, "both")
    write(tmp_path, '[build]\ncommand = "m"\noutput = "o"\ncache = []\ncpus = 1\n[deploy]\nhealth = "x"\n')
    cfg = load(tmp_path, B, PROJECT)
    assert (cfg.output, cfg.cache, cfg.cpus, cfg.deploy_health, cfg.source) == ("o", (), 1.0, "x", "gantry.toml")


def test_no_gantry_toml_and_no_project_settings_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="no gantry.toml and the project sets no `build`"):
        load(tmp_path, B)


@pytest.mark.parametrize("table,message", [
    ({"cache": ["../up"]}, "inside the checkout"),
    ({"cache": ["/etc"]}, "inside the checkout"),
    ({"cache": ["~/../../root"]}, "inside the checkout"),
    ({"cache": ["."]}, "inside the checkout"),
    ({"cache": "ccache"}, "list"),
    ({"cache": ["a"] * 17}, "list"),
    ({"cpus": 0}, "cpus"),
    ({"cpus": 1000}, "cpus"),
    ({"cpus": True}, "cpus"),
    ({"memoryMB": 1.5}, "memoryMB"),
    ({"memoryMB": 8}, "memoryMB"),
    ({"submodules": "yes"}, "submodules"),
    ({"fetch": 3}, "fetch"),
    ({"egressAllow": ["x"]}, "unknown build keys"),
])
def test_bad_build_settings_say_which_key(table, message):
    with pytest.raises(ConfigError, match=message):
        check_build(table, "here", B)
