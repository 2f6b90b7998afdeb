"""Speech recognition and translation with NVIDIA Canary behind Cog.

The package is split by stage (see README): audio -> vad -> chunking -> loudness -> models,
composed by frontend and pipeline. Only asr.models (and the tiny-model builders in
asr.testing) import torch and NeMo.
"""

__version__ = "0.1.0"
