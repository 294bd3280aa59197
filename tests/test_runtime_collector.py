"""shared/runtime.collector_paused: the collector stays off while any holder is inside, and is left as it was found."""

from __future__ import annotations

import gc
import threading

from shared.runtime import collector_paused


def test_overlapping_holders_share_one_pause_and_the_last_turns_it_back_on():
    assert gc.isenabled()
    first_in, second_out = threading.Event(), threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with collector_paused():
            first_in.set()
            second_out.wait(10)
            seen.append(gc.isenabled())  # the other holder left first: still paused for this one

    worker = threading.Thread(target=first)
    worker.start()
    assert first_in.wait(10)
    with collector_paused():
        assert not gc.isenabled()
    second_out.set()
    worker.join(10)
    assert seen == [False]
    assert gc.isenabled()


def test_a_collector_already_off_stays_off_and_an_error_still_ends_the_pause():
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
    try:
        with collector_paused():
            raise ValueError("the answer could not be built")
    except ValueError:
        pass
    assert gc.isenabled()
