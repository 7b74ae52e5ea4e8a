"""Bad input never stops `prepare` or training: every case is recorded with its reason, and nothing else is lost.

One manifest mixes two good clips with one file per bad-input case (all made here, as real files); one `prepare`
run over it is then checked case by case: the recorded status and reason, the features that survive, and that the
good clips come out exactly as a direct decode gives them.
"""
import csv
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from media_files import frame_numbers, numbered_frames, tone, truncate, write_media

from mavil_lite.cli import main
from mavil_lite.data.cache import prepare_cache, preset_spec
from mavil_lite.data.cache_reader import CachedClips, CacheReader, load_cache
from mavil_lite.data.containers import BadClipError
from mavil_lite.data.dataset import decode_manifest
from mavil_lite.data.media import kaldi_fbank, load_frames, load_waveform, normalize_fbank
from mavil_lite.data.raw_clips import RawClips
from mavil_lite.data.report import read_report

TINY = preset_spec("tiny")  # 3.84 s of audio x 64 mel bins; 4 frames at 1 fps (a 4 s window), 64 px
GOOD_FRAMES = [0, 8, 16, 24]  # 1 fps from an 8 fps clip
VFR_TIMES = [0.1 * k for k in range(10)] + [1.0 + 0.3 * k for k in range(10)]  # 10 fps, then 3.3 fps


def write_manifest(path, files):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "labels"])
        writer.writerows([[f"clips/{name}", "speech"] for name in files])
    return path


def make_clips(folder: Path) -> list[str]:
    """One file per case in folder/clips; returns the names in manifest order."""
    clips = folder / "clips"
    clips.mkdir(parents=True)
    four_seconds = numbered_frames(32)
    write_media(clips / "good1.mp4", four_seconds, 8, [tone(1000, 4)])
    write_media(clips / "good2.mp4", four_seconds[::-1].copy(), 8, [tone(500, 4)])
    (clips / "empty.mp4").touch()
    (clips / "notes.mp4").write_text("not a video at all")
    write_media(clips / "silent.mp4", four_seconds, 8, None)
    write_media(clips / "radio.mp4", None, 8, [tone(1000, 4)])
    write_media(clips / "truncated.mp4", four_seconds, 8, [tone(1000, 4)], options={"movflags": "faststart"})
    truncate(clips / "truncated.mp4", 0.5)
    write_media(clips / "short.mp4", numbered_frames(12), 8, [tone(1000, 1.5)])
    write_media(clips / "rate8k.mp4", four_seconds, 8, [tone(1000, 4, 8000)], sample_rate=8000)
    write_media(clips / "surround48k.mp4", four_seconds, 8, [tone(1000, 4, 48000, channels=6)], sample_rate=48000)
    write_media(clips / "vfr.mp4", numbered_frames(20), 5, [tone(1000, 4)], frame_times=VFR_TIMES)
    write_media(clips / "two_audio.mkv", four_seconds, 8, [tone(1000, 4), tone(2500, 4)])
    return ["good1.mp4", "missing.mp4", "empty.mp4", "notes.mp4", "silent.mp4", "radio.mp4", "truncated.mp4",
            "short.mp4", "rate8k.mp4", "surround48k.mp4", "vfr.mp4", "two_audio.mkv", "good2.mp4"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_inputs")
    names = make_clips(folder)
    manifest = write_manifest(folder / "manifest.csv", names)
    result = prepare_cache(manifest, folder / "cache", "tiny", progress=False)
    report = {Path(file).name: entry for file, entry in read_report(folder / "cache" / "report.csv").items()}
    return {"folder": folder, "manifest": manifest, "result": result, "report": report, "names": names,
            "reader": CacheReader(folder / "cache")}


def position(prepared, name):
    """Where a clip is in the cache, by file name."""
    return next(i for i, row in enumerate(prepared["reader"].rows) if Path(row["file"]).name == name)


def cached(prepared, name):
    """The cache's item for a clip, by file name."""
    return prepared["reader"].item(position(prepared, name))


def peak_mel_bin(fbank: torch.Tensor) -> int:
    """The mel bin with the most energy over the clip's first second: where its tone is."""
    return int(fbank[:100].mean(dim=0).argmax())


def assert_nothing_else_lost(prepared):
    """Every clip has a row, and the good clips are ok and exactly what a direct decode gives."""
    assert sorted(prepared["report"]) == sorted(prepared["names"])
    clips = prepared["folder"] / "clips"
    for name in ("good1.mp4", "good2.mp4"):
        assert prepared["report"][name] == {"status": "ok", "reason": ""}
        item = cached(prepared, name)
        assert bool(item["has_audio"]) and bool(item["has_video"])
        assert torch.equal(item["video"], load_frames(clips / name, TINY))
        direct = kaldi_fbank(load_waveform(clips / name), TINY)  # (frames, F)
        stored = prepared["reader"].raw_fbank(position(prepared, name))  # (frames, F) float16
        assert stored.shape == direct.shape
        assert torch.allclose(stored.float(), direct, atol=0.01)  # float16 storage
    assert frame_numbers(cached(prepared, "good1.mp4")["video"]) == GOOD_FRAMES


def assert_row(prepared, name, status, reason):
    entry = prepared["report"][name]
    assert entry["status"] == status, entry
    assert reason in entry["reason"], entry


def test_summary_counts_every_clip(prepared):
    result = prepared["result"]
    assert result.summary == "7 ok, 2 partial, 4 failed"
    assert result.modalities == ("audio", "video")
    assert len(prepared["reader"]) == 9  # the usable ones: ok and partial
    assert_nothing_else_lost(prepared)


def test_missing_file(prepared):
    assert_row(prepared, "missing.mp4", "failed", "missing file")
    assert_nothing_else_lost(prepared)


def test_empty_file(prepared):
    assert_row(prepared, "empty.mp4", "failed", "empty file (0 bytes)")
    assert_nothing_else_lost(prepared)


def test_unreadable_container(prepared):
    assert prepared["report"]["notes.mp4"] == {
        "status": "failed", "reason": "unreadable container (Invalid data found when processing input)"}
    assert_nothing_else_lost(prepared)


def test_no_audio_stream_is_usable_for_video(prepared):
    assert prepared["report"]["silent.mp4"] == {"status": "partial",
                                                "reason": "no audio stream: usable for video only"}
    item = cached(prepared, "silent.mp4")
    assert not bool(item["has_audio"]) and bool(item["has_video"])
    assert frame_numbers(item["video"]) == GOOD_FRAMES
    assert_nothing_else_lost(prepared)


def test_no_video_stream_is_usable_for_audio(prepared):
    assert prepared["report"]["radio.mp4"] == {"status": "partial",
                                               "reason": "no video stream: usable for audio only"}
    item = cached(prepared, "radio.mp4")
    assert bool(item["has_audio"]) and not bool(item["has_video"])
    assert torch.equal(item["video"], torch.zeros_like(item["video"]))
    assert peak_mel_bin(item["audio"][0]) == peak_mel_bin(cached(prepared, "good1.mp4")["audio"][0])
    assert_nothing_else_lost(prepared)


def test_stream_corrupt_partway(prepared):
    # cut in half: the header (at the front, "faststart") still lists every sample, the data stops at ~2 s (decord
    # cannot open the video; PyAV reads its packets up to the cut)
    entry = prepared["report"]["truncated.mp4"]
    assert entry["status"] == "failed"
    assert re.fullmatch(r"audio stream corrupt partway: decoded 1\.\d\d s of 4\.00 s; "
                        r"video stream corrupt partway: 2\.\d\d s of frames for 4\.00 s declared",
                        entry["reason"]), entry
    assert_nothing_else_lost(prepared)


def test_clip_shorter_than_the_window_is_looped(prepared):
    assert prepared["report"]["short.mp4"] == {"status": "ok", "reason": (  # AAC pads the sound to 1024 samples
        "audio 1.54 s shorter than the 3.84 s window: zero-padded; "
        "video 1.50 s shorter than the 4.00 s window: looped")}
    item = cached(prepared, "short.mp4")
    assert frame_numbers(item["video"]) == [0, 8, 4, 0]  # 0 s, 1 s, 2 s = 0.5 s, 3 s = 0 s of a 1.5 s clip
    assert prepared["reader"].raw_fbank(position(prepared, "short.mp4")).shape[0] < 160  # ~1.5 s of sound
    assert torch.all(item["audio"][0, 160:] == normalize_fbank(torch.zeros(1)))  # then zero padding, normalised
    assert_nothing_else_lost(prepared)


@pytest.mark.parametrize("name, reason", [
    ("rate8k.mp4", "audio resampled 8000 Hz -> 16000 Hz"),
    ("surround48k.mp4", "audio resampled 48000 Hz -> 16000 Hz and mixed 6 channels down to mono"),
])
def test_odd_sample_rates_and_channels_are_converted(prepared, name, reason):
    assert prepared["report"][name] == {"status": "ok", "reason": reason}
    # a real resampling keeps the pitch: the 1 kHz tone lands in the same mel bin as in the 16 kHz clip
    good = cached(prepared, "good1.mp4")["audio"][0]
    assert peak_mel_bin(cached(prepared, name)["audio"][0]) == peak_mel_bin(good)
    assert_nothing_else_lost(prepared)


def test_variable_frame_rate_picks_frames_by_timestamp(prepared):
    assert_row(prepared, "vfr.mp4", "ok", "variable frame rate (3.3-10.0 fps): frames picked by timestamp")
    # shown at 0, 1, 2, 3 s: frames 0 (0.0 s), 10 (1.0 s), 13 (1.9 s), 16 (2.8 s); the average rate says 0, 5, 10, 15
    assert frame_numbers(cached(prepared, "vfr.mp4")["video"]) == [0, 10, 13, 16]
    assert_nothing_else_lost(prepared)


def test_several_streams_use_the_default_ones(prepared):
    assert prepared["report"]["two_audio.mkv"] == {
        "status": "ok", "reason": "3 streams (2 audio, 1 video): used the default audio and video stream"}
    good = cached(prepared, "good1.mp4")["audio"][0]
    assert peak_mel_bin(cached(prepared, "two_audio.mkv")["audio"][0]) == peak_mel_bin(good)  # the first: 1 kHz
    assert frame_numbers(cached(prepared, "two_audio.mkv")["video"]) == GOOD_FRAMES
    assert_nothing_else_lost(prepared)


def test_training_skips_the_recorded_bad_clips_and_says_so(prepared, capsys):
    cache_dir = prepared["folder"] / "cache"
    clips = CachedClips(cache_dir)
    assert len(clips) == 9 and "skipped 4 clip(s)" in capsys.readouterr().out
    in_memory = load_cache(cache_dir, progress=False)
    assert len(in_memory) == 9 and "skipped 4 clip(s)" in capsys.readouterr().out
    names = [Path(file).name for file in in_memory.files]
    assert not in_memory.has_audio[names.index("silent.mp4")] and not in_memory.has_video[names.index("radio.mp4")]
    assert int(in_memory.has_audio.sum()) == 8 and int(in_memory.has_video.sum()) == 8
    raw = RawClips(prepared["manifest"], TINY, report=cache_dir / "report.csv")
    assert len(raw) == 9 and "skipped 4 clip(s)" in capsys.readouterr().out
    with pytest.warns(UserWarning, match="silent.mp4: partial: no audio stream"):
        item = raw[[Path(record["path"]).name for record in raw.records].index("silent.mp4")]
    assert not bool(item["has_audio"]) and frame_numbers(item["video"]) == GOOD_FRAMES


def test_decode_manifest_skips_bad_clips_and_reports_them(prepared, tmp_path, capsys):
    clips = decode_manifest(prepared["manifest"], TINY, progress=False, report_path=tmp_path / "report.csv")
    assert len(clips) == 9 and "skipped 4 unusable clip(s)" in capsys.readouterr().out
    assert read_report(tmp_path / "report.csv") == read_report(prepared["folder"] / "cache" / "report.csv")
    cache = load_cache(prepared["folder"] / "cache", progress=False)
    assert torch.equal(clips.video, cache.video) and torch.equal(clips.has_audio, cache.has_audio)
    assert torch.allclose(clips.audio, cache.audio, atol=2e-3)  # float16 storage, after normalisation


def test_strict_stops_at_the_first_bad_clip_naming_it(prepared, tmp_path, capsys):
    manifest = write_manifest(prepared["folder"] / "strict.csv", ["good1.mp4", "silent.mp4", "good2.mp4"])
    with pytest.raises(BadClipError, match=r"silent\.mp4: no audio stream"):
        prepare_cache(manifest, tmp_path / "strict", "tiny", strict=True, progress=False)
    assert main(["prepare", str(manifest), str(tmp_path / "cli"), "--strict", "--workers", "0", "--no-progress"]) == 2
    assert "silent.mp4: no audio stream" in capsys.readouterr().err
    with pytest.raises(BadClipError, match=r"empty\.mp4: empty file"):
        decode_manifest(write_manifest(prepared["folder"] / "m.csv", ["good1.mp4", "empty.mp4"]), TINY, progress=False,
                        strict=True)


def test_exit_status_is_an_error_only_when_nothing_is_usable(prepared, tmp_path, capsys):
    hopeless = write_manifest(prepared["folder"] / "hopeless.csv", ["missing.mp4", "empty.mp4"])
    assert main(["prepare", str(hopeless), str(tmp_path / "none"), "--workers", "0", "--no-progress"]) == 1
    assert capsys.readouterr().out.strip().splitlines()[-1] == "0 ok, 0 partial, 2 failed"
    mixed = write_manifest(prepared["folder"] / "mixed.csv", ["good1.mp4", "radio.mp4", "empty.mp4"])
    assert main(["prepare", str(mixed), str(tmp_path / "some"), "--workers", "0", "--no-progress"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "1 ok, 1 partial, 1 failed"


def test_worker_processes_record_the_same_report(prepared, tmp_path):
    subset = write_manifest(prepared["folder"] / "workers.csv", ["good1.mp4", "empty.mp4", "radio.mp4", "vfr.mp4"])
    serial = prepare_cache(subset, tmp_path / "serial", "tiny", progress=False)
    parallel = prepare_cache(subset, tmp_path / "parallel", "tiny", num_workers=2, progress=False)
    assert read_report(tmp_path / "serial" / "report.csv") == read_report(tmp_path / "parallel" / "report.csv")
    assert serial.summary == parallel.summary == "2 ok, 1 partial, 1 failed"
    assert np.array_equal(load_cache(tmp_path / "serial", progress=False).video,
                          load_cache(tmp_path / "parallel", progress=False).video)


def test_the_report_says_which_decoder_read_each_clips_frames(tmp_path):
    import media_files

    encoder = media_files.av1_encoder()
    if encoder is None:
        pytest.skip(f"this PyAV build has none of the AV1 encoders {media_files.AV1_ENCODERS}")
    clips = tmp_path / "clips"
    clips.mkdir()
    four_seconds = numbered_frames(32)
    write_media(clips / "good1.mp4", four_seconds, 8, [tone(1000, 4)])
    write_media(clips / "av1.mkv", four_seconds, 8, [tone(1000, 4, 48000)], sample_rate=48000, video_codec=encoder,
                audio_codec="libopus")  # decord cannot open AV1 in Matroska
    write_media(clips / "radio.mp4", None, 8, [tone(1000, 4)])
    manifest = write_manifest(tmp_path / "manifest.csv", ["good1.mp4", "av1.mkv", "radio.mp4"])
    prepare_cache(manifest, tmp_path / "cache", "tiny", progress=False)
    with open(tmp_path / "cache" / "report.csv", newline="") as handle:
        rows = {Path(row["file"]).name: row for row in csv.DictReader(handle)}
    assert list(next(iter(rows.values()))) == ["file", "status", "reason", "video_decoder"]
    assert {name: (row["status"], row["video_decoder"]) for name, row in rows.items()} == {
        "good1.mp4": ("ok", "decord"), "av1.mkv": ("ok", "pyav"), "radio.mp4": ("partial", "")}
    assert frame_numbers(load_cache(tmp_path / "cache", progress=False).video[1]) == GOOD_FRAMES
    # a report written before the column existed still reads, and still leaves its failed clips out
    old = tmp_path / "old_report.csv"
    old.write_text(f"file,status,reason\n{clips / 'radio.mp4'},failed,no video stream\n")
    assert read_report(old) == {str(clips / "radio.mp4"): {"status": "failed", "reason": "no video stream"}}
    assert len(RawClips(manifest, TINY, report=old)) == 2
