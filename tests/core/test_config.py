import pytest

from gantry.settings import Settings


def test_defaults_match_the_issue():
    s = Settings()
    assert s.heartbeat_s == 60 and s.max_retries == 3 and s.build_timeout_s == 900


def test_env_overrides_with_types(monkeypatch):
    for k, v in {"GANTRY_HEARTBEAT_S": "1.5", "GANTRY_MAX_RETRIES": "5", "GANTRY_BUILD_MEMORY_BYTES": "2.68435456e8",
                 "UNRELATED": "x"}.items():
        monkeypatch.setenv(k, v)
    s = Settings()
    assert s.heartbeat_s == 1.5 and s.max_retries == 5 and isinstance(s.max_retries, int)
    assert s.build_memory_bytes == 256 << 20


def test_a_bad_value_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("GANTRY_MAX_RETRIES", "many")
    with pytest.raises(ValueError, match="max_retries"):
        Settings()
