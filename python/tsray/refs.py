"""Object references and actor handles as Python values (docs/xlang.md ext types 1 and 4).

An :class:`ObjectRef` names an object in the cluster's object store; an :class:`ActorHandle` names an
actor. Both are plain data here: behaviour (``get``, ``handle.method.remote()``) comes from the
client connection that made them (:mod:`tsray.client`), which attaches itself as ``_owner``.
"""

from __future__ import annotations

from typing import Any, Protocol


class _Owner(Protocol):
    """What an ObjectRef / ActorHandle needs from the process's client connection."""

    def submit_actor_call(
        self, handle: ActorHandle, method: str, args: tuple[Any, ...], options: dict[str, Any]
    ) -> ObjectRef: ...


class NoClientError(RuntimeError):
    """An actor handle was used in a process that has no tsray client connection.

    Call ``tsray.init(address=...)`` first (in a Python worker, handles it receives call through the
    worker's own connection to its node).
    """

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what}: this process has no tsray client connection; call tsray.init(address='auto' or "
            "'ipc://...' or 'tcp://host:port') first"
        )


class ActorMethodNotFoundError(AttributeError):
    """A method name that the actor's class does not have (the handle lists its methods)."""

    def __init__(self, class_name: str, method: str, methods: list[str]) -> None:
        super().__init__(
            f"actor class {class_name} has no method {method!r} (its methods: {', '.join(methods) or 'none listed'})"
        )
        self.class_name = class_name
        self.method = method
        self.methods = methods


class ObjectRef:
    """A reference to an object in the cluster (the result of a task, or of ``put``).

    Equal refs name the same object id. Pass refs to ``tsray.get``/``tsray.wait``, as task arguments,
    or inside values (they travel as msgpack ext type 1).
    """

    __slots__ = ("id", "_owner", "__weakref__")

    def __init__(self, object_id: str, owner: Any = None) -> None:
        self.id: str = object_id
        self._owner: Any = owner

    def __repr__(self) -> str:
        return f"ObjectRef({self.id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other.id == self.id

    def __hash__(self) -> int:
        return hash(("ObjectRef", self.id))

    def __reduce__(self) -> Any:
        raise TypeError("ObjectRef cannot be pickled; pass it to tasks or inside values (msgpack ext 1)")


class ActorMethod:
    """One method of an actor handle: ``handle.method.remote(*args)`` submits a call."""

    __slots__ = ("_handle", "_name", "_options")

    def __init__(self, handle: ActorHandle, name: str, options: dict[str, Any] | None = None) -> None:
        self._handle = handle
        self._name = name
        self._options: dict[str, Any] = options or {}

    def remote(self, *args: Any) -> ObjectRef:
        """Submit a call of this method with ``args``; returns the ref of its result."""
        owner = self._handle._owner
        if owner is None:
            raise NoClientError(f"{self._handle.class_name}.{self._name}.remote()")
        ref: ObjectRef = owner.submit_actor_call(self._handle, self._name, args, self._options)
        return ref

    def options(
        self, *, concurrency_group: str | None = None, name: str | None = None, num_returns: int | str | None = None
    ) -> ActorMethod:
        """The same method with call options (``concurrency_group``, a task ``name`` for logs,
        ``num_returns``: a count, or ``"streaming"`` for a generator method)."""
        opts = dict(self._options)
        if num_returns is not None:
            if num_returns != "streaming" and (isinstance(num_returns, bool) or not isinstance(num_returns, int) or num_returns < 0):
                raise ValueError(f"{self._handle.class_name}.{self._name}.options(): num_returns must be an int >= 0 or 'streaming', got {num_returns!r}")
            opts["num_returns"] = num_returns
        if concurrency_group is not None:
            opts["concurrency_group"] = concurrency_group
        if name is not None:
            opts["name"] = name
        return ActorMethod(self._handle, self._name, opts)

    def __repr__(self) -> str:
        return f"ActorMethod({self._handle.class_name}.{self._name})"


class ActorHandle:
    """A handle to an actor (from ``tsray.get_actor`` or received inside a value, msgpack ext 4).

    ``handle.some_method.remote(*args)`` calls the actor's method and returns an :class:`ObjectRef`.
    """

    __slots__ = ("actor_id", "class_name", "methods", "_owner", "method_options", "__weakref__")

    def __init__(self, actor_id: str, class_name: str, methods: list[str], owner: Any = None) -> None:
        #: Default call options per method (``@tsray.method``, generator methods streaming), when the
        #: handle comes from ``Cls.remote()`` in this process.
        self.method_options: dict[str, dict[str, Any]] = {}
        self.actor_id: str = actor_id
        self.class_name: str = class_name
        self.methods: list[str] = list(methods)
        self._owner: Any = owner

    def __getattr__(self, name: str) -> ActorMethod:
        if name.startswith("__") or name in ActorHandle.__slots__:
            raise AttributeError(name)
        if self.methods and name not in self.methods:
            raise ActorMethodNotFoundError(self.class_name, name, self.methods)
        return ActorMethod(self, name, dict(self.method_options.get(name, {})))

    def __repr__(self) -> str:
        return f"ActorHandle({self.class_name}, {self.actor_id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other.actor_id == self.actor_id

    def __hash__(self) -> int:
        return hash(("ActorHandle", self.actor_id))

    def __reduce__(self) -> Any:
        raise TypeError("ActorHandle cannot be pickled; pass it inside values (msgpack ext 4)")
