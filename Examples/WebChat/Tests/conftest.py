"""Fixtures of the WebChat live-peer tests: processes the tests start themselves, on free loopback ports.

Everything here runs on 127.0.0.1 and is stopped by pid: a redis-server, WebChat servers (the binary in
$WEBCHAT_BIN), the Django Channels tutorial's project under daphne (django_tutorial/, with channels_redis's
RedisPubSubChannelLayer), the terminal chat (the root package's `chat`, $CHAT_BIN) and a headless Chromium.
`bash .ci/webchat-test` builds the binaries and runs this suite.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
import websocket  # websocket-client

HERE = Path(__file__).resolve().parent
DJANGO_PROJECT = HERE / "django_tutorial"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def unique(text: str) -> str:
    """A message text no earlier test sent."""
    return f"{text} {uuid.uuid4().hex[:8]}"


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def required_binary(variable: str, fallback: str | None = None) -> str:
    path = os.environ.get(variable) or (shutil.which(fallback) if fallback else None)
    if not path or not os.access(path, os.X_OK):
        raise AssertionError(f"${variable} must name the executable (bash .ci/webchat-test sets it); got {path!r}")
    return path


class Process:
    """A child process whose output is collected line by line by a thread, so the tests can wait for a line.

    Every one is stopped by pid when the tests end, whatever happened to the test that started it."""

    started: list["Process"] = []

    def __init__(self, name: str, argv: list[str], *, cwd: Path | None = None, env: dict | None = None,
                 stdin: bool = False, merge_stderr: bool = True):
        self.name = name
        self.argv = argv
        self.lines: list[str] = []
        self._new_line = threading.Condition()
        self.popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
        Process.started.append(self)
        self._reader = threading.Thread(target=self._read, name=f"{name}-stdout", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _read(self):
        for line in self.popen.stdout:
            with self._new_line:
                self.lines.append(line.rstrip("\n"))
                self._new_line.notify_all()
        with self._new_line:
            self._new_line.notify_all()

    def output(self) -> str:
        with self._new_line:
            return "\n".join(self.lines)

    def wait_for_line(self, pattern: str, timeout: float, start: int = 0) -> re.Match:
        """The first line from `start` on that matches `pattern` (a regex), waiting up to `timeout` seconds."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._new_line:
            index = start
            while True:
                while index < len(self.lines):
                    match = regex.search(self.lines[index])
                    if match:
                        return match
                    index += 1
                if self.popen.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"{self.name} exited ({self.popen.returncode}) before printing "
                                         f"/{pattern}/; its output:\n{self.output_unlocked()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{self.name} did not print /{pattern}/ within {timeout}s; its output:\n"
                                         f"{self.output_unlocked()}")
                self._new_line.wait(min(remaining, 0.2))

    def output_unlocked(self) -> str:
        return "\n".join(self.lines[-60:])

    def line_count(self) -> int:
        with self._new_line:
            return len(self.lines)

    def write_line(self, text: str):
        self.popen.stdin.write(text + "\n")
        self.popen.stdin.flush()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Signals the process by pid, waits for it, and kills it if it does not exit in time."""
        if self.popen.poll() is None:
            try:
                os.kill(self.popen.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._reader.join(5)
        return self.popen.returncode


class RedisServer:
    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.url = f"redis://{HOST}:{self.port}"
        self.dir = tempfile.mkdtemp(prefix="webchat-redis-")
        self.process: Process | None = None

    def start(self) -> "RedisServer":
        binary = required_binary("REDIS_SERVER", "redis-server")
        self.process = Process("redis-server", [
            binary, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no",
            "--dir", self.dir, "--daemonize", "no",
        ])
        wait_until(self.ping, 10, f"redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM):
        if self.process:
            self.process.stop(sig)

    def remove(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class WebChatServer:
    """A `webchat` process on a port it picked itself (`--port 0`); `url` is known once it printed it."""

    def __init__(self, redis: RedisServer, *extra: str):
        binary = required_binary("WEBCHAT_BIN")
        self.process = Process("webchat", [binary, "--host", HOST, "--port", "0", "--redis", redis.url, *extra])
        try:
            match = self.process.wait_for_line(r"listening on (http://[0-9.]+:\d+)/", 60)
        except AssertionError:
            self.process.stop(signal.SIGKILL)
            raise
        self.base = match.group(1)
        self.port = int(self.base.rsplit(":", 1)[1])

    def room_url(self, room: str = "lobby", name: str | None = None) -> str:
        return f"{self.base}/chat/{room}/" + (f"?name={name}" if name else "")

    def ws_url(self, room: str = "lobby", name: str | None = None) -> str:
        return f"ws://{HOST}:{self.port}/ws/chat/{room}/" + (f"?name={name}" if name else "")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        return self.process.stop(sig)


class DjangoServer:
    """The Django Channels tutorial's project under daphne, with channels_redis's RedisPubSubChannelLayer."""

    def __init__(self, redis: RedisServer):
        self.port = free_port()
        env = dict(os.environ, CHANNELS_REDIS_URL=redis.url, DJANGO_SETTINGS_MODULE="mysite.settings",
                   PYTHONPATH=str(DJANGO_PROJECT), PYTHONUNBUFFERED="1")
        self.process = Process("daphne", [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(self.port),
                                          "mysite.asgi:application"], cwd=DJANGO_PROJECT, env=env)
        try:
            self.process.wait_for_line(r"Listening on TCP address", 60)
        except AssertionError:
            self.process.stop(signal.SIGKILL)
            raise
        self.base = f"http://{HOST}:{self.port}"

    def room_url(self, room: str = "lobby") -> str:
        return f"{self.base}/chat/{room}/"

    def ws_url(self, room: str = "lobby") -> str:
        return f"ws://{HOST}:{self.port}/ws/chat/{room}/"

    def assert_healthy(self):
        """Django's consumer raises (and daphne logs a traceback) on an event it has no handler for."""
        assert self.process.alive(), f"daphne exited:\n{self.process.output()}"
        assert "Traceback" not in self.process.output(), f"the Django consumer failed:\n{self.process.output()}"

    def stop(self):
        self.process.stop()


class ChatClient:
    """A WebSocket client of the tutorial's protocol: sends {"message": text}, reads {"message": ...} frames."""

    def __init__(self, url: str, origin: str):
        # Django's AllowedHostsOriginValidator refuses a socket without an Origin header, as browsers send.
        self.ws = websocket.create_connection(url, origin=origin, timeout=10)
        self.url = url
        self.frames: list[dict] = []

    def send(self, message) -> None:
        self.ws.send(json.dumps({"message": message}))

    def send_raw(self, text: str) -> None:
        self.ws.send(text)

    def receive(self, timeout: float) -> dict | None:
        self.ws.settimeout(timeout)
        try:
            raw = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            return None
        except websocket.WebSocketConnectionClosedException:
            return None
        if not raw:
            return None
        frame = json.loads(raw)
        self.frames.append(frame)
        return frame

    def wait_for(self, predicate, timeout: float = 10, what: str = "a frame") -> dict:
        """The first frame (already received or arriving within `timeout`) that `predicate` accepts."""
        for frame in self.frames:
            if predicate(frame):
                return frame
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            frame = self.receive(min(remaining, 1))
            if frame is not None and predicate(frame):
                return frame
        raise AssertionError(f"{self.url}: no {what} within {timeout}s; frames so far: {self.frames}")

    def wait_for_text(self, text: str, timeout: float = 10) -> dict:
        return self.wait_for(lambda f: isinstance(f.get("message"), str) and text in f["message"], timeout,
                             f"frame containing {text!r}")

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass


class TerminalChat:
    """The root package's terminal chat: lines written to its stdin, its stdout read line by line."""

    def __init__(self, redis: RedisServer, room: str = "lobby", name: str = "term"):
        binary = required_binary("CHAT_BIN")
        self.name = name
        argv = [binary, "--redis", redis.url, "--room", room, "--name", name]
        # Swift's print is block-buffered when stdout is a pipe: stdbuf (coreutils) makes it line-buffered, so each
        # line arrives when it is printed whether or not the chat flushes by itself.
        stdbuf = shutil.which("stdbuf")
        self.process = Process("chat", [stdbuf, "-oL", "-eL", *argv] if stdbuf else argv, stdin=True)
        # Its first line comes once it has joined the group (it also announces itself to the room, by name).
        try:
            self.process.wait_for_line(r".", 30)
        except AssertionError:
            self.process.stop(signal.SIGKILL)
            raise

    def say(self, text: str):
        self.process.write_line(text)

    def wait_for_text(self, text: str, timeout: float = 10):
        return self.process.wait_for_line(re.escape(text), timeout)

    def stop(self):
        if self.process.alive():
            try:
                self.process.popen.stdin.close()  # end of input: the chat leaves the room and exits
            except OSError:
                pass
            try:
                self.process.popen.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.process.stop()


@atexit.register
def _stop_leftover_processes():
    for process in reversed(Process.started):
        if process.alive():
            process.stop(signal.SIGKILL, timeout=5)


def converge(send, receivers, timeout: float = 15):
    """Sends numbered warm-up messages until every receiver has seen one: pub/sub is at most once, so a message
    published while a peer's subscription is still on its way to Redis is lost, and this waits that out."""
    deadline = time.monotonic() + timeout
    seen = [False] * len(receivers)
    attempt = 0
    while not all(seen):
        attempt += 1
        if time.monotonic() > deadline:
            raise AssertionError(f"peers did not converge within {timeout}s: seen={seen}")
        text = unique(f"warm-up {attempt}")
        send(text)
        for index, receive in enumerate(receivers):
            if not seen[index]:
                seen[index] = receive(text)


# --- Session-wide processes -------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def redis():
    server = RedisServer().start()
    yield server
    server.remove()


@pytest.fixture(scope="session")
def webchat_a(redis):
    server = WebChatServer(redis)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def webchat_b(redis):
    server = WebChatServer(redis)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def django_server(redis):
    server = DjangoServer(redis)
    yield server
    server.stop()


@pytest.fixture
def clients():
    """Makes ChatClients and closes them after the test."""
    made: list[ChatClient] = []

    def make(url: str, origin: str) -> ChatClient:
        client = ChatClient(url, origin)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def terminal_chat(redis):
    """Starts terminal chats (stopped after the test)."""
    made: list[TerminalChat] = []

    def make(room: str = "lobby", name: str = "term") -> TerminalChat:
        chat = TerminalChat(redis, room, name)
        made.append(chat)
        return chat

    yield make
    for chat in made:
        chat.stop()
