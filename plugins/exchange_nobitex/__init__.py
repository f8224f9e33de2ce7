"""hrkernel_nobitex: the Nobitex exchange adapter (built-in plugin).

Public: :class:`~hrkernel_nobitex.exchange.NobitexExchange` and
:class:`~hrkernel_nobitex.config.NobitexConfig`; the rest (``wire``, ``guards``) is internal.
Imports only the kernel's public API.
"""
