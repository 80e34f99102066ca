"""Settings come from TUSKBASE_* variables; a bad value is one line naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuskbase.config import SettingsError, describe, load

CASES = [
    ("TUSKBASE_PORT", "http", "TUSKBASE_PORT must be a whole number"),
    ("TUSKBASE_PORT", "70000", "TUSKBASE_PORT must be a port number"),
    ("TUSKBASE_DB_PORT", "0", "TUSKBASE_DB_PORT must be a port number"),
    ("TUSKBASE_LOG_FORMAT", "xml", "TUSKBASE_LOG_FORMAT must be `text` or `json`"),
    ("TUSKBASE_JWT_SECRET", "short", "TUSKBASE_JWT_SECRET must be at least 32 characters"),
    ("TUSKBASE_DATABASE_URL", "mysql://x@y/z", "TUSKBASE_DATABASE_URL must be a postgresql:// URL"),
    ("TUSKBASE_BROKER_URL", "redis://localhost", "TUSKBASE_BROKER_URL must be empty"),
    ("TUSKBASE_APP_DIR", "/no/such/folder", "TUSKBASE_APP_DIR folder /no/such/folder does not exist"),
    ("TUSKBASE_MAX_BODY_BYTES", "10", "TUSKBASE_MAX_BODY_BYTES must be at least 1024"),
]


@pytest.mark.parametrize(("variable", "value", "message"), CASES)
def test_bad_value_names_the_variable(variable, value, message):
    with pytest.raises(SettingsError) as error:
        load({variable: value})
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_defaults():
    settings = load({})
    assert (settings.host, settings.port, settings.db_port) == ("127.0.0.1", 54321, 54322)
    assert settings.data_dir == Path(".tuskbase")
    assert settings.embedded
    assert settings.app_dir is None


def test_values_are_typed():
    settings = load({"TUSKBASE_PORT": "8080", "TUSKBASE_DATABASE_URL": "postgresql://u@h/db",
                     "TUSKBASE_DATA_DIR": "/tmp/x"})
    assert settings.port == 8080
    assert not settings.embedded
    assert settings.data_dir == Path("/tmp/x")


def test_every_setting_is_documented():
    for variable, _default, doc in describe():
        assert variable.startswith("TUSKBASE_")
        assert doc, f"{variable} has no documentation"
