"""hrkernel.bus: the message bus (typed events on topics; memory, Redis Streams or RabbitMQ).

Public: :mod:`hrkernel.bus.events` (the event structs, importable by plugins) and the
:class:`Bus` contract below. Backends and the component are internal and may change.
"""

from hrkernel.bus.base import Bus, Delivery, Subscription
from hrkernel.bus.errors import BusClosed, BusError, BusUnavailable

__all__ = ["Bus", "BusClosed", "BusError", "BusUnavailable", "Delivery", "Subscription"]
