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
