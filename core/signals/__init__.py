"""hrkernel.signals: trading signals in (the TradingView webhook intake, its durable inbox).

Signals leave as :class:`hrkernel.bus.events.SignalEvent` on the bus topic ``[webhook] topic``.
Everything here is internal; other areas consume the bus events, not these modules.
"""
