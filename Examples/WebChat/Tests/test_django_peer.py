"""The Django Channels tutorial's chat (its own consumer, channels_redis's RedisPubSubChannelLayer, daphne) as a live
peer of WebChat and of the terminal chat: messages cross both ways, and nothing WebChat sends makes Django fail."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from conftest import converge, unique


def message_is(text):
    return lambda frame: frame.get("message") == text


def test_webchat_and_django_exchange_messages_both_ways(webchat_a, django_server, clients):
    web = clients(webchat_a.ws_url(name="webby"), webchat_a.base)
    django = clients(django_server.ws_url(), django_server.base)
    # The WebChat tab announces itself once it is in the group; Django shows that as a chat message too.
    web.wait_for_text("webby joined")
    converge(web.send, [lambda text: django.wait_for(message_is(text), 2, text) is not None])

    from_web = unique("hello Django, this is WebChat")
    web.send(from_web)
    frame = django.wait_for(message_is(from_web))
    assert frame == {"message": from_web}  # the tutorial's consumer sends exactly {"message": event["message"]}

    from_django = unique("hello WebChat, this is Django")
    django.send(from_django)
    frame = web.wait_for(message_is(from_django))
    assert frame == {"message": from_django}  # the tutorial's event has no sender or kind
    django.wait_for(message_is(from_django))  # Django's own consumer got it back through the group too

    django_server.assert_healthy()


def test_non_string_messages_from_django_reach_the_browser_as_json_text(webchat_a, django_server, clients):
    web = clients(webchat_a.ws_url(), webchat_a.base)
    django = clients(django_server.ws_url(), django_server.base)
    converge(django.send, [lambda text: web.wait_for(message_is(text), 2, text) is not None])

    # The tutorial's consumer passes whatever JSON value came in on to the group.
    django.send(42)
    assert web.wait_for(message_is("42"))["message"] == "42"
    django.send({"nested": [1, "two", None]})
    assert web.wait_for(message_is('{"nested": [1, "two", null]}'))
    django_server.assert_healthy()


def test_malformed_browser_frames_are_refused_without_reaching_django(webchat_a, django_server, clients):
    web = clients(webchat_a.ws_url(), webchat_a.base)
    django = clients(django_server.ws_url(), django_server.base)
    converge(web.send, [lambda text: django.wait_for(message_is(text), 2, text) is not None])

    def notices():
        return [f for f in web.frames if f.get("kind") == "status"]

    web.send_raw("this is not JSON")
    web.wait_for(lambda f: f.get("kind") == "status")
    web.send_raw('{"text": "no message key"}')
    web.wait_for(lambda f: len(notices()) >= 2, what="a second notice")
    assert [f["message"] for f in notices()] == ['*** not sent: send JSON like {"message": "hi"}'] * 2
    after = unique("still working")
    web.send(after)
    django.wait_for(message_is(after))
    assert not any("not JSON" in str(f.get("message")) for f in django.frames)
    django_server.assert_healthy()


def test_terminal_chat_and_django_exchange_messages_both_ways(django_server, terminal_chat, clients):
    django = clients(django_server.ws_url(), django_server.base)
    term = terminal_chat(name="term")

    def term_says(text):
        term.say(text)

    converge(term_says, [lambda text: django.wait_for_text(text, 2) is not None])

    from_term = unique("hello Django from the terminal")
    term.say(from_term)
    frame = django.wait_for_text(from_term)
    assert set(frame) == {"message"}

    from_django = unique("hello terminal from Django")
    start = term.process.line_count()
    django.send(from_django)
    line = term.process.wait_for_line(from_django, 10, start=start)
    assert from_django in line.string
    django_server.assert_healthy()


@pytest.mark.parametrize("path", [
    "/chat/not%20valid/",
    "/chat/" + "x" * 95 + "/",
    "/chat/caf%C3%A9/",
    "/ws/chat/bad!name/",
])
def test_invalid_room_names_are_refused_with_400(webchat_a, path):
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(webchat_a.base + path, timeout=10)
    assert refused.value.code == 400
    # The longest valid name still works (chat_ + 94 characters < 100), and the server is still up.
    with urllib.request.urlopen(webchat_a.base + "/chat/" + "x" * 94 + "/", timeout=10) as page:
        assert page.status == 200


def test_invalid_room_websocket_is_not_upgraded(webchat_a, clients):
    import websocket

    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        clients(webchat_a.ws_url(room="bad%20room"), webchat_a.base)
    assert refused.value.status_code == 400
