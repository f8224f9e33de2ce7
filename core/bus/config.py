"""``[bus]``: which message broker carries the kernel's events."""

from __future__ import annotations

from typing import Literal

import msgspec

from hrkernel.types import ConfigStruct, Duration


class MemoryBusSettings(ConfigStruct, kw_only=True):
    queue_size: int = 10_000
    """Per subscriber group; a full queue makes ``publish`` wait (backpressure)."""


class RedisBusSettings(ConfigStruct, kw_only=True):
    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "hr:bus:"
    """Stream keys are ``<prefix><topic>``."""
    maxlen: int = 100_000
    """``XADD ... MAXLEN ~ maxlen``: the stream is trimmed approximately beyond this length."""
    block: Duration = Duration(1.0)
    """How long one ``XREADGROUP`` waits for new entries."""
    claim_idle: Duration = Duration(30.0)
    """A message pending this long on a consumer is re-claimed by another (``XAUTOCLAIM``)."""
    batch: int = 100
    reconnect_min: Duration = Duration(0.1)
    reconnect_max: Duration = Duration(5.0)
    buffer_size: int = 10_000
    """Per topic with policy ``buffer``: events kept locally while Redis is down."""


class RabbitBusSettings(ConfigStruct, kw_only=True):
    url: str = "amqp://guest:guest@127.0.0.1:5672/"
    exchange: str = "hrkernel"
    """A durable topic exchange; each (topic, group) is a durable queue bound to it."""
    prefetch: int = 100
    connection_name: str = "hrkernel"
    """Shown in RabbitMQ's management tools (``rabbitmqctl list_connections user_provided_name``)."""
    publish_timeout: Duration = Duration(5.0)
    """A publish not confirmed by the broker within this long counts as the broker being down
    (the topic's ``on_unavailable`` policy applies)."""
    buffer_size: int = 10_000
    """Per topic with policy ``buffer``: events kept locally while the broker is down."""


class TopicPolicy(ConfigStruct, kw_only=True):
    on_unavailable: Literal["buffer", "fail"] = "buffer"
    """While the broker is down: keep events in a bounded local queue (sent on reconnect), or
    raise :class:`hrkernel.bus.errors.BusUnavailable` at once. A full buffer always raises:
    nothing is dropped silently."""


CRITICAL_TOPICS = {"signals": TopicPolicy(on_unavailable="fail"), "orders": TopicPolicy(on_unavailable="fail")}
"""Orders and signals must never be lost quietly: the caller learns at once. A ``[bus.topics]``
entry for one of them overrides this."""


class BusSection(ConfigStruct, kw_only=True):
    backend: Literal["memory", "redis", "rabbitmq"] = "memory"
    memory: MemoryBusSettings = msgspec.field(default_factory=MemoryBusSettings)
    redis: RedisBusSettings = msgspec.field(default_factory=RedisBusSettings)
    rabbitmq: RabbitBusSettings = msgspec.field(default_factory=RabbitBusSettings)
    topics: dict[str, TopicPolicy] = msgspec.field(default_factory=dict)
    """Per-topic policy; unlisted topics use ``buffer``, except ``signals`` and ``orders``
    (``fail``, see :data:`CRITICAL_TOPICS`)."""
    fallback: Literal["memory", "fail"] = "fail"
    """When the broker (redis/rabbitmq) cannot be reached at start-up: ``fail`` stops start-up
    (exit 1); ``memory`` runs on the in-process bus, reports the ``bus`` health check degraded
    (which raises an alert) and switches to the broker as soon as it answers (for development:
    events then never leave this process)."""
    fallback_retry: Duration = Duration(5.0)
    """While on the fallback: how often to try the broker again."""

    def policy(self, topic: str) -> TopicPolicy:
        return self.topics.get(topic) or CRITICAL_TOPICS.get(topic) or TopicPolicy()
