"""Tests for mavil_lite.tables: paper numbers come from the csv, the ablation ordering is computed."""

import csv

import pytest

from mavil_lite.tables import PAPER_NUMBERS_CSV, load_paper_numbers, ordering_sentence, paper_ablation, row_ordering


def make_results(audio: list[float], video: list[float]) -> list[dict]:
    return [
        {"row": row, "method": f"method {row}", "audio": a, "video": v, "metric": "mAP", "wall_s": 10.0 * row}
        for row, a, v in zip(range(1, 6), audio, video)
    ]


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


def test_row_ordering_on_crafted_example():
    results = make_results(audio=[10, 12, 11, 13, 13], video=[5, 4, 6, 7, 8])
    assert row_ordering(results, "audio") == [True, False, True, False]  # equal is not an improvement
    assert row_ordering(results, "video") == [False, True, True, True]
    with pytest.raises(ValueError, match="once"):
        row_ordering(results[:4], "audio")
    with pytest.raises(ValueError, match="audio"):
        row_ordering(results, "loss")
    with pytest.raises(ValueError, match="once"):
        row_ordering(results + results[:1], "audio")


def test_ordering_sentence_names_each_step():
    results = make_results(audio=[10, 12, 11, 13, 13], video=[5, 4, 6, 7, 8])
    assert ordering_sentence(results, "audio") == ("2/4 improved (row 2 vs 1: improved; row 3 vs 2: did not improve; "
                                                   "row 4 vs 3: improved; row 5 vs 4: did not improve)")
    assert ordering_sentence(results, "video").startswith("3/4 improved")
