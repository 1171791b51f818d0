"""One customer at a time through LightGBM's single-row C API.

`Booster.predict` spends about 100 µs in Python (argument checks, a predictor object,
array conversion) before a 10 µs tree walk; the C API's "fast" single-row entry points
keep that set-up in a config made once per model, so a single prediction or its
contributions cost one ctypes call. Batches still go through `Booster.predict`.
`tests/serving/test_row_predictor.py` holds both paths equal, so a LightGBM upgrade
that changes the C API fails there rather than in production."""

from __future__ import annotations

import ctypes
import weakref
from typing import Any

import lightgbm as lgb
import numpy as np
from lightgbm.basic import _LIB, _safe_call

PREDICT_NORMAL = 0  # the objective's output: a probability for binary models
PREDICT_CONTRIB = 3  # per-feature contributions plus the expected value
DTYPE_FLOAT32 = 0


class RowPredictor:
    """Probabilities and contributions of one float32 row; not thread-safe (each
    config owns its output buffer), which suits the event loop that calls it."""

    def __init__(self, booster: lgb.Booster, width: int) -> None:
        self.width = width
        iterations = booster.best_iteration if booster.best_iteration > 0 else -1
        self._normal = _fast_config(booster, PREDICT_NORMAL, iterations, width)
        self._contrib = _fast_config(booster, PREDICT_CONTRIB, iterations, width)
        # buffers and their pointers made once: ctypes conversions cost more than the call
        self._row = np.zeros(width, dtype=np.float32)
        self._probability = np.zeros(1, dtype=np.float64)
        self._contributions = np.zeros(width + 1, dtype=np.float64)
        self._out_len = ctypes.c_int64(0)
        self._out_len_ref = ctypes.byref(self._out_len)
        self._row_ptr = self._row.ctypes.data_as(ctypes.c_void_p)
        self._probability_ptr = _doubles(self._probability)
        self._contributions_ptr = _doubles(self._contributions)
        weakref.finalize(self, _free, booster, self._normal, self._contrib)

    def probability(self, row: np.ndarray) -> float:
        self._predict(self._normal, row, self._probability_ptr)
        return float(self._probability[0])

    def contributions(self, row: np.ndarray) -> np.ndarray:
        """(width + 1,) log-odds contributions; the last is the expected value."""
        self._predict(self._contrib, row, self._contributions_ptr)
        return self._contributions.copy()

    def _predict(self, config: ctypes.c_void_p, row: np.ndarray, out: Any) -> None:
        if row.shape != (self.width,):
            raise ValueError(f"expected one row of {self.width} features, got {row.shape}")
        np.copyto(self._row, row, casting="same_kind")
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFast(
                config, self._row_ptr, self._out_len_ref, out
            )
        )


def _fast_config(
    booster: lgb.Booster, predict_type: int, iterations: int, width: int
) -> ctypes.c_void_p:
    config = ctypes.c_void_p()
    _safe_call(
        _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle,
            ctypes.c_int(predict_type),
            ctypes.c_int(0),  # start iteration
            ctypes.c_int(iterations),
            ctypes.c_int(DTYPE_FLOAT32),
            ctypes.c_int32(width),
            ctypes.c_char_p(b"num_threads=1"),
            ctypes.byref(config),
        )
    )
    return config


def _doubles(array: np.ndarray) -> Any:
    return array.ctypes.data_as(ctypes.POINTER(ctypes.c_double))


def _free(_booster: lgb.Booster, *configs: ctypes.c_void_p) -> None:
    for config in configs:
        _LIB.LGBM_FastConfigFree(config)
