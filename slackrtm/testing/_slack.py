"""FakeSlack: lifecycle, addresses, the workspace accessors, inspection and the waits."""

from __future__ import annotations

import itertools
import json
import secrets
import socket
import ssl
import string
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Union

from slackrtm.testing._calls import ApiCall, Fault
from slackrtm.testing._changes import Changes
from slackrtm.testing._conn import FakeConnection
from slackrtm.testing._http import Front, SlackHandler
from slackrtm.testing._net import ThreadedServer, url_host
from slackrtm.testing._serving import Ticket
from slackrtm.testing._socket_mode import SocketMode
from slackrtm.testing._timer import Scheduler
from slackrtm.testing._webapi import Desk
from slackrtm.testing._workspace import BOT_ID, Workspace

Matcher = Union[None, str, Callable[[Dict[str, Any]], bool]]


def _new_token() -> str:
    digits, alnum = string.digits, string.ascii_letters + string.digits
    parts = ["".join(secrets.choice(chars) for _ in range(n))
             for chars, n in ((digits, 12), (digits, 13), (alnum, 24))]
    return "xoxb-" + "-".join(parts)


def _matcher(what: Matcher) -> Callable[[Dict[str, Any]], bool]:
    if what is None:
        return lambda frame: True
    if isinstance(what, str):
        return lambda frame: frame.get("type") == what
    return what


class FakeSlack(Changes, SocketMode):  # Changes: workspace changes (store tests)
    """An offline Slack workspace on loopback: the Web API, the RTM API and Socket Mode
    over real WebSockets, seeded with users and channels, recording everything clients do.

    ``FakeSlack(host="127.0.0.1", port=0, token=None, ssl_context=None, app_token=None)``
    starts serving at once (``port=0``: the OS picks one). With ``ssl_context`` (server
    side) it speaks https/wss. Use it as a context manager, or call :meth:`close`::

        with FakeSlack() as slack:
            rtm = RTMClient(slack.token, slack_api_url=slack.api_url)

    Fault switches (plain attributes, read on each use): ``ignore_pings`` (stop answering
    JSON and WebSocket pings), ``hold_hello`` (new connections get no ``hello`` until
    :meth:`release_hello`), ``hang_handshake`` (never answer WebSocket handshakes),
    ``reply_delay`` (seconds before a ``message`` send is processed and answered),
    ``drop_replies`` (store and echo sent messages but never reply), ``ticket_ttl``.

    Socket Mode (``slack.app_token`` opens connections with apps.connections.open; every
    workspace event is also sent as an ``events_api`` envelope once Socket Mode is active,
    see :meth:`events_api`): ``ack_timeout`` (3.0 s before an unacked envelope is sent
    again), ``max_retries`` (3), ``redelivery`` (True; False: never resend),
    ``close_delay`` (0.5 s from a ``disconnect`` frame to the close), ``connection_time``
    (18060, the hello's ``approximate_connection_time``), ``max_socket_connections`` (10;
    one more gets ``disconnect`` ``too_many_websockets`` and no hello; connections held
    open by a refresh count), ``socket_mode_active``,
    ``offline_envelopes`` (``"hold"``: envelopes produced while no connection is open wait
    for the next one; ``"retry"``: tried again every ``ack_timeout`` up to ``max_retries``
    times, then dropped; ``"drop"``: dropped at once; see :attr:`dropped_envelopes`),
    ``socket_routing`` (``"newest"``, ``"round_robin"`` or ``"random"``: which open
    connection gets each envelope; a retry goes to another one when there is one),
    ``duplicate_rate`` (0.0: the fraction of envelopes also sent at once as a retry on
    another connection), ``ping_interval`` (10.0 s between the WebSocket pings sent to
    each Socket Mode connection; None: none) and ``debug_reconnect_scale`` (1.0: a
    ``debug_reconnects=true`` connection is refreshed after 360 s times this). Only
    ``events_api`` envelopes are sent again; unacknowledged slash commands and
    interactions are listed in :attr:`missed_acks`, answers to slash commands in
    :attr:`responses`.

    Slack's limits (see ``_limits``), on by default: ``max_message_length`` (4000: a longer
    ``message`` text closes the connection, code 1009) and ``message_rate`` (``(1.0, 5)``:
    per connection and channel, sends beyond it are answered ``slow down``); None turns
    either off. :attr:`rate_limited` lists the sends refused that way.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: Optional[str] = None,
                 ssl_context: Optional[ssl.SSLContext] = None,
                 app_token: Optional[str] = None) -> None:
        self._cond = threading.Condition(threading.RLock())
        self._stop = threading.Event()
        self._ws = Workspace()
        #: The bot token the Web API accepts (``xoxb-...``).
        self.token: str = token or _new_token()
        self._revoked = False
        self._presence_set: Set[str] = set()
        self._calls: List[ApiCall] = []
        self._faults: Dict[str, Deque[Fault]] = {}
        self._tickets: Dict[str, Ticket] = {}
        self._conns: List[FakeConnection] = []
        self._all_conns: List[FakeConnection] = []
        self._received: List[Dict[str, Any]] = []
        self._unparsed: List[Union[str, bytes]] = []
        self._connect_count = 0
        self._conn_ids = itertools.count(1)
        self._handshakes = 0
        self.ignore_pings = False
        self.hold_hello = False
        self.hang_handshake = False
        self.reply_delay = 0.0
        self.drop_replies = False
        self.ticket_ttl = 30.0
        self._closed = False
        #: The playground's hub when one is attached: sees frames, events and calls.
        self._tap: Any = None
        #: URL path prefix -> app with ``serve(handler, path, query)`` and ``close()``.
        self._mounts: Dict[str, Any] = {}
        self._init_socket_mode(app_token)
        self._init_responses()
        self._tls = ssl_context is not None
        self._front = Front(
            api=Desk(token=self.token, app_token=self.app_token, workspace=self._ws,
                     lock=self._cond, stop=self._stop, record_call=self._record_call,
                     finish_call=self._finish_call, take_fault=self._take_fault,
                     check_token=self._check_token, issue_ticket=self._issue_ticket,
                     post=self._post, join_channel=self.join_channel,
                     add_reaction=self.add_reaction, presence=self.presence,
                     post_limited=self._post_limited, edit_message=self.edit_message,
                     delete_message=self.delete_message,
                     connection_count=lambda: len(self._conns),
                     socket_mode_opened=self._socket_mode_opened),
            note_handshake=self._note_handshake, hanging=lambda: self.hang_handshake,
            redeem_ticket=self._redeem_ticket, open_connection=self._open_connection,
            mounts=self._mounts, response_post=self._response_post)
        self._server = ThreadedServer(host, port, self._handle, name="fakeslack",
                                      ssl_context=ssl_context)
        self._scheduler = Scheduler(self._server)

    def _handle(self, sock: socket.socket, addr: Any) -> None:
        SlackHandler(sock, addr, self._front)

    def _socket_mode_opened(self) -> None:
        with self._cond:
            self.socket_mode_active = True

    # -- lifecycle -----------------------------------------------------------------------
    def close(self, timeout: float = 3.0) -> None:
        """Close every connection (close frame 1001), stop serving and join every thread."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            conns = self._conns + self._socket_conns
        self._stop.set()
        self._scheduler.stop()
        for app in list(self._mounts.values()):
            app.close()  # wakes the playground's event streams
        for conn in conns:
            conn.close(reason="server closing", wait_reply=False)
        deadline = time.monotonic() + min(0.5, timeout)
        with self._cond:
            while (self._conns or self._socket_conns) and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
        self._server.close(timeout)

    def __enter__(self) -> FakeSlack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else (
            f"{len(self._conns)} connection(s), {len(self._socket_conns)} Socket Mode")
        return f"<FakeSlack {self.api_url} {state}>"

    # -- addresses and identities --------------------------------------------------------
    @property
    def host(self) -> str:
        """The loopback address served on."""
        return self._server.host

    @property
    def port(self) -> int:
        """The TCP port of the Web API and the RTM and Socket Mode WebSockets."""
        return self._server.port

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT/api/`` (``https://`` with an ``ssl_context``)."""
        return f"{'https' if self._tls else 'http'}://{url_host(self.host)}:{self.port}/api/"

    @property
    def bot_user_id(self) -> str:
        """The bot's user id (``U0BOT``): the token's user, author of its messages."""
        return self._ws.bot_user_id

    @property
    def bot_id(self) -> str:
        """The bot's bot id (``B0BOT``)."""
        return BOT_ID

    @property
    def team_id(self) -> str:
        """The workspace id (``T0FAKE``)."""
        return str(self._ws.team["id"])

    # -- workspace -----------------------------------------------------------------------
    @property
    def users(self) -> List[Dict[str, Any]]:
        """Copies of every user object."""
        with self._cond:
            return [self._ws.user_view(uid) for uid in self._ws.users]

    @property
    def channels(self) -> List[Dict[str, Any]]:
        """Copies of every channel object (``is_member`` says whether the bot is in it)."""
        with self._cond:
            return [self._ws.channel_view(cid) for cid in self._ws.channels]

    def user_id(self, name: str) -> str:
        """The id of the user called ``name`` (``"alice"`` -> ``"U0ALICE"``); KeyError if none."""
        with self._cond:
            return self._ws.user_id(name)

    def channel_id(self, name: str) -> str:
        """The id of the channel ``name`` (``"general"`` or ``"#general"``); KeyError if none."""
        with self._cond:
            return self._ws.channel_id(name)

    def add_user(self, name: str, **fields: Any) -> str:
        """Add a user (``fields`` override defaults, e.g. ``is_bot=True``, ``presence="away"``),
        send ``team_join`` and return the new id."""
        with self._cond:
            user = self._ws.add_user(name, **fields)
            self._broadcast({"type": "team_join", "user": self._ws.user_view(user["id"])})
            return str(user["id"])

    def add_channel(self, name: str, *, is_member: bool = False,
                    members: Optional[List[str]] = None, **fields: Any) -> str:
        """Add a channel (``is_member``: the bot is in it; ``members``: user ids or names),
        send ``channel_created`` and return the new id."""
        with self._cond:
            ids = [self._ws.user_id(m) for m in members or []]
            channel = self._ws.add_channel(name, is_member=is_member, members=ids, **fields)
            self._broadcast({"type": "channel_created", "channel": {
                "id": channel["id"], "name": name, "created": channel["created"],
                "creator": channel["creator"]}})
            return str(channel["id"])

    def messages(self, channel: str) -> List[Dict[str, Any]]:
        """Copies of the channel's stored messages (id or name), oldest first."""
        with self._cond:
            cid = self._ws.channel_id(channel)
            return json.loads(json.dumps(self._ws.history[cid]))  # type: ignore[no-any-return]

    def members(self, channel: str) -> List[str]:
        """The user ids in ``channel`` (id or name)."""
        with self._cond:
            return list(self._ws.members[self._ws.channel_id(channel)])

    def presence(self, user: str) -> str:
        """``"active"`` or ``"away"``. The bot is active while it has an RTM connection
        open, unless :meth:`set_presence` decided otherwise."""
        with self._cond:
            uid = self._ws.user_id(user)
            if uid == self.bot_user_id and uid not in self._presence_set:
                return "active" if self._conns else "away"
            return self._ws.presence[uid]

    # -- inspection ----------------------------------------------------------------------
    @property
    def calls(self) -> List[ApiCall]:
        """Every Web API call received, in order (tokens redacted)."""
        with self._cond:
            return list(self._calls)

    def call_count(self, method: Optional[str] = None) -> int:
        """How many calls of ``method`` (of any method with None) were received."""
        with self._cond:
            return sum(1 for c in self._calls if method is None or c.method == method)

    @property
    def connections(self) -> List[FakeConnection]:
        """The RTM connections currently open, oldest first."""
        with self._cond:
            return list(self._conns)

    @property
    def all_connections(self) -> List[FakeConnection]:
        """Every RTM connection ever accepted, open or closed, oldest first."""
        with self._cond:
            return list(self._all_conns)

    @property
    def connect_count(self) -> int:
        """How many RTM WebSocket connections were accepted (101 sent) in total."""
        with self._cond:
            return self._connect_count

    @property
    def handshake_attempts(self) -> int:
        """How many WebSocket upgrade requests arrived (answered or not)."""
        with self._cond:
            return self._handshakes

    @property
    def received(self) -> List[Dict[str, Any]]:
        """Every JSON object frame any client sent, in arrival order, across connections
        (Socket Mode acks are in :attr:`acks` instead)."""
        with self._cond:
            return list(self._received)

    @property
    def unparsed(self) -> List[Union[str, bytes]]:
        """Client frames that were not JSON objects: text (``str``) and binary (``bytes``)."""
        with self._cond:
            return list(self._unparsed)

    @property
    def errors(self) -> List[BaseException]:
        """Unexpected exceptions inside FakeSlack's threads (bugs; should stay empty)."""
        return list(self._server.errors)

    @property
    def threads(self) -> List[threading.Thread]:
        """The threads FakeSlack is running (all named ``fakeslack-...``)."""
        return self._server.threads()

    # -- waits ---------------------------------------------------------------------------
    def wait_until(self, predicate: Callable[[], bool], timeout: float = 30.0,
                   what: Union[str, Callable[[], str]] = "a condition") -> None:
        """Block until ``predicate()`` is true (checked whenever FakeSlack's state changes).

        Raises ``TimeoutError`` naming ``what`` (a string, or a callable giving one) after
        ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    text = what() if callable(what) else what
                    raise TimeoutError(f"FakeSlack: timed out after {timeout:g}s waiting for "
                                       f"{text}")
                self._cond.wait(remaining)

    def wait_for_received(self, predicate_or_type: Matcher = None, count: int = 1,
                          timeout: float = 30.0) -> List[Dict[str, Any]]:
        """Wait until clients sent at least ``count`` frames matching ``predicate_or_type``
        (a string matches ``frame["type"]``, a callable is a predicate, None matches any).
        Returns every matching frame so far, in order."""
        match, seen = _matcher(predicate_or_type), [0]
        found: List[Dict[str, Any]] = []

        def ready() -> bool:
            new = self._received[seen[0]:]
            seen[0] += len(new)
            found.extend(f for f in new if match(f))
            return len(found) >= count

        def what() -> str:
            last = [f.get("type") for f in self._received[-8:]]
            return (f"{count} received frame(s) matching {predicate_or_type!r}; got "
                    f"{len(found)} (types of the last frames received: {last})")

        self.wait_until(ready, timeout, what)
        return found

    def wait_for_call(self, method: Optional[str] = None, count: int = 1,
                      timeout: float = 30.0) -> List[ApiCall]:
        """Wait until at least ``count`` Web API calls of ``method`` (any with None) arrived;
        returns all of them so far, in order."""
        def ready() -> bool:
            return self.call_count(method) >= count

        def what() -> str:
            seen = [c.method for c in self._calls[-8:]]
            return (f"{count} call(s) of {method or 'any method'}; got "
                    f"{self.call_count(method)} (last calls: {seen})")

        self.wait_until(ready, timeout, what)
        with self._cond:
            return [c for c in self._calls if method is None or c.method == method]

    def wait_for_connections(self, n: int = 1, timeout: float = 30.0) -> List[FakeConnection]:
        """Wait until at least ``n`` RTM connections are open; returns the open ones."""
        self.wait_until(lambda: len(self._conns) >= n, timeout,
                        lambda: f"{n} open connection(s); {len(self._conns)} open, "
                                f"{self._connect_count} accepted in total")
        return self.connections

    def wait_for_connect_count(self, n: int, timeout: float = 30.0) -> int:
        """Wait until ``n`` RTM connections were accepted in total; returns the count."""
        self.wait_until(lambda: self._connect_count >= n, timeout,
                        lambda: f"{n} accepted connection(s); {self._connect_count} so far")
        return self.connect_count
