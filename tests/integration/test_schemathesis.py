"""Schemathesis against /openapi.json on the live stack: generated requests to every route may be
refused (4xx) but never crash the API (5xx) or answer outside the documented schema."""
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks as sc
from schemathesis.specs.openapi import checks as oc

from gantry.auth import issue

MAX_EXAMPLES = 15
CHECKS = [sc.not_a_server_error, oc.status_code_conformance, oc.content_type_conformance,
          oc.response_schema_conformance, oc.response_headers_conformance]


def test_openapi_contract_holds_on_the_live_api(stack, api, new_project):
    name, _, _ = new_project("mkdir -p dist && echo ok > dist/ok")
    admin = issue(stack.config().jwt_secret(), "schemathesis", admin=True)
    # Archiving or collecting garbage with an admin token would touch every other test's builds on this shared stack;
    # a project token still exercises the route's validation and its refusal.
    member = issue(stack.config().jwt_secret(), "schemathesis-member", [name])
    verify = stack.config().ca_file or True   # requests' verify=: the stack's CA
    schema = schemathesis.openapi.from_url(f"{stack.config().api_url}/openapi.json", verify=verify)
    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.startswith("/dc/"):  # the hosts' gateway: host tokens, covered by the deploy tests
            continue
        strategy = operation.as_strategy()

        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            if "projectName" in (case.path_parameters or {}):
                case.path_parameters["projectName"] = name
            token = member if operation.path in ("/admin/archive", "/admin/gc") else admin
            response = case.call(verify=verify, headers={"Authorization": f"Bearer {token}"}, timeout=30)
            case.validate_response(response, checks=CHECKS)

        given(case=strategy)(run)()
        ran += 1
    assert ran >= 15
