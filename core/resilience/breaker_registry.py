"""Named breakers: the registry and the ``@circuit_breaker`` decorator (public API)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, overload

from hrkernel.resilience.breaker import CircuitBreaker, decorate_with
from hrkernel.resilience.events import BreakerMetrics, StateListener

__all__ = ["BreakerRegistry", "circuit_breaker", "registry"]

P = ParamSpec("P")
T = TypeVar("T")


class BreakerRegistry:
    """Named breakers of one process: ``get_or_create`` returns the same breaker for a name.

    Listeners added to the registry receive the state changes of every breaker it holds (the
    alert manager, metrics exporter and event bus subscribe here).
    """

    def __init__(self) -> None:
        self._breakers: dict[str, CircuitBreaker] = {}
        self._listeners: list[StateListener] = []

    def get_or_create(self, name: str, **options: Any) -> CircuitBreaker:
        """The breaker called ``name``, created with ``options`` on first use.

        Asking again with options that differ from the existing breaker's is an error (two call
        sites disagreeing about one breaker's thresholds is a bug worth hearing about).
        """
        existing = self._breakers.get(name)
        if existing is not None:
            current = existing.config()
            clash = {k: (current[k], v) for k, v in options.items() if k in current and current[k] != v}
            if clash:
                raise ValueError(
                    f"breaker {name!r} already exists with other options: "
                    + ", ".join(f"{k}={old!r} (asked {new!r})" for k, (old, new) in clash.items())
                )
            return existing
        breaker = CircuitBreaker(name, **options)
        self.add(breaker)
        return breaker

    def configure(self, name: str, **options: Any) -> CircuitBreaker:
        """Create ``name`` with ``options``, or apply them to the existing breaker in place.

        The kernel's ``[resilience.breakers]`` tables use this, so a function decorated with
        ``@circuit_breaker(name=...)`` at import time picks up the configured thresholds.
        """
        existing = self._breakers.get(name)
        if existing is None:
            return self.get_or_create(name, **options)
        existing.reconfigure(**options)
        return existing

    def add(self, breaker: CircuitBreaker) -> None:
        if breaker.name in self._breakers and self._breakers[breaker.name] is not breaker:
            raise ValueError(f"a different breaker named {breaker.name!r} is already registered")
        self._breakers[breaker.name] = breaker
        for listener in self._listeners:
            breaker.add_listener(listener)

    def get(self, name: str) -> CircuitBreaker:
        try:
            return self._breakers[name]
        except KeyError:
            known = ", ".join(sorted(self._breakers)) or "none"
            raise KeyError(f"no breaker named {name!r} (registered: {known})") from None

    def remove(self, name: str) -> None:
        self._breakers.pop(name, None)

    def add_listener(self, listener: StateListener) -> None:
        self._listeners.append(listener)
        for breaker in self._breakers.values():
            breaker.add_listener(listener)

    def __iter__(self) -> Any:
        return iter(list(self._breakers.values()))

    def __len__(self) -> int:
        return len(self._breakers)

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def metrics(self) -> list[BreakerMetrics]:
        return [b.metrics() for b in self._breakers.values()]


registry = BreakerRegistry()
"""The process-wide default registry used by :func:`circuit_breaker`."""


@overload
def circuit_breaker(fn: Callable[P, T], /) -> Callable[P, T]: ...
@overload
def circuit_breaker(
    fn: None = None, /, *, name: str | None = None, registry: BreakerRegistry | None = None,
    **options: Any,
) -> Callable[[Callable[P, T]], Callable[P, T]]: ...


def circuit_breaker(fn: Any = None, /, *, name: str | None = None,
                    registry: BreakerRegistry | None = None, **options: Any) -> Any:
    """Decorator: guard a sync or async function with the named breaker of ``registry``.

    ``@circuit_breaker(name="exchange_api", failure_threshold=5, reset_timeout=30.0)``; without a
    name the function's qualified name is used. Functions decorated with the same name share one
    breaker. The breaker is reachable as ``decorated.breaker``.
    """
    reg = registry if registry is not None else globals()["registry"]

    def decorate(func: Callable[..., Any]) -> Any:
        breaker = reg.get_or_create(name or f"{func.__module__}.{func.__qualname__}", **options)
        return decorate_with(breaker, func)

    return decorate(fn) if fn is not None else decorate
