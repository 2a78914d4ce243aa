from gantry.settings import Settings


def test_defaults_match_the_issue():
    s = Settings()
    assert s.heartbeat_s == 60 and s.max_retries == 3 and s.build_timeout_s == 900


def test_env_overrides_with_types():
    s = Settings.from_env({"GANTRY_HEARTBEAT_S": "1.5", "GANTRY_MAX_RETRIES": "5",
                           "GANTRY_BUILD_MEMORY_BYTES": "268435456", "UNRELATED": "x"})
    assert s.heartbeat_s == 1.5 and s.max_retries == 5 and isinstance(s.max_retries, int)
    assert s.build_memory_bytes == 256 << 20
