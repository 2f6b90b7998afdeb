"""Speech recognition and translation with NVIDIA Canary behind Cog.

The package is split by stage (see README): audio -> vad -> chunking -> loudness -> engine,
composed by frontend and pipeline. Only asr.engine imports torch and NeMo.
"""

__version__ = "0.1.0"
