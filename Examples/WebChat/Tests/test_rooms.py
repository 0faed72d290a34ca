"""Two WebChat processes and the terminal chat in one room over one Redis; rooms kept apart; a Redis outage and a
SIGTERM, each on a WebChat server of its own."""

from __future__ import annotations

import signal
import time
import urllib.request

import pytest

from conftest import RedisServer, WebChatServer, converge, unique


def sees(client):
    return lambda text: client.wait_for_text(text, 2) is not None


def test_two_servers_and_the_terminal_chat_see_each_other(webchat_a, webchat_b, terminal_chat, clients):
    on_a = clients(webchat_a.ws_url(name="ann"), webchat_a.base)
    on_b = clients(webchat_b.ws_url(name="ben"), webchat_b.base)
    on_a.wait_for_text("ann joined")
    on_b.wait_for_text("ben joined")
    on_a.wait_for_text("ben joined")  # B's announcement crossed Redis to A
    term = terminal_chat(name="terry")
    on_a.wait_for_text("terry")
    on_b.wait_for_text("terry")
    converge(on_a.send, [sees(on_b), lambda text: term.wait_for_text(text, 2) is not None])

    from_a = unique("from server A")
    on_a.send(from_a)
    frame = on_b.wait_for(lambda f: f.get("message") == from_a)
    assert frame == {"message": from_a, "sender": "ann", "kind": "message"}
    on_a.wait_for(lambda f: f.get("message") == from_a)  # the sender's own tab shows it too, as in Django
    term.wait_for_text(from_a)

    from_b = unique("from server B")
    on_b.send(from_b)
    on_a.wait_for_text(from_b)
    term.wait_for_text(from_b)

    from_term = unique("from the terminal")
    term.say(from_term)
    assert on_a.wait_for_text(from_term)["message"].endswith(from_term)
    on_b.wait_for_text(from_term)

    # Leaving is announced to the others.
    on_b.close()
    on_a.wait_for_text("ben left")
    term.wait_for_text("ben left")


def test_rooms_are_separate_groups(webchat_a, webchat_b, clients):
    lobby = clients(webchat_a.ws_url("lobby"), webchat_a.base)
    garden_a = clients(webchat_a.ws_url("garden"), webchat_a.base)
    garden_b = clients(webchat_b.ws_url("garden"), webchat_b.base)
    for client in (lobby, garden_a, garden_b):
        client.wait_for_text("joined")
    converge(garden_a.send, [sees(garden_b)])

    secret = unique("only for the garden")
    garden_a.send(secret)
    garden_b.wait_for_text(secret)
    marker = unique("lobby marker")
    lobby.send(marker)
    lobby.wait_for_text(marker)  # by now the garden message would have arrived too
    assert not any(secret in str(f.get("message")) for f in lobby.frames)
    assert not any(marker in str(f.get("message")) for f in garden_a.frames + garden_b.frames)


def test_redis_outage_is_reported_to_the_tab_and_the_server_keeps_running(clients):
    redis = RedisServer().start()
    server = WebChatServer(redis, "--send-timeout", "1")
    try:
        tab = clients(server.ws_url(name="sam"), server.base)
        tab.wait_for_text("sam joined")

        redis.stop(signal.SIGKILL)
        tab.wait_for_text("*** lost the connection to Redis")
        tab.send("anyone there?")
        notice = tab.wait_for_text("*** not sent", timeout=10)
        assert notice == {"message": "*** not sent: Redis is unavailable", "kind": "status"}
        assert server.process.alive()
        with urllib.request.urlopen(server.room_url(), timeout=10) as page:
            assert page.status == 200

        redis = RedisServer(redis.port).start()  # the same port: the layer reconnects and resubscribes
        tab.wait_for_text("*** reconnected to Redis", timeout=20)
        back = unique("back again")
        tab.send(back)
        tab.wait_for(lambda f: f.get("message") == back)
        tab.close()
    finally:
        status = server.stop()
        redis.remove()
    assert status == 0, server.process.output()  # SIGTERM: a clean exit, after an outage too


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_closes_the_sockets_and_the_server_exits_cleanly(redis, clients, sig):
    server = WebChatServer(redis)
    try:
        tab = clients(server.ws_url(name="tess"), server.base)
        tab.wait_for_text("tess joined")
        started = time.monotonic()
        server.process.popen.send_signal(sig)
        # The server closes the socket (a close frame: recv returns nothing), then exits with status 0.
        deadline = time.monotonic() + 15
        while tab.ws.connected and time.monotonic() < deadline:
            tab.receive(0.5)
        assert not tab.ws.connected
        assert server.process.popen.wait(15) == 0, server.process.output()
        assert time.monotonic() - started < 15
    finally:
        server.stop(signal.SIGKILL)


def test_the_terminal_chats_who_lists_the_webchat_tabs(webchat_a, webchat_b, terminal_chat, clients):
    on_a = clients(webchat_a.ws_url(name="wanda"), webchat_a.base)
    on_b = clients(webchat_b.ws_url(name="walt"), webchat_b.base)
    on_a.wait_for_text("wanda joined")
    on_b.wait_for_text("walt joined")
    term = terminal_chat(name="quinn")
    on_a.wait_for_text("quinn joined")
    on_b.wait_for_text("quinn joined")
    start = term.process.line_count()
    term.say("/who")
    # Each tab answers on the asker's channel; the who request itself is not shown in the tabs.
    line = term.process.wait_for_line(r"here in #lobby", 10, start=start).string
    assert "wanda" in line and "walt" in line and "quinn" in line, line
    marker = unique("after who")
    term.say(marker)
    on_a.wait_for_text(marker)
    assert not any(f.get("kind") == "who" for f in on_a.frames + on_b.frames)
