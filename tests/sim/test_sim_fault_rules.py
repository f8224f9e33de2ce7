"""The fault injector and rate limiter on their own: seeded decisions, latency shapes, validation."""

from __future__ import annotations

import pytest

from hrkernel_sim.config import FaultConfig, RateLimitConfig, parse_config
from hrkernel_sim.faults import FaultInjector, RateLimiter


def faults(data: dict) -> FaultConfig:
    cfg = parse_config(data, FaultConfig)
    assert isinstance(cfg, FaultConfig)
    return cfg


def test_error_rates_follow_the_configured_probabilities():
    inj = FaultInjector(faults({"seed": 1, "endpoints": {"orders_add": {"error_500": 0.2, "hang": 0.1}}}),
                        lambda: 0.0)
    kinds = [inj.decide("orders_add").kind for _ in range(5000)]
    assert 0.17 < kinds.count("error_500") / 5000 < 0.23
    assert 0.08 < kinds.count("hang") / 5000 < 0.12
    assert {inj.decide("orders_status").kind for _ in range(200)} == {None}


def test_latency_jitter_and_spikes():
    inj = FaultInjector(faults({"seed": 2, "latency": {"fixed": "10ms", "jitter": "20ms",
                                                       "spike_rate": 0.05, "spike": "2s"}}), lambda: 0.0)
    delays = [inj.decide("stats").delay for _ in range(4000)]
    normal = [d for d in delays if d < 1]
    spikes = [d for d in delays if d >= 1]
    assert min(normal) >= 0.010 and max(normal) <= 0.030
    assert 0.03 < len(spikes) / 4000 < 0.07 and all(2.01 <= d <= 2.03 for d in spikes)


def test_endpoint_latency_overrides_the_global_one():
    inj = FaultInjector(faults({"latency": {"fixed": "1s"},
                                "endpoints": {"orderbook": {"latency": {"fixed": "5ms"}}}}), lambda: 0.0)
    assert inj.decide("orderbook").delay == pytest.approx(0.005)
    assert inj.decide("stats").delay == pytest.approx(1.0)


def test_same_seed_same_decisions_and_reconfigure_reseeds():
    cfg = faults({"seed": 9, "endpoints": {"*": {"error_503": 0.3, "error_429": 0.2}}})
    a = FaultInjector(cfg, lambda: 0.0)
    b = FaultInjector(cfg, lambda: 0.0)
    first = [a.decide("stats").kind for _ in range(100)]
    assert first == [b.decide("stats").kind for _ in range(100)]
    a.configure(cfg)
    assert first == [a.decide("stats").kind for _ in range(100)]


def test_scripted_faults_come_first_and_run_out():
    inj = FaultInjector(faults({"scripted": [{"endpoint": "orders_add", "kind": "drop_after_accept",
                                              "count": 2}]}), lambda: 0.0)
    assert [inj.decide("orders_add").kind for _ in range(3)] == ["drop_after_accept"] * 2 + [None]
    with pytest.raises(ValueError, match="unknown fault kind"):
        inj.add_scripted("orders_add", "explode", 1)


def test_downtime_window_on_selected_endpoints():
    now = [100.0]
    inj = FaultInjector(faults({"downtime": [{"start": "5s", "end": "10s", "endpoints": ["orders_add"]}]}),
                        lambda: now[0])
    now[0] += 6
    assert inj.decide("orders_add").kind == "downtime"
    assert inj.decide("stats").kind is None
    now[0] += 5
    assert inj.decide("orders_add").kind is None


def test_invalid_probabilities_are_rejected_with_their_path():
    with pytest.raises(ValueError, match=r"faults.endpoints.stats.error_500"):
        FaultInjector(faults({"endpoints": {"stats": {"error_500": 1.5}}}), lambda: 0.0)


def test_rate_limiter_windows_are_per_identity_and_endpoint():
    now = [0.0]
    rl = RateLimiter(RateLimitConfig(), lambda: now[0])
    for _ in range(90):
        assert rl.check("token:a", "orders_cancel") is None
    limited = rl.check("token:a", "orders_cancel")
    assert limited is not None and limited.limit == 90 and limited.back_off == 60
    assert rl.check("token:b", "orders_cancel") is None  # another token
    assert rl.check("token:a", "orders_status") is None  # another endpoint
    now[0] += 60
    assert rl.check("token:a", "orders_cancel") is None


def test_rate_limits_can_be_disabled():
    rl = RateLimiter(RateLimitConfig(enabled=False), lambda: 0.0)
    assert all(rl.check("token:a", "stats") is None for _ in range(100))
