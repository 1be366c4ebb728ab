"""The store's event rules case by case, without sockets: presence, renames, membership
counts, IMs, deletions racing a full load, and lookups racing events."""

from __future__ import annotations

from typing import Any, Dict, Optional

import pytest

from slackrtm._store.store import Store, thaw

from .test_store import store_with


def channel(store: Store, cid: str) -> Dict[str, Any]:
    return thaw(store.channels[cid])


def test_manual_presence_change_sets_the_bots_own_presence() -> None:
    store, api = store_with()
    store.apply({"type": "manual_presence_change", "presence": "away"})
    assert store.self is not None and store.self["manual_presence"] == "away"
    assert store.self["id"] == "UBOT" and store.self["name"] == "bot"  # the rest is kept
    store.apply({"type": "manual_presence_change", "presence": "active"})
    assert store.self["manual_presence"] == "active"
    assert "UBOT" not in store.users and api.calls == []


def test_manual_presence_before_connect_data_is_ignored() -> None:
    store, _ = store_with()
    store._self = None
    store.apply({"type": "manual_presence_change", "presence": "away"})
    assert store.self is None


def test_presence_of_a_user_not_cached_yet_waits_for_the_user() -> None:
    store, _ = store_with()
    store.apply({"type": "presence_change", "user": "U1", "presence": "away"})
    assert "U1" not in store.users
    store.apply({"type": "team_join", "user": {"id": "U1", "name": "ann"}})
    assert store.users["U1"]["presence"] == "away"
    store.apply({"type": "user_change", "user": {"id": "U1", "name": "anne"}})
    assert store.users["U1"]["presence"] == "away"  # kept across a change
    store.apply({"type": "user_change", "user": {"id": "U1", "presence": "active"}})
    assert store.users["U1"]["presence"] == "active"  # the event's own value wins


def test_rename_of_an_uncached_channel_caches_nothing() -> None:
    store, api = store_with()
    store.apply({"type": "channel_rename", "channel": {"id": "C9", "name": "new"}})
    store.apply({"type": "group_rename", "channel": {"id": "G9", "name": "new"}})
    assert list(store.channels) == [] and api.calls == []


def test_rename_keeps_previous_names_and_a_rename_to_the_same_name_changes_nothing() -> None:
    store, _ = store_with()
    store.apply({"type": "channel_created", "channel": {"id": "C1", "name": "one",
                                                        "previous_names": ["zero"]}})
    store.apply({"type": "channel_rename", "channel": {"id": "C1", "name": "uno",
                                                       "name_normalized": "uno-n"}})
    c1 = channel(store, "C1")
    assert (c1["name"], c1["name_normalized"], c1["previous_names"]) == (
        "uno", "uno-n", ["one", "zero"])
    seq = store._seq
    store.apply({"type": "channel_rename", "channel": {"id": "C1", "name": "uno"}})
    assert channel(store, "C1") == c1 and store._seq == seq  # no change, not touched
    store.apply({"type": "channel_created", "channel": {"id": "C2", "name": "two"}})
    store.apply({"type": "channel_rename", "channel": {"id": "C2", "name": "deux"}})
    c2 = channel(store, "C2")
    assert c2["name_normalized"] == "deux" and "previous_names" not in c2


@pytest.mark.parametrize("start", [0, 1])
def test_num_members_never_goes_below_zero(start: int) -> None:
    store, _ = store_with()
    store.apply({"type": "channel_created", "channel": {"id": "C1", "name": "one",
                                                        "num_members": start}})
    for _ in range(3):
        store.apply({"type": "member_left_channel", "user": "U1", "channel": "C1"})
    assert channel(store, "C1")["num_members"] == 0
    store.apply({"type": "member_joined_channel", "user": "U2", "channel": "C1"})
    assert channel(store, "C1")["num_members"] == 1
    assert channel(store, "C1")["is_member"] is False  # U2 is not the bot


def test_member_lists_follow_joins_and_leaves() -> None:
    store, _ = store_with()
    store.apply({"type": "channel_created", "channel": {"id": "C1", "name": "one",
                                                        "members": ["U1"], "num_members": 1}})
    store.apply({"type": "member_joined_channel", "user": "U1", "channel": "C1"})
    store.apply({"type": "member_joined_channel", "user": "UBOT", "channel": "C1"})
    c1 = channel(store, "C1")
    assert (c1["members"], c1["num_members"], c1["is_member"]) == (["U1", "UBOT"], 2, True)
    store.apply({"type": "member_left_channel", "user": "U1", "channel": "C1"})
    assert (channel(store, "C1")["members"], channel(store, "C1")["num_members"]) == (
        ["UBOT"], 1)
    store.apply({"type": "member_joined_channel", "user": "U1", "channel": "C404"})
    assert "C404" not in store.channels


def test_created_channels_private_or_not_and_who_is_in_them() -> None:
    store, _ = store_with()
    store.apply({"type": "channel_created", "channel": {"id": "C1", "name": "mine",
                                                        "creator": "UBOT"}})
    store.apply({"type": "group_created", "channel": {"id": "G1", "name": "g",
                                                      "creator": "U1"}})
    store.apply({"type": "channel_created", "channel": {"id": "C2", "name": "p",
                                                        "is_private": True}})
    c1, g1, c2 = channel(store, "C1"), channel(store, "G1"), channel(store, "C2")
    assert (c1["is_member"], c1["is_private"], c1["is_channel"], c1["is_archived"]) == (
        True, False, True, False)
    assert (g1["is_member"], g1["is_private"], g1["is_group"], g1["is_channel"]) == (
        False, True, True, False)
    assert (c2["is_private"], c2["is_group"]) == (True, True)
    store.apply({"type": "channel_created", "channel": {"id": "C1", "name": "mine2"}})
    assert channel(store, "C1")["is_member"] is True  # cached fields kept


def test_im_created_marks_the_im_open_and_close_open_toggle_it() -> None:
    store, _ = store_with()
    store.apply({"type": "im_created", "user": "U1", "channel": {"id": "D1", "user": "U1"}})
    assert thaw(store.ims["D1"]) == {"id": "D1", "user": "U1", "is_im": True,
                                     "is_open": True}
    assert "D1" not in store.channels
    store.apply({"type": "im_close", "channel": "D1"})
    assert store.ims["D1"]["is_open"] is False
    store.apply({"type": "im_open", "channel": "D1"})
    assert store.ims["D1"]["is_open"] is True
    store.apply({"type": "im_created", "channel": "D2"})  # not an object: ignored
    assert "D2" not in store.ims


def test_archive_and_unarchive_of_groups_and_uncached_channels() -> None:
    store, _ = store_with()
    store.apply({"type": "group_joined", "channel": {"id": "G1", "name": "g"}})
    store.apply({"type": "group_archive", "channel": "G1"})
    assert channel(store, "G1")["is_archived"] is True
    store.apply({"type": "group_unarchive", "channel": "G1"})
    assert channel(store, "G1")["is_archived"] is False
    store.apply({"type": "channel_archive", "channel": "C404"})
    store.apply({"type": "channel_archive", "channel": 42})
    assert list(store.channels) == ["G1"]


def test_group_deleted_removes_it() -> None:
    store, _ = store_with()
    store.apply({"type": "group_joined", "channel": {"id": "G1", "name": "g"}})
    store.apply({"type": "group_deleted", "channel": "G1"})
    assert "G1" not in store.channels


def test_a_channel_deleted_during_load_all_is_not_brought_back() -> None:
    store: Optional[Store] = None

    def users_list(params: Dict[str, Any]) -> Dict[str, Any]:
        return {"ok": True, "members": []}

    def conversations_list(params: Dict[str, Any]) -> Dict[str, Any]:
        assert store is not None
        # the listing was made before the deletion; the deletion event arrives meanwhile
        store.apply({"type": "channel_deleted", "channel": "C1"})
        return {"ok": True, "channels": [{"id": "C1", "name": "doomed"},
                                         {"id": "C2", "name": "kept"}]}

    store, _ = store_with(users_list=users_list, conversations_list=conversations_list)
    store.apply({"type": "channel_created", "channel": {"id": "C1", "name": "doomed"}})
    store._changed.clear()  # cached long ago
    store.load_all()
    assert list(store.channels) == ["C2"]


def test_load_all_drops_ims_and_channels_gone_but_keeps_ones_created_meanwhile() -> None:
    store: Optional[Store] = None

    def users_list(params: Dict[str, Any]) -> Dict[str, Any]:
        return {"ok": True, "members": [{"id": "U1", "name": "ann"}, "junk", {"id": 3}]}

    def conversations_list(params: Dict[str, Any]) -> Dict[str, Any]:
        assert store is not None
        store.apply({"type": "channel_created", "channel": {"id": "C3", "name": "new"}})
        return {"ok": True, "channels": [{"id": "C1", "name": "one"}, None, {"id": 5}]}

    store, _ = store_with(users_list=users_list, conversations_list=conversations_list)
    store.apply({"type": "im_created", "channel": {"id": "D9", "user": "U9"}})
    store.apply({"type": "channel_created", "channel": {"id": "C9", "name": "old"}})
    store._changed.clear()
    store.load_all()
    assert sorted(store.channels) == ["C1", "C3"] and list(store.ims) == []
    assert list(store.users) == ["U1"]


def test_a_lookup_racing_an_event_keeps_the_event_version() -> None:
    store: Optional[Store] = None

    def users_info(params: Dict[str, Any]) -> Dict[str, Any]:
        assert store is not None
        store.apply({"type": "user_change", "user": {"id": "U1", "name": "from-event"}})
        return {"ok": True, "user": {"id": "U1", "name": "from-api"}}

    def conversations_info(params: Dict[str, Any]) -> Dict[str, Any]:
        assert store is not None
        store.apply({"type": "channel_deleted", "channel": "C1"})
        return {"ok": True, "channel": {"id": "C1", "name": "gone"}}

    store, _ = store_with(users_info=users_info, conversations_info=conversations_info)
    assert store.user("U1")["name"] == "from-event"
    assert store.users["U1"]["name"] == "from-event"
    assert store.channel("C1")["name"] == "gone"  # the caller gets the answer...
    assert "C1" not in store.channels  # ...but a deleted channel is not cached again


def test_lookups_answering_no_object_raise_key_error() -> None:
    store, _ = store_with(users_info=lambda p: {"ok": True, "user": None},
                          conversations_info=lambda p: {"ok": False,
                                                        "error": "channel_not_found"})
    with pytest.raises(KeyError):
        store.user("U1")
    with pytest.raises(KeyError):
        store.channel("C1")


def test_name_of_prefers_users_then_named_channels() -> None:
    store, _ = store_with()
    store.apply({"type": "team_join", "user": {"id": "X1", "name": "ann"}})
    store.apply({"type": "channel_created", "channel": {"id": "X1", "name": "chan"}})
    store.apply({"type": "channel_created", "channel": {"id": "C2"}})
    store.apply({"type": "team_join", "user": {"id": "U3"}})
    assert store.name_of("X1") == "@ann"
    assert store.name_of("C2") == "C2" and store.name_of("U3") == "@U3"


def test_connect_data_merges_and_marks_ims() -> None:
    store, _ = store_with()
    store.load_connect_data({"team": {"domain": "d2"}, "self": {"name": "b2"},
                             "users": [{"id": "U1"}, "x"], "groups": [{"id": "G1"}],
                             "mpims": [{"id": "G2"}], "ims": [{"id": "D1"}, 3]})
    assert thaw(store.team) == {"id": "T1", "name": "Team", "domain": "d2"}
    assert thaw(store.self) == {"id": "UBOT", "name": "b2"}
    assert sorted(store.channels) == ["G1", "G2"] and thaw(store.ims["D1"]) == {
        "is_im": True, "id": "D1"}
    assert "U1" in store.users


def test_team_changes_need_a_team() -> None:
    store, _ = store_with()
    store.apply({"type": "team_domain_change", "domain": "x"})
    assert store.team is not None and store.team["domain"] == "x"
    assert "url" not in store.team
    store._team = None
    store.apply({"type": "team_rename", "name": "y"})
    assert store.team is None


def test_repr_counts_entries() -> None:
    store, _ = store_with()
    store.apply({"type": "team_join", "user": {"id": "U1"}})
    assert repr(store) == "<slackrtm Store: 1 users, 0 channels, 0 ims>"


def test_a_cached_conversation_is_read_without_a_call() -> None:
    store, api = store_with()
    store.apply({"type": "channel_created", "channel": {"id": "C1", "name": "one"}})
    store.apply({"type": "im_created", "channel": {"id": "D1", "user": "U1"}})
    assert store.channel("C1")["name"] == "one"
    assert store.channel("D1")["user"] == "U1" and store.im("D1")["user"] == "U1"
    assert api.calls == []


def test_an_event_changing_a_cached_channel_during_load_all_wins() -> None:
    store: Optional[Store] = None

    def users_list(params: Dict[str, Any]) -> Dict[str, Any]:
        return {"ok": True, "members": []}

    def conversations_list(params: Dict[str, Any]) -> Dict[str, Any]:
        assert store is not None
        store.apply({"type": "channel_archive", "channel": "C1"})  # newer than the page
        store.apply({"type": "im_close", "channel": "D1"})
        return {"ok": True, "channels": [{"id": "C1", "name": "one", "is_archived": False},
                                         {"id": "D1", "is_im": True, "is_open": True}]}

    store, _ = store_with(users_list=users_list, conversations_list=conversations_list)
    store.apply({"type": "channel_created", "channel": {"id": "C1", "name": "one"}})
    store.apply({"type": "im_created", "channel": {"id": "D1", "user": "U1"}})
    store._changed.clear()  # cached long ago
    store.load_all()
    assert store.channels["C1"]["is_archived"] is True
    assert store.ims["D1"]["is_open"] is False


def test_only_the_authenticated_event_carries_connect_data() -> None:
    store, _ = store_with()
    store.before("hello", ({"team": {"id": "T9", "name": "Other"}, "users": [{"id": "UX"}]},),
                 None)  # type: ignore[arg-type]
    assert store.team is not None and store.team["id"] == "T1" and "UX" not in store.users
    store.before("authenticated", ({"team": {"name": "Renamed"}},), None)  # type: ignore[arg-type]
    assert store.team["name"] == "Renamed"


def test_batch_presence_skips_odd_ids_and_uncached_users_without_stopping() -> None:
    store, _ = store_with()
    store.apply({"type": "team_join", "user": {"id": "U1", "name": "ann"}})
    store.apply({"type": "presence_change", "users": [None, "U0", "U1"], "presence": "away"})
    assert store.users["U1"]["presence"] == "away"
    store.apply({"type": "team_join", "user": {"id": "U0", "name": "zed"}})
    assert store.users["U0"]["presence"] == "away"


def test_presence_said_while_load_all_runs_wins_over_the_page() -> None:
    store: Optional[Store] = None

    def users_list(params: Dict[str, Any]) -> Dict[str, Any]:
        assert store is not None
        store.apply({"type": "presence_change", "user": "U1", "presence": "active"})
        return {"ok": True, "members": [{"id": "U1", "name": "ann", "presence": "away"}]}

    store, _ = store_with(users_list=users_list,
                          conversations_list=lambda p: {"ok": True, "channels": []})
    store.apply({"type": "team_join", "user": {"id": "U1", "name": "ann"}})
    store._changed.clear()
    store.load_all()
    assert store.users["U1"]["presence"] == "active"


def test_defaults_of_created_and_joined_channels() -> None:
    store, _ = store_with()
    store.apply({"type": "channel_created", "channel": {"id": "C1", "name": "one"}})
    store.apply({"type": "group_joined", "channel": {"id": "G1", "name": "g"}})
    c1, g1 = channel(store, "C1"), channel(store, "G1")
    assert (c1["is_mpim"], c1["is_im"], c1["is_group"]) == (False, False, False)
    assert (g1["is_archived"], g1["is_member"]) == (False, True)


def test_load_all_replaces_what_changed_before_it_began_and_drops_what_is_gone() -> None:
    pages = {"channels": [{"id": "C1", "name": "renamed"}],
             "members": [{"id": "U1", "name": "ann-2"}]}

    def users_list(params: Dict[str, Any]) -> Dict[str, Any]:
        return {"ok": True, "members": pages["members"]}

    def conversations_list(params: Dict[str, Any]) -> Dict[str, Any]:
        return {"ok": True, "channels": pages["channels"]}

    store, _ = store_with(users_list=users_list, conversations_list=conversations_list)
    store.apply({"type": "channel_created", "channel": {"id": "C1", "name": "one"}})
    store.apply({"type": "channel_created", "channel": {"id": "C9", "name": "gone"}})
    store.apply({"type": "team_join", "user": {"id": "U1", "name": "ann"}})
    store.load_all()  # the events came before: the listing is newer
    assert channel(store, "C1")["name"] == "renamed" and "C9" not in store.channels
    assert store.users["U1"]["name"] == "ann-2"


def test_entries_fetched_one_by_one_are_refreshed_or_dropped_by_load_all() -> None:
    pages: Dict[str, Any] = {"channels": [], "members": []}
    store, _ = store_with(
        users_info=lambda p: {"ok": True, "user": {"id": "U1", "name": "old"}},
        conversations_info=lambda p: {"ok": True, "channel": {"id": p["channel"],
                                                              "name": "old"}},
        users_list=lambda p: {"ok": True, "members": pages["members"]},
        conversations_list=lambda p: {"ok": True, "channels": pages["channels"]})
    store.user("U1")
    store.channel("C1")
    store.channel("C9")
    pages["members"] = [{"id": "U1", "name": "new"}]
    pages["channels"] = [{"id": "C1", "name": "new"}]
    store.load_all()
    assert store.users["U1"]["name"] == "new" and channel(store, "C1")["name"] == "new"
    assert "C9" not in store.channels  # fetched once, gone from the listing: dropped
