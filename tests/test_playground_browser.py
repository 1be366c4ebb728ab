"""The playground page in a real browser: headless Chromium (Debian's) driven by Selenium,
against a FakeSlack with a Playground, with example bots running as they would for a user.

Screenshots of each scene are written to ``$SLACKRTM_SCREENSHOTS`` when it is set (the
docs' images come from there), else to the test's temporary directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from slackrtm.testing import FakeSlack, Playground
from tests.conftest import wait_until
from tests.test_examples import EXAMPLES, Proc, child_env

#: Generous: a loaded 2-core machine runs the browser, the fake and the bot at once.
WAIT = 60


@pytest.fixture
def playground(slack: FakeSlack) -> Playground:
    return Playground(slack)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1440,900", "--disable-gpu", "--no-first-run",
                "--disable-extensions", "--proxy-server=direct://", "--proxy-bypass-list=*"):
        options.add_argument(arg)
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    options.binary_location = chromium
    # the system's driver: Selenium Manager must never try to download one
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")),
                              options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def bots(slack: FakeSlack) -> Iterator[Callable[[str], Proc]]:
    started: List[Proc] = []

    def start(script: str) -> Proc:
        proc = Proc([str(EXAMPLES / script)],
                    child_env(SLACK_TOKEN=slack.token, SLACK_APP_TOKEN=slack.app_token,
                              SLACK_API_URL=slack.api_url))
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


@pytest.fixture
def shots(tmp_path: Path) -> Callable[[WebDriver, str], Path]:
    where = Path(os.environ.get("SLACKRTM_SCREENSHOTS") or tmp_path)

    def shoot(driver: WebDriver, name: str) -> Path:
        where.mkdir(parents=True, exist_ok=True)
        path = where / f"playground-{name}.png"
        assert driver.save_screenshot(str(path)), path
        assert path.stat().st_size > 10_000  # a real picture, not an empty page
        return path

    return shoot


def until(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    """Wait (up to WAIT seconds) until ``condition(driver)`` is truthy; returns it."""
    def check(d: WebDriver) -> Any:
        try:
            return condition(d)
        except StaleElementReferenceException:  # re-rendered meanwhile: look again
            return False
    return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(check, message=what)


def open_page(driver: WebDriver, playground: Playground) -> None:
    driver.get(playground.url)
    until(driver, lambda d: d.find_element(By.ID, "status").text == "live", "the live stream")
    assert driver.current_url.endswith("/playground/")  # the key went into a cookie
    until(driver, lambda d: d.find_element(By.ID, "conv-title").text == "#general",
          "#general opened")


def say(driver: WebDriver, text: str) -> None:
    box = driver.find_element(By.ID, "text")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def log_whats(driver: WebDriver) -> List[str]:
    """The kind of every line of the event log (ack, hello, chat.update, drop, ...)."""
    return [e.get_attribute("data-what") or "" for e in driver.find_elements(
        By.CSS_SELECTOR, "#log li")]


def bot_messages(driver: WebDriver) -> List[str]:
    """What the bot's messages say: their text, or with blocks their sections' text."""
    bot = "#messages .message[data-user='U0BOT']"
    return [e.text for e in driver.find_elements(
        By.CSS_SELECTOR, f"{bot} .body > .text, {bot} .section-text")]


def test_post_as_alice_and_see_the_bots_reply(slack: FakeSlack, playground: Playground,
                                             browser: WebDriver, bots: Any, shots: Any) -> None:
    bot = bots("socket_mode.py")
    bot.wait_for_line("^Connected over Socket Mode", timeout=WAIT)
    open_page(browser, playground)
    say(browser, "hello @bob, hello bot")
    until(browser, lambda d: "Hello @alice!" in bot_messages(d), "the bot's reply")
    (mine,) = [m for m in slack.messages("general") if m["user"] == "U0ALICE"]
    assert mine["text"] == "hello <@U0BOB>, hello bot"  # the mention, as Slack writes it
    # react from the page; the bot thanks in the thread of the message
    hello = browser.find_element(By.CSS_SELECTOR, "#messages .message[data-user='U0ALICE']")
    browser.execute_script("arguments[0].querySelector('.hover-actions').style.visibility='visible'",
                           hello)
    hello.find_element(By.CSS_SELECTOR, ".hover-actions .react[data-reaction='tada']").click()
    until(browser, lambda d: d.find_element(
        By.CSS_SELECTOR, "#messages .message[data-user='U0ALICE'] .reaction").text == "🎉 1",
        "the reaction on the message")
    until(browser, lambda d: "1 reply" in d.find_element(
        By.CSS_SELECTOR, "#messages .message[data-user='U0ALICE']").text, "the bot's thread")
    browser.find_element(By.CSS_SELECTOR,
                         "#messages .message[data-user='U0ALICE'] .replies").click()
    until(browser, lambda d: "Thanks for the :tada:" in d.find_element(By.ID, "thread").text,
          "the thread open")
    shots(browser, "reply")
    assert slack.errors == []


def test_slash_command_and_its_answers(slack: FakeSlack, playground: Playground,
                                       browser: WebDriver, bots: Any) -> None:
    bot = bots("slash_command.py")
    bot.wait_for_line("^Waiting for slash commands", timeout=WAIT)
    open_page(browser, playground)
    say(browser, "/echo hi there")
    # in_channel: posted in the channel for everyone
    until(browser, lambda d: "@alice said: hi there" in bot_messages(d), "the in_channel answer")
    say(browser, "/nope")
    until(browser, lambda d: "Sorry, I do not know /nope." in d.find_element(
        By.CSS_SELECTOR, "#messages .message.ephemeral").text, "the ephemeral answer")
    notes = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#messages .note")]
    assert "alice ran /echo hi there" in notes and "alice ran /nope" in notes
    assert "Only visible to you" in browser.find_element(
        By.CSS_SELECTOR, ".message.ephemeral").text
    # bob does not see alice's ephemeral answer
    browser.find_element(By.CSS_SELECTOR, "#me option[value='U0BOB']").click()
    until(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, ".message.ephemeral"),
          "the ephemeral answer hidden from bob")


def test_click_a_button_and_see_the_bots_update(slack: FakeSlack, playground: Playground,
                                               browser: WebDriver, bots: Any,
                                               shots: Any) -> None:
    bot = bots("buttons.py")
    bot.wait_for_line("^Say 'deploy'", timeout=WAIT)
    open_page(browser, playground)
    say(browser, "time to deploy?")
    approve = until(browser, lambda d: d.find_element(
        By.CSS_SELECTOR, "#messages .block-button[data-action-id='approve']"), "the buttons")
    context = browser.find_element(By.CSS_SELECTOR, "#messages .block.context")
    assert context.text == "Only someone in #ops should approve."
    shots(browser, "buttons")
    approve.click()
    until(browser, lambda d: "Deploy of build-42 approved by @alice." in bot_messages(d),
          "the bot's update")
    assert not browser.find_elements(By.CSS_SELECTOR, "#messages .block-button")
    bot.wait_for_line("^U0ALICE approved build-42$", timeout=WAIT)
    # the event log shows the envelope going out and the ack coming in
    whats = log_whats(browser)
    assert "interactive" in whats and "ack" in whats and "chat.update" in whats
    log = browser.find_element(By.ID, "log").get_attribute("textContent") or ""
    for secret in (slack.token, slack.app_token, slack.verification_token,
                   playground.admin_token):
        assert secret not in log
    shots(browser, "update")


def test_drop_and_watch_the_bot_reconnect(slack: FakeSlack, playground: Playground,
                                          browser: WebDriver, bots: Any, shots: Any) -> None:
    bot = bots("buttons.py")
    bot.wait_for_line("^Say 'deploy'", timeout=WAIT)
    open_page(browser, playground)

    def socket_ids(d: WebDriver) -> List[int]:
        return [int(e.get_attribute("data-id") or 0) for e in d.find_elements(
            By.CSS_SELECTOR, "#conns li[data-kind='socket_mode']")]

    first = until(browser, socket_ids, "the bot's connection listed")
    browser.find_element(By.ID, "fault-drop").click()
    until(browser, lambda d: socket_ids(d) and min(socket_ids(d)) > max(first),
          "a new connection after the drop")
    whats = log_whats(browser)
    assert whats.count("hello") >= 2  # one per connection
    assert "drop" in whats and "closed" in whats
    say(browser, "deploy again")  # and the bot still answers
    until(browser, lambda d: d.find_elements(
        By.CSS_SELECTOR, "#messages .block-button[data-action-id='approve']"), "the bot's answer")
    shots(browser, "drop")
    # freeze (half-open): the page shows it, and unfreeze lets it go on
    browser.find_element(By.ID, "fault-freeze").click()
    until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#conns li.frozen"),
          "the frozen connection")
    browser.find_element(By.ID, "fault-unfreeze").click()
    until(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "#conns li.frozen"),
          "the connection unfrozen")


def test_threads_edits_deletes_membership_presence_and_direct_messages(
        slack: FakeSlack, playground: Playground, browser: WebDriver, make: Any) -> None:
    rtm = make()  # an RTM bot sees what the page does
    seen: List[Any] = []
    rtm.on("slack_event", lambda kind, event: seen.append(event))
    rtm.start().result(timeout=WAIT)
    rtm.subscribe_presence(["U0ALICE"]).result(timeout=WAIT)
    slack.wait_until(lambda: all("U0ALICE" in c.presence_subscriptions
                                 for c in slack.connections), timeout=WAIT)
    open_page(browser, playground)
    say(browser, "first draft")
    mine = until(browser, lambda d: d.find_element(
        By.CSS_SELECTOR, "#messages .message[data-user='U0ALICE']"), "alice's message")
    ts = mine.get_attribute("data-ts")

    def hover_button(css: str) -> Any:
        message = browser.find_element(By.CSS_SELECTOR, f"#messages .message[data-ts='{ts}']")
        browser.execute_script(
            "arguments[0].querySelector('.hover-actions').style.visibility='visible'", message)
        return message.find_element(By.CSS_SELECTOR, css)

    # a reply in the thread
    hover_button(".reply").click()
    reply = browser.find_element(By.ID, "thread-text")
    reply.send_keys("a reply", Keys.ENTER)
    until(browser, lambda d: "a reply" in d.find_element(By.ID, "thread-messages").text,
          "the reply in the thread")
    (stored,) = [m for m in slack.messages("general") if m["text"] == "a reply"]
    assert stored["thread_ts"] == ts
    # an edit
    hover_button(".edit").click()
    area = browser.find_element(By.CSS_SELECTOR, "#messages .edit-text")
    area.clear()
    area.send_keys("final text", Keys.ENTER)
    until(browser, lambda d: "(edited)" in d.find_element(
        By.CSS_SELECTOR, f"#messages .message[data-ts='{ts}']").text, "the edit")
    assert slack.messages("general")[0]["text"] == "final text"
    # a delete
    hover_button(".delete").click()
    until(browser, lambda d: not d.find_elements(
        By.CSS_SELECTOR, f"#messages .message[data-ts='{ts}']"), "the message gone")
    # leave and join #general; presence
    leave = browser.find_element(By.ID, "join-leave")
    assert leave.text == "Leave #general"
    leave.click()
    until(browser, lambda d: d.find_element(By.ID, "join-leave").text == "Join #general",
          "alice out of #general")
    browser.find_element(By.ID, "join-leave").click()
    until(browser, lambda d: d.find_element(By.ID, "join-leave").text == "Leave #general",
          "alice back in #general")
    browser.find_element(By.CSS_SELECTOR, "#presence option[value='away']").click()
    wait_until_true(lambda: slack.presence("alice") == "away", "alice away")
    # a direct message to the bot
    browser.find_element(By.CSS_SELECTOR, "#dms li[data-user='U0BOT']").click()
    until(browser, lambda d: d.find_element(By.ID, "conv-title").text == "@alice",
          "the direct message with the bot")
    say(browser, "psst")
    wait_until_true(lambda: any(e.get("text") == "psst" and e.get("channel", "").startswith("D")
                                for e in list(seen)), "the bot got the direct message")
    kinds = {(e.get("type"), e.get("subtype")) for e in list(seen)}
    for expected in [("message", "message_changed"), ("message", "message_deleted"),
                     ("member_left_channel", None), ("member_joined_channel", None),
                     ("presence_change", None), ("im_created", None)]:
        assert expected in kinds, (expected, kinds)


def wait_until_true(condition: Callable[[], Any], what: str) -> None:
    """Poll ``condition`` (something outside the browser) until true, up to WAIT seconds."""
    wait_until(condition, WAIT, what)
