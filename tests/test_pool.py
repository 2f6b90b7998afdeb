"""The warm pool of decoder children (asr.media.pool): a child that served other files gives
exactly what a new one gives; a child whose file failed, was stopped or abandoned is never
reused; each file's shared timeline is let go after it, and nothing a child holds grows over many
files; the pool keeps at most its size, retires idle children, and a file waits for a busy
child to come back rather than start one."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from asr.errors import DecoderFailure, InputError, Stopped
from asr.frontend import FrontEnd
from asr.media.pool import ChildPool, PoolOptions
from asr.media.protocol import ChildSpec
from asr.media.supervisor import Audio, MediaStream
from asr.types import SAMPLE_RATE, AudioLimits
from tests.media import RECIPES, SAMPLES, write_media, write_pcm16_wav


@pytest.fixture(scope="module")
def files(tmp_path_factory, speech_16k) -> list[Path]:
    """Five files in five containers and codecs (one of them with several ranges)."""
    d = tmp_path_factory.mktemp("pool")
    x = speech_16k[: 30 * SAMPLE_RATE]
    return [write_pcm16_wav(d / "speech.wav", x, SAMPLE_RATE),
            write_media(d / "speech.mp3", np.stack([x, 0.5 * x]), SAMPLE_RATE, RECIPES["mp3"]),
            SAMPLES / "es.flac", SAMPLES / "fr.ogg", SAMPLES / "de.m4a"]


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory, speech_16k) -> Path:
    """Five minutes: several ranges, long enough to stop in the middle."""
    return write_pcm16_wav(tmp_path_factory.mktemp("pool-long") / "five.wav", np.tile(speech_16k, 5), SAMPLE_RATE)


@pytest.fixture
def pool():
    p = ChildPool(PoolOptions(size=1))
    yield p
    p.close()


def only_child(pool: ChildPool) -> int:
    stats = pool.stats()
    assert stats.live == 1 and stats.idle == 1, stats
    return stats.idle_pids[0]


def running(pid: int) -> bool:
    """Alive and not yet reaped (a zombie counts: it must be reaped too)."""
    return os.path.exists(f"/proc/{pid}")


def timeline_files(pid: int) -> set[tuple[int, int]]:
    """The shared timelines a process holds open, as (device, inode): several descriptors may
    refer to one (each mapping keeps its own)."""
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if "asr-timeline" in os.readlink(f"/proc/{pid}/fd/{fd}"):
                st = os.stat(f"/proc/{pid}/fd/{fd}")
                out.add((st.st_dev, st.st_ino))
        except OSError:
            continue
    return out


def timeline_maps(pid: int) -> list[str]:
    with open(f"/proc/{pid}/maps") as f:
        return [line for line in f if "asr-timeline" in line]


def outcome(fe: FrontEnd, path: Path):
    """Everything a file's front end gives, in a comparable form."""
    run = fe.run(path)
    chunks = list(run)
    s = run.summary
    return ([(c.chunk, c.samples.tobytes(), c.lufs, c.gain_db) for c in chunks],
            (s.duration_s, s.speech_s, s.chunks, s.stream, s.warnings))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_reused_child_gives_exactly_what_a_new_one_gives(files, long_wav, workers):
    fresh = FrontEnd(workers=workers, pool=ChildPool(PoolOptions(size=0)))  # a new child per file
    warm_pool = ChildPool(PoolOptions(size=workers))
    warm = FrontEnd(workers=workers, pool=warm_pool)
    try:
        for path in files:  # every child has served other files first, in other roles
            list(warm.run(path))
        pids = set(warm_pool.stats().idle_pids)
        for path in [*files, long_wav]:
            assert outcome(warm, path) == outcome(fresh, path), path.name
        assert set(warm_pool.stats().idle_pids) == pids  # the same children all along
    finally:
        warm_pool.close()


def consume(media: MediaStream) -> int:
    samples = 0
    for event in media:
        if isinstance(event, Audio):
            samples += event.samples.size
    return samples


def first_audio(media: MediaStream) -> None:
    """Until the children have the file's timeline open and write into it."""
    for event in media:
        if isinstance(event, Audio):
            return


def test_each_file_has_its_own_timeline_and_nothing_grows(pool, files):
    fe = FrontEnd(workers=1, pool=pool)
    list(fe.run(files[0]))
    pid = only_child(pool)
    fds = sorted(os.listdir(f"/proc/{pid}/fd"))
    first = pool.stats().idle_last[0]
    seen = set()
    for i in range(30):
        path = files[i % len(files)]
        if i % 5 == 0:  # now and then, look inside while the child works on the file
            with MediaStream(path, path.name, fe.limits, with_vad=False, pool=pool) as media:
                first_audio(media)
                assert media.pids == [pid]
                held = timeline_files(pid)
                assert len(held) == 1 and held.isdisjoint(seen), held  # this file's, only this file's
                seen |= held
                consume(media)
        else:
            list(fe.run(path))
        assert only_child(pool) == pid
        assert timeline_files(pid) == set() and timeline_maps(pid) == [], "the file's timeline was kept"
        assert sorted(os.listdir(f"/proc/{pid}/fd")) == fds
    last = pool.stats().idle_last[0]
    assert last is not None and first is not None and last.files == 31
    assert last.fds == first.fds
    assert last.rss_bytes - first.rss_bytes < 32 * 2**20, (first, last)
    assert last.vm_bytes - first.vm_bytes < 32 * 2**20, (first, last)


def test_a_reused_child_gets_each_file_its_own_cpu_budget(pool, files, long_wav):
    """RLIMIT_CPU counts a process's whole life: each file's soft limit is set from what the
    child has used so far, so a file late in a child's life has the whole budget too."""
    fe = FrontEnd(workers=1, pool=pool, limits=AudioLimits(decode_timeout_s=20))
    spec = ChildSpec.of(fe.limits)
    for _ in range(3):
        list(fe.run(long_wav))
    pid = only_child(pool)
    before = pool.stats().idle_last[0].cpu_s
    assert before > 1.0
    list(fe.run(files[0]))
    after = pool.stats().idle_last[0].cpu_s
    with open(f"/proc/{pid}/limits") as f:
        soft, hard = (int(v) for v in next(line for line in f if line.startswith("Max cpu time")).split()[3:5])
    assert hard == spec.cpu_hard_s
    assert int(before + spec.cpu_s) + 1 <= soft <= int(after + spec.cpu_s) + 1


FAULTS = {
    "crash": (b"ASR-FAULT:crash\n", None, DecoderFailure, "crashed (SIGSEGV)"),
    "exit": (b"ASR-FAULT:exit\n", None, DecoderFailure, "exited unexpectedly"),
    "hang": (b"ASR-FAULT:hang\n", 3.0, DecoderFailure, "took longer than 3 s"),
    "not audio": (b"just some words, not a recording\n" * 40, None, InputError, "not audio"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_child_whose_file_failed_is_never_reused(pool, files, tmp_path, monkeypatch, fault):
    content, timeout_s, error, message = FAULTS[fault]
    monkeypatch.setenv("ASR_FAULT_INJECTION", "1")
    limits = AudioLimits(decode_timeout_s=timeout_s) if timeout_s else AudioLimits()
    fe = FrontEnd(workers=1, pool=pool, limits=limits)
    list(fe.run(files[0]))
    pid = only_child(pool)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    with pytest.raises(error, match=re.escape(message)):
        list(fe.run(bad))
    assert pool.stats().live == 0 and not running(pid), "the failed child was kept"
    list(fe.run(files[0]))
    assert only_child(pool) != pid


@pytest.mark.parametrize("how", ["cancel", "close"])
def test_a_child_whose_file_was_stopped_is_never_reused(pool, files, long_wav, how):
    fe = FrontEnd(workers=1, pool=pool)
    list(fe.run(files[0]))
    pid = only_child(pool)
    run = fe.run(long_wav)
    chunks = iter(run)
    next(chunks)
    assert pool.stats().idle == 0  # busy with this file
    if how == "cancel":
        run.cancel()
        with pytest.raises(Stopped):
            list(chunks)
    else:
        chunks.close()  # the consumer walked away
    assert pool.stats().live == 0 and not running(pid)


def test_the_pool_keeps_at_most_its_size_and_retires_idle_children(long_wav):
    pool = ChildPool(PoolOptions(size=2, idle_s=0.5))
    try:
        run = FrontEnd(workers=3, pool=pool).run(long_wav)
        list(run)
        assert run.summary.timings.workers == 3  # a file gets what it asks for
        stats = pool.stats()
        assert stats.live == 2 and stats.idle == 2, stats  # the third went when it came back
        deadline = time.monotonic() + 10  # the pool counts a child gone, then kills and reaps it
        while ((pool.stats().live or any(running(pid) for pid in stats.idle_pids))
               and time.monotonic() < deadline):
            time.sleep(0.05)
        assert pool.stats().live == 0
        assert not any(running(pid) for pid in stats.idle_pids)
    finally:
        pool.close()


def test_a_child_retires_after_its_files(files):
    pool = ChildPool(PoolOptions(size=1, max_files=2))
    try:
        fe = FrontEnd(workers=1, pool=pool)
        list(fe.run(files[0]))
        pid = only_child(pool)
        list(fe.run(files[1]))
        assert pool.stats().live == 0 and not running(pid)
    finally:
        pool.close()


def test_a_file_waits_for_a_busy_child_instead_of_starting_one(files):
    pool = ChildPool(PoolOptions(size=1, wait_s=30.0))
    limits = AudioLimits()
    try:
        list(FrontEnd(workers=1, pool=pool).run(files[0]))
        pid = only_child(pool)
        first = MediaStream(files[0], "first.wav", limits, with_vad=False, pool=pool).__enter__()

        def finish_first() -> None:
            time.sleep(0.5)
            consume(first)
            first.close()

        threading.Thread(target=finish_first).start()
        started = time.monotonic()
        with MediaStream(files[1], "second.mp3", limits, with_vad=False, pool=pool) as second:
            assert second.pids == [pid] and time.monotonic() - started >= 0.4
            assert consume(second) > 0
        assert only_child(pool) == pid
    finally:
        pool.close()


def test_a_stop_while_waiting_for_a_child_is_prompt(files):
    pool = ChildPool(PoolOptions(size=1, wait_s=30.0))
    try:
        busy = MediaStream(files[0], "busy.wav", AudioLimits(), with_vad=False, pool=pool).__enter__()
        stop = threading.Event()
        threading.Timer(0.3, stop.set).start()
        started = time.monotonic()
        with pytest.raises(Stopped, match="waiting.wav"):
            with MediaStream(files[1], "waiting.wav", AudioLimits(), with_vad=False, pool=pool, stop=stop):
                pass
        assert time.monotonic() - started < 5
        busy.close(reuse=False)
        assert pool.stats().live == 0
    finally:
        pool.close()


def test_a_file_behind_a_long_one_starts_its_own_child(files):
    """No child comes back (a long file holds it): after the quiet time the waiting file starts
    one past the pool's size, which retires when it comes back."""
    pool = ChildPool(PoolOptions(size=1, wait_s=0.3))
    limits = AudioLimits()
    try:
        list(FrontEnd(workers=1, pool=pool).run(files[0]))
        held = MediaStream(files[0], "long.wav", limits, with_vad=False, pool=pool).__enter__()
        started = time.monotonic()
        with MediaStream(files[1], "short.mp3", limits, with_vad=False, pool=pool) as short:
            assert 0.25 <= time.monotonic() - started < 10
            assert short.pids and short.pids != held.pids
            assert consume(short) > 0
        assert pool.stats().live == 1  # the one past the size went when it came back
        first = held.pids
        consume(held)
        held.close()
        assert list(pool.stats().idle_pids) == first
    finally:
        pool.close()


def test_a_file_well_after_a_long_one_began_starts_its_own_child_at_once(files):
    """The long file took its child longer ago than the quiet time and none came back since:
    nothing will soon, so the next file does not wait the quiet time again."""
    wait_s = 3.0
    pool = ChildPool(PoolOptions(size=1, wait_s=wait_s))
    limits = AudioLimits()
    try:
        list(FrontEnd(workers=1, pool=pool).run(files[0]))
        held = MediaStream(files[0], "long.wav", limits, with_vad=False, pool=pool).__enter__()
        time.sleep(wait_s + 0.2)
        started = time.monotonic()
        with MediaStream(files[1], "short.mp3", limits, with_vad=False, pool=pool) as short:
            assert time.monotonic() - started < wait_s - 0.5  # a child's start, not the wait
            assert short.pids and short.pids != held.pids
            assert consume(short) > 0
        consume(held)
        held.close()
    finally:
        pool.close()


def test_without_a_pool_each_file_starts_its_own_child_at_once(files):
    """ASR_DECODER_POOL=0: no waiting for a child to come back, and none is kept."""
    pool = ChildPool(PoolOptions(size=0, wait_s=30.0))
    try:
        started = time.monotonic()
        with MediaStream(files[0], "one.wav", AudioLimits(), with_vad=False, pool=pool) as media:
            assert time.monotonic() - started < 5
            pids = media.pids
            assert consume(media) > 0
        assert pool.stats().live == 0 and not any(running(pid) for pid in pids)
    finally:
        pool.close()
