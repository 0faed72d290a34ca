"""A real browser: headless Chromium (Debian's chromium and chromium-driver) through selenium, with tabs on two WebChat
servers (two processes, one Redis), on the Django tutorial's own room page, and a terminal chat in the same room."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys


CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def browser():
    for path in (CHROMIUM, CHROMEDRIVER):
        assert os.access(path, os.X_OK), f"{path} is missing: apt-get install chromium chromium-driver"
    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager look for a browser or driver online
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=940,700", "--hide-scrollbars", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


class Tab:
    """One browser tab on a chat room page, the tutorial's or WebChat's (both have the same element ids)."""

    def __init__(self, driver, url: str, first: bool = False):
        self.driver = driver
        if not first:
            driver.switch_to.new_window("tab")
        self.handle = driver.current_window_handle
        driver.get(url)

    def focus(self):
        self.driver.switch_to.window(self.handle)

    def log(self) -> str:
        self.focus()
        return self.driver.execute_script("return document.querySelector('#chat-log').value")

    def wait_for(self, text: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()
            if text in log:
                return log
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.driver.current_url}: {text!r} not in #chat-log within {timeout}s; it has:\n{log}")
            time.sleep(0.1)

    def type(self, text: str):
        """Types into #chat-message-input and presses Enter, as a person would."""
        self.focus()
        field = self.driver.find_element(By.ID, "chat-message-input")
        field.send_keys(text + Keys.ENTER)

    def wait_until_connected(self, timeout: float = 15):
        deadline = time.monotonic() + timeout
        while True:
            self.focus()
            if self.driver.execute_script("return typeof chatSocket !== 'undefined' && chatSocket.readyState === 1"):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.driver.current_url}: the page's WebSocket did not open")
            time.sleep(0.05)


def test_room_page_keeps_the_tutorial_element_ids(browser, webchat_a):
    browser.get(webchat_a.room_url("lobby"))
    assert browser.find_element(By.ID, "chat-log").tag_name == "textarea"
    field = browser.find_element(By.ID, "chat-message-input")
    assert (field.tag_name, field.get_attribute("type")) == ("input", "text")
    button = browser.find_element(By.ID, "chat-message-submit")
    assert (button.tag_name, button.get_attribute("type"), button.get_attribute("value")) == ("input", "button", "Send")
    assert browser.switch_to.active_element == field  # focused, as in the tutorial


def test_lobby_form_leads_to_the_room(browser, webchat_a):
    browser.get(webchat_a.base + "/")
    browser.find_element(By.ID, "room-name-input").send_keys("garden" + Keys.ENTER)
    deadline = time.monotonic() + 10
    while not browser.current_url.endswith("/chat/garden/"):
        assert time.monotonic() < deadline, browser.current_url
        time.sleep(0.05)
    assert browser.find_element(By.ID, "chat-log")


def test_tabs_on_two_servers_and_the_django_page_see_each_other(browser, webchat_a, webchat_b, django_server,
                                                                 terminal_chat):
    # Every tab and the terminal chat are new, so plain texts are unique in what they show (and read well in the
    # screenshot).
    room = "lobby"
    alice = Tab(browser, webchat_a.room_url(room, name="alice"), first=True)
    alice.wait_for("alice joined")  # in the group: the server announced the tab
    bob = Tab(browser, webchat_b.room_url(room, name="bob"))
    bob.wait_for("bob joined")
    alice.wait_for("bob joined")  # server A hears server B
    django = Tab(browser, django_server.room_url(room))  # the tutorial's own room.html, on daphne
    django.wait_until_connected()
    term = terminal_chat(room=room, name="term")
    alice.wait_for("term")
    time.sleep(0.3)  # Django's group subscription may still be on its way to Redis (at-most-once pub/sub)

    hello = "Hi from server A!"
    alice.type(hello)
    bob.wait_for(f"alice: {hello}")
    django.wait_for(hello)
    term.wait_for_text(hello)

    reply = "Hello from server B, alice."
    bob.type(reply)
    alice.wait_for(f"bob: {reply}")
    django.wait_for(reply)
    term.wait_for_text(reply)

    from_django = "The Django tutorial page says hi"
    django.type(from_django)
    alice.wait_for(from_django)
    bob.wait_for(from_django)
    term.wait_for_text(from_django)

    from_term = "...and so does the terminal chat"
    term.say(from_term)
    alice.wait_for(from_term)
    django.wait_for(from_term)
    log = bob.wait_for(from_term)

    # In order, in every WebChat tab.
    for tab in (alice, bob):
        text = tab.log()
        positions = [text.index(t) for t in (hello, reply, from_django, from_term)]
        assert positions == sorted(positions), text
    django_server.assert_healthy()

    bob.focus()
    screenshot = os.environ.get("WEBCHAT_SCREENSHOT") or str(Path(tempfile.gettempdir()) / "webchat-screenshot.png")
    assert browser.save_screenshot(screenshot)
    assert Path(screenshot).stat().st_size > 1000
    print(f"screenshot of bob's tab: {screenshot}\n{log}")
