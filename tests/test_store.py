"""The workspace store: events applied without sockets, lazy loading, and a live store that
matches FakeSlack after 200 random changes while 8 threads read it."""

from __future__ import annotations

import random
import threading
from typing import Any, Callable, Dict, List, Optional

import pytest

from slackrtm import RTMClient, SlackResponse
from slackrtm._log import Log
from slackrtm._store.store import Store, thaw
from slackrtm.errors import SlackApiError
from slackrtm.testing import FakeSlack

from .conftest import Recorder


class FakeApi:
    """``call(method, params)`` answering from canned data, counting calls."""

    def __init__(self, answers: Dict[str, Callable[[Dict[str, Any]], Dict[str, Any]]]) -> None:
        self.answers = answers
        self.calls: List[tuple[str, Dict[str, Any]]] = []

    def __call__(self, method: str, params: Dict[str, Any]) -> SlackResponse:
        self.calls.append((method, dict(params)))
        data = dict(self.answers[method](params))
        resp = SlackResponse(client=self, method=method,  # type: ignore[arg-type]
                             params=params, data=data, status_code=200, headers={})
        return resp.validate()

    call = __call__  # SlackResponse follows next_cursor through client.call()


def store_with(**answers: Callable[[Dict[str, Any]], Dict[str, Any]]) -> tuple[Store, FakeApi]:
    api = FakeApi({k.replace("_", "."): v for k, v in answers.items()})
    store = Store(api, Log(20, None, ()))
    store.load_connect_data({"team": {"id": "T1", "name": "Team", "domain": "team"},
                             "self": {"id": "UBOT", "name": "bot"}})
    return store, api


def test_events_update_the_store_without_any_call() -> None:
    store, api = store_with()
    store.apply({"type": "team_join", "user": {"id": "U1", "name": "ann"}})
    store.apply({"type": "presence_change", "user": "U1", "presence": "away"})
    store.apply({"type": "presence_change", "users": ["U1", "U2"], "presence": "active"})
    store.apply({"type": "team_join", "user": {"id": "U2", "name": "ben"}})  # presence kept
    store.apply({"type": "user_change", "user": {"id": "U1", "name": "anne"}})
    assert thaw(store.users["U1"]) == {"id": "U1", "name": "anne", "presence": "active"}
    assert store.users["U2"]["presence"] == "active"
    store.apply({"type": "channel_created", "channel": {"id": "C1", "name": "one",
                                                        "created": 1, "creator": "U1"}})
    store.apply({"type": "channel_rename", "channel": {"id": "C1", "name": "uno"}})
    store.apply({"type": "member_joined_channel", "user": "UBOT", "channel": "C1"})
    store.apply({"type": "channel_archive", "channel": "C1", "user": "U1"})
    c1 = store.channels["C1"]
    assert (c1["name"], c1["is_member"], c1["is_archived"], c1["is_private"]) == (
        "uno", True, True, False)
    store.apply({"type": "channel_unarchive", "channel": "C1", "user": "U1"})
    store.apply({"type": "member_left_channel", "user": "UBOT", "channel": "C1"})
    assert (store.channels["C1"]["is_archived"], store.channels["C1"]["is_member"]) == (
        False, False)
    store.apply({"type": "group_joined", "channel": {"id": "G1", "name": "secret",
                                                     "is_private": True}})
    assert store.channels["G1"]["is_member"] is True
    store.apply({"type": "group_left", "channel": "G1"})
    assert store.channels["G1"]["is_member"] is False
    store.apply({"type": "channel_deleted", "channel": "C1"})
    assert "C1" not in store.channels and list(store.channels) == ["G1"]
    store.apply({"type": "im_created", "user": "UBOT", "channel": {"id": "D1", "user": "U1"}})
    store.apply({"type": "im_close", "user": "UBOT", "channel": "D1"})
    assert thaw(store.ims["D1"]) == {"id": "D1", "user": "U1", "is_im": True, "is_open": False}
    store.apply({"type": "team_rename", "name": "New Team"})
    store.apply({"type": "team_domain_change", "url": "https://new.slack.com", "domain": "new"})
    assert thaw(store.team) == {"id": "T1", "name": "New Team", "domain": "new",
                                "url": "https://new.slack.com"}
    store.apply({"type": "user_change", "user": {"id": "UBOT", "name": "robot"}})
    assert store.self is not None and store.self["name"] == "robot"
    store.apply({"type": "channel_rename", "channel": "not a dict"})  # malformed: ignored
    store.apply({"type": "message", "channel": "C9", "text": "hi"})  # not a store event
    assert api.calls == []
    assert store.name_of("U1") == "@anne" and store.name_of("G1") == "#secret"
    assert store.name_of("U404") == "U404"


def test_entries_and_views_are_read_only() -> None:
    store, _ = store_with()
    store.apply({"type": "team_join", "user": {"id": "U1", "name": "ann",
                                               "profile": {"tags": ["a"]}}})
    entry = store.users["U1"]
    with pytest.raises(TypeError):
        entry["name"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        entry["profile"]["x"] = 1  # nested dicts are read-only too
    assert entry["profile"]["tags"] == ("a",)
    with pytest.raises(TypeError):
        store.users["U2"] = entry  # type: ignore[index]
    assert dict(store.users.items()) == {"U1": entry}


def test_lazy_lookups_call_once_and_cache() -> None:
    users = {"U1": {"id": "U1", "name": "ann"}}

    def users_info(params: Dict[str, Any]) -> Dict[str, Any]:
        uid = params["user"]
        return {"ok": True, "user": users[uid]} if uid in users else {
            "ok": False, "error": "user_not_found"}

    def conversations_info(params: Dict[str, Any]) -> Dict[str, Any]:
        cid = params["channel"]
        if cid == "D1":
            return {"ok": True, "channel": {"id": "D1", "is_im": True, "user": "U1"}}
        return {"ok": False, "error": "missing_scope"}

    store, api = store_with(users_info=users_info, conversations_info=conversations_info)
    assert "U1" not in store.users  # views never call the API
    assert store.user("U1")["name"] == "ann"
    assert store.user("U1") is store.users["U1"]
    with pytest.raises(KeyError):
        store.user("U404")
    assert store.im("D1")["user"] == "U1" and "D1" in store.ims
    with pytest.raises(SlackApiError):  # other errors are raised as they are
        store.channel("C1")
    assert [m for m, _ in api.calls] == ["users.info", "users.info", "conversations.info",
                                         "conversations.info"]


def test_load_all_pages_and_keeps_what_events_changed_meanwhile() -> None:
    store: Optional[Store] = None

    def users_list(params: Dict[str, Any]) -> Dict[str, Any]:
        assert store is not None
        if not params.get("cursor"):
            # an event arrives while the pages load: it is newer than the pages
            store.apply({"type": "user_change", "user": {"id": "U2", "name": "new-ben"}})
            return {"ok": True, "members": [{"id": "U1", "name": "ann"}],
                    "response_metadata": {"next_cursor": "p2"}}
        return {"ok": True, "members": [{"id": "U2", "name": "old-ben"}],
                "response_metadata": {"next_cursor": ""}}

    def conversations_list(params: Dict[str, Any]) -> Dict[str, Any]:
        assert "im" in params["types"]
        return {"ok": True, "channels": [{"id": "C1", "name": "one"},
                                         {"id": "D1", "is_im": True, "user": "U1"}]}

    store, api = store_with(users_list=users_list, conversations_list=conversations_list)
    store.apply({"type": "channel_created", "channel": {"id": "C0", "name": "gone"}})
    store._changed.clear()  # as if C0 had been cached long ago: it no longer exists
    store.load_all()
    assert {k: v["name"] for k, v in store.users.items()} == {"U1": "ann", "U2": "new-ben"}
    assert list(store.channels) == ["C1"] and list(store.ims) == ["D1"]
    assert [p.get("cursor") for m, p in api.calls if m == "users.list"] == [None, "p2"]


def test_store_off_by_default(slack: FakeSlack, make: Callable[..., RTMClient]) -> None:
    rtm = make()
    with pytest.raises(RuntimeError, match="store=True"):
        rtm.store  # noqa: B018
    assert rtm.last_seen == {}
    with pytest.raises(ValueError):
        make(backfill="sometimes")
    with pytest.raises(ValueError):
        make(backfill=True, backfill_limit=0)
    with pytest.raises(ValueError):
        make(backfill_since={"C1": "1700000000.000100"})  # needs backfill
    with pytest.raises(ValueError):
        make(backfill=True, backfill_since={"C1": "yesterday"})


def test_rtm_start_fills_the_store_and_handlers_see_it_updated(
        slack: FakeSlack, make: Callable[..., RTMClient]) -> None:
    rtm = make(store=True, use_rtm_connect=False)
    seen: List[Any] = []
    rtm.on("channel_rename", lambda e: seen.append(rtm.store.channels[e["channel"]["id"]]
                                                   ["name"]))
    rec = Recorder().attach(rtm, "ready")
    rtm.start().result(30)
    rec.wait_for("ready")
    assert rtm.store.team is not None and rtm.store.team["id"] == slack.team_id
    assert rtm.store.self is not None and rtm.store.self["id"] == slack.bot_user_id
    assert len(rtm.store.users) == len(slack.users)
    assert set(rtm.store.channels) == {c["id"] for c in slack.channels}
    slack.rename_channel("random", "chitchat")
    slack.wait_until(lambda: bool(seen))
    assert seen == ["chitchat"]  # the store was updated before the handler ran
    assert slack.call_count("users.info") == 0


def plain_user(entry: Any) -> Dict[str, Any]:
    user = thaw(entry)
    user.pop("presence", None)
    return dict(user)


def test_store_matches_fakeslack_after_200_random_changes_read_from_8_threads(
        slack: FakeSlack, make: Callable[..., RTMClient]) -> None:
    rng = random.Random(11)
    rtm = make(store=True)
    done = threading.Event()
    rtm.on("sentinel", lambda e: done.set())
    rec = Recorder().attach(rtm, "ready", "error")
    rtm.start().result(30)
    rec.wait_for("ready")
    store = rtm.store
    store.load_all()
    seeded = {c["id"] for c in slack.channels}
    humans = [u["id"] for u in slack.users if not u["is_bot"]]
    rtm.subscribe_presence(list(humans)).result(30)
    slack.wait_for_received("presence_sub")

    stop = threading.Event()
    failures: List[BaseException] = []
    reads = [0] * 8

    def reader(n: int) -> None:
        try:
            while not stop.is_set():
                for uid, user in store.users.items():
                    assert user["id"] == uid and isinstance(user["name"], str)
                for cid in list(store.channels):
                    channel = store.channels.get(cid)
                    assert channel is None or channel["id"] == cid
                for cid, im in store.ims.items():
                    assert im["is_im"] is True and im["id"] == cid
                assert store.team is not None and store.user(rng.choice(humans))["id"]
                reads[n] += 1
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=reader, args=(i,), name=f"reader-{i}")
               for i in range(8)]
    for t in threads:
        t.start()
    try:
        changes: Dict[str, int] = {}
        for i in range(200):
            users = [u["id"] for u in slack.users if not u["is_bot"]]
            channels = [c for c in slack.channels if not c.get("is_im")]
            kind = rng.choice(["add_user", "update_user", "rename_user", "deactivate", "presence",
                               "add_channel", "rename_channel", "archive", "unarchive",
                               "delete_channel", "join", "leave", "open_im", "close_im",
                               "rename_team", "team_domain"])
            changes[kind] = changes.get(kind, 0) + 1
            channel = rng.choice(channels) if channels else None
            if kind == "add_user":
                slack.add_user(f"user{i}", real_name=f"User {i}")
            elif kind == "update_user":
                slack.update_user(rng.choice(users), real_name=f"Real {i}",
                                  profile={"title": f"title {i}"})
            elif kind == "rename_user":
                slack.rename_user(rng.choice(users), f"renamed{i}")
            elif kind == "deactivate":
                slack.deactivate_user(rng.choice(users))
            elif kind == "presence":
                slack.set_presence(rng.choice(humans), rng.choice(["active", "away"]))
            elif kind == "add_channel" or channel is None:
                slack.add_channel(f"chan{i}", is_member=rng.random() < 0.5)
            elif kind == "rename_channel":
                # (user given: the default, alice, may have been renamed)
                slack.rename_channel(channel["id"], f"{channel['name'][:40]}-{i}",
                                     user=rng.choice(users))
            elif kind == "archive":
                slack.archive_channel(channel["id"])
            elif kind == "unarchive":
                slack.unarchive_channel(channel["id"])
            elif kind == "delete_channel":
                slack.delete_channel(channel["id"])
            elif kind in ("join", "leave"):
                members = slack.members(channel["id"])
                who = slack.bot_user_id if rng.random() < 0.5 else rng.choice(users)
                if kind == "join" and who not in members:
                    slack.join_channel(who, channel["id"])
                elif kind == "leave" and who in members:
                    slack.leave_channel(who, channel["id"])
            elif kind == "open_im":
                slack.open_im(rng.choice(users))
            elif kind == "close_im":
                ims = [c["id"] for c in slack.channels if c.get("is_im")]
                if ims:
                    slack.close_im(rng.choice(ims))
            elif kind == "rename_team":
                slack.rename_team(f"Team {i}")
            else:
                slack.change_team_domain(f"team{i}")
        slack.inject({"type": "sentinel"})
        assert done.wait(30), "the sentinel event was not dispatched"
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not failures, failures[0]
    assert all(n > 0 for n in reads), reads
    assert not rec.of("error")
    assert len(changes) >= 12, changes

    want_users = {u["id"]: u for u in slack.users}
    assert {uid: plain_user(u) for uid, u in store.users.items()} == want_users
    for uid in humans:
        assert store.users[uid].get("presence", slack.presence(uid)) == slack.presence(uid)
    want = {c["id"]: c for c in slack.channels if not c.get("is_im")}
    got = {cid: thaw(c) for cid, c in store.channels.items()}
    assert set(got) == set(want)
    for cid, channel in want.items():
        if cid in seeded:  # loaded in full, then kept current by events
            assert got[cid] == channel, cid
        else:  # created by an event: its fields, then kept current
            fields = ("id", "name", "is_archived", "is_member", "is_private", "created")
            assert {k: got[cid][k] for k in fields} == {k: channel[k] for k in fields}, cid
    ims = {c["id"]: c for c in slack.channels if c.get("is_im")}
    assert {cid: im["is_open"] for cid, im in store.ims.items()} == {
        cid: im["is_open"] for cid, im in ims.items()}
    team = store.team
    assert team is not None
    assert (team["name"], team["domain"]) == (slack._ws.team["name"], slack._ws.team["domain"])
