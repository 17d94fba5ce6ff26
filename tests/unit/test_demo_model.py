"""The report's churn model section, drawn from a hand-made report data dict."""

from __future__ import annotations

from typing import Any

from streams.demo.model import model_data, model_section

METRICS = {
    'engagement_model_parameter{name="r"}': 0.25,
    'engagement_model_parameter{name="alpha"}': 4.5,
    'engagement_model_parameter{name="a"}': 0.8,
    'engagement_model_parameter{name="b"}': 2.5,
    "engagement_model_fit_users": 4321.0,
    'engagement_model_calibration_users{band="0.8-1.0"}': 1234.0,
    'engagement_model_calibration_predicted_visits{band="0.8-1.0"}': 2000.0,
    'engagement_model_calibration_actual_visits{band="0.8-1.0"}': 1800.0,
    'engagement_model_calibration_users{band="0.0-0.2"}': 77.0,
    'engagement_model_churn_risk_eligible_users{group="signalled",window="7"}': 200.0,
    'engagement_model_churn_risk_return_users{group="signalled",window="7"}': 30.0,
    'engagement_model_churn_risk_eligible_users{group="not_signalled",window="30"}': 50.0,
    'engagement_model_churn_risk_return_users{group="not_signalled",window="30"}': 40.0,
}
QUALITY: list[dict[str, Any]] = [
    {
        "kind": "churn_risk",
        "users": 812,
        "precision": 0.63,
        "recall": 0.91,
        "median_lead_days": 21.5,
    },
    {"kind": "dormant", "users": 1450, "precision": 0.42, "recall": 0.97, "median_lead_days": None},
]


def test_model_data_reads_the_gauges() -> None:
    data = model_data(METRICS, 7.0)
    assert data["parameters"] == {"r": 0.25, "alpha": 4.5, "a": 0.8, "b": 2.5}
    top = data["bands"][-1]
    assert (top["band"], top["users"], top["predicted"], top["actual"]) == (
        "0.8-1.0",
        1234.0,
        2000.0,
        1800.0,
    )
    assert top["ratio"] == 0.9 and data["bands"][0]["ratio"] is None
    rates = {(r["group"], r["window"]): r["rate"] for r in data["returns"]}
    assert rates[("signalled", 7)] == 0.15 and rates[("not_signalled", 30)] == 0.8
    assert rates[("signalled", 30)] is None


def test_the_section_shows_every_number() -> None:
    html = model_section({"model": model_data(METRICS, 7.0), "quality": QUALITY})
    assert "<h2>Churn model</h2>" in html
    for text in ("r = 0.25", "alpha = 4.5", "4,321 users", "1,234", "2,000.0", "1,800", "0.90"):
        assert text in html, text
    assert "<svg" in html and "</svg>" in html
    assert "7 days inactive" in html and "63%" in html and "91%" in html and "21.5 d" in html
    assert "15% of 200" in html and "80% of 50" in html


def test_no_model_is_said() -> None:
    assert "No model" in model_section({}) and "No model" in model_section(
        {"model": model_data({}, 7.0)}
    )
    html = model_section({"model": model_data(METRICS, 7.0)})
    assert "No signal-quality check" in html
