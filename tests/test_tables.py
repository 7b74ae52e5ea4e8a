"""Tests for mavil_lite.experiments.paper_numbers: paper numbers come from the csv, the ablation ordering is computed."""

import csv
import statistics

import pytest

from mavil_lite.experiments.ablation_report import compare, floor_verdicts, ordering_sentence, scores_markdown
from mavil_lite.experiments.paper_numbers import PAPER_NUMBERS_CSV, load_paper_numbers, paper_ablation


def csv_ablation_values() -> dict[tuple[int, str], float]:
    with PAPER_NUMBERS_CSV.open(newline="") as csv_file:
        return {
            (int(r["row"]), r["modality"]): float(r["value"]) for r in csv.DictReader(csv_file) if r["table"] == "ablation"
        }


def test_paper_ablation_matches_csv():
    expected = csv_ablation_values()
    paper = paper_ablation()
    assert sorted(paper) == [1, 2, 3, 4, 5]
    for row, entry in paper.items():
        assert entry["audio"] == expected[(row, "A")]
        assert entry["video"] == expected[(row, "V")]
    assert paper[1]["audio"] == 36.4 and paper[5]["video"] == 24.8


def test_load_paper_numbers_filters_and_types():
    retrieval = load_paper_numbers("retrieval")
    assert retrieval and all(r["table"] == "retrieval" for r in retrieval)
    assert all(isinstance(r["value"], float) and isinstance(r["row"], int) for r in retrieval)
    assert len(load_paper_numbers()) > len(retrieval)
    with pytest.raises(ValueError, match="unknown table"):
        load_paper_numbers("no_such_table")


def seeded_rows(audio: list[list[float]], video: list[list[float]]) -> list[dict]:
    """Rows 0-5 as `ablation.mean_rows` gives them, from per-seed values."""
    return [{"row": row, "method": f"method {row}", "metric": "mAP",
             **{key: statistics.fmean(v) for key, v in (("audio", a), ("video", b))},
             **{f"{key}_std": statistics.stdev(v) if len(v) > 1 else 0.0 for key, v in (("audio", a), ("video", b))},
             "audio_values": a, "video_values": b,
             **{f"{key}_probe{suffix}": value for key in ("audio", "video")
                for suffix, value in (("", 50.0), ("_std", 0.0), ("_values", [50.0]))}}
            for row, a, b in zip(range(6), audio, video)]


def test_compare_separates_a_difference_from_the_noise_of_the_seeds():
    assert compare([12.0, 12.2, 11.8], [10.0, 10.1, 9.9]) == ("above beyond noise", pytest.approx(2.0))
    assert compare([10.0, 12.0, 14.0], [10.0, 10.1, 9.9])[0] == "within noise"  # std 2: a difference of 2 is noise
    assert compare([8.0, 8.1, 7.9], [10.0, 10.1, 9.9])[0] == "below beyond noise"
    assert compare([11.0], [10.0]) == ("above (1 seed)", 1.0)
    assert compare([10.0], [10.0])[0] == "not above (1 seed)"  # equal is not an improvement


def test_floor_and_ordering_verdicts_on_a_crafted_example():
    rows = seeded_rows(audio=[[10, 10.2], [12, 12.1], [11, 11.1], [13, 13.1], [13, 13.1], [20, 21]],
                       video=[[5, 5], [4, 4.2], [6, 6], [7, 7.2], [8, 8.2], [5, 9]])
    floor = floor_verdicts(rows, "audio")
    assert [floor[row][0] for row in range(1, 6)] == ["above beyond noise"] * 5
    assert floor_verdicts(rows, "video")[1][0] == "below beyond noise"
    assert floor_verdicts(rows, "video")[5][0] == "within noise"  # row 5 spreads 5-9 over its seeds
    sentence = ordering_sentence(rows, "audio")
    assert sentence.startswith("2/4 steps up, 2/4 beyond noise (2 vs 1: -1.0 (below beyond noise)")
    assert "3 vs 2: +2.0 (above beyond noise)" in sentence and "4 vs 3: +0.0 (within noise)" in sentence
    noisy = seeded_rows(audio=[[0, 0]] * 6, video=[[5, 5], [4, 4.2], [6, 6], [7, 7.2], [8, 8.2], [6, 11]])
    assert ordering_sentence(noisy, "video").startswith("4/4 steps up, 3/4 beyond noise")  # +0.4 up, within noise
    table = scores_markdown(rows, [0, 1])
    assert "| 0 | no pre-training (random init) | 10.1 ± 0.1 |" in table and "(the floor)" in table
    assert "| +2.0 above beyond noise / -0.9 below beyond noise |" in table  # row 1 against row 0
