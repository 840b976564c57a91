"""Own vs rent (sim.analysis.ownership) and the scenario's pricing.own options."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.analysis.ownership import PoolOwnership, own_vs_rent, own_vs_rent_from_summary
from sim.catalog import load_catalog
from sim.errors import ScenarioError
from sim.scenario.pricing_spec import OwnershipSpec
from sim.scenario.spec import load_scenario

QUICKSTART = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.yaml"


def _pool(**kw) -> PoolOwnership:
    base = dict(pool="p", gpu="h100-sxm", gpus=8, purchase_usd_per_gpu=30_000.0, purchase_source="test",
                power_w_per_gpu=700.0, busy_frac=0.5, rent_usd_per_gpu_hour=2.0)
    return PoolOwnership(**{**base, **kw})


def test_own_vs_rent_by_hand():
    """8 GPUs at $30,000, 36 months, 10%/yr hosting, 700 W at 50% busy, PUE 1.5, $0.10/kWh,
    against $2/GPU-hour, 1,000 output tokens/s. By hand:
    amortisation 240,000 / 36 = 6,666.67; hosting 240,000 x 0.10 / 12 = 2,000;
    power 8 x 0.7 kW x 0.5 x 1.5 = 4.2 kW -> 4.2 x 730 h x 0.10 = 306.60; own = 8,973.27/month.
    rent 8 x 2 x 730 = 11,680/month. Tokens per month 1,000 x 3,600 x 730 = 2.628e9, so
    own $3.4145 and rent $4.4444 per 1M; owning saves 2,706.73/month (23.17%);
    break-even 240,000 / (11,680 - 2,306.60) = 25.604 months."""
    own = OwnershipSpec(amortization_months=36, hosting_pct_per_year=10, pue=1.5, usd_per_kwh=0.10)
    r = own_vs_rent([_pool()], own, 1000.0)
    assert r.purchase_usd == 240_000
    assert r.own_amortization_usd_per_month == pytest.approx(6666.6667, abs=1e-3)
    assert r.own_hosting_usd_per_month == pytest.approx(2000.0)
    assert r.own_power_kw == pytest.approx(4.2)
    assert r.own_electricity_usd_per_month == pytest.approx(306.60)
    assert r.own_usd_per_month == pytest.approx(8973.2667, abs=1e-3)
    assert r.rent_usd_per_month == pytest.approx(11_680.0)
    assert r.own_usd_per_1m_output_tokens == pytest.approx(3.41449, abs=1e-4)
    assert r.rent_usd_per_1m_output_tokens == pytest.approx(4.44444, abs=1e-4)
    assert r.cheaper == "own"
    assert r.saving_usd_per_month == pytest.approx(2706.7333, abs=1e-3)
    assert r.saving_pct == pytest.approx(23.174, abs=1e-3)
    assert r.breakeven_months == pytest.approx(25.604, abs=1e-3)


def test_renting_wins_when_cheap_and_power_is_clamped():
    own = OwnershipSpec(amortization_months=12, hosting_pct_per_year=0, pue=1.0, usd_per_kwh=0.0)
    # 1 GPU, $8,760 over 12 months = $730/month; rent $0.5/h = $365/month; busy > 1 is clamped
    r = own_vs_rent([_pool(gpus=1, purchase_usd_per_gpu=8760.0, rent_usd_per_gpu_hour=0.5, busy_frac=1.7)], own, None)
    assert r.own_usd_per_month == pytest.approx(730.0) and r.rent_usd_per_month == pytest.approx(365.0)
    assert r.cheaper == "rent" and r.saving_pct == pytest.approx(50.0)
    assert r.own_power_kw == pytest.approx(0.7)  # 700 W x 1.0 (clamped) x PUE 1.0
    assert r.own_usd_per_1m_output_tokens is None  # no token rate, no per-token cost
    assert r.breakeven_months == pytest.approx(8760 / 365)  # no running costs: purchase / rent
    same = own_vs_rent([_pool(gpus=1, purchase_usd_per_gpu=4380.0, rent_usd_per_gpu_hour=0.5, busy_frac=0)], own, 1.0)
    assert same.cheaper == "same"


def test_from_summary_uses_the_catalog_and_scenario_prices():
    cat = load_catalog()
    summary = {"overall": {"output_tokens_per_s": 500.0},
               "cost": {"pools": {"a": {"gpu": "h100-sxm", "gpus": 4, "usd_per_gpu_hour": 2.99},
                                  "b": {"gpu": "l4", "gpus": 2, "usd_per_gpu_hour": 0.7}}},
               "utilization": {"pools": {"a": {"busy_frac": 1.0}, "b": {"busy_frac": 0.25}}}}
    own = OwnershipSpec(purchase_usd_per_gpu={"l4": 4000.0})
    r = own_vs_rent_from_summary(summary, own, cat)
    a, b = r.pools
    assert a.purchase_usd_per_gpu == cat.gpu("h100-sxm").purchase_usd and "catalog" in a.purchase_source
    assert b.purchase_usd_per_gpu == 4000.0 and "scenario" in b.purchase_source
    assert r.purchase_usd == 4 * cat.gpu("h100-sxm").purchase_usd + 2 * 4000.0
    # power: (4 x 700 x 1.0 + 2 x 72 x 0.25) W x PUE 1.3 default
    assert r.own_power_kw == pytest.approx((2.8 + 0.036) * 1.3)
    assert r.rent_usd_per_month == pytest.approx((4 * 2.99 + 2 * 0.7) * 730)


def test_an_autoscaled_pool_is_owned_at_its_maximum_and_rented_at_its_mean():
    """An autoscaled pool of 1 GPU per replica, max 6, 2.5 provisioned on average, at
    $2.99/GPU-hour. By hand: owned 6 x purchase; rent 2.5 x 2.99 x 730 = 5,456.75/month;
    power 2.5 x 0.7 kW x busy 0.8 x PUE 1.3 = 1.82 kW (the spares powered off)."""
    cat = load_catalog()
    summary = {"overall": {"output_tokens_per_s": 500.0},
               "cost": {"pools": {"a": {"gpu": "h100-sxm", "gpus": 2.5, "gpus_per_replica": 1,
                                        "usd_per_gpu_hour": 2.99}}},
               "utilization": {"pools": {"a": {"busy_frac": 0.8}}},
               "autoscale": {"pools": {"a": {"max_replicas": 6}}}}
    r = own_vs_rent_from_summary(summary, OwnershipSpec(), cat)
    assert r.pools[0].gpus == 6 and r.purchase_usd == 6 * cat.gpu("h100-sxm").purchase_usd
    assert r.rent_usd_per_month == pytest.approx(5456.75)
    assert r.own_power_kw == pytest.approx(1.82)


def _scenario_with(tmp_path: Path, pricing: str) -> tuple[Path, int]:
    text = QUICKSTART.read_text().rstrip("\n") + "\n"
    path = tmp_path / "priced.yaml"
    path.write_text(text + pricing)
    return path, text.count("\n") + 1  # the line of "pricing:"


def test_pricing_own_options_load_and_errors_are_located(tmp_path):
    path, _ = _scenario_with(tmp_path, "pricing:\n  h100-sxm: 2.5\n  own:\n    amortization_months: 48\n"
                                       "    usd_per_kwh: 0.2\n    purchase_usd_per_gpu: {h100-sxm: 30000}\n")
    s = load_scenario(path)
    assert s.pricing.usd_per_gpu_hour == {"h100-sxm": 2.5}
    assert s.pricing.own.amortization_months == 48 and s.pricing.own.pue == 1.3  # default kept
    assert s.pricing.own.purchase_usd_per_gpu == {"h100-sxm": 30000.0}
    for body, line_off, text in (
            ("  own:\n    pue: 0.8\n", 2, "field pricing.own.pue: Input should be greater than or equal to 1"),
            ("  own:\n    amortization_months: 0\n", 2, "field pricing.own.amortization_months"),
            ("  own:\n    purchase_usd_per_gpu: {h100: 30000}\n", 2,
             "field pricing.own.purchase_usd_per_gpu.h100: unknown GPU 'h100'"),
            ("  own:\n    electricity: 0.1\n", 2, "field pricing.own.electricity: unknown key")):
        path, line = _scenario_with(tmp_path, "pricing:\n" + body)
        with pytest.raises(ScenarioError) as exc:
            load_scenario(path)
        assert text in str(exc.value), str(exc.value)
        assert f"line {line + line_off}" in str(exc.value), str(exc.value)
