"""One clip in, model tensors out: resampling, the Kaldi fbank, frame sampling, repetition and bad inputs."""
import csv
from pathlib import Path

import av
import decord
import media_files
import numpy as np
import pytest
import torch
import torchaudio

from mavil_lite.data.media import (
    AUDIOSET_MEAN,
    AUDIOSET_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    FeatureSpec,
    FrameTiming,
    frames_to_tensor,
    load_frames,
    load_waveform,
    normalize_fbank,
    waveform_to_fbank,
    window_times,
)
from mavil_lite.data.synthetic import write_mp4

SMALL = FeatureSpec(audio_frames=384, mel_bins=64, video_frames=4, video_fps=1.0, frame_size=64)
GRID = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "grid_s1"
FPS = 8
NUM_FRAMES = 16  # a 2 s clip


def numbered_frames():
    """(16, 48, 48, 3) uint8 flat frames whose brightness encodes their number (15 levels apart)."""
    levels = np.arange(NUM_FRAMES, dtype=np.uint8) * 15 + 10
    return np.broadcast_to(levels[:, None, None, None], (NUM_FRAMES, 48, 48, 3)).copy()


def frame_numbers(frames):
    """Recover the frame numbers from decoded numbered frames (T, H, W, 3)."""
    return ((frames.float().mean(dim=(1, 2, 3)) - 10) / 15).round().int().tolist()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 2 s, 8 fps clip with numbered frames and a 1 kHz tone."""
    path = tmp_path_factory.mktemp("media") / "numbered.mp4"
    tone = 0.3 * np.sin(2 * np.pi * 1000 * np.arange(32000) / 16000)
    write_mp4(path, numbered_frames(), FPS, tone)
    return path


def write_wav(path, samples, sample_rate):
    """samples (channels, n) float -> 16-bit PCM wav at sample_rate."""
    layout = "mono" if samples.shape[0] == 1 else "stereo"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=sample_rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(samples.astype(np.float32), format="fltp", layout=layout)
        frame.sample_rate, frame.pts = sample_rate, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode())


def test_waveform_is_resampled_mixed_down_and_centred(tmp_path):
    times = np.arange(22050) / 22050  # 1 s at 22.05 kHz
    left, right = 0.4 * np.sin(2 * np.pi * 1000 * times) + 0.3, 0.4 * np.sin(2 * np.pi * 1000 * times) + 0.3
    write_wav(tmp_path / "stereo.wav", np.stack([left, right]), 22050)
    waveform = load_waveform(tmp_path / "stereo.wav")
    assert waveform.dtype == torch.float32 and waveform.shape[0] == 1
    assert abs(waveform.shape[1] - 16000) <= 32
    assert abs(waveform.mean().item()) < 1e-4  # the 0.3 DC offset is gone
    spectrum = torch.fft.rfft(waveform[0]).abs()
    peak_hz = spectrum.argmax().item() * 16000 / waveform.shape[1]
    assert abs(peak_hz - 1000) < 5  # a true resampling keeps the pitch


def test_mp4_soundtrack_has_the_clip_length(clip):
    waveform = load_waveform(clip)
    assert waveform.shape[0] == 1 and 32000 <= waveform.shape[1] <= 32000 + 1024  # AAC pads its last frame


def test_the_soundtrack_is_what_decords_public_reader_returns(clip):
    """load_waveform reads decord's decoded array directly (the public reader[:] indexes every sample, which takes
    longer than decoding): pinned here to equal the public read, so a decord release that changes it is caught."""
    public = torch.from_numpy(decord.AudioReader(str(clip), sample_rate=16000, mono=True)[:].asnumpy())  # (1, samples)
    assert torch.equal(load_waveform(clip), public - public.mean())


def test_fbank_is_the_kaldi_fbank_padded_or_cropped():
    waveform = torch.randn(1, 16000 * 2) * 0.1  # 2 s: 198 fbank frames
    reference = torchaudio.compliance.kaldi.fbank(
        waveform, htk_compat=True, sample_frequency=16000, use_energy=False, window_type="hanning",
        num_mel_bins=64, dither=0.0, frame_shift=10)
    padded = waveform_to_fbank(waveform, SMALL)
    assert padded.shape == (384, 64)
    assert torch.equal(padded[:reference.shape[0]], reference)
    assert torch.all(padded[reference.shape[0]:] == 0)
    cropped = waveform_to_fbank(waveform, FeatureSpec(audio_frames=100, mel_bins=64))
    assert torch.equal(cropped, reference[:100])
    assert waveform_to_fbank(waveform, FeatureSpec()).shape == (1024, 128)


def test_normalisation_uses_twice_the_std():
    fbank = torch.full((3, 4), AUDIOSET_MEAN + 2 * AUDIOSET_STD)
    assert torch.allclose(normalize_fbank(fbank), torch.ones(3, 4))
    assert torch.allclose(normalize_fbank(torch.zeros(2), mean=1.0, std=0.5), torch.full((2,), -1.0))


def test_frames_are_sampled_at_the_requested_rate_and_start(clip):
    frames = load_frames(clip, SMALL)
    assert frames.shape == (4, 64, 64, 3) and frames.dtype == torch.uint8
    assert frame_numbers(frames) == [0, 8, 0, 8]  # 1 fps from a 2 s clip: 0 s, 1 s, then it repeats
    two_fps = FeatureSpec(video_frames=4, video_fps=2.0, frame_size=32)
    assert frame_numbers(load_frames(clip, two_fps)) == [0, 4, 8, 12]
    assert frame_numbers(load_frames(clip, two_fps, start_s=0.5)) == [4, 8, 12, 0]


def test_short_clip_repeats_to_fill_the_window(clip):
    frames = load_frames(clip, FeatureSpec(frame_size=32))  # the paper's 4 s window over a 2 s clip
    assert frame_numbers(frames) == [0, 4, 8, 12, 0, 4, 8, 12]
    assert torch.equal(frames[:4], frames[4:])
    five_frames = FrameTiming(np.arange(5.0), duration_s=5.0)  # 1 fps
    assert five_frames.indices_at(window_times(FeatureSpec(video_frames=8, video_fps=1.0))).tolist() == [
        0, 1, 2, 3, 4, 0, 1, 2]


def test_paper_spec_shapes(clip):
    spec = FeatureSpec()
    assert waveform_to_fbank(load_waveform(clip, spec.sample_rate), spec).shape == (1024, 128)
    frames = load_frames(clip, spec)
    assert frames.shape == (8, 224, 224, 3)
    assert frames_to_tensor(frames).shape == (3, 8, 224, 224)


def test_frames_to_tensor_normalises_channel_first_for_one_clip_or_a_batch():
    frames = torch.zeros(2, 3, 4, 5, 3, dtype=torch.uint8)  # (B, T, H, W, 3)
    frames[..., 0] = 255
    batch = frames_to_tensor(frames)
    assert batch.shape == (2, 3, 3, 4, 5) and batch.dtype == torch.float32
    assert torch.allclose(batch[:, 0], torch.tensor((1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]))
    assert torch.allclose(batch[:, 2], torch.tensor(-IMAGENET_MEAN[2] / IMAGENET_STD[2]))
    assert torch.equal(frames_to_tensor(frames[1]), batch[1])
    with pytest.raises(ValueError, match="shape"):
        frames_to_tensor(torch.zeros(3, 4, 5, dtype=torch.uint8))


def test_missing_streams_and_files_are_named(tmp_path):
    write_mp4(tmp_path / "silent_film.mp4", numbered_frames(), FPS, None)
    write_mp4(tmp_path / "radio.mp4", None, FPS, np.zeros(16000))
    with pytest.raises(ValueError, match=r"silent_film\.mp4.*no audio stream"):
        load_waveform(tmp_path / "silent_film.mp4")
    with pytest.raises(ValueError, match=r"radio\.mp4.*no video stream"):
        load_frames(tmp_path / "radio.mp4", SMALL)
    assert load_frames(tmp_path / "silent_film.mp4", SMALL).shape == (4, 64, 64, 3)
    assert load_waveform(tmp_path / "radio.mp4").shape[0] == 1
    with pytest.raises(FileNotFoundError, match="nowhere.mp4"):
        load_frames(tmp_path / "nowhere.mp4", SMALL)
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(ValueError, match=r"notes\.mp4"):
        load_waveform(tmp_path / "notes.mp4")


def test_a_real_grid_clip_decodes_to_the_paper_shapes():
    if not (GRID / "manifest.csv").is_file():
        pytest.skip(f"GRID clips not found at {GRID} (the shared data folder sits beside the repository)")
    with open(GRID / "manifest.csv", newline="") as handle:
        first = next(csv.DictReader(handle))
    spec = FeatureSpec()
    fbank = waveform_to_fbank(load_waveform(GRID / first["file"]), spec)
    assert fbank.shape == (1024, 128)
    assert torch.all(fbank[320:] == 0) and torch.all(fbank[:290] != 0)  # ~3 s of speech, then zero padding
    frames = load_frames(GRID / first["file"], spec)
    assert frames.shape == (8, 224, 224, 3) and frames.float().std() > 10  # a face, not a blank frame


def test_tensor_to_frames_inverts_frames_to_tensor():
    from mavil_lite.data.media import tensor_to_frames

    frames = torch.randint(0, 256, (2, 4, 8, 8, 3), dtype=torch.uint8)
    assert torch.equal(tensor_to_frames(frames_to_tensor(frames)), frames)
    assert torch.equal(tensor_to_frames(frames_to_tensor(frames[0])), frames[0])
    assert tensor_to_frames(frames_to_tensor(frames[0]) * 100).max() == 255  # overshoot is clipped
    with pytest.raises(ValueError):
        tensor_to_frames(torch.zeros(4, 8, 8, 3))


def test_sampled_frame_times_are_the_loaded_frames_times(clip):
    from mavil_lite.data.media import sampled_frame_times

    spec = FeatureSpec(video_frames=4, video_fps=4.0, frame_size=64)  # 0, 0.25, 0.5, 0.75 s of an 8 fps clip
    times = sampled_frame_times(clip, spec)
    assert times == pytest.approx([0.0, 0.25, 0.5, 0.75], abs=1e-3)
    assert frame_numbers(load_frames(clip, spec)) == [round(t * FPS) for t in times]
    wrapped = sampled_frame_times(clip, FeatureSpec(video_frames=3, video_fps=1.0, frame_size=64), start_s=1.0)
    assert wrapped == pytest.approx([1.0, 0.0, 1.0], abs=1e-3)  # a 2 s clip repeats


def test_fbank_statistics_of_files_ignore_padding(clip):
    from mavil_lite.data.audio_stats import dataset_statistics
    from mavil_lite.data.media import kaldi_fbank

    long_window = FeatureSpec(audio_frames=1024, mel_bins=64)  # 10.24 s: the 2 s clip would be mostly padding
    statistics = dataset_statistics([clip, clip], long_window, progress=False)
    own = kaldi_fbank(load_waveform(clip), long_window)
    assert own.shape[0] < 300 and statistics["mean"] == pytest.approx(float(own.mean()), abs=1e-4)
    assert statistics["std"] == pytest.approx(float(own.std()), rel=1e-3)
    assert statistics["clips"] == 2 and statistics["values"] == 2 * own.numel()
    with pytest.raises(ValueError):
        dataset_statistics([], long_window)


CONTAINERS = [  # (extension, video codec, audio codec, frame rate): what people store clips as
    ("mkv", "libx264", "aac", 8), ("webm", "libvpx-vp9", "libopus", 8), ("avi", "mpeg4", "mp3", 8),
    ("mpg", "mpeg1video", "mp2", 25),  # MPEG-1 video allows only the broadcast frame rates
]


@pytest.mark.parametrize("extension, video_codec, audio_codec, fps", CONTAINERS)
def test_common_containers_give_their_soundtrack_and_frames(tmp_path, extension, video_codec, audio_codec, fps):
    rate = 48000 if audio_codec == "libopus" else 16000  # Opus runs at 48 kHz
    frames = media_files.numbered_frames(32)  # 4 s at 8 fps, 1.28 s at 25 fps
    path = media_files.write_media(tmp_path / f"clip.{extension}", frames, fps, [media_files.tone(1000, 2.0, rate)],
                                   sample_rate=rate, video_codec=video_codec, audio_codec=audio_codec)
    waveform = load_waveform(path)
    assert waveform.shape[0] == 1 and abs(waveform.shape[1] - 32000) < 2400  # 2 s at 16 kHz, give or take codec delay
    spectrum = torch.fft.rfft(waveform[0, 4000:28000]).abs()
    assert abs(spectrum.argmax().item() * 16000 / 24000 - 1000) < 5  # the tone's pitch survives
    quarter_seconds = FeatureSpec(video_frames=4, video_fps=4.0, frame_size=32)
    expected = [int(time * fps) for time in (0.0, 0.25, 0.5, 0.75)]
    assert media_files.frame_numbers(load_frames(path, quarter_seconds)) == expected


@pytest.mark.parametrize("extension, codec", [("wav", "pcm_s16le"), ("flac", "flac")])
def test_audio_files_are_read_directly(tmp_path, extension, codec):
    path = media_files.write_wav(tmp_path / f"speech.{extension}", media_files.tone(440, 1.0, 8000), 8000, codec)
    waveform = load_waveform(path)
    assert waveform.shape == (1, 16000)  # resampled from 8 kHz, no codec delay in PCM or FLAC
    spectrum = torch.fft.rfft(waveform[0]).abs()
    assert abs(spectrum.argmax().item() - 440) <= 1  # 1 Hz per bin over 1 s


def test_frame_timing_follows_timestamps_not_the_average_rate():
    timing = FrameTiming(np.array([0.0, 0.1, 0.2, 1.0, 2.5]), duration_s=3.0)
    assert timing.is_variable_rate
    assert timing.indices_at(np.array([0.0, 0.15, 0.99, 1.0, 2.9, 3.05])).tolist() == [0, 1, 2, 3, 4, 0]
    steady = FrameTiming(np.arange(10) / 25, duration_s=0.4)
    assert not steady.is_variable_rate
    assert steady.indices_at(np.array([0.0, 0.04, 0.2, 0.41])).tolist() == [0, 1, 5, 0]


SCALED = FeatureSpec(video_frames=4, video_fps=4.0, frame_size=32)  # 64 px sources halved, as decord scales them
CODEC_NOISE = 2.0  # [choice] mean |difference| per frame, in levels of 255, between two lossy codecs' decodes


def textured_frames(count: int) -> np.ndarray:
    """(count, 64, 64, 3) uint8 numbered frames (brightness = number) with a zero-mean stripe pattern that moves
    one pixel a frame, so that scaling and codecs have detail to alter."""
    frames = media_files.numbered_frames(count, 64).astype(np.int16)
    columns = np.arange(64)
    for number in range(count):
        frames[number] += np.round(9 * np.sin(2 * np.pi * (columns - number) / 16)).astype(np.int16)[None, :, None]
    return frames.astype(np.uint8)


def failing(message):
    def fail(*args, **kwargs):
        raise decord.DECORDError(message)
    return fail


@pytest.mark.parametrize("failure", ["cannot open", "cannot seek"])
def test_pyav_reads_what_decord_would_where_decord_fails(tmp_path, monkeypatch, failure):
    """The fallback decodes the same frames, at the same times, scaled the same way: equal to the last bit."""
    from mavil_lite.data.media import open_video, sampled_frame_times

    path = media_files.write_media(tmp_path / "clip.mp4", textured_frames(32), 8, None)  # H.264 with B-frames
    starts = (0.0, 0.6, 3.5)  # the last wraps around the 4 s clip
    by_decord = [load_frames(path, SCALED, start_s=start) for start in starts]
    times = [sampled_frame_times(path, SCALED, start) for start in starts]
    if failure == "cannot open":
        monkeypatch.setattr(decord, "VideoReader", failing("cannot find video stream with wanted index: -1"))
    else:
        monkeypatch.setattr(decord.VideoReader, "get_batch", failing("Error seeking"))
    for start, expected, expected_times in zip(starts, by_decord, times):
        video = open_video(path, SCALED)
        assert torch.equal(video.read_window(start), expected)
        assert video.decoder == "pyav"
        assert sampled_frame_times(path, SCALED, start) == pytest.approx(expected_times, abs=1e-6)


def write_decord_unreadable(folder: Path, kind: str, frames: np.ndarray) -> Path:
    """A clip with a 1 kHz tone that decord cannot open: AV1 in Matroska, or a VP9 WebM without a duration."""
    sound = [media_files.tone(1000, len(frames) / 8, 48000)]
    if kind == "av1":
        encoder = media_files.av1_encoder()
        if encoder is None:
            pytest.skip(f"this PyAV build has none of the AV1 encoders {media_files.AV1_ENCODERS}")
        return media_files.write_media(folder / "av1.mkv", frames, 8, sound, sample_rate=48000, video_codec=encoder,
                                       audio_codec="libopus")
    # written through a pipe: the muxer cannot go back to fill in the duration (and writes no seek index)
    return media_files.write_media(folder / "no_duration.webm", frames, 8, sound, sample_rate=48000,
                                   video_codec="libvpx-vp9", audio_codec="libopus", container_format="webm",
                                   seekable=False)


@pytest.mark.parametrize("kind, decord_error", [
    ("av1", "cannot find video stream with wanted index"),
    ("vp9_without_duration", "Failed to measure duration/frame-count due to broken metadata"),
])
def test_clips_decord_cannot_open_decode_through_pyav_like_an_h264_copy(tmp_path, kind, decord_error):
    from mavil_lite.data.clip_check import check_clip

    frames = textured_frames(32)  # 4 s at 8 fps
    path = write_decord_unreadable(tmp_path, kind, frames)
    with pytest.raises(decord.DECORDError, match=decord_error):
        decord.VideoReader(str(path))  # decord's own loss, not the file's
    h264_copy = media_files.write_media(tmp_path / "copy.mp4", frames, 8, None)
    for start in (0.0, 1.3, 3.0):  # the last wraps around
        got, expected = load_frames(path, SCALED, start_s=start), load_frames(h264_copy, SCALED, start_s=start)
        assert got.shape == expected.shape == (4, 32, 32, 3)
        assert media_files.frame_numbers(got) == media_files.frame_numbers(expected)  # the same frame times
        difference = (got.float() - expected.float()).abs()  # (4, 32, 32, 3)
        # a frame one step off is 7 levels brighter or darker: codec noise stays well below that
        assert difference.mean(dim=(1, 2, 3)).max() < CODEC_NOISE, difference.mean(dim=(1, 2, 3))
    for inspect in (True, False):  # prepare's checked decode, and training's direct one
        clip = check_clip(path, SCALED, inspect=inspect)
        assert clip.usable() == ("audio", "video") and clip.video_decoder == "pyav", clip
        assert torch.equal(clip.frames, load_frames(path, SCALED))
        assert not clip.problems
    assert check_clip(h264_copy, SCALED, modalities=("video",)).video_decoder == "decord"
