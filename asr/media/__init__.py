"""Decoding in isolated child processes: the typed protocol both ends of the pipe use
(`protocol`), the child's decode loop (`child`), the warm children every file shares (`pool`),
the parent's supervisor (`supervisor`), and format policy and limits (`policy`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..types import SAMPLE_RATE, AudioLimits
from .protocol import RangeSummary, StreamInfo


@dataclass(frozen=True, eq=False)
class DecodedAudio:
    samples: np.ndarray
    """float32, mono, SAMPLE_RATE (DC offset removed)."""
    info: StreamInfo
    ranges: tuple[RangeSummary, ...]

    @property
    def duration_s(self) -> float:
        return self.samples.size / SAMPLE_RATE


def decode(path: str | os.PathLike, limits: AudioLimits | None = None, display_name: str | None = None,
           workers: int = 1) -> DecodedAudio:
    """Decode a whole file (in isolated children) into one mono float32 array at SAMPLE_RATE."""
    from ..frontend.buffer import SampleBuffer
    from .supervisor import Audio, MediaStream

    name = display_name or os.path.basename(os.fspath(path))
    buf = SampleBuffer()
    info = None
    ranges = []
    with MediaStream(path, name, limits or AudioLimits.from_env(), workers=workers, with_vad=False) as media:
        for event in media:
            if isinstance(event, Audio):
                buf.append(event.samples)
                media.release_before(event.start_sample + event.samples.size)
            elif isinstance(event, StreamInfo):
                info = event
            elif isinstance(event, RangeSummary):
                ranges.append(event)
    assert info is not None
    return DecodedAudio(samples=buf.array(), info=info, ranges=tuple(ranges))


__all__ = ["DecodedAudio", "StreamInfo", "decode"]
