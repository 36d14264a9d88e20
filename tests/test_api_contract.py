"""The answers the fuzzer (tests/test_fuzz.py) holds the API to, each asserted directly: every refusal in JSON with
a code, bad query parameters named, a number where a string belongs refused, and a schema that documents all of
it (contactcenter/api.py: AutoSchema, valid(), exception_handler, not_found)."""

from __future__ import annotations

import json
import uuid

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_drf_s_own_refusals_carry_a_code():
    response = APIClient().get("/api/v1/customers/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided.", "code": "not_authenticated"}


def test_a_url_no_route_matches_is_a_json_404_under_api_and_a_page_elsewhere(api):
    for url in ("/api/v1/customers/null,null/", "/api/v1/interactions/1/", "/api/v1/customers/x/export/",
                "/api/v1/no-such-thing/"):
        response = api.get(url)
        assert response.status_code == 404 and response["Content-Type"] == "application/json", url
        assert response.json() == {"detail": "no such resource", "code": "not_found"}, url
    page = APIClient().get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


def test_a_number_where_a_string_belongs_is_refused_not_converted(api):
    response = api.post("/api/v1/customers/", json.dumps({"display_name": 12}), content_type="application/json")
    assert response.status_code == 400 and response.json() == {"display_name": ["Not a valid string."]}
    response = api.post("/api/v1/interactions/", json.dumps({"channel": "chat", "customer_id": 0}),
                        content_type="application/json")
    assert response.status_code == 400 and response.json() == {"customer_id": ["Not a valid string."]}
    nested = api.post("/api/v1/interactions/", json.dumps({"channel": "chat", "identity": {"kind": "email",
                                                                                             "value": 5}}),
                      content_type="application/json")
    assert nested.status_code == 400 and nested.json() == {"identity": {"value": ["Not a valid string."]}}


def test_a_query_parameter_given_twice_is_named_and_one_given_empty_is_not_given(api):
    twice = api.get("/api/v1/customers/?page_size=1&page_size=2")
    assert twice.status_code == 400 and twice.json()["field"] == "page_size"
    customer = api.post("/api/v1/customers/", json.dumps({"display_name": "Ada"}),
                        content_type="application/json").json()["id"]
    timeline = f"/api/v1/customers/{customer}/timeline/"
    twice = api.get(f"{timeline}?since=2026-01-01T00:00:00Z&since=2026-02-01T00:00:00Z")
    assert twice.status_code == 400 and twice.json() == {"since": ["give this parameter once"]}
    assert api.get(f"{timeline}?until=&event_type=").json() == api.get(timeline).json()
    assert api.get("/api/v1/followups/?customer_id=").status_code == 200
    unknown = api.get(f"{timeline}?event_type=nope")
    assert unknown.status_code == 400 and unknown.json() == {"event_type": ["unknown event type 'nope'"]}


def test_a_cursor_we_did_not_hand_out_is_a_404_naming_it(api):
    response = api.get("/api/v1/customers/?cursor=not*a*cursor")
    assert response.status_code == 404
    assert response.json()["code"] == "invalid_cursor" and response.json()["field"] == "cursor"


def test_the_kpi_report_names_a_bad_format_and_refuses_in_json_even_for_csv(staff_api):
    bad = staff_api.get("/api/v1/reports/kpis/?metric=aht&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z"
                        "&format=xml")
    assert bad.status_code == 400 and bad.json()["field"] == "format"
    refused = staff_api.get("/api/v1/reports/kpis/?metric=aht&format=csv")
    assert refused.status_code == 400 and refused["Content-Type"] == "application/json"
    assert "from" in refused.json()
    rows = staff_api.get("/api/v1/reports/kpis/?metric=aht&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z"
                         "&format=csv")
    assert rows.status_code == 200 and rows["Content-Type"].startswith("text/csv")


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


def test_every_operation_documents_its_refusals(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"400", "401", "429", "503"} <= codes, (method, path, codes)
            if "{" in path or "requestBody" in operation:
                assert "404" in codes, (method, path)
            if method != "get":
                assert {"409", "422"} <= codes or "webhook" in path, (method, path)
            if "requestBody" in operation:
                assert {"413", "415"} <= codes, (method, path)
            for code, answer in operation["responses"].items():
                if code >= "400" and answer.get("content"):
                    assert list(answer["content"]) == ["application/json"], (method, path, code)


def test_the_schema_states_the_rules_valid_enforces(schema):
    components = schema["components"]["schemas"]
    register = components["RegisterCustomerInput"]
    assert register["additionalProperties"] is False  # unknown fields are refused
    assert register["properties"]["display_name"]["minLength"] == 1 and "pattern" in register["properties"][
        "display_name"]  # not blank, even after trimming
    assert register["properties"]["phone"]["pattern"].startswith("^\\+?")  # its own pattern kept
    assert components["CreateInteractionInput"]["oneOf"] == [{"required": ["customer_id"]}, {"required": ["identity"]}]
    assert components["PatchedChangeCustomerInput"]["required"] == ["expected_version"]
    assert set(components["FieldErrors"]) >= {"type", "additionalProperties"}
    assert components["Error"]["required"] == ["code", "detail"]
    bad_input = schema["paths"]["/api/v1/customers/"]["post"]["responses"]["400"]["content"]["application/json"]
    assert bad_input["schema"] == {"oneOf": [{"$ref": "#/components/schemas/Error"},
                                             {"$ref": "#/components/schemas/FieldErrors"}]}
    page_size = schema["paths"]["/api/v1/customers/"]["get"]["parameters"][1]
    assert page_size["schema"] == {"type": "integer", "minimum": 1} and page_size["allowEmptyValue"] is True


def test_a_valid_uuid_of_nobody_s_customer_is_still_the_scope_404(api):
    response = api.get(f"/api/v1/customers/{uuid.uuid4()}/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
