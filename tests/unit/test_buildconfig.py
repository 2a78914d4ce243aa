import pytest

from gantry.actors.build.buildconfig import ConfigError, load


def write(tmp_path, text):
    (tmp_path / "gantry.toml").write_text(text)
    return tmp_path


def test_valid_config(tmp_path):
    cfg = load(write(tmp_path, '[build]\ncommand = "make"\noutput = "dist"\ntimeout = 60\n'), 900, 3600)
    assert (cfg.command, cfg.output, cfg.timeout_s) == ("make", "dist", 60.0)


def test_default_timeout(tmp_path):
    assert load(write(tmp_path, '[build]\ncommand = "make"\noutput = "out"\n'), 900, 3600).timeout_s == 900


@pytest.mark.parametrize("text,message", [
    (None, "not found"),
    ("[build\n", "not valid TOML"),
    ("[deploy]\nstart='x'\n", "no [build]"),
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
        load(tmp_path, 900, 3600)


def test_deploy_hooks_are_read_when_present(tmp_path):
    cfg = load(write(tmp_path, '[build]\ncommand = "make"\noutput = "d"\n[deploy]\nstart = "./run"\nhealth = "./check"\n'),
               900, 3600)
    assert (cfg.deploy_start, cfg.deploy_health) == ("./run", "./check")
    assert load(write(tmp_path, '[build]\ncommand = "make"\noutput = "d"\n'), 900, 3600).deploy_start == ""
    with pytest.raises(ConfigError, match="deploy"):
        load(write(tmp_path, '[build]\ncommand = "m"\noutput = "d"\n[deploy]\nstart = 3\n'), 900, 3600)
