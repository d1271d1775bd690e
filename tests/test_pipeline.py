"""Threaded stages: order, backpressure, error propagation, early end, live dropping."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from stream_derain.pipeline import EOS, DropOldestQueue, IterSource, Pipeline, Stage


class Double(Stage):
    def __init__(self, stop, inq, outq, fail_at=None, delay=0.0):
        super().__init__("double", stop, inq, outq)
        self.fail_at, self.delay = fail_at, delay

    def work(self, item):
        if item == self.fail_at:
            raise ValueError(f"boom at {item}")
        time.sleep(self.delay)
        return [item * 2]


class Collect(Stage):
    def __init__(self, stop, inq):
        super().__init__("collect", stop, inq, None)
        self.seen = []

    def work(self, item):
        self.seen.append(item)
        return [item]


def build(n=50, fail_at=None, delay=0.0, qsize=2, source=None):
    p = Pipeline()
    q1, q2 = queue.Queue(qsize), queue.Queue(qsize)
    p.add(IterSource("src", p.stop, p.source_stop, q1, source or (lambda: iter(range(n)))))
    p.add(Double(p.stop, q1, q2, fail_at, delay))
    sink = p.add(Collect(p.stop, q2))
    return p, sink


def test_every_item_arrives_in_order_through_small_queues():
    p, sink = build(200, qsize=1)
    result = p.run(lambda: len(sink.seen))
    assert sink.seen == [2 * i for i in range(200)]
    assert result.frames == 200 and not result.interrupted
    names = [s.name for s in result.stages]
    assert names == ["src", "double", "collect"] and result.stages[1].items == 200


def test_an_error_in_any_stage_stops_all_and_is_raised():
    p, sink = build(10_000, fail_at=7)
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="boom at 7"):
        p.run(lambda: len(sink.seen))
    assert time.monotonic() - t0 < 5
    assert not any(s.is_alive() for s in p.stages)
    assert sink.seen == [2 * i for i in range(7)]


def test_source_errors_surface_too():
    def broken():
        yield 1
        raise OSError("camera unplugged")

    p, sink = build(source=broken)
    with pytest.raises(OSError, match="unplugged"):
        p.run(lambda: len(sink.seen))


def test_source_stop_drains_what_is_in_flight():
    p, sink = build(10_000, delay=0.002)
    threading.Timer(0.2, p.source_stop.set).start()
    result = p.run(lambda: len(sink.seen))
    assert 0 < result.frames < 10_000
    assert sink.seen == [2 * i for i in range(result.frames)]  # a clean prefix, nothing lost


def test_busy_time_counts_only_the_work():
    p, sink = build(20, delay=0.01)
    result = p.run(lambda: len(sink.seen))
    busy = result.stages[1].busy_s
    assert 0.2 <= busy < 0.2 + 0.15


def test_drop_oldest_queue_never_blocks_and_counts():
    q = DropOldestQueue(3)
    for i in range(10):
        q.put(i, timeout=0.01)
    assert q.dropped == 7
    assert [q.get_nowait() for _ in range(3)] == [7, 8, 9]
    q.put(EOS)
    assert q.get_nowait() is EOS
