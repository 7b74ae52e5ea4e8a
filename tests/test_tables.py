"""Tests for mavil_lite.tables: paper numbers come from the csv, the table and ordering are computed."""

import csv
import json

import numpy as np
import pytest

from mavil_lite.tables import (
    PAPER_NUMBERS_CSV,
    ablation_markdown,
    load_paper_numbers,
    paper_ablation,
    row_ordering,
    write_results,
)

SCALE = {"data": "synthetic", "clips": 64, "epochs": 2, "model": "tiny ViT", "device": "cpu", "total wall time": "1 min"}


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
    with pytest.raises(ValueError, match="missing"):
        row_ordering(results[:4], "audio")
    with pytest.raises(ValueError, match="audio"):
        row_ordering(results, "loss")


def test_markdown_has_all_rows_paper_numbers_scale_and_computed_ordering():
    results = make_results(audio=[10, 12, 11, 13, 14], video=[5, 6, 7, 8, 9])
    text = ablation_markdown(results, SCALE)
    table_rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(table_rows) == 5
    assert "| # | Method | Audio: paper | Audio: ours | Video: paper | Video: ours | Pre-train wall time |" in text
    for row, entry in paper_ablation().items():
        cells = [cell.strip() for cell in table_rows[row - 1].strip("|").split("|")]
        assert cells[0] == str(row)
        assert float(cells[2]) == entry["audio"] and float(cells[4]) == entry["video"]
        assert float(cells[3]) == results[row - 1]["audio"]
    for key, value in SCALE.items():
        assert f"- {key}: {value}" in text
    assert "not comparable" in text and "AudioSet-2M" in text
    audio_line = next(line for line in text.splitlines() if line.startswith("- Audio:"))
    video_line = next(line for line in text.splitlines() if line.startswith("- Video:"))
    assert "ours 3/4 improved" in audio_line and "row 3 vs 2: did not improve" in audio_line
    assert "ours 4/4 improved" in video_line
    assert "Paper: 4/4 improved" in audio_line


def test_markdown_shows_missing_rows_as_dashes():
    text = ablation_markdown(make_results([10, 12], [5, 6]), SCALE)
    row_five = next(line for line in text.splitlines() if line.startswith("| 5 |"))
    assert "| - |" in row_five and "24.8" in row_five
    assert "n/a (row missing)" in text


def test_results_are_validated():
    with pytest.raises(ValueError, match="percentage"):
        ablation_markdown(make_results([10, 12, 11, 13, 140], [5] * 5), SCALE)
    with pytest.raises(ValueError, match="lacks keys"):
        ablation_markdown([{"row": 1, "audio": 1.0}], SCALE)
    with pytest.raises(ValueError, match="twice"):
        ablation_markdown(make_results([1, 2], [1, 2]) * 2, SCALE)


def test_write_results_round_trips(tmp_path):
    results = make_results(audio=list(np.float32([10, 12, 11, 13, 14])), video=[5, 6, 7, 8, 9])
    record = write_results(tmp_path / "out", results, {**SCALE, "out": tmp_path})
    assert (tmp_path / "out" / "table.md").read_text().startswith("## MAViL ablation")
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == record
    assert record["table"] == "ablation" and record["scale"]["clips"] == 64
    assert [r["row"] for r in record["rows"]] == [1, 2, 3, 4, 5]
    assert record["rows"][0]["paper_audio"] == 36.4 and record["rows"][4]["paper_video"] == 24.8
    assert record["rows"][2]["audio"] == 11.0
    assert record["ordering"]["audio"] == [True, False, True, True]
