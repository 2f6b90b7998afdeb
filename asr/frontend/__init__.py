"""The front end: VAD, chunking, loudness, and the streaming, within-file-parallel composition
that turns a recording into normalised speech chunks and a typed summary."""

from .compose import FrontEnd, FrontEndRun, FrontEndSummary, FrontEndTimings, Progress

__all__ = ["FrontEnd", "FrontEndRun", "FrontEndSummary", "FrontEndTimings", "Progress"]
