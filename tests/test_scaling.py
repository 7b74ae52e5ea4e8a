"""The scaling study's trend fit: exact on planted log-linear data, and honest when a trend does not rise."""
import math

import pytest

from mavil_lite.experiments.presets import get_preset
from mavil_lite.experiments.scaling import budget_epochs, extrapolate, scaling_markdown, trends


def budget(flops: float, r1: float, gain: float) -> dict:
    retrieval = {"a2v": {"R@1": r1, "median_rank": 10.0}, "v2a": {"R@1": r1 / 2, "median_rank": 12.0},
                 "chance": {"R@1": 0.01}}
    return {"run": "av_inter_intra", "epochs": 1, "steps": 1, "flops": flops, "wall_s": 1.0, "audio": 30 + gain,
            "video": 20 + gain,
            "audio_gain": gain, "video_gain": -gain, "retrieval": retrieval}


def test_a_planted_log_linear_trend_is_recovered_and_extrapolated_to_its_target():
    budgets = [budget(10.0 ** k, 0.02 + 0.01 * k, 2.0 * k) for k in (12, 13, 14)]  # R@1 rises 1 point per decade
    fit = extrapolate(budgets, "a2v_r1", target=0.20)
    assert fit["slope"] == pytest.approx(0.01) and fit["intercept"] == pytest.approx(0.02)
    assert math.log10(fit["flops_at_target"]) == pytest.approx(18.0)  # 0.02 + 0.01 * 18 = 0.20
    assert fit["log10_flops_at_target"] == pytest.approx(18.0)
    assert not fit["reached"]
    assert extrapolate(budgets, "a2v_r1", target=0.15)["reached"]  # 0.16 was measured at 1e14
    assert extrapolate(budgets, "audio_gain")["slope"] == pytest.approx(2.0)


def test_a_trend_that_does_not_rise_reaches_no_target():
    budgets = [budget(10.0 ** k, 0.05 - 0.01 * k / 10, 0.0) for k in (12, 13, 14)]
    fit = extrapolate(budgets, "a2v_r1", target=0.10)
    assert fit["slope"] < 0 and fit["log10_flops_at_target"] is None and not fit["reached"]
    study = {"floor": {"audio": 30.0, "video": 20.0}, "rows": {4: budgets}, "chance_r1": 0.01}
    fitted = trends(study)
    assert fitted[4]["a2v_r1"]["target"] == pytest.approx(0.10) and fitted[4]["audio_gain"]["target"] is None
    assert "row 4, a2v_r1" in scaling_markdown(study, fitted) and "does not rise" in scaling_markdown(study, fitted)
    with pytest.raises(ValueError, match="two budgets"):
        extrapolate(budgets[:1], "a2v_r1", 0.1)


def test_budgets_are_multiples_of_the_presets_epochs_without_repeats():
    cpu = get_preset("cpu", epochs=4)
    assert budget_epochs(cpu, [0.5, 1, 2, 4]) == [2, 4, 8, 16]
    assert budget_epochs(get_preset("smoke"), [0.5, 1, 2]) == [1, 2]


def test_a_trend_too_flat_to_extrapolate_says_so_instead_of_a_number():
    budgets = [budget(10.0 ** k, 0.010 + 0.0001 * k, 0.0) for k in (12, 13, 14)]  # 0.01 points of R@1 per decade
    study = {"floor": {"audio": 30.0, "video": 20.0}, "rows": {4: budgets}, "chance_r1": 0.01}
    fitted = trends(study)
    assert fitted[4]["a2v_r1"]["log10_flops_at_target"] > 14 + 3
    assert "too flat to say" in scaling_markdown(study, fitted)
