"""pytest fixtures for testing Slack bots offline: ``fake_slack`` and ``fake_proxy``.

Installed with slackrtm (a ``pytest11`` entry point), so the fixtures are just there.
Testing a bot takes three lines::

    def test_bot_answers(fake_slack):
        bot = make_bot(token=fake_slack.token, slack_api_url=fake_slack.api_url)  # your code
        fake_slack.post_message("general", "hi bot")
        assert fake_slack.wait_for_received("message")[0]["text"] == "hello alice"

``fake_slack`` is a started :class:`~slackrtm.testing.FakeSlack`, closed after the test
(every socket closed, every thread joined); ``fake_proxy`` a started
:class:`~slackrtm.testing.FakeProxy` without credentials. FakeSlack is imported only when
a test asks for a fixture, so the plugin costs nothing to load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import pytest

if TYPE_CHECKING:
    from slackrtm.testing import FakeProxy, FakeSlack


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """A running FakeSlack on loopback, closed when the test ends."""
    from slackrtm.testing import FakeSlack

    with FakeSlack() as slack:
        yield slack


@pytest.fixture
def fake_proxy() -> Iterator[FakeProxy]:
    """A running FakeProxy on loopback (no credentials required), closed when the test ends."""
    from slackrtm.testing import FakeProxy

    with FakeProxy() as proxy:
        yield proxy
