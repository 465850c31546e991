"""The public errors and state calls are importable from the package root (``tsray.AuthenticationError``)."""

from __future__ import annotations

import tsray
from tsray import errors


def test_every_public_error_is_exported_at_the_root() -> None:
    public = [name for name in errors.__all__ if name[0].isupper()]
    assert "AuthenticationError" in public
    for name in public:
        assert getattr(tsray, name) is getattr(errors, name), name
        assert name in tsray.__all__, name


def test_authentication_error_is_a_connection_error() -> None:
    assert issubclass(tsray.AuthenticationError, tsray.ConnectionError)
    assert issubclass(tsray.AuthenticationError, tsray.TsrayError)
    from tsray.client import AuthenticationError  # the class the client raises is the exported one

    assert AuthenticationError is tsray.AuthenticationError


def test_state_calls_are_exported() -> None:
    assert "cluster_resources" in tsray.__all__ and callable(tsray.cluster_resources)
    assert "available_resources" in tsray.__all__ and callable(tsray.available_resources)


def test_every_name_in_all_exists() -> None:
    for name in tsray.__all__:
        assert hasattr(tsray, name), name
