"""The fallback video decoder: PyAV, for the files whose frames decord cannot read.

decord fails on files that FFmpeg itself decodes, and YouTube serves such files to today's downloaders: AV1 in
Matroska ("cannot find video stream with wanted index") and WebM without a duration in its header ("Failed to
measure duration/frame-count due to broken metadata"). PyAV reads them as decord would have: the same frame
numbers (presentation order, the n-th frame shown is frame n) and the same scaler (FFmpeg's `scale` filter,
bilinear, to RGB24: decord's own filter graph), so a frame decoded here equals decord's decode of that picture.
"""
from __future__ import annotations

from pathlib import Path

import av
import av.filter
import numpy as np

# decord's filter graph is "scale=W:H" in the FFmpeg 4 it bundles, whose default scaler is bilinear (newer FFmpeg
# defaults to bicubic, so the flag is spelled out)
DECORD_SCALER = "flags=bilinear"


def frame_stamps(path: str | Path) -> tuple[np.ndarray, float]:
    """When each frame of the file's video stream is shown, from its packets (demuxed, none decoded).

    Returns (frames, 2) start and end second of each frame in presentation order (NaN where a packet has no
    timestamp), and the average frame rate the stream declares (0 when it declares none). A stream that stops
    partway (a truncated download) gives the frames before the break. Raises ValueError without a video stream.
    """
    with av.open(str(path)) as container:
        stream = _video_stream(container, path)
        base, stamps = float(stream.time_base), []
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.is_discard:  # the demuxer's end marker; a frame never shown
                    continue
                start = np.nan if packet.pts is None else packet.pts * base
                stamps.append((start, start + (packet.duration or 0) * base))
        except av.error.FFmpegError:
            if not stamps:
                raise
        rate = stream.average_rate or stream.guessed_rate
    if not stamps:
        raise ValueError(f"{path}: its video stream has no frames")
    stamps = np.array(stamps)  # (frames, 2), in decoding order
    return stamps[np.argsort(stamps[:, 0], kind="stable")], float(rate or 0)


def decode_frames(path: str | Path, numbers: np.ndarray, size: int, num_threads: int = 0) -> np.ndarray:
    """uint8 (len(numbers), size, size, 3) RGB: the frames numbered `numbers` (sorted, distinct, 0 = the first
    shown), scaled as decord scales them.

    Decoded in order from the first frame, none skipped by seeking ([choice: pyav-in-order]: the files that need this decoder
    often lack the seek index, and a seek that lands late would shift every frame number), and only up to the
    last frame asked for. num_threads: decoder threads, 0 = as many as cores.
    """
    wanted = [int(number) for number in numbers]
    frames = []
    with av.open(str(path)) as container:
        stream = _video_stream(container, path)
        stream.thread_type, stream.codec_context.thread_count = "AUTO", num_threads
        scaler = av.filter.Graph()
        scaler.link_nodes(scaler.add_buffer(template=stream), scaler.add("scale", f"{size}:{size}:{DECORD_SCALER}"),
                          scaler.add("format", "rgb24"), scaler.add("buffersink")).configure()
        for number, frame in enumerate(container.decode(stream)):
            if number == wanted[len(frames)]:
                scaler.push(frame)
                frames.append(scaler.pull().to_ndarray())  # (size, size, 3)
                if len(frames) == len(wanted):
                    break
    if len(frames) < len(wanted):
        raise ValueError(f"{path}: its video stream ends before frame {wanted[len(frames)]}")
    return np.stack(frames)


def _video_stream(container: av.container.InputContainer, path: str | Path) -> av.video.stream.VideoStream:
    """The stream decord would pick: FFmpeg's best video stream."""
    try:
        return container.streams.best("video") or container.streams.video[0]
    except IndexError:
        raise ValueError(f"{path}: has no video stream") from None
