"""Manifest in, in-memory tensors out: manifest parsing, stable splits, and decoded tensors that match the labels."""
import csv
from pathlib import Path

import pytest
import torch

from mavil_lite.data.dataset import ClipTensors, assign_splits, decode_manifest, read_manifest
from mavil_lite.data.media import FeatureSpec, frames_to_tensor, load_frames
from mavil_lite.data.synthetic import generate_synthetic_dataset

SMALL = FeatureSpec(audio_frames=384, mel_bins=64, video_frames=4, video_fps=1.0, frame_size=64)
GRID = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "grid_s1"


def write_csv(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def synthetic_manifest(tmp_path_factory):
    return generate_synthetic_dataset(tmp_path_factory.mktemp("clips"), num_clips=6, seed=1, duration_s=2.0,
                                      progress=False)


def test_read_manifest_resolves_paths_and_splits_labels(tmp_path):
    absolute = tmp_path / "elsewhere" / "b.mp4"
    (tmp_path / "sub").mkdir()
    manifest = write_csv(tmp_path / "sub" / "m.csv", [
        {"file": "clips/a.mp4", "tags": "dog bark", "split": "test"},
        {"file": str(absolute), "tags": "", "split": ""},
    ])
    records = read_manifest(manifest, label_column="tags")
    assert records[0]["path"] == str(tmp_path / "sub" / "clips" / "a.mp4")
    assert records[1]["path"] == str(absolute)
    assert records[0]["labels"] == ["dog", "bark"] and records[1]["labels"] == []
    assert records[0]["split"] == "test" and records[1]["split"] is None
    assert records[0]["row"]["tags"] == "dog bark"


def test_missing_label_column_lists_the_columns(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", [{"file": "a.mp4", "labels": "x"}])
    with pytest.raises(ValueError, match=r"'genre'.*\['file', 'labels'\]"):
        read_manifest(manifest, label_column="genre")
    with pytest.raises(FileNotFoundError, match="absent.csv"):
        read_manifest(tmp_path / "absent.csv")


def test_splits_are_stable_seeded_and_keep_given_ones():
    records = [{"path": f"/data/clip{index}.mp4", "split": None} for index in range(2000)]
    first = [record["split"] for record in assign_splits([dict(r) for r in records], 0.2, seed=0)]
    again = [record["split"] for record in assign_splits([dict(r) for r in reversed(records)], 0.2, seed=0)]
    other = [record["split"] for record in assign_splits([dict(r) for r in records], 0.2, seed=1)]
    assert first == again[::-1]  # depends on the file name, not the row order
    assert first != other
    assert 0.17 < first.count("test") / len(first) < 0.23
    kept = assign_splits([{"path": "/x/clip1.mp4", "split": "train"}], test_fraction=1.0)
    assert kept[0]["split"] == "train"


def test_decoded_tensors_match_the_manifest(synthetic_manifest):
    clips = decode_manifest(synthetic_manifest, SMALL, progress=False)
    records = read_manifest(synthetic_manifest)
    assert len(clips) == 6
    assert clips.audio.shape == (6, 1, 384, 64) and clips.audio.dtype == torch.float32
    assert clips.video.shape == (6, 4, 64, 64, 3) and clips.video.dtype == torch.uint8
    assert clips.classes == sorted({label for record in records for label in record["labels"]})
    for row, record in enumerate(records):
        hot = {clips.classes[index] for index in torch.nonzero(clips.targets[row]).flatten().tolist()}
        assert hot == set(record["labels"])
        assert clips.files[row] == record["path"] and clips.splits[row] == record["split"]
    assert torch.equal(clips.video[2], load_frames(records[2]["path"], SMALL))
    assert -3 < clips.audio.mean().item() < 3  # normalised, not raw log-mel (around -4 to -15)


def test_subset_and_batch(synthetic_manifest):
    clips = decode_manifest(synthetic_manifest, SMALL, progress=False)
    train, test = clips.subset("train"), clips.subset("test")
    assert len(train) + len(test) == len(clips) and set(train.splits) == {"train"}
    assert train.classes == clips.classes and train.targets.shape[1] == len(clips.classes)
    audio, video, targets = train.batch(slice(0, 2))
    assert audio.shape == (2, 1, 384, 64) and video.shape == (2, 3, 4, 64, 64)
    assert targets.shape == (2, len(clips.classes))
    assert torch.equal(video, frames_to_tensor(train.video[:2]))
    assert train.batch(0)[1].shape == (1, 3, 4, 64, 64)
    with pytest.raises(ValueError, match="validation"):
        clips.subset("validation")


def test_manifest_without_splits_gets_them_assigned(tmp_path, synthetic_manifest):
    rows = [{"file": str(Path(record["path"])), "labels": " ".join(record["labels"])}
            for record in read_manifest(synthetic_manifest)[:3]]
    clips = decode_manifest(write_csv(tmp_path / "nosplit.csv", rows), SMALL, progress=False, test_fraction=0.5)
    assert len(clips) == 3 and set(clips.splits) <= {"train", "test"}
    assert isinstance(clips, ClipTensors)


def test_worker_processes_decode_the_same_tensors(tmp_path, synthetic_manifest):
    rows = [{"file": record["path"], "labels": " ".join(record["labels"])}
            for record in read_manifest(synthetic_manifest)[:2]]
    manifest = write_csv(tmp_path / "two.csv", rows)
    serial = decode_manifest(manifest, SMALL, progress=False)
    parallel = decode_manifest(manifest, SMALL, progress=False, num_workers=1)
    assert torch.equal(serial.audio, parallel.audio) and torch.equal(serial.video, parallel.video)


def test_grid_manifest_reads_its_word_slots():
    if not (GRID / "manifest.csv").is_file():
        pytest.skip(f"GRID clips not found at {GRID} (the shared data folder sits beside the repository)")
    records = read_manifest(GRID / "manifest.csv", label_column="transcript")
    assert len(records[0]["labels"]) == 6 and Path(records[0]["path"]).is_file()
    assert all(record["split"] is None for record in records[:10])
    colours = read_manifest(GRID / "manifest.csv", label_column="color")
    assert {label for record in colours for label in record["labels"]} == {"blue", "green", "red", "white"}
