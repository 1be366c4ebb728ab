"""Malformed and hostile input from the server.

Frames that are not Slack events (invalid JSON, other JSON values, no string ``type``,
binary frames, replies to unknown ids, late replies) are dropped after ``raw_message``
and the connection lives on. Protocol violations (invalid UTF-8 in a text frame, masked
or reserved-bit frames, unknown opcodes, broken fragmentation, oversized frames) fail the
connection, which is then handled like any lost connection: reconnected, nothing queued
lost. Huge (4 MiB) frames pass.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Callable, List

import pytest

from slackrtm import NoReplyReceivedError, RTMClient
from slackrtm.testing import FakeSlack
from tests.conftest import Recorder, wait_until
from tests.test_reliability_support import close_frame, frame, json_frame, text_frame

Make = Callable[..., RTMClient]

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING = 0x0, 0x1, 0x2, 0x8, 0x9
FOUR_MIB = 4 * 1024 * 1024

#: Text frames that are no Slack event: each is seen by raw_message, then dropped.
JUNK = [b"{not json", b"[1, 2, 3]", b'"a string"', b"42", b"null", b"{}", b'{"type": 5}',
        b'{"type": null}', b'{"type": ["message"]}', b"", b"   ", b'{"subtype": "x"}',
        b"\xef\xbb\xbf{}",  # a UTF-8 BOM: valid UTF-8, invalid JSON
        b"{" * 10 + b"}" * 10,
        # an object, then more: the reader's fast scan of "{..." frames must refuse these
        # as json.loads does
        b'{"type": "junk"} trailing', b'{"type":"junk"}{"type":"junk"}', b'{"type": "junk"',
        b'{"type": "junk"}\x00', b'{"type": "junk"} \x0b']


def probe(n: int) -> bytes:
    return json_frame({"type": "probe", "n": n})


def test_junk_binary_and_stray_replies_are_dropped_and_the_connection_lives(
        slack: FakeSlack, make: Make, all_logs: List[logging.LogRecord]) -> None:
    rtm = make()
    rec = Recorder().attach(rtm, "probe", "raw_message", "slack_event", "error",
                            "reconnecting", "big")
    rtm.start().result(timeout=30)
    burst = bytearray()
    n = 0
    for junk in JUNK:
        burst += probe(n) + text_frame(junk)
        n += 1
    burst += probe(n) + frame(OP_BINARY, b"\x00\xffbinary")
    n += 1
    # replies to ids never sent, and reply_to values that are no message id
    for reply_to in (999_999, -1, 0, "1", 1.5, None, [1], True):
        burst += probe(n) + json_frame({"ok": True, "reply_to": reply_to, "ts": "1.0"})
        n += 1
    # 4 MiB: a huge event, and huge junk
    burst += probe(n) + json_frame({"type": "big", "pad": "x" * FOUR_MIB})
    n += 1
    burst += probe(n) + text_frame(b"y" * FOUR_MIB)
    n += 1
    # JSON whitespace around an event is allowed: after it (the fast scan) and around it
    for padded in (b'{"type": "probe", "n": %d} \r\n\t', b' \n{"type": "probe", "n": %d}\t '):
        burst += text_frame(padded % n)
        n += 1
    # a fragmented event, with a ping in the middle and a UTF-8 character split across
    # fragments (valid once joined)
    text = json.dumps({"type": "probe", "n": n, "s": "\u00e9\u20ac"},
                      ensure_ascii=False).encode("utf-8")
    cut = text.index(b"\xe2") + 1
    burst += frame(OP_TEXT, text[:5], fin=False) + frame(OP_PING, b"hi") \
        + frame(OP_CONT, text[5:cut], fin=False) + frame(OP_CONT, text[cut:])
    n += 1
    burst += probe(n)
    n += 1
    conn = slack.connections[0]
    conn.send_bytes(bytes(burst))
    rec.wait_for("probe", n, timeout=30)
    assert [a[0]["n"] for a in rec.of("probe")] == list(range(n))
    assert rec.of("probe")[-2][0]["s"] == "\u00e9\u20ac"
    assert len(rec.of("big")[0][0]["pad"]) == FOUR_MIB
    # every text frame reached raw_message, in order (the binary one did not)
    raws = [a[0] for a in rec.of("raw_message")]
    assert [r.encode("utf-8") for r in raws if r.encode("utf-8") in JUNK] == JUNK
    # stray replies resolve nothing and are no events; stray replies with an unusable
    # reply_to are not events either (reply_to present)
    events = [a[0] for a in rec.of("slack_event")]
    assert set(events) == {"hello", "probe", "big"}, set(events)
    wait_until(lambda: conn.ws_pongs == [b"hi"], what="the pong to the server's ping")
    assert rec.of("error") == [] and rec.of("reconnecting") == [] and slack.connect_count == 1
    warnings = [r.getMessage() for r in all_logs if r.levelno == logging.WARNING]
    assert sum("not a Slack event" in w for w in warnings) == len(JUNK) + 1  # + huge junk
    assert sum("binary frame of 8 bytes" in w for w in warnings) == 1
    assert all(len(w) < 1000 for w in warnings)  # a 4 MiB frame is not logged whole
    assert rtm.send_message("still fine", slack.channel_id("general")).result(30)["ok"]


def test_deeply_nested_json_is_junk_not_the_end_of_the_run(slack: FakeSlack,
                                                           make: Make) -> None:
    rtm = make()
    rec = Recorder().attach(rtm, "probe", "error", "disconnected")
    rtm.start().result(timeout=30)
    slack.connections[0].send_bytes(text_frame(b"[" * 100_000 + b"]" * 100_000) + probe(0))
    wait_until(lambda: rec.of("probe") or rec.of("disconnected"), what="probe or the end")
    assert rec.of("probe") and rec.of("error") == [] and rec.of("disconnected") == []
    assert rtm.state == "ready"


PROTOCOL_ERRORS = {
    "invalid_utf8": text_frame(b'{"type": "x", "t": "\xff\xfe"}'),
    "overlong_utf8": text_frame(b'{"type": "\xc0\xaf"}'),
    "utf8_surrogate": text_frame(b'{"type": "\xed\xa0\x80"}'),
    "truncated_utf8_at_end": text_frame(b'{"type": "x"}\xe2\x82'),
    "invalid_utf8_across_fragments": frame(OP_TEXT, b'{"type": "\xe2', fin=False)
    + frame(OP_CONT, b'\x28"}'),
    "masked": frame(OP_TEXT, b'{"type": "x"}', mask=True),
    "reserved_bits": frame(OP_TEXT, b'{"type": "x"}', rsv=4),
    "unknown_opcode": frame(0x3, b"x"),
    "unknown_control_opcode": frame(0xB, b"x"),
    "long_control_frame": frame(OP_PING, b"p" * 126),
    "fragmented_control_frame": frame(OP_PING, b"p", fin=False),
    "continuation_out_of_sequence": frame(OP_CONT, b"x"),
    "interleaved_new_message": frame(OP_TEXT, b"{", fin=False) + frame(OP_TEXT, b"{}"),
    "declared_length_over_limit": frame(OP_TEXT, b"", length=2**62),
}


@pytest.mark.parametrize("kind", sorted(PROTOCOL_ERRORS))
def test_protocol_violations_fail_the_connection_and_it_is_replaced(
        slack: FakeSlack, make: Make, kind: str) -> None:
    rtm = make()
    rec = Recorder().attach(rtm, "ready", "reconnecting", "error", "raw_message", "x")
    rtm.start().result(timeout=30)
    channel = slack.channel_id("general")
    slack.hold_hello = True  # so a send made now is queued, not written
    slack.connections[0].send_bytes(PROTOCOL_ERRORS[kind])
    rec.wait_for("reconnecting", timeout=30)
    queued = rtm.send_message("queued across the failure", channel)
    slack.wait_for_connect_count(2)
    slack.hold_hello = False
    slack.release_hello()
    assert queued.result(timeout=30)["text"] == "queued across the failure"
    assert rec.of("x") == [] and rec.of("error") == []
    assert all("\ufffd" not in a[0] for a in rec.of("raw_message"))  # nothing half-decoded
    rec.wait_for("ready", 2)  # the reply resolves on the reader; events follow on theirs
    assert len(rec.of("ready")) == 2 and len(rec.of("reconnecting")) == 1


@pytest.mark.parametrize("end", ["close_frame", "invalid_utf8"])
def test_events_before_the_end_of_a_connection_are_delivered(slack: FakeSlack, make: Make,
                                                             end: str) -> None:
    rtm = make()
    rec = Recorder().attach(rtm, "probe", "ready")
    rtm.start().result(timeout=30)
    last = close_frame(1001) if end == "close_frame" else PROTOCOL_ERRORS["invalid_utf8"]
    slack.connections[0].send_bytes(b"".join(probe(i) for i in range(5)) + last)
    rec.wait_for("ready", 2)
    slack.inject({"type": "probe", "n": 5})
    wait_until(lambda: any(a[0]["n"] == 5 for a in rec.of("probe")), what="probe 5")
    assert [a[0]["n"] for a in rec.of("probe")] == [0, 1, 2, 3, 4, 5]


def test_replies_after_their_timeout_are_ignored(slack: FakeSlack, make: Make) -> None:
    """reply_delay > reply_timeout: each send fails with NoReplyReceivedError at its
    deadline; the late replies resolve nothing, raise nothing and reach only
    raw_message; the connection and later sends are unaffected."""
    rtm = make(reply_timeout=0.2)
    rec = Recorder().attach(rtm, "error", "reconnecting", "slack_event", "raw_message")
    rtm.start().result(timeout=30)
    channel = slack.channel_id("general")
    slack.reply_delay = 3.0
    t0 = time.monotonic()
    late = [rtm.send_message(f"late-{i}", channel) for i in range(5)]
    for fut in late:
        assert isinstance(fut.exception(timeout=30), NoReplyReceivedError)
    assert time.monotonic() - t0 < 2.5  # failed at the deadline, not when the reply came
    wait_until(lambda: sum('"reply_to"' in a[0] for a in rec.of("raw_message")) >= 5,
               what="the late replies")
    slack.reply_delay = 0.0
    assert rtm.send_message("on time", channel).result(timeout=30)["text"] == "on time"
    assert rec.of("error") == [] and rec.of("reconnecting") == []
    # the echoes of the late messages are events; their replies are not

    def echoed() -> List[str]:
        return [a[1]["text"] for a in rec.of("slack_event") if a[0] == "message"]

    wait_until(lambda: "on time" in echoed() and len(echoed()) >= 6,
               what="the echoes of every message")
    assert echoed() == [f"late-{i}" for i in range(5)] + ["on time"]
