import numpy as np
import pytest

from churn_assets.ml.business import (
    CampaignEconomics,
    best_campaign,
    campaign_at,
    revenue_at_risk,
)

ECON = CampaignEconomics(offer_cost=10.0, success_rate=0.5, value_months=10.0)


def test_revenue_at_risk_is_probability_times_value():
    assert revenue_at_risk(np.array([0.5, 0.1]), np.array([100.0, 50.0]), ECON) == pytest.approx(
        550.0
    )


def test_best_campaign_contacts_exactly_the_profitable_prefix():
    # scores descending; churners at ranks 1 and 3; each saved churner worth 0.5 * 10 * 100 = 500
    y = np.array([1, 0, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    revenue = np.full(5, 100.0)
    plan = best_campaign(y, p, revenue, ECON)
    assert plan.contacted == 3 and plan.threshold == pytest.approx(0.7)
    assert plan.saved_revenue == pytest.approx(1000.0)
    assert plan.campaign_cost == pytest.approx(30.0)
    assert plan.net_value == pytest.approx(970.0)


def test_no_campaign_when_offers_cost_more_than_they_save():
    plan = best_campaign(np.array([1, 0]), np.array([0.9, 0.1]), np.array([1.0, 1.0]), ECON)
    assert plan.contacted == 0 and plan.net_value == 0.0


def test_ties_are_contacted_together():
    y = np.array([1, 0, 0])
    p = np.array([0.5, 0.5, 0.1])
    plan = best_campaign(y, p, np.full(3, 100.0), ECON)
    assert plan.contacted == 2, "a threshold cannot split two equal scores"


def test_implausible_economics_are_refused():
    with pytest.raises(ValueError):
        CampaignEconomics(success_rate=0.0)


def test_campaign_at_a_threshold_chosen_elsewhere_counts_what_it_contacts():
    y = np.array([1, 0, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    revenue = np.full(5, 100.0)
    plan = campaign_at(y, p, revenue, ECON, threshold=0.75)  # contacts 0.9 and 0.8
    assert plan.contacted == 2 and plan.threshold == 0.75
    assert plan.saved_revenue == pytest.approx(500.0)  # one churner: 0.5 * 10 * 100
    assert plan.campaign_cost == pytest.approx(20.0) and plan.net_value == pytest.approx(480.0)
    # the hindsight best on the same labels is an upper bound
    assert plan.net_value <= best_campaign(y, p, revenue, ECON).net_value
