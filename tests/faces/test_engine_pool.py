"""The engine's threads: a request's work goes before background work (a tracked face's periodic
re-embedding), so background work never delays an answer; among waiting frames the least served
camera's goes first; errors reach whoever waits."""

from __future__ import annotations

import threading

import pytest

from faces.engine.pool import EnginePool


@pytest.fixture
def pool():
    pool = EnginePool(workers=1, name="test-engine", initializer=lambda: None)
    yield pool
    pool.shutdown()


def test_background_work_waits_while_requests_wait(pool):
    release = threading.Event()
    order: list[str] = []
    busy = pool.submit(release.wait, 10)  # the one thread busy while work queues up
    background = pool.submit_background(order.append, "refresh")
    requests = [pool.submit(order.append, f"frame {i}") for i in range(3)]
    release.set()
    for future in (busy, background, *requests):
        future.result(timeout=10)
    assert order == ["frame 0", "frame 1", "frame 2", "refresh"]  # requests first, each in turn


def test_an_error_reaches_the_caller_and_the_thread_goes_on(pool):
    with pytest.raises(ZeroDivisionError):
        pool.submit(lambda: 1 / 0).result(timeout=10)
    assert pool.submit_background(sum, [1, 2]).result(timeout=10) == 3


def test_every_thread_runs_the_initializer():
    started: set[int] = set()
    pool = EnginePool(workers=2, name="test-engine", initializer=lambda: started.add(threading.get_ident()))
    barrier = threading.Barrier(2)
    idents = [pool.submit(lambda: (barrier.wait(10), threading.get_ident())[1]) for _ in range(2)]
    assert {future.result(timeout=10) for future in idents} == started and len(started) == 2
    pool.shutdown()


def test_the_least_served_cameras_frame_goes_first_and_equal_ranks_keep_their_order(pool):
    release = threading.Event()
    order: list[str] = []
    busy = pool.submit(release.wait, 10)
    background = pool.submit_background(order.append, "refresh")
    # Frames of four cameras arriving together, each ranked by its answers in the last second.
    frames = [pool.submit_ranked(rank, order.append, name)
              for rank, name in ((15, "served 15"), (12, "served 12 (a)"), (14, "served 14"), (12, "served 12 (b)"))]
    rest = pool.submit(order.append, "REST")
    release.set()
    for future in (busy, background, *frames, rest):
        future.result(timeout=10)
    assert order == ["REST", "served 12 (a)", "served 12 (b)", "served 14", "served 15", "refresh"]
