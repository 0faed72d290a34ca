"""Runs Fernet operations the way channels_redis 4.3.0 does, for FernetTests' cross-checks.

Usage: fernet_peer.py REQUESTS_JSON

REQUESTS_JSON is a file holding a JSON array of requests; a JSON array of results (same order) is
printed. Binary data travels as standard base64, tokens as text. Keys are always turned into
Fernets by channels_redis's own serializer (make_fernet / MultiFernet), never by this script.

  {"op": "fernet_key", "key": K}                              -> urlsafe base64 of the derived key
  {"op": "encrypt", "keys": [...], "plaintext": B64}          -> token (MultiFernet.encrypt)
  {"op": "encrypt_at", "keys": [...], "plaintext": B64,
   "iv": B64, "timestamp": N}                                 -> token with that IV and time
  {"op": "decrypt", "keys": [...], "token": T}                -> {"plaintext": B64} or {"error": "InvalidToken"}
  {"op": "layer_serialize", "keys": [...], "message_json": J} -> token from RedisPubSubChannelLayer.serialize
                                                                 of json.loads(J) (text keeps the key order)
  {"op": "layer_deserialize", "keys": [...], "token": T}      -> {"message": M} or {"error": "InvalidToken"}
"""

import base64
import json
import sys

from cryptography.fernet import InvalidToken

from channels_redis.pubsub import RedisPubSubChannelLayer


def layer(keys):
    return RedisPubSubChannelLayer(symmetric_encryption_keys=keys)


def crypter(keys):
    # The MultiFernet the pubsub layer's serializer built from these keys.
    return layer(keys)._serializer.crypter


def run(request):
    op = request["op"]
    if op == "fernet_key":
        fernet = crypter([request["key"]])._fernets[0]
        return base64.urlsafe_b64encode(fernet._signing_key + fernet._encryption_key).decode("ascii")
    if op == "encrypt":
        plaintext = base64.b64decode(request["plaintext"])
        return crypter(request["keys"]).encrypt(plaintext).decode("ascii")
    if op == "encrypt_at":
        plaintext = base64.b64decode(request["plaintext"])
        iv = base64.b64decode(request["iv"])
        fernet = crypter(request["keys"])._fernets[0]
        return fernet._encrypt_from_parts(plaintext, request["timestamp"], iv).decode("ascii")
    if op == "decrypt":
        try:
            # ttl=None, as BaseMessageSerializer.deserialize passes for the pubsub layer.
            plaintext = crypter(request["keys"]).decrypt(request["token"].encode("ascii"), None)
        except InvalidToken:
            return {"error": "InvalidToken"}
        return {"plaintext": base64.b64encode(plaintext).decode("ascii")}
    if op == "layer_serialize":
        message = json.loads(request["message_json"])
        return layer(request["keys"]).serialize(message).decode("ascii")
    if op == "layer_deserialize":
        try:
            message = layer(request["keys"]).deserialize(request["token"].encode("ascii"))
        except InvalidToken:
            return {"error": "InvalidToken"}
        return {"message": message}
    raise ValueError(f"unknown op {op!r}")


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        requests = json.load(f)
    json.dump([run(request) for request in requests], sys.stdout)


if __name__ == "__main__":
    main()
