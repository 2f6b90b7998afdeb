"""Speech recognition and translation with NVIDIA Canary behind Cog.

The package is split by stage (see README): audio -> vad -> chunking -> loudness -> models,
composed by frontend and pipeline. Only asr.models (and the tiny-model builders in
asr.testing) import torch and NeMo.
"""

import os as _os

# Torch's CPU allocator puts buffers of 2 MiB and more on transparent huge pages when this is set
# before torch loads (it reads it once): the model's activations above glibc's mmap threshold
# then fault in 2 MiB at a time instead of 4 KiB (16 concurrent clips on 2 CPU cores: 2.4 s with,
# 2.8 s without; benchmarks/NOTES.md). Set here, not only in cog.yaml, so that every entry point
# (server, CLI, benchmarks) gets it. An explicit value in the environment wins.
_os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

__version__ = "0.1.0"
