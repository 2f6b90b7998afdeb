"""The scheduler with the torch-free echo model: every result reaches its own chunk and
prediction, batches never mix prompts, fairness, back-pressure, cancellation and failure stay
per prediction. Seconds, no model weights."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from asr.errors import ModelFailure, Stopped
from asr.serving import BatchKey, Scheduler
from asr.testing.echo import EchoModel, EchoModels, expected_text, fingerprint
from asr.types import SAMPLE_RATE, Request

EN = Request("en", "en")
DE_EN = Request("de", "en", pnc=False)


def chunks(n: int, seed: int, seconds: tuple[float, float] = (1.0, 5.0)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(int(rng.uniform(*seconds) * SAMPLE_RATE)).astype(np.float32) for _ in range(n)]


def run_session(scheduler: Scheduler, audios, request: Request, model: str = "echo", name: str = ""):
    with scheduler.open(name) as session:
        futures = [session.submit(i, a, BatchKey(model, request)) for i, a in enumerate(audios)]
        session.finish()
        return session.wait(futures), session.stats


def test_every_result_belongs_to_its_chunk_and_prompt_across_concurrent_predictions():
    model = EchoModel(batch_size=8, batch_s=0.002)
    scheduler = Scheduler(EchoModels(model), max_wait_s=0.01)
    jobs = [(chunks(13, seed=k), EN if k % 2 else DE_EN) for k in range(6)]
    out: dict[int, list] = {}

    def work(k):
        out[k] = run_session(scheduler, *jobs[k])[0]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, (audios, request) in enumerate(jobs):
        assert [r.text for r in out[k]] == [expected_text(a, request) for a in audios]
    # batches were shared between predictions, and never mixed prompts
    assert any(len({p for p in prints}) > 1 for _, prints in model.batches)
    owner = {fingerprint(a): req for audios, req in jobs for a in audios}
    for request, prints in model.batches:
        assert {owner[p] for p in prints} == {request}
        assert len(prints) <= model.batch_size
    scheduler.close()


def test_a_batch_is_sorted_longest_first_and_holds_chunks_of_several_predictions():
    model = EchoModel(batch_size=16)
    scheduler = Scheduler(EchoModels(model), max_wait_s=10.0)  # only full or finished batches run
    a, b = chunks(8, seed=1), chunks(8, seed=2)
    sa, sb = scheduler.open("a"), scheduler.open("b")
    fa = [sa.submit(i, x, BatchKey("echo", EN)) for i, x in enumerate(a)]
    fb = [sb.submit(i, x, BatchKey("echo", EN)) for i, x in enumerate(b)]
    assert [r.text for r in sa.wait(fa)] == [expected_text(x, EN) for x in a]
    assert [r.text for r in sb.wait(fb)] == [expected_text(x, EN) for x in b]
    assert len(model.batches) == 1
    sizes = {fingerprint(x): x.size for x in a + b}
    lengths = [sizes[p] for p in model.batches[0][1]]
    assert lengths == sorted(lengths, reverse=True)
    sa.close(), sb.close(), scheduler.close()


def test_a_short_clip_is_not_starved_by_a_long_file_queued_before_it():
    model = EchoModel(batch_size=4, batch_s=0.03)
    scheduler = Scheduler(EchoModels(model), max_wait_s=0.005)
    long = scheduler.open("long")
    long_futures = [long.submit(i, x, BatchKey("echo", EN)) for i, x in enumerate(chunks(120, seed=3))]
    long.finish()
    time.sleep(0.1)  # the long file's batches are under way
    t = time.monotonic()
    results, _ = run_session(scheduler, chunks(2, seed=4), EN, name="short")
    waited_s = time.monotonic() - t
    done_long = sum(f.done() for f in long_futures)
    assert waited_s < 0.03 * 3 + 0.1, f"the clip waited {waited_s:.2f} s"
    assert done_long < len(long_futures), "the clip should finish while the long file is still running"
    long.wait(long_futures)
    long.close(), scheduler.close()


def test_cancelling_one_prediction_drops_its_queue_and_leaves_the_others_whole():
    model = EchoModel(batch_size=2, batch_s=0.02)
    scheduler = Scheduler(EchoModels(model), max_wait_s=0.005)
    doomed = scheduler.open("doomed")
    doomed_futures = [doomed.submit(i, x, BatchKey("echo", EN)) for i, x in enumerate(chunks(40, seed=5))]
    other_audio = chunks(10, seed=6)
    result = {}
    t = threading.Thread(target=lambda: result.update(r=run_session(scheduler, other_audio, DE_EN)[0]))
    t.start()
    time.sleep(0.05)
    doomed.close()
    t.join()
    assert [r.text for r in result["r"]] == [expected_text(x, DE_EN) for x in other_audio]
    assert sum(f.cancelled() for f in doomed_futures) > 20
    ran = {p for _, prints in model.batches for p in prints}
    assert sum(fingerprint(x) in ran for x in other_audio) == 10
    assert scheduler.queued() == (0, 0)
    scheduler.close()


def test_a_failed_batch_fails_only_the_predictions_in_it_and_the_scheduler_goes_on():
    audio_bad = chunks(3, seed=7)
    model = EchoModel(batch_size=4, fail_on=frozenset({fingerprint(audio_bad[1])}))
    scheduler = Scheduler(EchoModels(model), max_wait_s=0.005)
    with pytest.raises(ModelFailure, match="echo model told to fail"):
        run_session(scheduler, audio_bad, EN)
    good = chunks(5, seed=8)
    assert [r.text for r in run_session(scheduler, good, DE_EN)[0]] == [expected_text(x, DE_EN) for x in good]
    assert model.released >= 1 and scheduler.healthy
    scheduler.close()


def test_a_device_fault_makes_the_scheduler_refuse_work_and_report_unhealthy():
    class Faulty(EchoModel):
        def transcribe(self, audios, request):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

    scheduler = Scheduler(EchoModels(Faulty()), max_wait_s=0.005)
    with pytest.raises(ModelFailure):
        run_session(scheduler, chunks(2, seed=9), EN)
    assert not scheduler.healthy
    with pytest.raises(ModelFailure, match="unhealthy"):
        scheduler.open("next")
    scheduler.close()


def test_back_pressure_bounds_the_queued_audio():
    model = EchoModel(batch_size=2, batch_s=0.02)
    one_chunk = 3 * SAMPLE_RATE * 4
    scheduler = Scheduler(EchoModels(model), queue_bytes=4 * one_chunk, max_wait_s=0.005)
    peak = [0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], scheduler.queued()[1])
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    audios = chunks(30, seed=10, seconds=(3.0, 3.0))
    results, _ = run_session(scheduler, audios, EN)
    stop.set()
    watcher.join()
    assert [r.text for r in results] == [expected_text(x, EN) for x in audios]
    assert peak[0] <= 4 * one_chunk
    scheduler.close()


def test_a_part_full_batch_runs_after_the_short_wait_and_a_cancel_event_stops_waiting():
    model = EchoModel(batch_size=64)
    scheduler = Scheduler(EchoModels(model), max_wait_s=0.05)
    with scheduler.open("one") as session:  # never says finish(): only the wait lets it run
        t = time.monotonic()
        [r] = session.wait([session.submit(0, chunks(1, seed=11)[0], BatchKey("echo", EN))])
        assert time.monotonic() - t < 1.0
    blocked = EchoModel(name="slow", batch_size=1, batch_s=5.0)
    scheduler2 = Scheduler(EchoModels(blocked), max_wait_s=0.0)
    cancel = threading.Event()
    with scheduler2.open("c", cancel=cancel) as session:
        futures = [session.submit(i, x, BatchKey("slow", EN)) for i, x in enumerate(chunks(3, seed=12))]
        threading.Timer(0.2, cancel.set).start()
        t = time.monotonic()
        with pytest.raises(Stopped):
            session.wait(futures)
        assert time.monotonic() - t < 1.5
    scheduler.close()
    scheduler2.close()


def test_batches_group_by_phrase_set():
    """Requests with hotwords batch with requests of the same phrase set only (asr.hotwords)."""
    from asr.types import Hotwords

    model = EchoModel(batch_size=32)
    scheduler = Scheduler(EchoModels(model), max_wait_s=10.0)
    hot_a, hot_b = Hotwords(("Kubernetes",), 1.0), Hotwords(("NeMo", "Riva"), 2.0)
    requests = [EN, Request("en", "en", hotwords=hot_a), Request("en", "en", hotwords=hot_b),
                Request("en", "en", hotwords=Hotwords(("Kubernetes",), 1.0))]
    sessions = [scheduler.open(str(k)) for k in range(len(requests))]
    audios = [chunks(5, seed=20 + k) for k in range(len(requests))]
    futures = [[s.submit(i, x, BatchKey("echo", r)) for i, x in enumerate(a)]
               for s, a, r in zip(sessions, audios, requests)]
    for s in sessions:
        s.finish()
    for s, f, a, r in zip(sessions, futures, audios, requests):
        assert [x.text for x in s.wait(f)] == [expected_text(y, r) for y in a]
    owner = {fingerprint(x): r for a, r in zip(audios, requests) for x in a}
    assert len(model.batches) == 3, "three phrase sets (none, A twice, B): three batches"
    for request, prints in model.batches:
        assert {owner[p] for p in prints} == {request}
    for s in sessions:
        s.close()
    scheduler.close()
