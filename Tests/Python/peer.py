"""A Python channels_redis peer for the interop tests, driven line by line over stdin/stdout.

Usage:
    peer.py --host redis://127.0.0.1:PORT [--host ...] [--prefix asgi]
            [--serializer msgpack|json] [--key KEY ...]

It builds one ``channels_redis.pubsub.RedisPubSubChannelLayer(hosts=..., prefix=..., serializer_format=...,
symmetric_encryption_keys=...)``, prints ``ready``, then reads one JSON command per line and prints one JSON reply per
line, in order. Commands are handled one at a time.

Command: ``{"id": "7", "cmd": "send", ...fields}``.
Reply:   ``{"id": "7", "ok": true, "result": VALUE}`` or
         ``{"id": "7", "ok": false, "kind": "timeout" | "error", "error": "InvalidToken: ..."}``.

Commands (all through the layer's public API unless said otherwise):
    new_channel   {prefix?}                     -> the channel name
    send          {channel, message | literal}  -> null
    group_send    {group, message | literal}    -> null
    group_add     {group, channel}              -> null
    group_discard {group, channel}              -> null
    listen        {channel}                     -> null: starts a receive of the channel in the background (a general
                                                   channel is subscribed on demand by it); the next ``receive`` of that
                                                   channel collects it.
    receive       {channel, timeout}            -> {"message": VALUE, "repr": repr(message)}. On timeout the background
                                                   receive stays pending (it is not cancelled, because cancelling a
                                                   receive makes channels_redis unsubscribe the channel), so nothing is
                                                   lost. A message that does not deserialize (wrong key, say) is an
                                                   "error" reply naming the exception.
    serialize     {message | literal}           -> the layer's own bytes for the message (``layer.serialize``)
    consistent_hash {name, ring_size}           -> channels_redis.utils._consistent_hash(name, ring_size)
    raw_subscribe {host, channel}               -> null: a plain redis-py subscriber (not the layer) on that host,
                                                   confirmed by Redis before the reply
    raw_receive   {host, timeout}               -> {"channel": str, "data": VALUE (bytes)}: the next payload that
                                                   subscriber saw, exactly as published
    flush                                       -> null
    close                                       -> null: flushes the layer and exits
    ping                                        -> "pong"

Values cross the pipe in a tagged form so that every msgpack type survives exactly:
    None, True/False, str        as JSON null, true/false, string (ASCII-escaped)
    int                          {"$int": "<decimal>"}           (any size)
    float                        {"$float": "<16 hex digits>"}   (the IEEE 754 bits, big-endian: NaN, -0.0 exact)
    bytes                        {"$bytes": "<base64>"}
    list / tuple                 a JSON array
    dict                         {"$map": [[key, value], ...]}   (insertion order kept; keys tagged like values)
``literal`` is a Python literal (``ast.literal_eval``), so tests can write the message as Python code would.
"""

import argparse
import ast
import asyncio
import base64
import json
import struct
import sys
import traceback

from channels_redis.pubsub import RedisPubSubChannelLayer
from channels_redis.utils import _consistent_hash
from redis import asyncio as aioredis


class CommandError(Exception):
    """A malformed command: a bug in the test, reported as an error reply."""


# MARK: - Tagged values


def to_wire(value):
    """A Python value -> its tagged JSON form."""
    if value is None or isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, int):
        return {"$int": str(value)}
    if isinstance(value, float):
        return {"$float": struct.pack(">d", value).hex()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [to_wire(element) for element in value]
    if isinstance(value, dict):
        return {"$map": [[to_wire(key), to_wire(element)] for key, element in value.items()]}
    raise CommandError(f"cannot tag a {type(value).__name__}: {value!r}")


def from_wire(value):
    """A tagged JSON form -> the Python value."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, list):
        return [from_wire(element) for element in value]
    if isinstance(value, dict) and len(value) == 1:
        (tag, payload), = value.items()
        if tag == "$int" and isinstance(payload, str):
            return int(payload)
        if tag == "$float" and isinstance(payload, str) and len(payload) == 16:
            return struct.unpack(">d", bytes.fromhex(payload))[0]
        if tag == "$bytes" and isinstance(payload, str):
            return base64.b64decode(payload.encode("ascii"), validate=True)
        if tag == "$map" and isinstance(payload, list):
            result = {}
            for pair in payload:
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise CommandError(f"a $map entry must be [key, value], not {pair!r}")
                result[from_wire(pair[0])] = from_wire(pair[1])
            return result
    raise CommandError(f"not a tagged value: {value!r}")


def message_of(command):
    if "literal" in command:
        return ast.literal_eval(command["literal"])
    if "message" in command:
        return from_wire(command["message"])
    raise CommandError("the command needs 'message' or 'literal'")


def field(command, name):
    if name not in command:
        raise CommandError(f"the command needs '{name}'")
    return command[name]


# MARK: - The peer


class Timeout(Exception):
    pass


def host_entry(url):
    """A ``--host`` as channels_redis takes it: a URL as it is, or for
    ``redis+sentinel://[:password@]host:port[,host:port]/master_name[?sentinel_password=...]`` (the Swift layer's form,
    which redis-py has no URL for) the dict form ``{"sentinels": [...], "master_name": ..., "password": ...,
    "sentinel_kwargs": {"password": ...}}``."""
    from urllib.parse import parse_qs, unquote

    prefix = "redis+sentinel://"
    if not url.startswith(prefix):
        return url
    rest = url[len(prefix):]
    rest, _, query = rest.partition("?")
    authority, _, path = rest.partition("/")
    entry = {}
    if "@" in authority:
        userinfo, _, authority = authority.rpartition("@")
        _, _, password = userinfo.partition(":")
        if password:
            entry["password"] = unquote(password)
    entry["sentinels"] = [(node.rpartition(":")[0], int(node.rpartition(":")[2])) for node in authority.split(",")]
    entry["master_name"] = unquote(path.split("/")[0])
    sentinel_password = parse_qs(query).get("sentinel_password")
    if sentinel_password:
        entry["sentinel_kwargs"] = {"password": sentinel_password[0]}
    return entry


class Peer:
    def __init__(self, options):
        self.hosts = options.host
        self.layer = RedisPubSubChannelLayer(
            hosts=[host_entry(host) for host in options.host],
            prefix=options.prefix,
            serializer_format=options.serializer,
            symmetric_encryption_keys=options.key or None,
        )
        # channel -> the background receive task whose result the next `receive` of the channel returns.
        self.pending = {}
        # host URL -> plain redis-py PubSub (not the layer), for `raw_*`.
        self.raw = {}
        self.raw_clients = {}

    def pending_receive(self, channel):
        task = self.pending.get(channel)
        if task is None:
            task = asyncio.ensure_future(self.layer.receive(channel))
            self.pending[channel] = task
        return task

    async def handle(self, command):
        name = field(command, "cmd")
        if name == "ping":
            return "pong"
        if name == "new_channel":
            return await self.layer.new_channel(command.get("prefix", "specific."))
        if name == "send":
            await self.layer.send(field(command, "channel"), message_of(command))
            return None
        if name == "group_send":
            await self.layer.group_send(field(command, "group"), message_of(command))
            return None
        if name == "group_add":
            await self.layer.group_add(field(command, "group"), field(command, "channel"))
            return None
        if name == "group_discard":
            await self.layer.group_discard(field(command, "group"), field(command, "channel"))
            return None
        if name == "listen":
            self.pending_receive(field(command, "channel"))
            await asyncio.sleep(0)  # let it start: a general channel's SUBSCRIBE is sent from inside it
            return None
        if name == "receive":
            channel = field(command, "channel")
            task = self.pending_receive(channel)
            done, _ = await asyncio.wait({task}, timeout=float(command.get("timeout", 10)))
            if not done:
                raise Timeout(f"nothing arrived on {channel} within {command.get('timeout', 10)} s")
            del self.pending[channel]
            message = task.result()  # raises what receive raised, e.g. InvalidToken
            return {"message": to_wire(message), "repr": repr(message)}
        if name == "serialize":
            return to_wire(self.layer.serialize(message_of(command)))
        if name == "consistent_hash":
            return to_wire(_consistent_hash(field(command, "name"), int(field(command, "ring_size"))))
        if name == "raw_subscribe":
            host = field(command, "host")
            if host not in self.raw:
                client = aioredis.Redis.from_url(host)
                self.raw_clients[host] = client
                self.raw[host] = client.pubsub()
            pubsub = self.raw[host]
            channel = field(command, "channel")
            await pubsub.subscribe(channel)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while True:
                reply = await pubsub.get_message(timeout=0.1)
                if reply is not None and reply["type"] == "subscribe" and reply["channel"] == channel.encode():
                    return None
                if loop.time() > deadline:
                    raise Timeout(f"no subscribe confirmation for {channel} from {host}")
        if name == "raw_receive":
            pubsub = self.raw[field(command, "host")]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + float(command.get("timeout", 10))
            while True:
                reply = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                if reply is not None and reply["type"] == "message":
                    return {"channel": reply["channel"].decode(), "data": to_wire(reply["data"])}
                if loop.time() > deadline:
                    raise Timeout("no raw message arrived")
        if name == "flush":
            await self.cancel_pending()
            await self.layer.flush()
            return None
        if name == "close":
            await self.close()
            return None
        raise CommandError(f"unknown command {name!r}")

    async def cancel_pending(self):
        tasks = list(self.pending.values())
        self.pending = {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except BaseException:
                pass

    async def close(self):
        await self.cancel_pending()
        await self.layer.flush()
        for pubsub in self.raw.values():
            await pubsub.aclose()
        for client in self.raw_clients.values():
            await client.aclose()
        self.raw = {}
        self.raw_clients = {}


def reply(payload):
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", action="append", required=True)
    parser.add_argument("--prefix", default="asgi")
    parser.add_argument("--serializer", default="msgpack")
    parser.add_argument("--key", action="append", default=[])
    options = parser.parse_args()

    peer = Peer(options)
    loop = asyncio.get_running_loop()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.buffer.readline)
        if not line:
            await peer.close()
            return
        if not line.strip():
            continue
        identifier = None
        try:
            command = json.loads(line)
            identifier = command.get("id")
            result = await peer.handle(command)
            reply({"id": identifier, "ok": True, "result": result})
            if command.get("cmd") == "close":
                return
        except Timeout as error:
            reply({"id": identifier, "ok": False, "kind": "timeout", "error": str(error)})
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            reply({"id": identifier, "ok": False, "kind": "error", "error": f"{type(error).__name__}: {error}"})


if __name__ == "__main__":
    asyncio.run(main())
