"""The kit's built-in dataset: synthetic audio-video clips made on the spot.

MAViL learns from the correspondence between what a clip sounds like and what it shows, so the synthetic data
must contain such a correspondence, and the task must not be solvable from one low-level cue.

The world: 10 event classes (`SYNTHETIC_CLASSES`).
- 6 audio-visual classes: a class-specific sound and a class-specific coloured shape that start and stop
  together. The shape's brightness follows the sound's amplitude envelope (averaged over each frame's
  exposure, as a camera would), so a pulsing sound is a pulsing object.
- 2 audio-only classes (off-screen sounds: heard, never seen) and 2 video-only classes (seen, silent).
- Cues overlap on purpose: bell and horn share a pitch (they differ in modulation and timbre) and a colour
  (disc vs square); buzzer and rain share a noise band (pulsed vs steady); red, green and blue are each
  used by two or three classes, and disc, square, bar and ring by two each. A class is a combination of cues.
- Nuisances: pink-ish background noise at a random level, a random smooth coloured texture plus per-frame
  pixel noise behind the objects, per-clip jitter of pitch, colour, size, position and motion, and 1-3
  events per clip with random onsets and durations (at least 1 s, or the whole clip if it is shorter).

Each clip is an H.264 (yuv420p) + AAC (mono) mp4, like an AudioSet clip. The manifest lists every event in
`labels` (multi-label, scored with mAP), and what is `audible` and `visible` for diagnostics.
Class sounds sit between ~150 and ~3600 Hz, where a 64-128-bin mel fbank at 16 kHz resolves them, and the
mix is scaled to a peak below 0.9 so AAC does not clip it.

Every clip is drawn from its own random generator seeded by (seed, clip index), so a dataset is identical
whatever the number of worker processes.
"""
from __future__ import annotations

import csv
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from fractions import Fraction
from multiprocessing import get_context
from pathlib import Path

import av
import numpy as np
from tqdm.auto import tqdm


@dataclass(frozen=True)
class Sound:
    """How a class sounds. `source` is 'harmonic', 'noise', 'sweep' or 'hits'."""
    source: str
    low_hz: float            # fundamental (harmonic, pure tone), lower band edge (noise, hits), sweep bottom
    high_hz: float = 0.0     # upper band edge (noise, hits) or sweep top; unused for harmonic
    harmonics: int = 1       # number of partials of a harmonic source
    modulation_hz: float = 0.0  # amplitude modulation rate (hits: hit rate; sweep: sweep rate); 0 = steady


@dataclass(frozen=True)
class Look:
    """How a class looks. `shape` is 'disc', 'square', 'bar' or 'ring'; `speed` in frame widths per second."""
    shape: str
    rgb: tuple[int, int, int]
    size: float = 0.22       # radius-like extent as a fraction of the frame
    speed: float = 0.03
    blink_hz: float = 0.0    # video-only classes blink on their own; audio-visual ones follow their sound


@dataclass(frozen=True)
class SyntheticClass:
    """One event class: what it sounds like and looks like (None where it is never heard / never seen)."""
    name: str
    kind: str                # 'audio-visual', 'audio-only' or 'video-only'
    sound: Sound | None
    look: Look | None


RED, GREEN, BLUE, YELLOW = (220, 40, 40), (40, 200, 60), (50, 80, 230), (235, 220, 40)
SYNTHETIC_CLASSES: tuple[SyntheticClass, ...] = (
    SyntheticClass("bell", "audio-visual", Sound("harmonic", 440, harmonics=3, modulation_hz=3.0), Look("disc", RED)),
    SyntheticClass("horn", "audio-visual", Sound("harmonic", 440, harmonics=7), Look("square", RED)),
    SyntheticClass("buzzer", "audio-visual", Sound("noise", 1800, 2600, modulation_hz=6.0), Look("bar", GREEN)),
    SyntheticClass("siren", "audio-visual", Sound("sweep", 700, 1300, modulation_hz=0.75), Look("ring", GREEN)),
    SyntheticClass("drum", "audio-visual", Sound("hits", 150, 450, modulation_hz=2.0), Look("disc", BLUE)),
    SyntheticClass("whistle", "audio-visual", Sound("harmonic", 2400, modulation_hz=2.0), Look("square", BLUE)),
    SyntheticClass("engine", "audio-only", Sound("harmonic", 180, harmonics=8, modulation_hz=10.0), None),
    SyntheticClass("rain", "audio-only", Sound("noise", 1800, 3600), None),
    SyntheticClass("firefly", "video-only", None, Look("ring", YELLOW, size=0.12, speed=0.25, blink_hz=2.0)),
    SyntheticClass("flag", "video-only", None, Look("bar", GREEN, speed=0.15)),
)
# Bit-identical clips for a seed: one thread, and no assembly, because x264's AVX-512 code gave different
# outputs for the same input when the CPU was contended (seen on a shared VM); tiny frames make C fast enough.
X264_OPTIONS = {"crf": "23", "preset": "veryfast", "threads": "1", "x264-params": "asm=0"}
AAC_FRAME = 1024  # samples per AAC frame
MIN_EVENT_S = 1.0
RAMP_S = 0.02  # onset/offset ramps: no clicks, which would be a class-independent broadband cue


def _shaped_noise(rng: np.random.Generator, num_samples: int, spectral_gain: np.ndarray) -> np.ndarray:
    """(num_samples,) white noise filtered by spectral_gain (one gain per rfft bin), unit RMS."""
    noise = np.fft.irfft(np.fft.rfft(rng.standard_normal(num_samples)) * spectral_gain, n=num_samples)
    return noise / (noise.std() + 1e-8)


def _band_noise(rng: np.random.Generator, num_samples: int, sample_rate: int, low_hz: float, high_hz: float,
                ) -> np.ndarray:
    """(num_samples,) noise kept between low_hz and high_hz, unit RMS."""
    freqs = np.fft.rfftfreq(num_samples, 1.0 / sample_rate)
    return _shaped_noise(rng, num_samples, (freqs >= low_hz) & (freqs <= high_hz))


def _pink_noise(rng: np.random.Generator, num_samples: int) -> np.ndarray:
    """(num_samples,) noise with a 1/f power spectrum (natural backgrounds look like this), unit RMS."""
    return _shaped_noise(rng, num_samples, 1.0 / np.sqrt(np.arange(num_samples // 2 + 1) + 1.0))


def _sound_source(sound: Sound, rng: np.random.Generator, times: np.ndarray, sample_rate: int,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The carrier and its amplitude envelope in [0, 1], both (samples,), for one event (pitch jittered)."""
    pitch = rng.uniform(0.97, 1.03)  # per-event pitch jitter: a class is a region, not a single frequency
    phase = rng.uniform(0, 2 * np.pi)
    steady = np.ones_like(times)
    if sound.source == "harmonic":
        partials = [np.sin(2 * np.pi * k * sound.low_hz * pitch * times + rng.uniform(0, 2 * np.pi)) / k
                    for k in range(1, sound.harmonics + 1)]
        carrier = np.sum(partials, axis=0)
    elif sound.source == "noise":
        carrier = _band_noise(rng, len(times), sample_rate, sound.low_hz * pitch, sound.high_hz * pitch)
    elif sound.source == "sweep":
        # instantaneous frequency swings between low and high; the phase is its running integral
        centre, depth = (sound.low_hz + sound.high_hz) / 2 * pitch, (sound.high_hz - sound.low_hz) / 2 * pitch
        freq = centre + depth * np.sin(2 * np.pi * sound.modulation_hz * times + phase)
        carrier = np.sin(2 * np.pi * np.cumsum(freq) / sample_rate)
        return carrier, steady
    elif sound.source == "hits":
        carrier = _band_noise(rng, len(times), sample_rate, sound.low_hz * pitch, sound.high_hz * pitch)
        since_hit = np.mod(times + phase / (2 * np.pi * sound.modulation_hz), 1.0 / sound.modulation_hz)
        return carrier, np.exp(-since_hit / 0.15)
    else:
        raise ValueError(f"unknown sound source {sound.source!r}")
    if sound.modulation_hz == 0:
        return carrier, steady
    return carrier, 0.2 + 0.8 * (0.5 + 0.5 * np.sin(2 * np.pi * sound.modulation_hz * times + phase))


def _gate(times: np.ndarray, onset_s: float, offset_s: float) -> np.ndarray:
    """(len(times),) 1 while the event is on, 0 outside, with short raised-cosine ramps."""
    rise = np.clip((times - onset_s) / RAMP_S, 0, 1)
    fall = np.clip((offset_s - times) / RAMP_S, 0, 1)
    return 0.5 - 0.5 * np.cos(np.pi * np.minimum(rise, fall))


def _per_frame_mean(signal: np.ndarray, num_frames: int) -> np.ndarray:
    """(num_frames,) mean of a (samples,) signal over each frame's interval: what a camera exposure integrates."""
    starts = np.linspace(0, len(signal), num_frames, endpoint=False).astype(int)
    sums = np.add.reduceat(signal, starts)
    return sums / np.diff(np.append(starts, len(signal)))


def _shape_mask(shape: str, grid_x: np.ndarray, grid_y: np.ndarray, centre: np.ndarray, size: float,
                ) -> np.ndarray:
    """(H, W) float mask of a shape centred at `centre` (fractions of the frame)."""
    dx, dy = np.abs(grid_x - centre[0]), np.abs(grid_y - centre[1])
    if shape == "disc":
        return (dx ** 2 + dy ** 2 < size ** 2).astype(np.float32)
    if shape == "square":
        return ((dx < 0.85 * size) & (dy < 0.85 * size)).astype(np.float32)
    if shape == "bar":
        return ((dx < 1.4 * size) & (dy < 0.35 * size)).astype(np.float32)
    if shape == "ring":
        radius = np.sqrt(dx ** 2 + dy ** 2)
        return ((radius < size) & (radius > 0.55 * size)).astype(np.float32)
    raise ValueError(f"unknown shape {shape!r}")


def _bounce(position: np.ndarray, low: float, high: float) -> np.ndarray:
    """Fold positions into [low, high] as if the object bounced off the frame edges."""
    span = high - low
    folded = np.mod(position - low, 2 * span)
    return low + span - np.abs(folded - span)


def _background_video(rng: np.random.Generator, num_frames: int, frame_size: int) -> np.ndarray:
    """(T, H, W, 3) float32: a random smooth coloured texture, fixed over the clip, plus per-frame noise."""
    coarse = rng.uniform(40, 200, size=(6, 6, 3)) * rng.uniform(0.5, 1.0, size=3)
    cell = -(-frame_size // 6)
    texture = np.kron(coarse, np.ones((cell, cell, 1)))[:frame_size, :frame_size]  # (H, W, 3) blocky texture
    # a separable box blur turns the blocks into smooth blobs
    kernel = np.ones(cell) / cell
    texture = np.apply_along_axis(np.convolve, 0, texture, kernel, mode="same")
    texture = np.apply_along_axis(np.convolve, 1, texture, kernel, mode="same")
    noise = 14 * rng.standard_normal(size=(num_frames, frame_size, frame_size, 3), dtype=np.float32)
    return (texture[None] + noise).astype(np.float32)


def _sample_events(rng: np.random.Generator, duration_s: float) -> list[tuple[SyntheticClass, float, float]]:
    """1-3 distinct classes, each with (onset_s, offset_s) lasting at least MIN_EVENT_S."""
    num_events = rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2])
    chosen = rng.choice(len(SYNTHETIC_CLASSES), size=num_events, replace=False)
    events = []
    for class_index in sorted(chosen):
        length = rng.uniform(min(MIN_EVENT_S, duration_s), duration_s)
        onset = rng.uniform(0, duration_s - length)
        events.append((SYNTHETIC_CLASSES[class_index], onset, onset + length))
    return events


def _draw_object(video: np.ndarray, look: Look, opacity: np.ndarray, rng: np.random.Generator, onset_s: float,
                 fps: float) -> None:
    """Blend one jittered, moving shape into video (T, H, W, 3) float, in place, with per-frame opacity (T,)."""
    num_frames, frame_size = video.shape[:2]
    grid_y, grid_x = np.mgrid[0:frame_size, 0:frame_size] / frame_size  # (H, W) pixel positions as fractions
    colour = np.clip(np.array(look.rgb) + rng.uniform(-30, 30, size=3), 0, 255)
    size = look.size * rng.uniform(0.8, 1.2)
    margin = 1.2 * size
    start = rng.uniform(margin, 1 - margin, size=2)
    velocity = rng.normal(0, 1, size=2)
    velocity *= look.speed / (np.linalg.norm(velocity) + 1e-8)
    for frame_index in np.flatnonzero(opacity > 0.01):
        centre = _bounce(start + velocity * (frame_index / fps - onset_s), margin, 1 - margin)
        mask = _shape_mask(look.shape, grid_x, grid_y, centre, size)[..., None] * opacity[frame_index]  # (H, W, 1)
        video[frame_index] = video[frame_index] * (1 - mask) + colour * mask


def render_clip(rng: np.random.Generator, duration_s: float = 4.0, fps: int = 8, frame_size: int = 64,
                sample_rate: int = 16000, events: list[tuple[str, float, float]] | None = None,
                ) -> tuple[np.ndarray, np.ndarray, list[tuple[SyntheticClass, float, float]]]:
    """Draw one clip: waveform (samples,) float32, frames (T, H, W, 3) uint8, and its events.

    events: (class name, onset_s, offset_s) to stage a particular scene; random (as in the dataset) when None.
    """
    num_samples, num_frames = int(round(duration_s * sample_rate)), int(round(duration_s * fps))
    times = np.arange(num_samples) / sample_rate
    if events is None:
        events = _sample_events(rng, duration_s)
    else:
        by_name = {cls.name: cls for cls in SYNTHETIC_CLASSES}
        unknown = [name for name, _, _ in events if name not in by_name]
        if unknown:
            raise ValueError(f"unknown synthetic classes {unknown}; the classes are {list(by_name)}")
        events = [(by_name[name], onset, offset) for name, onset, offset in events]
    waveform = _pink_noise(rng, num_samples) * rng.uniform(0.03, 0.1)
    video = _background_video(rng, num_frames, frame_size)
    for cls, onset, offset in events:
        gate = _gate(times, onset, offset)
        envelope = gate
        if cls.sound is not None:
            carrier, modulation = _sound_source(cls.sound, rng, times, sample_rate)
            envelope = gate * modulation
            waveform += rng.uniform(0.08, 0.35) * envelope * carrier / (np.abs(carrier).max() + 1e-8)
        elif cls.look.blink_hz > 0:
            envelope = gate * (np.sin(2 * np.pi * cls.look.blink_hz * times) > 0)
        if cls.look is not None:
            # an audio-visual object shows its sound's envelope; the per-event factor makes contrast vary
            opacity = 0.3 * _per_frame_mean(gate, num_frames) + 0.7 * _per_frame_mean(envelope, num_frames)
            _draw_object(video, cls.look, np.clip(opacity * rng.uniform(0.5, 0.9), 0, 1), rng, onset, fps)
    peak = np.abs(waveform).max()
    if peak > 0.85:
        waveform *= 0.85 / peak
    return waveform.astype(np.float32), np.clip(video, 0, 255).astype(np.uint8), events


def write_mp4(path: str | Path, frames: np.ndarray | None, fps: float, waveform: np.ndarray | None,
              sample_rate: int = 16000) -> None:
    """Write an mp4: frames (T, H, W, 3) uint8 as H.264 yuv420p and waveform (samples,) float as mono AAC.

    Either may be None to write a single-stream file (useful to test bad inputs).
    """
    with av.open(str(path), "w", format="mp4") as container:
        video_stream = audio_stream = None
        if frames is not None:
            video_stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000),
                                                options=X264_OPTIONS)
            video_stream.height, video_stream.width = frames.shape[1:3]
            video_stream.pix_fmt = "yuv420p"
        if waveform is not None:
            audio_stream = container.add_stream("aac", rate=sample_rate, layout="mono")
            audio_stream.bit_rate = 64000
        if video_stream is not None:
            for index, frame in enumerate(frames):
                video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                # converted here: the encoder's implicit conversion made the first clip of a process differ
                video_frame = video_frame.reformat(format="yuv420p")
                video_frame.pts = index
                container.mux(video_stream.encode(video_frame))
            container.mux(video_stream.encode())
        if audio_stream is not None:
            samples = np.asarray(waveform, dtype=np.float32).reshape(1, -1)  # (1, samples): one planar channel
            for start in range(0, samples.shape[1], AAC_FRAME):
                audio_frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + AAC_FRAME]),
                                                         format="fltp", layout="mono")
                audio_frame.sample_rate, audio_frame.pts = sample_rate, start
                container.mux(audio_stream.encode(audio_frame))
            container.mux(audio_stream.encode())


def _make_clip(job: tuple[int, str, dict]) -> dict:
    """Render and write clip number `index`; returns its manifest row (minus the split)."""
    index, clip_path, params = job
    rng = np.random.default_rng([params["seed"], index])
    waveform, frames, events = render_clip(rng, params["duration_s"], params["fps"], params["frame_size"],
                                           params["sample_rate"])
    tmp_path = clip_path + ".tmp"
    write_mp4(tmp_path, frames, params["fps"], waveform, params["sample_rate"])
    os.replace(tmp_path, clip_path)  # a killed run leaves no half-written clip under the final name
    return {"file": f"clips/{index:06d}.mp4", "labels": " ".join(cls.name for cls, _, _ in events),
            "audible": " ".join(cls.name for cls, _, _ in events if cls.sound is not None),
            "visible": " ".join(cls.name for cls, _, _ in events if cls.look is not None)}


def _is_complete(out_dir: Path, params: dict) -> bool:
    """True when out_dir holds a finished dataset generated with exactly these parameters."""
    manifest, params_file = out_dir / "manifest.csv", out_dir / "params.json"
    if not (manifest.exists() and params_file.exists()) or json.loads(params_file.read_text()) != params:
        return False
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return len(rows) == params["num_clips"] and all((out_dir / row["file"]).exists() for row in rows)


def generate_synthetic_dataset(out_dir: str | Path, num_clips: int = 600, seed: int = 0, duration_s: float = 4.0,
                               fps: int = 8, frame_size: int = 64, sample_rate: int = 16000,
                               test_fraction: float = 0.2, unlabelled_fraction: float = 0.0, num_workers: int = 0,
                               progress: bool = True) -> Path:
    """Write out_dir/clips/*.mp4 and out_dir/manifest.csv (see the module docstring); return the manifest path.

    ``test_fraction`` of the clips form the ``test`` split and ``unlabelled_fraction`` the ``unlabelled`` split: clips
    for pre-training only, as AudioSet-2M is to AudioSet-20K in the paper (the manifest still lists their events, for
    diagnostics); the rest are ``train``. Returns at once if out_dir already holds a complete dataset made with the
    same parameters.
    """
    if test_fraction + unlabelled_fraction > 1:
        raise ValueError(f"test_fraction + unlabelled_fraction must be at most 1, got {test_fraction} + {unlabelled_fraction}")
    out_dir = Path(out_dir)
    params = {"num_clips": num_clips, "seed": seed, "duration_s": float(duration_s), "fps": fps,
              "frame_size": frame_size, "sample_rate": sample_rate, "test_fraction": float(test_fraction),
              **({"unlabelled_fraction": float(unlabelled_fraction)} if unlabelled_fraction else {}),
              "classes": [asdict(cls) for cls in SYNTHETIC_CLASSES]}
    params = json.loads(json.dumps(params))  # tuples become lists, as they will be when read back
    manifest = out_dir / "manifest.csv"
    if _is_complete(out_dir, params):
        return manifest
    if frame_size % 2:
        raise ValueError(f"frame_size must be even for yuv420p video, got {frame_size}")
    (out_dir / "clips").mkdir(parents=True, exist_ok=True)
    # drop the old manifest first: while clips are being rewritten it would describe the wrong ones
    manifest.unlink(missing_ok=True)
    (out_dir / "params.json").unlink(missing_ok=True)
    jobs = [(index, str(out_dir / "clips" / f"{index:06d}.mp4"), params) for index in range(num_clips)]
    bar = dict(total=num_clips, desc="generating synthetic clips", disable=not progress)
    if num_workers > 0:
        # spawn, not fork: the caller has usually imported torch, whose threads do not survive a fork
        with ProcessPoolExecutor(num_workers, mp_context=get_context("spawn")) as pool:
            rows = list(tqdm(pool.map(_make_clip, jobs, chunksize=8), **bar))
    else:
        rows = [_make_clip(job) for job in tqdm(jobs, **bar)]
    order = np.random.default_rng(seed).permutation(num_clips)
    num_test, num_unlabelled = round(num_clips * test_fraction), round(num_clips * unlabelled_fraction)
    split_of = {int(index): "test" for index in order[:num_test]}
    split_of.update({int(index): "unlabelled" for index in order[num_test:num_test + num_unlabelled]})
    for index, row in enumerate(rows):
        row["split"] = split_of.get(index, "train")
    (out_dir / "params.json").write_text(json.dumps(params, indent=1))
    tmp_manifest = out_dir / "manifest.csv.tmp"
    with open(tmp_manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "labels", "split", "audible", "visible"])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp_manifest, manifest)
    return manifest
