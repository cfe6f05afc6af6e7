import pytest

from paas.appjson import EMPTY, HealthCheck, parse_app_json
from paas.errors import InvalidInput


def test_missing_file_is_empty() -> None:
    assert parse_app_json(None) == EMPTY
    assert parse_app_json("") == EMPTY
    assert parse_app_json("{}") == EMPTY


def test_formation_and_healthchecks() -> None:
    parsed = parse_app_json("""{
      "formation": {"web": {"quantity": 2}, "worker": {"quantity": 0}},
      "healthchecks": {"web": [{"type": "startup", "name": "ready", "path": "/health",
                                "content": "ok", "attempts": 5, "timeout": 2, "wait": 1,
                                "initialDelay": 0.5}]}
    }""")
    assert parsed.formation == {"web": 2, "worker": 0}
    assert parsed.healthchecks == {
        "web": (HealthCheck(path="/health", content="ok", timeout=2.0, attempts=5, wait=1.0,
                            initial_delay=0.5, name="ready"),)
    }


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"formation": {"web": {"quantity": -1}}}', "formation.web.quantity"),
        ('{"formation": {"web": 3}}', "formation.web.quantity"),
        ('{"formation": {"w b": {"quantity": 1}}}', "Invalid process type"),
        ('{"healthchecks": {"web": {}}}', "must be a list"),
        ('{"healthchecks": {"web": [{"path": "health"}]}}', "healthchecks.web[0].path"),
        ('{"healthchecks": {"web": [{"attempts": 0}]}}', "healthchecks.web[0].attempts"),
        ('{"healthchecks": {"web": [{"attempts": 2.5}]}}', "whole number"),
        ('{"healthchecks": {"web": [{"timeout": "5"}]}}', "healthchecks.web[0].timeout"),
    ],
)
def test_bad_app_json_says_where(text: str, needle: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_app_json(text)
    assert needle in err.value.message
