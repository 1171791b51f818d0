"""What a churn model is worth: revenue at risk and the retention-campaign threshold
that maximizes saved revenue minus campaign cost."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CampaignEconomics:
    offer_cost: float = 20.0  # cost of contacting one customer with an offer
    success_rate: float = 0.3  # share of would-be churners an offer keeps
    value_months: float = 12.0  # months of revenue a kept customer is worth

    def __post_init__(self) -> None:
        if self.offer_cost < 0 or not 0 < self.success_rate <= 1 or self.value_months <= 0:
            raise ValueError(f"implausible campaign economics: {self}")


@dataclass(frozen=True)
class CampaignPlan:
    threshold: float  # contact everyone scored at or above this
    contacted: int
    saved_revenue: float  # revenue kept among churners contacted
    campaign_cost: float
    net_value: float

    def as_dict(self) -> dict[str, float]:
        return {
            "threshold": self.threshold,
            "contacted": self.contacted,
            "saved_revenue": self.saved_revenue,
            "campaign_cost": self.campaign_cost,
            "net_value": self.net_value,
        }


def revenue_at_risk(
    p: np.ndarray, monthly_revenue: np.ndarray, economics: CampaignEconomics
) -> float:
    """Expected revenue lost to churn: sum of churn probability x customer value."""
    value = np.nan_to_num(np.asarray(monthly_revenue, dtype=float)) * economics.value_months
    return float(np.sum(np.asarray(p, dtype=float) * value))


def campaign_at(
    y: np.ndarray,
    p: np.ndarray,
    monthly_revenue: np.ndarray,
    economics: CampaignEconomics,
    threshold: float,
) -> CampaignPlan:
    """On labelled data: what contacting everyone scored at or above a threshold chosen
    elsewhere (the validation fold) saves and costs; the honest holdout figure, where
    best_campaign's is the best possible in hindsight."""
    contacted = np.asarray(p, dtype=float) >= threshold
    value = np.nan_to_num(np.asarray(monthly_revenue, dtype=float)) * economics.value_months
    saved = float(np.sum(np.asarray(y, dtype=float)[contacted] * value[contacted]))
    saved *= economics.success_rate
    cost = economics.offer_cost * int(contacted.sum())
    return CampaignPlan(
        threshold=float(threshold),
        contacted=int(contacted.sum()),
        saved_revenue=saved,
        campaign_cost=cost,
        net_value=saved - cost,
    )


def best_campaign(
    y: np.ndarray, p: np.ndarray, monthly_revenue: np.ndarray, economics: CampaignEconomics
) -> CampaignPlan:
    """On labelled data: contact the k highest-scored customers for the k that maximizes
    saved revenue (churners contacted x success rate x value) minus offer costs.
    Contacting nobody (net 0) is always a candidate."""
    p = np.asarray(p, dtype=float)
    order = np.argsort(-p, kind="stable")
    value = np.nan_to_num(np.asarray(monthly_revenue, dtype=float)[order]) * economics.value_months
    saved = np.cumsum(np.asarray(y, dtype=float)[order] * value) * economics.success_rate
    cost = economics.offer_cost * np.arange(1, len(order) + 1)
    net = saved - cost
    # a threshold can only cut between distinct scores: keep the last row of each tie
    scores = p[order]
    cut_ok = np.append(scores[1:] < scores[:-1], True)
    net = np.where(cut_ok, net, -np.inf)
    k = int(np.argmax(net))
    if net[k] <= 0:
        return CampaignPlan(
            threshold=float("inf"), contacted=0, saved_revenue=0.0, campaign_cost=0.0, net_value=0.0
        )
    return CampaignPlan(
        threshold=float(scores[k]),
        contacted=k + 1,
        saved_revenue=float(saved[k]),
        campaign_cost=float(cost[k]),
        net_value=float(net[k]),
    )
