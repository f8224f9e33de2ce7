"""hrkernel_alerts: the built-in alert channels (console, webhook, Telegram, email, SMS, apprise).

A built-in plugin like any third-party one: it imports only the kernel's public API
(``hrkernel``, ``hrkernel.spec``, ``hrkernel.types``, ``hrkernel.errors``,
``hrkernel.alerts.types``) and registers its channels through ``hr_register_alert_channels``.
"""
