"""Settings of the model lifecycle (search, gates, business economics, registry), read
from CHURN_* / MLFLOW_* environment variables with defaults documented in the README."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from churn_assets.ml.business import CampaignEconomics
from churn_assets.ml.calibration import Method
from churn_assets.ml.drift import DriftThresholds
from churn_assets.ml.performance import PerformanceLimits
from churn_assets.ml.search import FAMILIES

PromotionPolicy = Literal["champion", "challenger"]
BatchReasons = Literal["all", "at_risk", "none"]  # at_risk: the medium and high bands


@dataclass(frozen=True)
class GateLimits:
    auc_floor: float = 0.70  # holdout AUC below this never reaches serving
    brier_ceiling: float = 0.15
    champion_tolerance: float = 0.01  # AUC a candidate may lose against the champion
    fairness_gap: float = 0.15  # largest per-segment AUC gap allowed
    leakage_auc: float = 0.98  # a churn model this good is more likely reading the label
    significance: float = 0.05  # one-sided level of the paired champion test

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ModelSettings:
    tracking_uri: str
    artifact_root: Path
    reports_dir: Path
    # native bundles downloaded from the registry, one directory per version
    model_cache: Path
    model_name: str = "churn-model"
    experiment: str = "churn-model"
    trials: int = 30
    timeout_seconds: float = 300.0
    seed: int = 0
    families: tuple[str, ...] = FAMILIES
    stack_size: int = 3
    parsimony_tolerance: float = 0.005
    calibration: Method = "isotonic"
    bootstrap_rounds: int = 200
    promotion_policy: PromotionPolicy = "champion"
    # retraining sensor: incidents after a launch are absorbed for this long
    retrain_cooldown_seconds: float = 6 * 3600
    champion_max_age_days: float = 30.0
    # which customers batch_scores explains: TreeSHAP costs ~30x the prediction itself
    batch_reasons: BatchReasons = "all"
    gates: GateLimits = field(default_factory=GateLimits)
    drift: DriftThresholds = field(default_factory=DriftThresholds)
    performance: PerformanceLimits = field(default_factory=PerformanceLimits)
    economics: CampaignEconomics = field(default_factory=CampaignEconomics)

    def __post_init__(self) -> None:
        unknown = set(self.families) - set(FAMILIES)
        if unknown:
            raise ValueError(
                f"CHURN_SEARCH_FAMILIES names unknown families {sorted(unknown)}; "
                f"choose from {', '.join(FAMILIES)}"
            )
        if "lightgbm" not in self.families:
            raise ValueError("CHURN_SEARCH_FAMILIES must include lightgbm: serving needs it")
        if self.trials < 1 or self.timeout_seconds <= 0:
            raise ValueError("CHURN_SEARCH_TRIALS and CHURN_SEARCH_TIMEOUT_SECONDS must be > 0")
        if self.promotion_policy not in ("champion", "challenger"):
            raise ValueError(
                f"CHURN_PROMOTION_POLICY must be champion or challenger, "
                f"got {self.promotion_policy!r}"
            )
        if self.batch_reasons not in ("all", "at_risk", "none"):
            raise ValueError(
                f"CHURN_BATCH_REASONS must be all, at_risk or none, not {self.batch_reasons!r}"
            )
        if self.calibration not in ("isotonic", "sigmoid"):
            raise ValueError(
                f"CHURN_CALIBRATION must be isotonic or sigmoid, not {self.calibration}"
            )


def load_model_settings(environ: dict[str, str] | None = None) -> ModelSettings:
    env = dict(os.environ if environ is None else environ)
    home = Path(env.get("CHURN_HOME", "var")).resolve()

    def number(name: str, default: float) -> float:
        try:
            return float(env.get(name, default))
        except ValueError as exc:
            raise ValueError(f"{name} must be a number, got {env[name]!r}") from exc

    defaults = GateLimits()
    economics = CampaignEconomics()
    drift = DriftThresholds()
    live = PerformanceLimits()
    families = env.get("CHURN_SEARCH_FAMILIES")
    return ModelSettings(
        tracking_uri=env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}",
        artifact_root=Path(env.get("CHURN_MLFLOW_ARTIFACTS", home / "mlartifacts")),
        reports_dir=home / "reports",
        model_cache=home / "models",
        trials=int(number("CHURN_SEARCH_TRIALS", 30)),
        timeout_seconds=number("CHURN_SEARCH_TIMEOUT_SECONDS", 300),
        seed=int(number("CHURN_SEED", 0)),
        families=tuple(f.strip() for f in families.split(",") if f.strip())
        if families
        else FAMILIES,
        parsimony_tolerance=number("CHURN_PARSIMONY_TOLERANCE", 0.005),
        calibration=env.get("CHURN_CALIBRATION", "isotonic"),  # type: ignore[arg-type]
        bootstrap_rounds=int(number("CHURN_BOOTSTRAP_ROUNDS", 200)),
        promotion_policy=env.get("CHURN_PROMOTION_POLICY", "champion"),  # type: ignore[arg-type]
        batch_reasons=env.get("CHURN_BATCH_REASONS", "all"),  # type: ignore[arg-type]
        retrain_cooldown_seconds=number("CHURN_RETRAIN_COOLDOWN_SECONDS", 6 * 3600),
        champion_max_age_days=number("CHURN_CHAMPION_MAX_AGE_DAYS", 30),
        drift=DriftThresholds(
            psi_warn=number("CHURN_DRIFT_PSI_WARN", drift.psi_warn),
            psi_alert=number("CHURN_DRIFT_PSI_ALERT", drift.psi_alert),
            alpha=number("CHURN_DRIFT_ALPHA", drift.alpha),
            share_alert=number("CHURN_DRIFT_SHARE_ALERT", drift.share_alert),
            min_rows=int(number("CHURN_DRIFT_MIN_ROWS", drift.min_rows)),
            ignore=frozenset(
                n.strip()
                for n in env.get("CHURN_DRIFT_IGNORE", ",".join(sorted(drift.ignore))).split(",")
                if n.strip()
            ),
        ),
        performance=PerformanceLimits(
            auc_floor=number("CHURN_PERFORMANCE_AUC_FLOOR", live.auc_floor),
            alpha=number("CHURN_PERFORMANCE_ALPHA", live.alpha),
            min_auc_drop=number("CHURN_PERFORMANCE_MIN_AUC_DROP", live.min_auc_drop),
            min_brier_rise=number("CHURN_PERFORMANCE_MIN_BRIER_RISE", live.min_brier_rise),
            min_labelled=int(number("CHURN_PERFORMANCE_MIN_LABELLED", live.min_labelled)),
            min_per_class=int(number("CHURN_PERFORMANCE_MIN_PER_CLASS", live.min_per_class)),
            window_days=int(number("CHURN_PERFORMANCE_WINDOW_DAYS", live.window_days)),
        ),
        gates=GateLimits(
            auc_floor=number("CHURN_GATE_AUC_FLOOR", defaults.auc_floor),
            brier_ceiling=number("CHURN_GATE_BRIER_CEILING", defaults.brier_ceiling),
            champion_tolerance=number("CHURN_GATE_CHAMPION_TOLERANCE", defaults.champion_tolerance),
            fairness_gap=number("CHURN_GATE_FAIRNESS_GAP", defaults.fairness_gap),
            leakage_auc=number("CHURN_GATE_LEAKAGE_AUC", defaults.leakage_auc),
        ),
        economics=CampaignEconomics(
            offer_cost=number("CHURN_OFFER_COST", economics.offer_cost),
            success_rate=number("CHURN_OFFER_SUCCESS_RATE", economics.success_rate),
            value_months=number("CHURN_VALUE_MONTHS", economics.value_months),
        ),
    )
