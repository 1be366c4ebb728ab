"""The shortcuts of the Socket Mode hot path (issue 16) do what the long ways did.

- ``frames.client_frames`` masks a batch of frames with one XOR: the same frames as
  ``client_frame`` one by one, each with a key of its own.
- An ack made on read carries no Future (``Bound``): ``watch()`` gives one later, which
  resolves as the write did, in whichever order the two happen, once.
- ``SocketModeRequest`` knows on construction whether its envelope is well-formed
  (``_plain``): exactly when ``envelope_problems`` finds nothing.
- The dispatcher hands dispatched batches back; the reader frees them
  (``Dispatcher.drop_dispatched``), and at most ``max_backlog`` frames wait for it.
- ``MemoryDedupe.check``'s inline path keeps the window exact.
"""

from __future__ import annotations

import gc
import json
import threading
import weakref
from concurrent.futures import Future
from typing import Any, Dict, List, Optional

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from slackrtm import SocketModeClient
from slackrtm._engine.context import apply
from slackrtm._engine.dedupe import MemoryDedupe
from slackrtm._engine.dispatch import Dispatcher, Registry
from slackrtm._engine.entries import Lifecycle
from slackrtm._engine.frames import OP_BINARY, OP_TEXT, _mask_keys, client_frame, client_frames
from slackrtm._engine.states import Resolve
from slackrtm._engine.writer import Bound, settle
from slackrtm._log import Log
from slackrtm._protocols.envelope import SocketModeRequest, ack_text, ack_texts
from slackrtm._protocols.malformed import envelope_problems
from slackrtm.errors import SendWhileDisconnectedError
from slackrtm.testing import FakeSlack
from tests.conftest import wait_until


def unmask(data: bytes) -> List[tuple]:
    """(opcode, key, payload) of each masked client frame in ``data``."""
    out = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        assert b0 & 0x80 and b1 & 0x80, "a final, masked frame"
        n, head = b1 & 0x7F, 2
        if n == 126:
            n, head = int.from_bytes(data[pos + 2:pos + 4], "big"), 4
        elif n == 127:
            n, head = int.from_bytes(data[pos + 2:pos + 10], "big"), 10
        key = data[pos + head:pos + head + 4]
        body = data[pos + head + 4:pos + head + 4 + n]
        assert len(body) == n, "a whole frame"
        out.append((b0 & 0x0F, key, bytes(c ^ key[i % 4] for i, c in enumerate(body))))
        pos += head + 4 + n
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=300),
                          st.sampled_from([b"x" * 125, b"y" * 126, b"z" * 65535,
                                           b"w" * 65536])), min_size=1, max_size=8),
       st.sampled_from([OP_TEXT, OP_BINARY]))
def test_client_frames_are_the_frames_one_by_one(payloads: List[bytes], opcode: int) -> None:
    frames = unmask(client_frames(payloads, opcode))
    assert [p for _, _, p in frames] == payloads
    assert {op for op, _, _ in frames} == {opcode}
    single = unmask(client_frame(payloads[0], opcode))[0]
    assert single[2] == payloads[0]


def test_each_frame_of_a_batch_has_a_key_of_its_own() -> None:
    frames = unmask(client_frames([b'{"envelope_id":"%d"}' % i for i in range(2000)]))
    keys = [key for _, key, _ in frames]
    assert len(set(keys)) > 1990  # 2,000 random 32-bit keys: a few repeats at most


def test_mask_keys_across_the_pools_end() -> None:
    seen = b""
    for count in (1, 3, 1000, 1024, 5, 2000):
        keys = _mask_keys.take_many(count)
        assert len(keys) == 4 * count
        seen += keys
    assert len(set(seen[i:i + 4] for i in range(0, len(seen), 4))) > len(seen) // 4 - 10


# ---------------------------------------------------------------- Bound.watch
def test_watch_before_the_write_resolves_with_it() -> None:
    bound = Bound("{}", None)
    future = bound.watch()
    assert not future.done() and bound.watch() is future
    done: List[Resolve] = []
    settle([bound], None, done)
    assert [r.future for r in done] == [future]
    apply(done)
    assert future.result(timeout=0) is None


def test_watch_after_the_write_is_resolved_at_once() -> None:
    ok, failed = Bound("{}", None), Bound("{}", None)
    done: List[Resolve] = []
    settle([ok], None, done)
    settle([failed], lambda: SendWhileDisconnectedError("gone"), done)
    assert done == []  # nobody watched: nothing to complete
    assert ok.settled() and failed.settled()
    assert ok.watch().result(timeout=0) is None
    assert isinstance(failed.watch().exception(timeout=0), SendWhileDisconnectedError)
    assert ok.watch() is ok.watch()


def test_a_failure_gives_each_frame_an_exception_of_its_own() -> None:
    items = [Bound("{}", None, Future()) for _ in range(3)]
    done: List[Resolve] = []
    settle(items, lambda: SendWhileDisconnectedError("gone"), done)
    errors = [r.error for r in done]
    assert len(errors) == 3 and len({id(e) for e in errors}) == 3


def _race_once() -> List[Future[None]]:
    """A writer settles 20 frames while another thread watches them."""
    bounds = [Bound("{}", None) for _ in range(20)]
    futures: List[Future[None]] = []
    barrier = threading.Barrier(2)

    def watcher() -> None:
        barrier.wait()
        futures.extend(b.watch() for b in bounds)

    def writer() -> None:
        barrier.wait()
        done: List[Resolve] = []
        settle(bounds, None, done)
        apply(done)

    threads = [threading.Thread(target=watcher), threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return futures


def test_watch_racing_the_write_resolves_every_future_once() -> None:
    for _ in range(300):
        futures = _race_once()
        assert len(futures) == 20
        assert all(f.result(timeout=10) is None for f in futures)


# ---------------------------------------------------------------- requests
class _Run:
    log = Log()
    acknowledged: List[Bound] = []

    def count(self, name: str, n: int = 1) -> None:
        pass

    def acknowledge(self, bound: Bound) -> None:
        self.acknowledged.append(bound)


envelope_values = st.one_of(st.none(), st.integers(), st.text(max_size=3),
                            st.sampled_from(["events_api", "slash_commands", "interactive", ""]))
event_values = st.one_of(st.none(), st.integers(), st.text(max_size=3),
                         st.fixed_dictionaries({}, optional={"type": envelope_values}))


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries(
    {"envelope_id": st.just("e1")},
    optional={"type": envelope_values,
              "payload": st.one_of(st.none(), st.integers(), st.lists(st.integers()),
                                   st.fixed_dictionaries({}, optional={
                                       "event": event_values, "event_id": envelope_values}))}))
def test_a_request_is_plain_exactly_when_its_envelope_has_no_problems(
        frame: Dict[str, Any]) -> None:
    request = SocketModeRequest(frame, _Run(), None, False)
    problems, _ = envelope_problems(frame)
    assert request._plain is (not problems)
    # what handlers see follows from the envelope alone
    assert isinstance(request.payload, dict) and isinstance(request.type, str)
    if request.event is not None:
        assert frame.get("type") == "events_api" and request.event is frame["payload"]["event"]


_ID_CHARS = st.sampled_from(list("ab9_.:-\n\"\\ \u00e9\ud800"))


@settings(max_examples=300, deadline=None)
@example(["a\nb"])
@example(["a", "b\nc"])
@example(["a\n"])
@given(st.lists(st.one_of(st.text(_ID_CHARS, max_size=8), st.text(max_size=8),
                          st.text(st.sampled_from(list("ab9-\n")), min_size=1, max_size=6),
                          st.just("1d2c3b4a-0001-4bec-8000-00000000abcd"),
                          st.just("x" * 201)), max_size=6))
def test_ack_texts_are_each_ids_ack_text(ids: List[str]) -> None:
    """One check for a read's ids gives what checking each would (ids that span lines,
    hold quotes, non-ASCII or lone surrogates, or are too long are escaped)."""
    assert ack_texts(ids) == [ack_text(i) for i in ids]
    for text, envelope_id in zip(ack_texts(ids), ids):
        assert json.loads(text) == {"envelope_id": envelope_id}


def test_ack_after_the_ack_on_read_returns_the_written_acks_future() -> None:
    request = SocketModeRequest({"envelope_id": "e1", "type": "events_api", "payload": {
        "event": {"type": "message"}, "event_id": "Ev1"}}, _Run(), None, False)
    bound = request.acked_on_read()
    assert request.acked and bound.future is None
    first = request.ack()
    assert first is request.ack() is bound.future and not first.done()
    done: List[Resolve] = []
    settle([bound], None, done)
    apply(done)
    assert first.result(timeout=0) is None
    assert request.dedupe_key == "sm:ev:Ev1"
    assert request.retry_attempt == 0 and request.retry_reason == ""


def test_an_envelope_acked_on_read_gives_a_handler_the_acks_future(
        slack: FakeSlack, smake: Any) -> None:
    client: SocketModeClient = smake()
    got: List[Future[None]] = []
    client.on("events_api", lambda request: got.append(request.ack()))
    client.start().result(timeout=30)
    env = slack.events_api({"type": "reaction_added", "reaction": "tada"})
    wait_until(lambda: got, 30, "the handler's ack() future")
    assert got[0].result(timeout=30) is None  # the ack made on read, once written
    assert slack.acked(env["envelope_id"])
    assert [a.envelope_id for a in slack.acks].count(env["envelope_id"]) == 1


# ---------------------------------------------------------------- freeing on the reader
class _Token:
    """An object that records which thread freed it."""

    freed_on: List[Optional[str]] = []

    def __del__(self) -> None:
        self.freed_on.append(threading.current_thread().name)


def _dispatcher(max_backlog: int = 1_000) -> tuple:
    d = Dispatcher(Registry(), Log(), max_backlog)
    t = threading.Thread(target=d.run, name="test-dispatcher", daemon=True)
    t.start()
    return d, t


def test_dispatched_batches_are_freed_by_the_thread_that_drops_them() -> None:
    _Token.freed_on = []
    d, t = _dispatcher()
    try:
        for _ in range(5):
            d.put([Lifecycle("tick", (_Token(),))])
        wait_until(lambda: d.dispatched_batches() == 5, 30, "five batches dispatched")
        gc.collect()
        assert _Token.freed_on == []  # the dispatcher kept them for the reader
        d.drop_dispatched()
        assert _Token.freed_on == [threading.current_thread().name] * 5
        assert d.dispatched_batches() == 0
    finally:
        d.stop()
        t.join(30)


def test_without_a_reader_at_most_max_backlog_frames_wait_to_be_freed() -> None:
    d, t = _dispatcher(max_backlog=50)
    try:
        refs = []
        for i in range(40):
            batch: List[Any] = [(f"t{i}-{k}", {"type": "x"}) for k in range(10)]
            holder = _Holder()
            refs.append(weakref.ref(holder))
            batch.append(Lifecycle("tick", (holder,)))
            d.admit(10, lambda: False, lambda paused: None)
            d.put(batch)
        wait_until(lambda: d.backlog == 0, 30, "everything dispatched")
        assert d.dispatched_batches() <= 5  # 11 entries each: 50 frames' worth, or the last
        alive = sum(r() is not None for r in refs)
        assert alive <= 5
    finally:
        d.stop()
        t.join(30)
    assert d.dispatched_batches() == 0  # stopped: nothing kept


class _Holder:
    pass


# ---------------------------------------------------------------- dedupe window
@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_check_keeps_the_window_exact_with_holes(size: int) -> None:
    memory = MemoryDedupe(size=size)
    model: List[set] = []  # oldest first: the ids of each remembered envelope

    def check(envelope_id: str, event_id: Optional[str]) -> bool:
        keys = {"env:" + envelope_id} | ({"ev:" + event_id} if event_id else set())
        hits = [g for g in model if g & keys]
        for g in hits:
            model.remove(g)
        model.append(keys.union(*hits))
        del model[:-size]
        return bool(hits)

    sequence = [("a", "1"), ("b", None), ("c", "2"), ("a", None), ("d", "1"), ("e", None),
                ("b", "3"), ("f", "2"), ("g", None), ("c", None), ("h", "4"), ("a", "4")]
    for envelope_id, event_id in sequence * 3:
        assert memory.check(envelope_id, event_id) == check(envelope_id, event_id), \
            (envelope_id, event_id)
        assert len(memory) == len(model)


# ---------------------------------------------------------------- envelopes seen by no one
def _events(slack: FakeSlack, tag: str) -> List[Dict[str, Any]]:
    channel = slack.channel_id("general")
    return [slack.events_api({"type": "message", "channel": channel, "text": f"{tag}{i}",
                              "ts": f"{i}.{tag}"}) for i in range(20)] + [
        slack.events_api({"type": "message", "subtype": "bot_message", "channel": channel,
                          "text": f"{tag}bot", "ts": f"99.{tag}"}),
        slack.events_api({"type": "reaction_added", "reaction": tag}),
        slack.slash_command("/deploy", tag),
        slack.interactive({"type": "block_actions", "tag": tag})]


def test_envelopes_no_one_sees_as_requests_reach_the_same_handlers(
        slack: FakeSlack, smake: Any) -> None:
    """Without handlers of the envelope types the client makes no request (the short
    way); with them, it does. Event handlers see the same either way, every envelope is
    acked once, and the health counter counts each ack."""
    client: SocketModeClient = smake()
    seen: List[Any] = []
    client.on("message", lambda e: seen.append(("message", e.get("text"))))
    client.on("message::bot_message", lambda e: seen.append(("bot", e["text"])))
    client.on("reaction_added", lambda e: seen.append(("reaction", e["reaction"])))
    client.on("slack_event", lambda t, e: seen.append(("slack_event", t)))
    raws: List[str] = []
    client.on("raw_message", raws.append)
    client.start().result(timeout=30)

    def one_round(tag: str) -> List[Any]:
        del seen[:]
        del raws[:]
        envelopes = _events(slack, tag)
        wait_until(lambda: sum(1 for r in raws if '"envelope_id"' in r) == len(envelopes),
                   30, "every envelope read")
        wait_until(lambda: all(slack.acked(e["envelope_id"]) for e in envelopes), 30,
                   "every envelope acked")
        wait_until(lambda: ("reaction", tag) in seen, 30, "the last event handled")
        ids = [e["envelope_id"] for e in envelopes]
        assert [json.loads(r)["envelope_id"] for r in raws if '"envelope_id"' in r] == ids
        return [(k, v.replace(tag, "T") if isinstance(v, str) else v) for k, v in seen
                if (k, v) != ("slack_event", "hello")]

    short = one_round("Zq")
    assert client.health()["acked"] == 24
    requests: List[Any] = []
    for kind in ("events_api", "slash_commands", "interactive"):
        client.on(kind, requests.append)
    long = one_round("Xk")
    assert len(requests) == 24  # the long way: each envelope as a request
    assert short == long and len(short) == 2 * 20 + 3 + 2  # message + slack_event each
    assert client.health()["acked"] == 48
    acks = [a.envelope_id for a in slack.acks]
    assert len(acks) == len(set(acks)) == 48


def test_a_batch_of_acks_in_one_bound_is_written_as_its_frames() -> None:
    from slackrtm._engine.writer import _encoded

    texts = ['{"envelope_id":"a"}', '{"envelope_id":"\\u00e9"}', '{"envelope_id":"c"}']
    items = [Bound(texts[:2], None), Bound(texts[2], None)]
    assert [i.frames for i in items] == [2, 1]
    assert _encoded(items) == [t.encode() for t in texts]
    done: List[Resolve] = []
    settle(items, None, done)
    assert all(i.watch().result(timeout=0) is None for i in items)
