"""The OpenAPI document: valid OpenAPI 3.1, served without a token, and describing exactly
the API's routes (every route under /api/v1 with its methods, and nothing else)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from openapi_spec_validator import validate

from paas.settings import Settings
from paas.web.app import create_app
from paas.web.openapi import DOCUMENT
from paas.wiring import services

PREFIX = "/api/v1"
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


class NoQueue:
    """Nothing is queued here: no request in these tests gets past authentication."""

    def enqueue_deploy(self, build_id: str) -> None:
        raise AssertionError(build_id)

    def enqueue_reconcile(self, app: str) -> None:
        raise AssertionError(app)

    def enqueue_operation(self, op_id: str) -> None:
        raise AssertionError(op_id)


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    """The API over services whose Redis client never connects (nothing here needs one)."""
    settings = Settings.from_env({"PAAS_ROOT": str(tmp_path)})
    return create_app(services(settings, queue=NoQueue()))


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"].startswith("3.1.")
    validate(DOCUMENT)


def test_every_route_is_documented_with_its_methods_and_nothing_else(app: Flask) -> None:
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(f"{PREFIX}/"):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule[len(PREFIX) :])
            routes.setdefault(path, set()).update((rule.methods or set()) & METHODS)
    documented = {
        path: {method.upper() for method in item if method.upper() in METHODS}
        for path, item in DOCUMENT["paths"].items()
    }
    assert routes == documented


def test_every_protected_operation_documents_401_and_the_error_answers_are_errors() -> None:
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method.upper() not in METHODS:
                continue
            public = operation.get("security") == []
            assert public != ("401" in operation["responses"]), (method, path)
    for response in DOCUMENT["components"]["responses"].values():
        schema = response["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}


def test_the_document_is_served_without_a_token(app: Flask) -> None:
    answer = app.test_client().get(f"{PREFIX}/openapi.json")
    assert answer.status_code == 200
    assert answer.get_json() == DOCUMENT


def test_the_rest_of_the_api_still_wants_a_token(app: Flask) -> None:
    answer = app.test_client().get(f"{PREFIX}/apps", headers={"Authorization": "Bearer "})
    assert answer.status_code == 401
    assert answer.get_json()["error"] == "unauthorized"
