import pytest

from paas.errors import InvalidInput
from paas.model import validate_app_name, validate_config_key


@pytest.mark.parametrize("name", ["hello", "a", "hello-world", "app2", "x" * 30])
def test_valid_app_names(name: str) -> None:
    assert validate_app_name(name) == name


@pytest.mark.parametrize(
    "name", ["../x", "Hello World", "x" * 200, "", "-a", "a-", "1app", "hello.git", "x" * 31,
             "a/b", "héllo"],
)
def test_invalid_app_names_say_what_to_use(name: str) -> None:
    with pytest.raises(InvalidInput) as err:
        validate_app_name(name)
    assert "lowercase letters, digits and dashes" in err.value.message
    assert len(err.value.message) < 250  # a 200-character name is shortened in the message


@pytest.mark.parametrize("key", ["DEBUG", "_X", "a1"])
def test_valid_config_keys(key: str) -> None:
    assert validate_config_key(key) == key


@pytest.mark.parametrize("key", ["1A", "A-B", "", "A B", "A=B"])
def test_invalid_config_keys(key: str) -> None:
    with pytest.raises(InvalidInput):
        validate_config_key(key)


def test_port_mappings() -> None:
    from paas.model import PortMap, parse_port_map

    assert parse_port_map("http:8080:5000") == PortMap("http", 8080, 5000)
    assert str(parse_port_map("http:80:3000")) == "http:80:3000"
    for bad in ("https:1:2", "http:0:5000", "http:8080", "http:x:1", "http:70000:1", "http:²:1"):
        with pytest.raises(InvalidInput):
            parse_port_map(bad)
