"""The synthetic dataset: real H.264 + AAC files, consistent labels, determinism, and audio-visual events that
are actually heard and seen."""
import csv
import json

import av
import numpy as np
import pytest
import torch

from mavil_lite.data import synthetic
from mavil_lite.data.media import FeatureSpec, load_frames, load_waveform, waveform_to_fbank
from mavil_lite.data.synthetic import SYNTHETIC_CLASSES, generate_synthetic_dataset, render_clip, write_mp4

KIND = {cls.name: cls.kind for cls in SYNTHETIC_CLASSES}
ALL_FRAMES = FeatureSpec(video_frames=16, video_fps=8.0, frame_size=32)  # every frame of a 2 s, 8 fps clip


def read_rows(manifest):
    with open(manifest, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("synthetic")
    manifest = generate_synthetic_dataset(out_dir, num_clips=10, seed=3, duration_s=2.0, progress=False)
    return out_dir, manifest


def test_class_list_mixes_kinds_and_overlapping_cues():
    kinds = [cls.kind for cls in SYNTHETIC_CLASSES]
    assert kinds.count("audio-visual") >= 5 and kinds.count("audio-only") >= 2 and kinds.count("video-only") >= 2
    assert len({cls.name for cls in SYNTHETIC_CLASSES}) == len(SYNTHETIC_CLASSES)
    looks = [cls.look for cls in SYNTHETIC_CLASSES if cls.look is not None]
    # no single visual cue identifies a class
    assert len({look.rgb for look in looks}) < len(looks) and len({look.shape for look in looks}) < len(looks)
    for cls in SYNTHETIC_CLASSES:
        assert (cls.sound is not None) == (cls.kind != "video-only")
        assert (cls.look is not None) == (cls.kind != "audio-only")
        if cls.sound is not None:
            assert 150 <= cls.sound.low_hz and max(cls.sound.low_hz, cls.sound.high_hz) <= 4000


def test_clips_are_h264_yuv420p_plus_mono_aac(dataset):
    out_dir, manifest = dataset
    rows = read_rows(manifest)
    assert len(rows) == 10
    with av.open(str(out_dir / rows[0]["file"])) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264" and video.codec_context.pix_fmt == "yuv420p"
        assert (video.codec_context.width, video.codec_context.height) == (64, 64)
        assert audio.codec_context.name == "aac" and audio.codec_context.sample_rate == 16000
        assert audio.codec_context.channels == 1


def test_manifest_labels_are_consistent_with_what_is_heard_and_seen(dataset):
    out_dir, manifest = dataset
    rows = read_rows(manifest)
    assert list(rows[0]) == ["file", "labels", "split", "audible", "visible"]
    for row in rows:
        labels, audible, visible = (set(row[key].split()) for key in ("labels", "audible", "visible"))
        assert (out_dir / row["file"]).is_file() and row["file"].startswith("clips/")
        assert 1 <= len(labels) <= 3 and labels == audible | visible
        assert all(KIND[name] != "video-only" for name in audible)
        assert all(KIND[name] != "audio-only" for name in visible)
        assert all(name in audible and name in visible for name in labels if KIND[name] == "audio-visual")
    assert sum(row["split"] == "test" for row in rows) == 2  # round(10 * 0.2)
    assert {row["split"] for row in rows} == {"train", "test"}


def test_same_seed_gives_identical_clips_and_other_seed_differs(dataset, tmp_path):
    out_dir, manifest = dataset
    again = generate_synthetic_dataset(tmp_path / "again", num_clips=4, seed=3, duration_s=2.0, progress=False)
    other = generate_synthetic_dataset(tmp_path / "other", num_clips=4, seed=4, duration_s=2.0, progress=False)
    first_rows, again_rows = read_rows(manifest)[:4], read_rows(again)
    assert [row["labels"] for row in first_rows] == [row["labels"] for row in again_rows]
    assert [row["labels"] for row in read_rows(other)] != [row["labels"] for row in again_rows]
    for row in again_rows:
        original, repeat = out_dir / row["file"], again.parent / row["file"]
        assert torch.equal(load_waveform(original), load_waveform(repeat))
        assert torch.equal(load_frames(original, ALL_FRAMES), load_frames(repeat, ALL_FRAMES))


def test_worker_processes_write_the_same_clips(dataset, tmp_path):
    out_dir, _ = dataset
    parallel = generate_synthetic_dataset(tmp_path / "parallel", num_clips=2, seed=3, duration_s=2.0,
                                          num_workers=1, progress=False)
    for row in read_rows(parallel):
        assert (parallel.parent / row["file"]).read_bytes() == (out_dir / row["file"]).read_bytes()


def test_complete_dataset_is_reused_and_changed_parameters_regenerate(tmp_path):
    manifest = generate_synthetic_dataset(tmp_path, num_clips=3, duration_s=1.0, progress=False)
    clip = tmp_path / read_rows(manifest)[0]["file"]
    stamp = clip.stat().st_mtime_ns
    assert generate_synthetic_dataset(tmp_path, num_clips=3, duration_s=1.0, progress=False) == manifest
    assert clip.stat().st_mtime_ns == stamp
    assert json.loads((tmp_path / "params.json").read_text())["num_clips"] == 3
    generate_synthetic_dataset(tmp_path, num_clips=4, duration_s=1.0, progress=False)
    assert len(read_rows(manifest)) == 4


def test_interrupted_run_leaves_no_manifest(tmp_path, monkeypatch):
    made = []

    def make_two_then_die(job):
        if len(made) == 2:
            raise KeyboardInterrupt
        made.append(job)
        return real_make_clip(job)

    real_make_clip = synthetic._make_clip
    monkeypatch.setattr(synthetic, "_make_clip", make_two_then_die)
    with pytest.raises(KeyboardInterrupt):
        generate_synthetic_dataset(tmp_path, num_clips=4, duration_s=1.0, progress=False)
    assert not (tmp_path / "manifest.csv").exists() and not (tmp_path / "params.json").exists()
    monkeypatch.setattr(synthetic, "_make_clip", real_make_clip)
    assert len(read_rows(generate_synthetic_dataset(tmp_path, num_clips=4, duration_s=1.0, progress=False))) == 4


def test_levels_stay_below_clipping():
    for seed in range(8):
        waveform, frames, _ = render_clip(np.random.default_rng(seed))
        assert np.abs(waveform).max() < 0.9 and waveform.dtype == np.float32 and frames.dtype == np.uint8


def test_unknown_staged_class_is_named():
    with pytest.raises(ValueError, match="trumpet"):
        render_clip(np.random.default_rng(0), events=[("trumpet", 0.0, 1.0)])


def band_energy(fbank, centre_hz, mel_bins=128):
    """Mean log energy (frames,) of the mel bins within 6% of centre_hz."""
    mel = lambda hz: 1127.0 * np.log1p(hz / 700.0)  # noqa: E731  (the fbank's mel scale, htk_compat)
    edges = np.linspace(mel(20.0), mel(8000.0), mel_bins + 2)
    centres = edges[1:-1]
    near = (centres > mel(centre_hz * 0.94)) & (centres < mel(centre_hz * 1.06))
    return fbank[:, torch.from_numpy(near)].mean(dim=1)


@pytest.mark.parametrize("name, colour_channel, pitch_hz", [("whistle", 2, 2400.0), ("bell", 0, 440.0)])
def test_audio_visual_event_is_heard_and_seen_while_on(tmp_path, name, colour_channel, pitch_hz):
    # the same scene with and without the event: the random draws for the background come first, so they match
    frames = {}
    for staged, events in (("with", [(name, 1.5, 3.0)]), ("without", [])):
        waveform, frames[staged], _ = render_clip(np.random.default_rng(1), duration_s=4.0, events=events)
        write_mp4(tmp_path / f"{staged}.mp4", frames[staged], 8, waveform)
    fbank = waveform_to_fbank(load_waveform(tmp_path / "with.mp4"), FeatureSpec(audio_frames=400))
    energy = band_energy(fbank, pitch_hz)  # after the AAC round trip: what the model will see
    # event on from fbank frame 150 to 300; log energies: +1.5 is 4.5x louder during the event than before/after
    assert energy[170:280].mean() > energy[:130].mean() + 1.5
    assert energy[170:280].mean() > energy[330:].mean() + 1.5

    drawn = np.abs(frames["with"].astype(int) - frames["without"]).max(axis=-1) > 0  # (T, H, W) object pixels
    frames_with_object = np.flatnonzero(drawn.any(axis=(1, 2)))
    assert frames_with_object.min() == 12 and frames_with_object.max() == 23  # on from 1.5 s to 3 s at 8 fps
    every_frame = FeatureSpec(video_frames=32, video_fps=8.0, frame_size=64)
    change = (load_frames(tmp_path / "with.mp4", every_frame).float()
              - load_frames(tmp_path / "without.mp4", every_frame).float())  # (T, H, W, 3) after H.264
    colour_shift = change[torch.from_numpy(drawn)].mean(dim=0)  # (3,) mean change where the object is
    assert colour_shift.argmax() == colour_channel and colour_shift[colour_channel] > 20


def test_an_unlabelled_split_is_carved_after_the_test_split_and_only_pre_training_sees_it(tmp_path):
    from mavil_lite.data.dataset import decode_manifest
    from mavil_lite.experiments.ablation import pretraining_clips
    from mavil_lite.experiments.presets import FEATURES

    plain = read_rows(generate_synthetic_dataset(tmp_path / "plain", num_clips=10, duration_s=1.0, progress=False))
    manifest = generate_synthetic_dataset(tmp_path / "pool", num_clips=10, duration_s=1.0, unlabelled_fraction=0.5,
                                          progress=False)
    rows = read_rows(manifest)
    assert [row["split"] for row in rows].count("test") == 2 and [row["split"] for row in rows].count("unlabelled") == 5
    # the same test clips as without an unlabelled split: the held-out set does not move
    assert [r["file"] for r in rows if r["split"] == "test"] == [r["file"] for r in plain if r["split"] == "test"]
    clips = decode_manifest(manifest, FEATURES["tiny"], progress=False)
    pool = pretraining_clips(clips)
    assert sorted(pool.splits) == ["train"] * 3 + ["unlabelled"] * 5
    assert len(pretraining_clips(clips.subset("train"))) == 3  # without an unlabelled split: the train split
    with pytest.raises(ValueError, match="at most 1"):
        generate_synthetic_dataset(tmp_path / "bad", num_clips=4, test_fraction=0.5, unlabelled_fraction=0.6)
