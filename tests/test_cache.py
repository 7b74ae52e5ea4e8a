"""The feature cache: it holds what decoding gives (raw or JPEG frames), reads back as a Dataset or a ClipTensors,
serves audio-only and unlabelled datasets, computes and applies normalisation statistics, and real data (GRID,
FSDD) loads as it is. Also the raw-file Dataset: random training windows (fresh, or seeded by a draw number), a
fixed evaluation window."""
import csv
import json

import av
import numpy as np
import pytest
import torch
import torchaudio
from media_files import frame_numbers, numbered_frames, tone, write_media, write_wav
from torch.utils.data import DataLoader

from mavil_lite.cli import main
from mavil_lite.data.audio_stats import dataset_statistics, write_statistics
from mavil_lite.data.cache import prepare_cache, preset_spec
from mavil_lite.data.cache_reader import CachedClips, CacheReader, load_cache
from mavil_lite.data.dataset import decode_manifest, read_manifest
from mavil_lite.data.media import (
    FeatureSpec,
    frames_to_tensor,
    kaldi_fbank,
    load_waveform,
    normalize_fbank,
    waveform_to_fbank,
)
from mavil_lite.data.raw_clips import RawClips
from mavil_lite.data.synthetic import generate_synthetic_dataset

TINY = preset_spec("tiny")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    manifest = generate_synthetic_dataset(folder / "data", num_clips=6, seed=2, duration_s=2.0, progress=False)
    return manifest, prepare_cache(manifest, folder / "raw", "tiny", shard_size=4, progress=False)


def test_cache_holds_what_decoding_gives(synthetic):
    manifest, result = synthetic
    decoded = decode_manifest(manifest, TINY, progress=False)
    cached = load_cache(result.out_dir, progress=False)
    assert result.summary == "6 ok, 0 partial, 0 failed"
    assert json.loads((result.out_dir / "meta.json").read_text())["shards"] == ["00000.pt", "00001.pt"]
    assert cached.files == decoded.files and cached.splits == decoded.splits and cached.classes == decoded.classes
    assert torch.equal(cached.video, decoded.video) and torch.equal(cached.targets, decoded.targets)
    assert torch.allclose(cached.audio, decoded.audio, atol=2e-3)  # float16 storage, after normalisation
    assert cached.audio.shape == (6, 1, 384, 64) and cached.video.shape == (6, 4, 64, 64, 3)


def test_dataset_batches_match_the_in_memory_tensors(synthetic):
    manifest, result = synthetic
    cached = load_cache(result.out_dir, progress=False)
    dataset = CachedClips(result.out_dir, split="train")
    train = cached.subset("train")
    batch = next(iter(DataLoader(dataset, batch_size=len(dataset), num_workers=0)))
    assert batch["audio"].shape == (len(train), 1, 384, 64) and batch["video"].dtype == torch.uint8
    assert torch.equal(batch["audio"], train.audio) and torch.equal(batch["video"], train.video)
    assert torch.equal(batch["target"], train.targets) and bool(batch["has_video"].all())
    assert frames_to_tensor(batch["video"]).shape == (len(train), 3, 4, 64, 64)
    worker_batch = next(iter(DataLoader(dataset, batch_size=len(dataset), num_workers=1)))
    assert torch.equal(worker_batch["video"], batch["video"])


def test_jpeg_frames_are_close_and_smaller(synthetic, tmp_path):
    manifest, raw = synthetic
    jpeg = prepare_cache(manifest, tmp_path / "jpeg", "tiny", frame_format="jpeg", progress=False)
    raw_video = load_cache(raw.out_dir, progress=False).video.float()
    jpeg_video = load_cache(jpeg.out_dir, progress=False).video.float()
    assert jpeg_video.shape == raw_video.shape
    assert (jpeg_video - raw_video).abs().mean() < 5  # quality 90: a few grey levels, on frames full of pixel noise
    assert jpeg.bytes_per_clip < 0.75 * raw.bytes_per_clip
    meta = json.loads((jpeg.out_dir / "meta.json").read_text())
    (jpeg.out_dir / "meta.json").write_text(json.dumps({**meta, "version": 1}))  # one JPEG per frame, before
    with pytest.raises(ValueError, match="prepare the cache again"):
        load_cache(jpeg.out_dir, progress=False)


def test_statistics_from_cache_and_manifest_agree_and_apply(synthetic, tmp_path, capsys):
    manifest, result = synthetic
    values = torch.cat([kaldi_fbank(load_waveform(record["path"]), TINY) for record in read_manifest(manifest)])
    from_manifest = dataset_statistics(manifest, preset="tiny", progress=False)
    assert from_manifest["mean"] == pytest.approx(values.mean().item(), abs=1e-4)
    assert from_manifest["std"] == pytest.approx(values.std().item(), rel=1e-4)
    assert (from_manifest["clips"], from_manifest["values"]) == (6, values.numel())
    assert main(["stats", str(result.out_dir), "--write", "--no-progress"]) == 0
    from_cache = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert from_cache["mean"] == pytest.approx(from_manifest["mean"], abs=2e-3)  # float16 storage
    reader = CacheReader(result.out_dir)
    raw = reader.raw_fbank(0).float()
    expected = normalize_fbank(raw, from_cache["mean"], from_cache["std"])
    assert torch.allclose(reader.audio(0)[0, :len(raw)], expected)
    write_statistics(result.out_dir, {"mean": -4.2677393, "std": 4.5689974})  # back to AudioSet's for other tests


def test_audio_only_unlabelled_dataset(tmp_path):
    (tmp_path / "clips").mkdir()
    rows = []
    for index, rate in enumerate([8000, 16000, 44100]):
        write_wav(tmp_path / "clips" / f"{index}.wav", tone(300 * (index + 1), 1.0, rate), rate)
        rows.append({"file": f"clips/{index}.wav", "split": "test" if index == 0 else "train"})
    with open(tmp_path / "m.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "split"])
        writer.writeheader()
        writer.writerows(rows)
    result = prepare_cache(tmp_path / "m.csv", tmp_path / "cache", "tiny", progress=False)
    assert result.modalities == ("audio",) and result.summary == "3 ok, 0 partial, 0 failed"
    clips = load_cache(tmp_path / "cache", progress=False)
    assert clips.classes == [] and clips.targets.shape == (3, 0) and clips.splits == ["test", "train", "train"]
    assert clips.modalities == ("audio",) and not bool(clips.has_video.any())
    assert clips.video.stride(0) == 0  # no frames stored or held: one broadcast zero clip
    assert clips.subset("train").video.shape == (2, 4, 64, 64, 3)
    assert result.bytes_per_clip < 30_000  # 1 s of float16 fbank (~13 kB) and the shard's bookkeeping


def test_grid_fbank_is_torchaudio_kaldi_fbank(shared_dir):
    grid = shared_dir / "data" / "grid_s1"
    clip = grid / read_manifest(grid / "manifest.csv", "transcript")[0]["row"]["file"]
    with av.open(str(clip)) as container:  # the reference waveform, decoded independently of decord
        stream = container.streams.audio[0]
        assert (stream.codec_context.sample_rate, stream.codec_context.channels) == (16000, 1)
        samples = np.concatenate([frame.to_ndarray() for frame in container.decode(stream)], axis=1)  # (1, n)
    waveform = load_waveform(clip)  # (1, samples): 16 kHz mono, DC removed
    independent = torch.from_numpy(samples.astype(np.float32))
    torch.testing.assert_close(waveform, independent - independent.mean(), atol=1e-6, rtol=0)
    reference = torchaudio.compliance.kaldi.fbank(
        waveform, htk_compat=True, sample_frequency=16000, use_energy=False, window_type="hanning",
        num_mel_bins=128, dither=0.0, frame_shift=10)  # the paper's parameters
    assert 290 < len(reference) < 320  # ~3 s of speech
    ours = waveform_to_fbank(waveform, preset_spec("paper"))  # (1024, 128), zero-padded
    torch.testing.assert_close(ours[:len(reference)], reference, atol=1e-4, rtol=0)
    assert torch.all(ours[len(reference):] == 0)


def subset_manifest(source, count, out):
    """The first `count` rows of a shared manifest, with absolute paths, as a manifest elsewhere."""
    with open(source / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[:count]
    for row in rows:
        row["file"] = str(source / row["file"])
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def read_report_rows(cache_dir):
    with open(cache_dir / "report.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_grid_loads_without_conversion_at_paper_shapes(shared_dir, tmp_path):
    subset_manifest(shared_dir / "data" / "grid_s1", 4, tmp_path / "grid.csv")
    result = prepare_cache(tmp_path / "grid.csv", tmp_path / "grid", "paper", label_column="transcript",
                           progress=False)
    assert result.summary == "4 ok, 0 partial, 0 failed" and result.modalities == ("audio", "video")
    item = CachedClips(tmp_path / "grid")[0]
    assert item["audio"].shape == (1, 1024, 128) and frames_to_tensor(item["video"]).shape == (3, 8, 224, 224)
    assert int(item["target"].sum()) == 6  # six words, multi-label
    assert read_report_rows(tmp_path / "grid")[0]["reason"] == (
        "audio 3.01 s shorter than the 10.24 s window: zero-padded; "
        "video 3.00 s shorter than the 4.00 s window: looped")
    digits = load_cache(prepare_cache(tmp_path / "grid.csv", tmp_path / "digits", "tiny", label_column="digit",
                                      progress=False).out_dir, progress=False)
    assert int(digits.targets.sum(dim=1).max()) == 1  # single-label


def test_fsdd_loads_as_an_audio_only_dataset(shared_dir, tmp_path):
    rows = subset_manifest(shared_dir / "data" / "fsdd", 4, tmp_path / "fsdd.csv")
    result = prepare_cache(tmp_path / "fsdd.csv", tmp_path / "fsdd", "tiny", label_column="digit", progress=False)
    assert result.summary == "4 ok, 0 partial, 0 failed" and result.modalities == ("audio",)
    clips = load_cache(tmp_path / "fsdd", progress=False)
    assert clips.classes == ["0"] and clips.splits == [row["split"] for row in rows]  # its own train/test split
    assert [row["reason"] for row in read_report_rows(tmp_path / "fsdd")] == [
        f"audio resampled 8000 Hz -> 16000 Hz; audio {float(row['duration_s']):.2f} s shorter than the 3.84 s window: "
        "zero-padded" for row in rows]


def test_raw_clips_draw_random_training_windows_and_a_fixed_evaluation_one(tmp_path):
    (tmp_path / "clips").mkdir()
    write_media(tmp_path / "clips" / "long.mp4", numbered_frames(32), 8, [tone(1000, 4.0)])  # 4 s at 8 fps
    (tmp_path / "m.csv").write_text("file,labels\nclips/long.mp4,speech\n")
    spec = FeatureSpec(audio_frames=128, mel_bins=32, video_frames=2, video_fps=1.0, frame_size=32)  # a 2 s window
    evaluation = RawClips(tmp_path / "m.csv", spec)
    assert frame_numbers(evaluation[0]["video"]) == [0, 8] == frame_numbers(evaluation[0]["video"])
    training = RawClips(tmp_path / "m.csv", spec, train=True)
    windows = [frame_numbers(training[0]["video"]) for _ in range(12)]
    assert all(second - first == 8 and 0 <= first <= 16 for first, second in windows)  # inside the 4 s clip
    assert len({first for first, _ in windows}) >= 4  # a new window each time
    drawn = [frame_numbers(evaluation.read(0, draw)["video"]) for draw in range(8)]  # as a stream's workers read
    assert drawn == [frame_numbers(evaluation.read(0, draw)["video"]) for draw in range(8)]  # a function of the draw
    assert len({first for first, _ in drawn}) >= 4 and all(second - first == 8 for first, second in drawn)
