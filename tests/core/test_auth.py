import time

import jwt
import pytest

from gantry import auth

S = "k" * 32


def test_round_trip():
    p = auth.verify(S, "Bearer " + auth.issue(S, "alice", ["web", "api"]))
    assert p.user == "alice" and p.may_access("web") and not p.may_access("db") and not p.admin


def test_admin_may_access_everything():
    assert auth.verify(S, "Bearer " + auth.issue(S, "root", admin=True)).may_access("anything")


@pytest.mark.parametrize("header,why", [
    (None, "missing"), ("Basic abc", "missing"), ("Bearer nonsense", "invalid token"),
])
def test_bad_headers(header, why):
    with pytest.raises(ValueError, match=why):
        auth.verify(S, header)


def test_wrong_secret_and_expired():
    with pytest.raises(ValueError, match="invalid token"):
        auth.verify("o" * 32, "Bearer " + auth.issue(S, "alice"))
    old = jwt.encode({"sub": "a", "exp": int(time.time()) - 10}, S, algorithm="HS256")
    with pytest.raises(ValueError, match="expired"):
        auth.verify(S, "Bearer " + old)


def test_a_host_token_binds_its_host_and_datacenter_and_is_no_admin():
    who = auth.verify(S, "Bearer " + auth.issue_host(S, "edge-1", "eu-west-a"))
    assert (who.host, who.host_id, who.dc, who.admin, who.projects) == (True, "edge-1", "eu-west-a", False, frozenset())
    unbound = jwt.encode({"sub": "h", "host": True, "admin": True, "exp": 4_000_000_000}, S, algorithm="HS256")
    with pytest.raises(ValueError, match="names its hostID and dc"):
        auth.verify(S, "Bearer " + unbound)
    with pytest.raises(ValueError):
        auth.issue_host(S, "a/b", "eu-west-a")
