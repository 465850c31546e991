"""Task errors on the Python side are instances of the remote error's class (issue #22), as Ray's
``RayTaskError(ValueError)`` is a ``ValueError``: Python built-ins by name, TypeScript's standard
classes by their nearest Python built-in, user classes registered by name."""

from __future__ import annotations

import pytest

from tsray._proto import tsray_pb2 as pb
from tsray.errors import TaskError, TsrayError, error_from_payload, exception_error_info, register_error_class


def _raised(exc: BaseException) -> bytes:
    """The error object a Python task raising ``exc`` stores (a real traceback, as a worker makes)."""
    try:
        raise exc
    except BaseException as e:  # noqa: BLE001 - any exception is a task's result
        return exception_error_info(e, "f").SerializeToString()


def _typescript(name: str, message: str) -> bytes:
    m = pb.ErrorInfo(type="TaskError", name=name, message=message, stack=f"{name}: {message}\n    at f (main.ts:10:9)", language="typescript")
    m.task.task_name = "f"
    m.task.pid = 4711
    return m.SerializeToString()


def test_python_value_error_is_a_value_error_and_a_task_error() -> None:
    err = error_from_payload(_raised(ValueError("bad value")))
    assert isinstance(err, ValueError) and isinstance(err, TaskError) and isinstance(err, TsrayError)
    assert type(err).__name__ == "TaskError(ValueError)"
    assert (err.remote_name, err.remote_message, err.remote_language) == ("ValueError", "bad value", "python")
    with pytest.raises(ValueError, match="bad value"):
        raise err


def test_key_error_keeps_the_task_message() -> None:
    err = error_from_payload(_raised(KeyError("missing")))
    assert isinstance(err, KeyError)
    assert str(err).startswith("task f (worker pid=")


def test_typescript_standard_classes_map_to_python_builtins() -> None:
    for ts_name, py_class in (("RangeError", ValueError), ("TypeError", TypeError), ("ReferenceError", NameError)):
        err = error_from_payload(_typescript(ts_name, "boom"))
        assert isinstance(err, py_class) and isinstance(err, TaskError), ts_name
    plain = error_from_payload(_typescript("Error", "boom"))
    assert type(plain) is TaskError


def test_registered_user_class() -> None:
    class QuotaError(Exception):
        pass

    assert type(error_from_payload(_typescript("QuotaError", "over"))) is TaskError
    register_error_class(QuotaError)
    err = error_from_payload(_typescript("QuotaError", "over"))
    assert isinstance(err, QuotaError) and isinstance(err, TaskError)
    with pytest.raises(TypeError):
        register_error_class(int)  # type: ignore[arg-type]


def test_printed_form_has_the_remote_stack_once_under_task_and_pid() -> None:
    text = str(error_from_payload(_typescript("RangeError", "boom")))
    assert text.splitlines()[1] == "(f pid=4711) RangeError: boom"
    assert text.count("at f (main.ts:10:9)") == 1


def test_restarting_actor_reads_as_actor_unavailable() -> None:
    from tsray.errors import ActorDiedError, ActorUnavailableError

    m = pb.ErrorInfo(type="ActorDiedError", name="ActorDiedError", language="typescript")
    m.actor_death.actor_id, m.actor_death.class_name, m.actor_death.reason = "a1", "Gpu", "restarting"
    m.actor_death.detail = "its process (pid 7) died: exit code 3"
    err = error_from_payload(m.SerializeToString())
    assert isinstance(err, ActorUnavailableError) and isinstance(err, ActorDiedError)
    assert "is unavailable: it is restarting" in str(err)
    m.actor_death.reason = "crashed"
    assert type(error_from_payload(m.SerializeToString())) is ActorDiedError
