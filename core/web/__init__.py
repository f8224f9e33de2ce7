"""hrkernel.web: the dashboard, JSON API, Prometheus ``/metrics`` and probes (internal).

One Starlette app served by uvicorn inside the kernel (added by :mod:`hrkernel.kernel.assembly`), or
embedded on its own with :func:`hrkernel.web.app.create_health_dashboard`. Modules: ``app`` (the
app and the kernel component), ``api`` (routes and their OpenAPI metadata), ``openapi``,
``auth`` (token and audit log), ``sse`` (the live feed), ``metrics`` (the scrape-time collector),
``sources`` with ``adapters``, ``resilience_view`` and ``orders_view`` (reading the components),
``config`` (``[dashboard]``), ``static/`` (the page).
"""
