import ChannelsRedis
import Foundation
import OrderedCollections
import Synchronization
import Testing

// Interop with the real Python channels_redis 4.3.0 (issue 4): a Swift layer and a Python
// `channels_redis.pubsub.RedisPubSubChannelLayer` share one Redis (or three) and talk both ways.
//
// The Python side is `Python/peer.py`, a long-running process driven over stdin/stdout with one JSON command per line.
// Messages cross that pipe in a tagged form (ints as decimal strings, floats as their IEEE bits, bytes as base64,
// maps as ordered pairs), so every value is compared exactly: key order, string bytes (no Unicode normalisation),
// float bits, int vs uint. A missing venv or redis-server fails the tests; nothing is skipped.

@Suite("Interop with Python channels_redis", .serialized, .timeLimit(.minutes(5)))
struct InteropTests {
    // MARK: - Channel and group names

    @Test func channelNamesHaveTheSameShapeOnBothSides() async throws {
        try await withInterop { env in
            // uuid.uuid4().hex: 32 lowercase hex digits, version nibble 4, variant 8/9/a/b.
            let uuid4 = "[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}"
            let specific = try Regex("^asgispecific\\.\(uuid4)$")
            let chat = try Regex("^asgichat\\.\(uuid4)$")
            for _ in 0..<5 {
                let python = try await env.peer.newChannel()
                let swift = try await env.layer.newChannel()
                #expect(python.wholeMatch(of: specific) != nil, "Python's new_channel() gave \(python)")
                #expect(swift.wholeMatch(of: specific) != nil, "Swift's newChannel() gave \(swift)")
                #expect(python.count == swift.count)
                let pythonChat = try await env.peer.newChannel(prefix: "chat.")
                let swiftChat = try await env.layer.newChannel(prefix: "chat.")
                #expect(pythonChat.wholeMatch(of: chat) != nil, "Python's new_channel('chat.') gave \(pythonChat)")
                #expect(swiftChat.wholeMatch(of: chat) != nil, "Swift's newChannel(prefix: \"chat.\") gave \(swiftChat)")
            }
        }
    }

    @Test func aCustomLayerPrefixNamesTheSameRedisChannelsOnBothSides() async throws {
        try await withInterop(prefix: "tenant1") { env in
            let python = try await env.peer.newChannel()
            let swift = try await env.layer.newChannel()
            #expect(python.hasPrefix("tenant1specific.") && python.count == "tenant1specific.".count + 32, "\(python)")
            #expect(swift.hasPrefix("tenant1specific.") && swift.count == "tenant1specific.".count + 32, "\(swift)")

            try await env.peer.groupAdd("room", channel: python)
            try await env.layer.groupAdd("room", channel: swift)
            try await env.awaitSubscribers("tenant1__group__room", 2)
            let groupChannels = try await env.redisChannels().filter { $0.contains("room") }
            #expect(groupChannels == ["tenant1__group__room"], "Redis channels about the group: \(groupChannels)")

            try await env.peer.groupSend(["type": "tenant.hello"], to: "room")
            expectExact(try await swiftReceive(env.layer, from: swift), ["type": "tenant.hello"], "Swift member")
            expectExact(try await env.peer.receive(from: python).message, ["type": "tenant.hello"], "Python member")
        }
    }

    /// The comparison every test here relies on sees what `==` forgives.
    @Test func exactComparisonIsStricterThanEquality() throws {
        let pairs: [(ChannelMessage, ChannelMessage)] = [
            ("\u{E9}", "e\u{301}"),  // equal as Swift Strings (canonical equivalence), different bytes on the wire
            (["a": 1, "b": 2], ["b": 2, "a": 1]),  // equal like Python dicts, different order on the wire
            (.double(0.0), .double(-0.0)),
            (.uint(5), .int(5)),
        ]
        for (actual, expected) in pairs {
            #expect(actual == expected)
            #expect(firstDifference(actual, expected, at: "message") != nil, "\(actual) vs \(expected)")
        }
        #expect(firstDifference(richMessage(binary: true), richMessage(binary: true), at: "message") == nil)
        // The pipe's tagged form round-trips exactly, NaN and all.
        for message in wireCorpus(binary: true) {
            let line = PeerJSON(message).serialized()
            let parsed = try PeerJSON(any: try JSONSerialization.jsonObject(with: Data(line.utf8))).message()
            #expect(firstDifference(parsed, message, at: "message") == nil)
        }
    }

    // MARK: - Both directions, in every configuration

    @Test(arguments: InteropSetup.all)
    func pythonGroupSendReachesASwiftGroupMember(_ setup: InteropSetup) async throws {
        try await withInterop(setup) { env in
            let channel = try await env.layer.newChannel()
            try await env.layer.groupAdd("interop_room", channel: channel)
            let first = richMessage(binary: setup.carriesBinary)
            let second: ChannelMessage = ["type": "interop.second", "n": 2]
            try await env.peer.groupSend(first, to: "interop_room")
            try await env.peer.groupSend(second, to: "interop_room")
            expectExact(try await swiftReceive(env.layer, from: channel), first, "first group message")
            expectExact(try await swiftReceive(env.layer, from: channel), second, "second group message")
            #expect(env.layer.statistics.undecodableMessages == 0)
        }
    }

    @Test(arguments: InteropSetup.all)
    func swiftGroupSendReachesAPythonGroupMember(_ setup: InteropSetup) async throws {
        try await withInterop(setup) { env in
            let channel = try await env.peer.newChannel()
            try await env.peer.groupAdd("interop_room", channel: channel)
            try await env.awaitSubscribers(env.groupChannel("interop_room"), 1)
            let first = richMessage(binary: setup.carriesBinary)
            let second: ChannelMessage = ["type": "interop.second", "n": 2]
            try await env.layer.groupSend(first, to: "interop_room")
            try await env.layer.groupSend(second, to: "interop_room")
            expectExact(try await env.peer.receive(from: channel).message, first, "first group message")
            expectExact(try await env.peer.receive(from: channel).message, second, "second group message")
        }
    }

    @Test(arguments: InteropSetup.all)
    func swiftSendsToAChannelPythonCreated(_ setup: InteropSetup) async throws {
        try await withInterop(setup) { env in
            let channel = try await env.peer.newChannel()
            try await env.awaitSubscribers(channel, 1)
            let message = richMessage(binary: setup.carriesBinary)
            try await env.layer.send(message, to: channel)
            try await env.layer.send(["type": "interop.second"], to: channel)
            expectExact(try await env.peer.receive(from: channel).message, message, "first message")
            expectExact(try await env.peer.receive(from: channel).message, ["type": "interop.second"], "second message")
        }
    }

    @Test(arguments: InteropSetup.all)
    func pythonSendsToAChannelSwiftCreated(_ setup: InteropSetup) async throws {
        try await withInterop(setup) { env in
            let channel = try await env.layer.newChannel()
            let message = richMessage(binary: setup.carriesBinary)
            try await env.peer.send(message, to: channel)
            try await env.peer.send(["type": "interop.second"], to: channel)
            expectExact(try await swiftReceive(env.layer, from: channel), message, "first message")
            expectExact(try await swiftReceive(env.layer, from: channel), ["type": "interop.second"], "second message")
        }
    }

    @Test(arguments: InteropSetup.all)
    func aGeneralChannelDeliversToBothSides(_ setup: InteropSetup) async throws {
        try await withInterop(setup) { env in
            let channel = "general.interop"
            let inbox = try await InteropInbox(env.layer, channel)
            defer { inbox.stop() }
            try await env.peer.listen(channel)
            try await env.awaitSubscribers(channel, 2)

            let fromPython = richMessage(binary: setup.carriesBinary)
            try await env.peer.send(fromPython, to: channel)
            expectExact(try await inbox.next(), fromPython, "Swift receiving what Python sent")
            expectExact(try await env.peer.receive(from: channel).message, fromPython, "Python receiving its own message")

            try await env.peer.listen(channel)
            let fromSwift: ChannelMessage = ["type": "general.swift", "text": "from Swift", "n": 3]
            try await env.layer.send(fromSwift, to: channel)
            expectExact(try await env.peer.receive(from: channel).message, fromSwift, "Python receiving what Swift sent")
            expectExact(try await inbox.next(), fromSwift, "Swift receiving its own message")
        }
    }

    // MARK: - Django's tutorial chat

    @Test func djangoChatEventFromPythonReachesASwiftConsumer() async throws {
        try await withInterop { env in
            // What the tutorial's ChatConsumer.connect does: group_add("chat_" + room, self.channel_name).
            let djangoConsumer = try await env.peer.newChannel()
            try await env.peer.groupAdd("chat_lobby", channel: djangoConsumer)
            try await env.awaitSubscribers("asgi__group__chat_lobby", 1)
            let swiftConsumer = try await env.layer.newChannel()
            try await env.layer.groupAdd("chat_lobby", channel: swiftConsumer)
            // Python's group channel is the very one Swift subscribed: one Redis channel, two subscribers.
            try await env.awaitSubscribers("asgi__group__chat_lobby", 2)
            let lobbyChannels = try await env.redisChannels().filter { $0.contains("chat_lobby") }
            #expect(lobbyChannels == ["asgi__group__chat_lobby"], "Redis channels about the room: \(lobbyChannels)")

            // ChatConsumer.receive: group_send(self.room_group_name, {"type": "chat.message", "message": message}).
            try await env.peer.groupSend(literal: #"{"type": "chat.message", "message": "Hello from Django"}"#, to: "chat_lobby")
            let received = try await swiftReceive(env.layer, from: swiftConsumer)
            expectExact(received, ["type": "chat.message", "message": "Hello from Django"], "Swift consumer")
            #expect(received.type == "chat.message")
            #expect(received["message"]?.stringValue == "Hello from Django")
            let echoed = try await env.peer.receive(from: djangoConsumer)
            #expect(echoed.repr == "{'type': 'chat.message', 'message': 'Hello from Django'}")
        }
    }

    @Test func djangoChatEventFromSwiftReachesAPythonConsumer() async throws {
        try await withInterop { env in
            let djangoConsumer = try await env.peer.newChannel()
            try await env.peer.groupAdd("chat_lobby", channel: djangoConsumer)
            try await env.awaitSubscribers("asgi__group__chat_lobby", 1)
            let redisChannels = try await env.redisChannels()
            #expect(redisChannels.contains("asgi__group__chat_lobby"), "PUBSUB CHANNELS: \(redisChannels)")

            try await env.layer.groupSend(["type": "chat.message", "message": "Hello from Swift 👋"], to: "chat_lobby")
            let received = try await env.peer.receive(from: djangoConsumer)
            #expect(received.repr == "{'type': 'chat.message', 'message': 'Hello from Swift 👋'}")
            expectExact(received.message, ["type": "chat.message", "message": "Hello from Swift 👋"], "Django consumer")

            // A Swift consumer in the same room gets its own process's message too, as Django's do.
            let swiftConsumer = try await env.layer.newChannel()
            try await env.layer.groupAdd("chat_lobby", channel: swiftConsumer)
            try await env.layer.groupSend(["type": "chat.message", "message": "second"], to: "chat_lobby")
            expectExact(try await swiftReceive(env.layer, from: swiftConsumer), ["type": "chat.message", "message": "second"], "Swift consumer")
            expectExact(try await env.peer.receive(from: djangoConsumer).message, ["type": "chat.message", "message": "second"], "Django consumer")
        }
    }

    @Test func aPythonSubscriberCountsInTheReceiverCountsSwiftSendsReturn() async throws {
        try await withInterop { env in
            let pythonConsumer = try await env.peer.newChannel()
            try await env.peer.groupAdd("chat_lobby", channel: pythonConsumer)
            try await env.awaitSubscribers("asgi__group__chat_lobby", 1)
            #expect(try await env.layer.groupSend(["type": "chat.message", "message": "to Python"], to: "chat_lobby") == 1)
            #expect(try await env.layer.send(["type": "direct"], to: pythonConsumer) == 1)
            try await env.layer.withChannel { swiftConsumer, _ in
                try await env.layer.groupAdd("chat_lobby", channel: swiftConsumer)
                try await env.awaitSubscribers("asgi__group__chat_lobby", 2)
                #expect(try await env.layer.groupSend(["type": "chat.message", "message": "to both"], to: "chat_lobby") == 2)
            }
            // The scope's end left the group: Python's subscription is the only one again.
            try await env.awaitSubscribers("asgi__group__chat_lobby", 1)
            #expect(try await env.layer.groupSend(["type": "chat.message", "message": "to Python again"], to: "chat_lobby") == 1)
            for text in ["to Python", "to both", "to Python again"] {
                var received = try await env.peer.receive(from: pythonConsumer)
                if received.message.type == "direct" { received = try await env.peer.receive(from: pythonConsumer) }
                #expect(received.message["message"]?.stringValue == text)
            }
        }
    }

    // MARK: - Wire bytes

    @Test(arguments: [InteropSetup.msgpack, .json])
    func swiftPublishesTheBytesPythonWouldPublish(_ setup: InteropSetup) async throws {
        try await withInterop(setup) { env in
            let channel = "interop.wire"
            try await env.peer.rawSubscribe(host: env.hosts[0], channel: channel)
            for message in wireCorpus(binary: setup.carriesBinary) {
                try await env.layer.send(message, to: channel)
                let published = try await env.peer.rawReceive(host: env.hosts[0])
                #expect(published.channel == channel)
                let python = try await env.peer.serialize(message)
                #expect(
                    published.data == python,
                    """
                    payload of \(abbreviated(message)): Swift published \(hexDump(published.data)), Python serializes \(hexDump(python)); \
                    \(firstByteDifference(published.data, python))
                    """
                )
            }
            // A group send is one PUBLISH to exactly "<prefix>__group__<group>".
            try await env.peer.rawSubscribe(host: env.hosts[0], channel: "asgi__group__wire")
            try await env.layer.groupSend(["type": "group.wire"], to: "wire")
            let published = try await env.peer.rawReceive(host: env.hosts[0])
            #expect(published.channel == "asgi__group__wire")
            #expect(published.data == (try await env.peer.serialize(["type": "group.wire"])))
        }
    }

    @Test func msgpackGoldenVectorOnTheWire() async throws {
        try await withInterop { env in
            try await env.peer.rawSubscribe(host: env.hosts[0], channel: "interop.golden")
            try await env.layer.send(["a": true, "b": nil, "c": ["d": []]], to: "interop.golden")
            let published = try await env.peer.rawReceive(host: env.hosts[0])
            #expect(published.data == [0x83, 0xa1, 0x61, 0xc3, 0xa1, 0x62, 0xc0, 0xa1, 0x63, 0x81, 0xa1, 0x64, 0x90], "\(hexDump(published.data))")
            #expect(try await env.peer.serialize(literal: #"{"a": True, "b": None, "c": {"d": []}}"#) == published.data)
        }
    }

    @Test func encryptedPayloadsAreFernetTokensThatPythonDecrypts() async throws {
        try await withInterop(InteropSetup.msgpackEncrypted) { env in
            let channel = "general.fernet"
            try await env.peer.rawSubscribe(host: env.hosts[0], channel: channel)
            try await env.peer.listen(channel)
            try await env.awaitSubscribers(channel, 2)
            let message: ChannelMessage = ["type": "secret.message", "text": "nobody reads this on Redis"]
            var tokens: [[UInt8]] = []
            for _ in 0..<2 {
                let before = Date().timeIntervalSince1970
                try await env.layer.send(message, to: channel)
                let token = try await env.peer.rawReceive(host: env.hosts[0]).data
                tokens.append(token)
                // Fernet: urlsafe base64 (with padding) of 0x80 ‖ u64 seconds ‖ IV ‖ AES-CBC ciphertext ‖ HMAC-SHA256.
                let text = String(decoding: token, as: UTF8.self)
                #expect(text.hasPrefix("gAAAAA"), "token: \(text)")
                #expect(token.allSatisfy { isURLSafeBase64($0) }, "token: \(text)")
                let decoded = try #require(
                    Data(base64Encoded: text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/"))
                )
                #expect(decoded.first == 0x80)
                #expect(decoded.count >= 1 + 8 + 16 + 16 + 32 && (decoded.count - (1 + 8 + 16 + 32)) % 16 == 0, "\(decoded.count) bytes")
                let timestamp = decoded.dropFirst().prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                #expect(abs(Double(timestamp) - before) < 120, "token timestamp \(timestamp), now \(before)")
                #expect(!text.contains("nobody"))
                let received = try await env.peer.receive(from: channel)
                expectExact(received.message, message, "Python decrypting Swift's token")
                try await env.peer.listen(channel)
            }
            #expect(tokens[0] != tokens[1], "two tokens of the same message must differ (random IV)")
        }
    }

    // MARK: - Key rotation

    @Test(arguments: InteropRotation.all)
    func keyRotationFirstKeyEncryptsAnyKeyDecrypts(_ rotation: InteropRotation) async throws {
        var setup = InteropSetup.msgpack
        setup.swiftKeys = rotation.swiftKeys
        setup.pythonKeys = rotation.pythonKeys
        try await withInterop(setup) { env in
            // Python → Swift. A second Swift layer with Swift's keys sends a follow-up that Swift can surely read, so a
            // token Swift cannot read shows as "the follow-up came first" plus one undecodable message.
            let swiftChannel = try await env.layer.newChannel()
            let fromPython: ChannelMessage = ["type": "rotation.python", "keys": .array(rotation.pythonKeys.map { .string($0) })]
            let followUp: ChannelMessage = ["type": "rotation.follow-up"]
            try await env.peer.send(fromPython, to: swiftChannel)
            let helper = try env.makeSwiftLayer(keys: rotation.swiftKeys)
            do {
                try await helper.send(followUp, to: swiftChannel)
                if rotation.swiftReadsPython {
                    expectExact(
                        try await swiftReceive(env.layer, from: swiftChannel),
                        fromPython,
                        "Swift \(rotation.swiftKeys) reading Python's token"
                    )
                    expectExact(try await swiftReceive(env.layer, from: swiftChannel), followUp, "follow-up")
                    #expect(env.layer.statistics.undecodableMessages == 0)
                } else {
                    expectExact(
                        try await swiftReceive(env.layer, from: swiftChannel),
                        followUp,
                        "Swift \(rotation.swiftKeys) must drop Python's token"
                    )
                    try await eventually("Swift counts Python's token as undecodable") { env.layer.statistics.undecodableMessages == 1 }
                }
            } catch {
                await helper.close()
                throw error
            }
            await helper.close()

            // Swift → Python. Python's receive raises InvalidToken for a token it cannot read; the channel still works.
            let pythonChannel = try await env.peer.newChannel()
            try await env.awaitSubscribers(pythonChannel, 1)
            let fromSwift: ChannelMessage = ["type": "rotation.swift", "keys": .array(rotation.swiftKeys.map { .string($0) })]
            try await env.layer.send(fromSwift, to: pythonChannel)
            let outcome = try await env.peer.receiveOutcome(from: pythonChannel)
            if rotation.pythonReadsSwift {
                expectExact(try outcome.get().message, fromSwift, "Python \(rotation.pythonKeys) reading Swift's token")
            } else {
                guard case .failure(let failure) = outcome else {
                    Issue.record("Python \(rotation.pythonKeys) decrypted a token of Swift \(rotation.swiftKeys): \(outcome)")
                    return
                }
                #expect(failure.description.contains("InvalidToken"), "\(failure)")
                let pythonKeyed = try env.makeSwiftLayer(keys: rotation.pythonKeys)
                try await pythonKeyed.send(followUp, to: pythonChannel)
                await pythonKeyed.close()
                expectExact(try await env.peer.receive(from: pythonChannel).message, followUp, "follow-up after InvalidToken")
            }
        }
    }

    // MARK: - Sharding

    @Test func shardingOverThreeHostsAgreesWithPython() async throws {
        try await withInterop(InteropSetup.sharded) { env in
            // Groups: the group channel lives on the host Python's _consistent_hash picks; both sides use it.
            var covered = Set<Int>()
            for group in ["lobby", "kitchen", "garden", "attic", "cellar", "study"] {
                let redisChannel = "asgi__group__\(group)"
                let shard = try await env.peer.consistentHash(redisChannel, ringSize: 3)
                covered.insert(shard)
                let swiftChannel = try await env.layer.newChannel()
                try await env.layer.groupAdd(group, channel: swiftChannel)
                let pythonChannel = try await env.peer.newChannel()
                try await env.peer.groupAdd(group, channel: pythonChannel)
                try await env.awaitSubscribers(redisChannel, 2)
                try await env.expectOnlyOn(shard, redisChannel, subscribers: 2)

                let fromPython: ChannelMessage = ["type": "shard.python", "group": .string(group)]
                try await env.peer.groupSend(fromPython, to: group)
                expectExact(try await swiftReceive(env.layer, from: swiftChannel), fromPython, "group \(group), shard \(shard)")
                expectExact(try await env.peer.receive(from: pythonChannel).message, fromPython, "group \(group), Python member")
                let fromSwift: ChannelMessage = ["type": "shard.swift", "group": .string(group)]
                try await env.layer.groupSend(fromSwift, to: group)
                expectExact(try await env.peer.receive(from: pythonChannel).message, fromSwift, "group \(group), shard \(shard)")
                expectExact(try await swiftReceive(env.layer, from: swiftChannel), fromSwift, "group \(group), Swift member")
            }
            #expect(covered == [0, 1, 2], "the groups should cover every host")

            // Specific channels: each subscribed where the hash of its full name points, found there by the other side.
            for _ in 0..<6 {
                let pythonChannel = try await env.peer.newChannel()
                try await env.awaitSubscribers(pythonChannel, 1)
                try await env.expectOnlyOn(try await env.peer.consistentHash(pythonChannel, ringSize: 3), pythonChannel, subscribers: 1)
                try await env.layer.send(["type": "to.python", "channel": .string(pythonChannel)], to: pythonChannel)
                expectExact(
                    try await env.peer.receive(from: pythonChannel).message,
                    ["type": "to.python", "channel": .string(pythonChannel)],
                    pythonChannel
                )

                let swiftChannel = try await env.layer.newChannel()
                try await env.expectOnlyOn(try await env.peer.consistentHash(swiftChannel, ringSize: 3), swiftChannel, subscribers: 1)
                try await env.peer.send(["type": "to.swift", "channel": .string(swiftChannel)], to: swiftChannel)
                expectExact(
                    try await swiftReceive(env.layer, from: swiftChannel),
                    ["type": "to.swift", "channel": .string(swiftChannel)],
                    swiftChannel
                )
            }

            // General channels: both sides subscribe on the same host.
            covered = []
            for channel in ["general.alpha", "general.beta", "general.epsilon"] {
                let shard = try await env.peer.consistentHash(channel, ringSize: 3)
                covered.insert(shard)
                let inbox = try await InteropInbox(env.layer, channel)
                defer { inbox.stop() }
                try await env.peer.listen(channel)
                try await env.awaitSubscribers(channel, 2)
                try await env.expectOnlyOn(shard, channel, subscribers: 2)
                try await env.peer.send(["type": "general", "channel": .string(channel)], to: channel)
                expectExact(try await inbox.next(), ["type": "general", "channel": .string(channel)], channel)
                expectExact(try await env.peer.receive(from: channel).message, ["type": "general", "channel": .string(channel)], channel)
            }
            #expect(covered == [0, 1, 2], "the general channels should cover every host")
        }
    }

    // MARK: - Sizes and values

    @Test(arguments: [InteropSetup.msgpack, .json])
    func messagesFromOneByteToOneMegabyteCrossBothWays(_ setup: InteropSetup) async throws {
        try await withInterop(setup) { env in
            // The smallest message: an empty dict, one byte of msgpack (0x80) or two of JSON.
            #expect(try await env.peer.serialize([:]).count == (setup.json ? 2 : 1))
            var values: [ChannelMessage] = [
                .string("x"), .string(String(repeating: "a", count: 31)), .string(String(repeating: "b", count: 32)),
                .string(String(repeating: "c", count: 255)), .string(String(repeating: "d", count: 256)),
                .string(String(repeating: "e", count: 65_535)), .string(String(repeating: "f", count: 65_536)),
                .string(String(repeating: "g", count: 1 << 20)),
                // 1 MiB of UTF-8 in 2- and 4-byte sequences.
                .string(String(repeating: "é", count: 1 << 18) + String(repeating: "😀", count: 1 << 17)),
            ]
            if setup.carriesBinary {
                for count in [1, 255, 256, 65_535, 65_536, 1 << 20] {
                    values.append(.binary(pseudoRandomBytes(count, seed: UInt64(count))))
                }
            }
            let messages: [ChannelMessage] = [[:]] + values.map { ["type": "size.test", "data": $0] }

            try await expectBothWaysExactly(messages, env)
        }
    }

    @Test(arguments: [InteropSetup.msgpack, .json])
    func everyKindOfValueCrossesBothWaysExactly(_ setup: InteropSetup) async throws {
        try await withInterop(setup) { env in
            try await expectBothWaysExactly(valueCorpus(binary: setup.carriesBinary), env)
        }
    }

    @Test func pythonDictsWrittenAsPythonLiteralsArriveAsExpected() async throws {
        try await withInterop { env in
            let swiftChannel = try await env.layer.newChannel()
            try await env.peer.send(
                literal: #"""
                    {"type": "py.literal", "t": (1, "two", b"3"), "big": 18446744073709551615, "neg": -9223372036854775808, \#
                    "f": 0.3333333333333333, "u": "\u00e9\U0001F600", "n": None}
                    """#,
                to: swiftChannel
            )
            // A tuple packs as an array; 0.3333333333333333 is Python's repr of 1/3.
            let expected: ChannelMessage = [
                "type": "py.literal", "t": [1, "two", .binary([0x33])], "big": .uint(.max), "neg": .int(.min),
                "f": .double(1.0 / 3.0), "u": "é😀", "n": nil,
            ]
            expectExact(try await swiftReceive(env.layer, from: swiftChannel), expected, "Python literal")
        }
    }

    @Test func jsonCarriesNoBinaryOnEitherSide() async throws {
        try await withInterop(InteropSetup.json) { env in
            let pythonChannel = try await env.peer.newChannel()
            let error = await #expect(throws: ChannelLayerError.self) {
                try await env.layer.send(["type": "binary", "data": .binary([1, 2, 3])], to: pythonChannel)
            }
            #expect(error?.code == .encodingFailed)
            let outcome = try await env.peer.call(
                "send",
                ["channel": .string(pythonChannel), "literal": .string(#"{"type": "binary", "data": b"\x01"}"#)]
            )
            #expect(!outcome.ok && (outcome.error ?? "").contains("TypeError"), "Python json serializer on bytes: \(outcome)")
        }
    }

    // MARK: - Codable

    @Test func anEncodableSwiftStructArrivesInPythonAsTheExpectedDict() async throws {
        try await withInterop { env in
            let pythonChannel = try await env.peer.newChannel()
            try await env.awaitSubscribers(pythonChannel, 1)
            let event = InteropChatEvent(
                type: "chat.message",
                message: "héllo 😀",
                author: .init(name: "ada", id: 7),
                mentions: [.init(name: "bob", id: 8)],
                attachment: Data([0x00, 0xFF]),
                score: 0.5,
                sequence: .max,
                offset: .min,
                pinned: true,
                mood: .happy,
                editedAt: nil,
                reactions: []
            )
            try await env.layer.send(try ChannelMessage(encoding: event), to: pythonChannel)
            let received = try await env.peer.receive(from: pythonChannel)
            #expect(
                received.repr
                    == "{'type': 'chat.message', 'message': 'héllo 😀', 'author': {'name': 'ada', 'id': 7}, 'mentions': [{'name': 'bob', 'id': 8}], "
                    + "'attachment': b'\\x00\\xff', 'score': 0.5, 'sequence': 18446744073709551615, 'offset': -9223372036854775808, "
                    + "'pinned': True, 'mood': 'happy', 'reactions': []}"
            )
        }
    }

    @Test func aPythonDictDecodesIntoASwiftStruct() async throws {
        try await withInterop { env in
            let swiftChannel = try await env.layer.newChannel()
            // As a Python sender writes it: an int where Swift has a Double, None for an Optional, an extra key.
            try await env.peer.send(
                literal: """
                    {"type": "chat.message", "message": "hi", "author": {"name": "ada", "id": 7}, "mentions": [], \
                    "attachment": b"\\x01\\x02", "score": 2, "sequence": 5, "offset": -1, "pinned": False, "mood": "grumpy", \
                    "editedAt": None, "reactions": ["\\U0001F44D"], "extra": "ignored"}
                    """,
                to: swiftChannel
            )
            let message = try await swiftReceive(env.layer, from: swiftChannel)
            let event = try message.decode(as: InteropChatEvent.self)
            #expect(
                event
                    == InteropChatEvent(
                        type: "chat.message",
                        message: "hi",
                        author: .init(name: "ada", id: 7),
                        mentions: [],
                        attachment: Data([1, 2]),
                        score: 2,
                        sequence: 5,
                        offset: -1,
                        pinned: false,
                        mood: .grumpy,
                        editedAt: nil,
                        reactions: ["👍"]
                    )
            )

            // A value that does not fit names its key.
            try await env.peer.send(
                literal: #"{"type": "chat.message", "message": "hi", "author": {"name": "ada", "id": "seven"}}"#,
                to: swiftChannel
            )
            let wrong = try await swiftReceive(env.layer, from: swiftChannel)
            let error = #expect(throws: ChannelLayerError.self) { try wrong.decode(as: InteropChatEvent.self) }
            #expect(error?.code == .decodingFailed)
            #expect(error?.message.contains("author.id") == true, "\(String(describing: error))")
        }
    }
}

// MARK: - Configurations

/// One way to configure both sides identically (or, for keys, deliberately not).
struct InteropSetup: Sendable, CustomTestStringConvertible {
    var name: String
    var servers = 1
    var json = false
    var swiftKeys: [String] = []
    var pythonKeys: [String] = []
    var prefix = "asgi"

    var carriesBinary: Bool { !json }
    var testDescription: String { name }

    static let msgpack = InteropSetup(name: "msgpack")
    static let json = InteropSetup(name: "json", json: true)
    static let msgpackEncrypted = InteropSetup(name: "msgpack, encrypted", swiftKeys: ["interop-key"], pythonKeys: ["interop-key"])
    static let jsonEncrypted = InteropSetup(name: "json, encrypted", json: true, swiftKeys: ["interop-key"], pythonKeys: ["interop-key"])
    static let sharded = InteropSetup(name: "msgpack, three hosts", servers: 3)
    static let everything = InteropSetup(
        name: "json, encrypted, three hosts",
        servers: 3,
        json: true,
        swiftKeys: ["clé-🔑", "old"],
        pythonKeys: ["clé-🔑", "old"]
    )

    static let all: [InteropSetup] = [.msgpack, .json, .msgpackEncrypted, .jsonEncrypted, .sharded, .everything]
}

/// Keys on each side during a rotation. The first key encrypts, any key decrypts, so a side reads the other exactly when
/// its list contains the other's first key. The usual rollout: everyone on `[old]`; then `[old, new]` everywhere (still
/// writing old, already reading new); then `[new, old]`; finally `[new]`.
struct InteropRotation: Sendable, CustomTestStringConvertible {
    var pythonKeys: [String]
    var swiftKeys: [String]

    var swiftReadsPython: Bool { swiftKeys.contains(pythonKeys[0]) }
    var pythonReadsSwift: Bool { pythonKeys.contains(swiftKeys[0]) }
    var testDescription: String { "python \(pythonKeys), swift \(swiftKeys)" }

    static let old = "old-secret"
    static let new = "nouvelle-clé-🔑"

    static let all: [InteropRotation] = [
        // Mid-rotation, both read each other through their second key.
        InteropRotation(pythonKeys: [new, old], swiftKeys: [old, new]),
        InteropRotation(pythonKeys: [old, new], swiftKeys: [new, old]),
        // Python rotated first; a Swift process still on [old] cannot read it, but Python still reads Swift.
        InteropRotation(pythonKeys: [new, old], swiftKeys: [old]),
        // Swift rotated first; Python still on [old] cannot read Swift, Swift reads Python.
        InteropRotation(pythonKeys: [old], swiftKeys: [new, old]),
        // Rotation done on one side only, old key dropped: neither reads the other.
        InteropRotation(pythonKeys: [new], swiftKeys: [old]),
    ]
}

/// Both sides of one test: its own Redis server(s), a Swift layer and a Python peer, configured alike.
struct InteropEnvironment {
    let servers: [RedisServer]
    let layer: RedisPubSubChannelLayer
    let peer: InteropPeer
    let configuration: RedisPubSubChannelLayer.Configuration

    var hosts: [String] { servers.map(\.url) }

    func groupChannel(_ group: String) -> String { "\(configuration.prefix)__group__\(group)" }

    /// Another Swift layer on the same hosts, with other keys.
    func makeSwiftLayer(keys: [String]) throws -> RedisPubSubChannelLayer {
        var configuration = self.configuration
        configuration.symmetricEncryptionKeys = keys
        return try RedisPubSubChannelLayer(configuration: configuration)
    }

    /// Subscribers of `channel` summed over every server.
    func subscribers(_ channel: String) async throws -> Int {
        var total = 0
        for server in servers { total += try await interopNumsub(server, channel) }
        return total
    }

    /// Waits until Redis counts `count` subscribers of `channel` (redis-py sends SUBSCRIBE without waiting for the reply,
    /// so a Python subscription is certain only once Redis shows it).
    func awaitSubscribers(_ channel: String, _ count: Int, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await eventually(timeout: .seconds(15), "\(count) subscriber(s) of \(channel)", sourceLocation: sourceLocation) {
            try await subscribers(channel) == count
        }
    }

    /// Checks that `channel` has `count` subscribers on server `shard` and none on the others.
    func expectOnlyOn(_ shard: Int, _ channel: String, subscribers count: Int, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        for (index, server) in servers.enumerated() {
            let found = try await interopNumsub(server, channel)
            #expect(
                found == (index == shard ? count : 0),
                "\(channel) on host \(index) (hash says \(shard)): \(found) subscriber(s)",
                sourceLocation: sourceLocation
            )
        }
    }

    /// `PUBSUB CHANNELS *` of every server.
    func redisChannels() async throws -> [String] {
        var channels: [String] = []
        for server in servers {
            channels += try await server.command(["PUBSUB", "CHANNELS", "*"]).array?.compactMap(\.string) ?? []
        }
        return channels.sorted()
    }
}

func interopNumsub(_ server: RedisServer, _ channel: String) async throws -> Int {
    let reply = try await server.command(["PUBSUB", "NUMSUB", channel])
    guard let count = reply.array?.last?.integer else { throw InteropFailure("PUBSUB NUMSUB \(channel) answered \(reply)") }
    return count
}

private func withInterop(prefix: String, _ body: (InteropEnvironment) async throws -> Void) async throws {
    var setup = InteropSetup.msgpack
    setup.prefix = prefix
    try await withInterop(setup, body)
}

/// Starts the servers, the Swift layer and the Python peer of `setup`, runs `body`, and closes and stops them all.
private func withInterop(_ setup: InteropSetup = .msgpack, _ body: (InteropEnvironment) async throws -> Void) async throws {
    var servers: [RedisServer] = []
    defer {
        for server in servers { server.stop() }
    }
    for _ in 0..<setup.servers { servers.append(try await RedisServer.start()) }
    let hosts = servers.map(\.url)
    var configuration = RedisPubSubChannelLayer.Configuration(hosts: hosts, prefix: setup.prefix)
    if setup.json { configuration.serializer = .json }
    configuration.symmetricEncryptionKeys = setup.swiftKeys
    let layer = try RedisPubSubChannelLayer(configuration: configuration)
    let peer: InteropPeer
    do {
        peer = try await InteropPeer.start(hosts: hosts, prefix: setup.prefix, serializer: setup.json ? "json" : "msgpack", keys: setup.pythonKeys)
    } catch {
        await layer.close()
        throw error
    }
    let environment = InteropEnvironment(servers: servers, layer: layer, peer: peer, configuration: configuration)
    do {
        try await body(environment)
    } catch {
        await peer.close()
        await layer.close()
        throw error
    }
    await peer.close()
    await layer.close()
}

// MARK: - Swift side helpers

struct InteropFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// `layer.receive(from:)` with a deadline; throws when nothing came (the receive is cancelled then).
/// Sends each message Swift → Python and Python → Swift, one at a time, and expects it back exactly.
private func expectBothWaysExactly(_ messages: [ChannelMessage], _ env: InteropEnvironment) async throws {
    let pythonChannel = try await env.peer.newChannel()
    try await env.awaitSubscribers(pythonChannel, 1)
    let swiftChannel = try await env.layer.newChannel()
    for message in messages {
        try await env.layer.send(message, to: pythonChannel)
        expectExact(
            try await env.peer.receive(from: pythonChannel, timeout: .seconds(30)).message,
            message,
            "Swift → Python, \(abbreviated(message))"
        )
        try await env.peer.send(message, to: swiftChannel)
        expectExact(
            try await swiftReceive(env.layer, from: swiftChannel, within: .seconds(30)),
            message,
            "Python → Swift, \(abbreviated(message))"
        )
    }
}

private func swiftReceive(
    _ layer: RedisPubSubChannelLayer,
    from channel: String,
    within timeout: Duration = .seconds(15)
) async throws -> ChannelMessage {
    guard let message = try await receive(layer, from: channel, within: timeout) else {
        throw InteropFailure("Swift received nothing on \(channel) within \(timeout) (undecodable so far: \(layer.statistics.undecodableMessages))")
    }
    return message
}

/// Collects the messages of a channel from `layer.messages(from:)`, which is subscribed when this returns.
final class InteropInbox: Sendable {
    private final class State: Sendable {
        let received = Mutex<[ChannelMessage]>([])
        let failure = Mutex<String?>(nil)
    }

    private let state = State()
    private let task: Task<Void, Never>
    let channel: String

    init(_ layer: RedisPubSubChannelLayer, _ channel: String) async throws {
        self.channel = channel
        let sequence = try await layer.messages(from: channel)
        let state = self.state
        self.task = Task {
            do {
                for try await message in sequence { state.received.withLock { $0.append(message) } }
            } catch {
                state.failure.withLock { $0 = "\(error)" }
            }
        }
    }

    func next(within timeout: Duration = .seconds(15)) async throws -> ChannelMessage {
        let deadline = ContinuousClock.now + timeout
        while true {
            let message = state.received.withLock { received -> ChannelMessage? in received.isEmpty ? Optional.none : received.removeFirst() }
            if let message { return message }
            if let failure = state.failure.withLock({ $0 }) { throw InteropFailure("messages(from: \(channel)) ended: \(failure)") }
            if ContinuousClock.now >= deadline { throw InteropFailure("Swift received nothing on \(channel) within \(timeout)") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    func stop() {
        task.cancel()
    }
}

// MARK: - Exact comparison

/// Records an issue unless `actual` is exactly `expected`: same kinds, key order, string bytes, float bits, and integers
/// normalised (`.uint` only above `Int64.max`).
private func expectExact(
    _ actual: ChannelMessage,
    _ expected: ChannelMessage,
    _ context: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    if let difference = firstDifference(actual, expected, at: "message") {
        Issue.record("\(context): \(difference)", sourceLocation: sourceLocation)
    }
}

private func firstDifference(_ actual: ChannelMessage, _ expected: ChannelMessage, at path: String) -> String? {
    switch (actual, expected) {
    case (.nil, .nil):
        return nil
    case (.bool(let a), .bool(let b)):
        return a == b ? nil : "\(path) is \(a), expected \(b)"
    case (.int, .int), (.int, .uint), (.uint, .int), (.uint, .uint):
        if case .uint(let value) = actual, value <= UInt64(Int64.max) {
            return "\(path) is .uint(\(value)), expected the normalised .int(\(value))"
        }
        return actual == expected ? nil : "\(path) is \(actual), expected \(expected)"
    case (.double(let a), .double(let b)):
        return a.bitPattern == b.bitPattern
            ? nil : "\(path) is \(a) (bits \(hex64(a.bitPattern))), expected \(b) (bits \(hex64(b.bitPattern)))"
    case (.string(let a), .string(let b)):
        let (x, y) = (Array(a.utf8), Array(b.utf8))
        return x == y
            ? nil : "\(path): string of \(x.count) UTF-8 bytes, expected \(y.count); \(firstByteDifference(x, y)); got \(abbreviated(actual))"
    case (.binary(let a), .binary(let b)):
        return a == b ? nil : "\(path): \(a.count) bytes, expected \(b.count); \(firstByteDifference(a, b))"
    case (.array(let a), .array(let b)):
        guard a.count == b.count else { return "\(path): array of \(a.count) elements, expected \(b.count)" }
        for index in a.indices {
            if let difference = firstDifference(a[index], b[index], at: "\(path)[\(index)]") { return difference }
        }
        return nil
    case (.map(let a), .map(let b)):
        let (keys, expectedKeys) = (Array(a.keys), Array(b.keys))
        guard keys.map({ Array($0.utf8) }) == expectedKeys.map({ Array($0.utf8) }) else {
            if Set(keys) == Set(expectedKeys) && keys.count == expectedKeys.count {
                return "\(path): keys in another order: \(keys.prefix(20)), expected \(expectedKeys.prefix(20))"
            }
            return "\(path): keys \(keys.prefix(20)) (\(keys.count)), expected \(expectedKeys.prefix(20)) (\(expectedKeys.count))"
        }
        for (key, value) in a {
            if let difference = firstDifference(value, b[key]!, at: "\(path)[\"\(key)\"]") { return difference }
        }
        return nil
    default:
        return "\(path) is \(abbreviated(actual)), expected \(abbreviated(expected))"
    }
}

private func hex64(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
}

private func firstByteDifference(_ a: [UInt8], _ b: [UInt8]) -> String {
    let common = min(a.count, b.count)
    guard let index = (0..<common).first(where: { a[$0] != b[$0] }) ?? (a.count == b.count ? nil : common) else {
        return "identical bytes"
    }
    let around = max(0, index - 8)
    let mine = hexDump(Array(a[min(around, a.count)..<min(index + 8, a.count)]))
    let theirs = hexDump(Array(b[min(around, b.count)..<min(index + 8, b.count)]))
    return "first difference at byte \(index): \(mine) vs \(theirs)"
}

private func hexDump(_ bytes: [UInt8], limit: Int = 96) -> String {
    let shown = bytes.prefix(limit).map { byte in
        let digits = String(byte, radix: 16)
        return digits.count == 1 ? "0" + digits : digits
    }
    return shown.joined(separator: " ") + (bytes.count > limit ? " … (\(bytes.count) bytes)" : "")
}

private func abbreviated(_ message: ChannelMessage) -> String {
    let text = message.description
    return text.count > 160 ? String(text.prefix(160)) + "… (\(text.utf8.count) characters)" : text
}

private func isURLSafeBase64(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
        true
    case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "="):
        true
    default:
        false
    }
}

private func pseudoRandomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    return (0..<count).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return UInt8(truncatingIfNeeded: state >> 56)
    }
}

// MARK: - Messages

/// One message with a bit of everything.
private func richMessage(binary: Bool) -> ChannelMessage {
    let ints: [ChannelMessage] = [
        0, 1, -1, 127, 128, 255, 256, -32, -33, -128, -129, 65_535, 65_536, -32_768, -32_769, 4_294_967_295, 4_294_967_296,
        .int(.max), .int(.min), .uint(.max),
    ]
    let floats: [Double] = [0.0, -0.0, 0.1, 1.5, -2.25, 1e16, 1e-7, .greatestFiniteMagnitude, .leastNonzeroMagnitude, .infinity, -.infinity, .nan]
    let deep: ChannelMessage = ["level1": ["level2": ["level3": [["deep": [1, [2, [3, ["x": nil]]]]]]]]]
    var message: ChannelMessage = ["type": "interop.rich", "text": "Ahoy-hoy!"]
    message["unicode"] = "héllo wörld – 日本語 – עברית – 😀👍🏽 – e\u{301} – \u{0}nul – \u{FEFF}\u{2028}"
    message["empty"] = ""
    message["ints"] = .array(ints)
    message["floats"] = .array(floats.map { .double($0) })
    message["bools"] = [true, false]
    message["none"] = .nil
    message["nested"] = deep
    message["emptyMap"] = [:]
    message["emptyList"] = []
    message["ключ 🔑"] = "a unicode key"
    if binary {
        message["bytes"] = .binary([0, 1, 0x7F, 0x80, 0xFE, 0xFF])
        message["emptyBytes"] = .binary([])
        message["nestedBytes"] = ["inner": [.binary([0xC0, 0xC1]), "text"]]
    }
    return message
}

/// Messages for the byte-for-byte comparison with Python's serializer.
private func wireCorpus(binary: Bool) -> [ChannelMessage] {
    let floats: [Double] = [
        0.1, 0.2, 0.30000000000000004, 1e16, 1e22, 1e-5, 1e-7, 123_456_789_012_345_680.0, .leastNonzeroMagnitude, 1.7976931348623157e308, -0.0, 3.0,
        100.0, 1e15, 123.456,
    ]
    let ints: [Int] = [-1, -31, -32, -33, -127, -128, -129, -32_767, -32_768, -32_769, -2_147_483_648, -2_147_483_649, 2_147_483_647, 2_147_483_648]
    var corpus: [ChannelMessage] = [richMessage(binary: binary)]
    corpus.append(["a": true, "b": nil, "c": ["d": []]])
    corpus.append([:])
    corpus.append(["type": "chat.message", "message": "Hello"])
    corpus.append(["floats": .array(floats.map { .double($0) })])
    corpus.append([
        "s31": .string(String(repeating: "x", count: 31)), "s32": .string(String(repeating: "y", count: 32)),
        "s256": .string(String(repeating: "z", count: 256)),
    ])
    corpus.append(["ascii controls": "\u{1}\u{8}\u{9}\u{A}\u{C}\u{D}\u{1F}\u{7F}\"\\/", "latin": "ÿ", "astral": "𝄞"])
    corpus.append(.map(.init(uniqueKeysWithValues: (0..<20).map { ("k\($0)", ChannelMessage($0)) })))
    corpus.append(.array((0..<20).map { ChannelMessage($0) }))
    corpus.append(["type": "ints", "values": .array(ints.map { ChannelMessage($0) })])
    if binary {
        corpus.append(["bin": .binary(pseudoRandomBytes(300, seed: 3)), "bin16": .binary(pseudoRandomBytes(70_000, seed: 4))])
    }
    return corpus
}

/// Messages covering every value kind and size class, each crossing both ways.
private func valueCorpus(binary: Bool) -> [ChannelMessage] {
    var corpus: [ChannelMessage] = []
    let ints: [Int64] = [
        0, 1, 127, 128, 255, 256, 65_535, 65_536, 4_294_967_295, 4_294_967_296, .max, -1, -32, -33, -128, -129, -32_768, -32_769,
        -2_147_483_648, -2_147_483_649, .min,
    ]
    for value in ints { corpus.append(["type": "int", "value": .int(value)]) }
    corpus.append(["type": "int", "value": .uint(UInt64(Int64.max) + 1)])
    corpus.append(["type": "int", "value": .uint(.max)])
    let floats: [Double] = [
        0, -0.0, 1, -1, 0.1, 1.0 / 3.0, .pi, 1e300, -1e-300, .leastNonzeroMagnitude, .greatestFiniteMagnitude, .infinity, -.infinity, .nan,
    ]
    for value in floats { corpus.append(["type": "float", "value": .double(value)]) }
    let strings: [String] = [
        "", "a", "Ünïcödé", "日本語のテキスト", "مرحبا بالعالم", "👩‍👩‍👧‍👦", "e\u{301}", "\u{E9}", "\u{0}", "\u{FFFF}", "\u{10FFFF}", "tab\tnew\nline",
    ]
    for value in strings { corpus.append(["type": "string", "value": .string(value)]) }
    var deep: ChannelMessage = ["bottom": true]
    for level in 0..<100 {
        if level.isMultiple(of: 2) {
            deep = ["level": deep]
        } else {
            deep = .array([deep])
        }
    }
    corpus.append(["type": "deep", "value": deep])
    corpus.append(["type": "array16", "value": .array((0..<70).map { ChannelMessage($0) })])
    corpus.append(["type": "array32", "value": .array((0..<70_000).map { ChannelMessage($0 % 300) })])
    corpus.append(["type": "map16", "value": .map(.init(uniqueKeysWithValues: (0..<300).map { ("key\($0)", ChannelMessage($0)) }))])
    corpus.append(["type": "map32", "value": .map(.init(uniqueKeysWithValues: (0..<70_000).map { ("k\($0)", ChannelMessage($0 % 7)) }))])
    let mixed: [ChannelMessage] = [nil, true, 1, 1.5, "s", [], [:], ["k": [nil]]]
    corpus.append(["type": "mixed", "value": .array(mixed)])
    if binary {
        corpus.append(["type": "bytes", "value": .binary([])])
        corpus.append(["type": "bytes", "value": .binary([0])])
        corpus.append(["type": "bytes", "value": .binary(Array(0...255))])
        corpus.append(["type": "bytes", "value": ["in": [.binary([0xFF]), ["deeper": .binary([0x80, 0x00])]]]])
    }
    return corpus
}

/// A typed chat event for the Codable tests.
struct InteropChatEvent: Codable, Equatable {
    struct Author: Codable, Equatable {
        var name: String
        var id: Int
    }

    enum Mood: String, Codable {
        case happy, grumpy
    }

    var type: String
    var message: String
    var author: Author
    var mentions: [Author]
    var attachment: Data
    var score: Double
    var sequence: UInt64
    var offset: Int64
    var pinned: Bool
    var mood: Mood
    var editedAt: Double?
    var reactions: [String]
}

// MARK: - The Python peer

/// `Python/peer.py`: a Python channels_redis layer driven one JSON command per line.
final class InteropPeer: Sendable {
    let process: PythonProcess
    private let nextID = Mutex(0)

    private init(process: PythonProcess) {
        self.process = process
    }

    /// Starts the peer with a layer like `RedisPubSubChannelLayer(hosts=hosts, prefix=prefix,
    /// serializer_format=serializer, symmetric_encryption_keys=keys or None)` and waits for its `ready`.
    static func start(hosts: [String], prefix: String, serializer: String, keys: [String]) async throws -> InteropPeer {
        var arguments: [String] = []
        for host in hosts { arguments += ["--host", host] }
        arguments += ["--prefix", prefix, "--serializer", serializer]
        for key in keys { arguments += ["--key", key] }
        let process = try PythonPeer.start(script: "peer.py", arguments: arguments)
        let first = try await process.readLine(timeout: .seconds(60))
        guard first == "ready" else {
            process.terminate()
            throw InteropFailure("peer.py said \(first) instead of ready; its stderr:\n\(process.standardError)")
        }
        return InteropPeer(process: process)
    }

    struct Reply: CustomStringConvertible {
        var ok: Bool
        var kind: String?
        var error: String?
        var result: PeerJSON

        var description: String { ok ? "ok" : "\(kind ?? "?"): \(error ?? "?")" }
    }

    /// Sends one command and returns its reply, successful or not.
    func call(_ command: String, _ fields: [String: PeerJSON] = [:], timeout: Duration = .seconds(60)) async throws -> Reply {
        let id = nextID.withLock { id in
            id += 1
            return String(id)
        }
        var object = fields
        object["id"] = .string(id)
        object["cmd"] = .string(command)
        try process.writeLine(PeerJSON.object(object).serialized())
        let line = try await process.readLine(timeout: timeout)
        guard let parsed = try? JSONSerialization.jsonObject(with: Data(line.utf8)), let reply = try? PeerJSON(any: parsed),
            case .object(let envelope) = reply
        else {
            throw InteropFailure(
                "peer.py answered \(command) with a line that is not a reply: \(line.prefix(300)); its stderr:\n\(process.standardError)"
            )
        }
        guard case .string(let replyID)? = envelope["id"], replyID == id else {
            throw InteropFailure("peer.py answered \(command) #\(id) with id \(String(describing: envelope["id"]))")
        }
        var error: String?
        if case .string(let text)? = envelope["error"] { error = text }
        var kind: String?
        if case .string(let text)? = envelope["kind"] { kind = text }
        guard case .bool(let ok)? = envelope["ok"] else { throw InteropFailure("peer.py reply without ok: \(line.prefix(300))") }
        return Reply(ok: ok, kind: kind, error: error, result: envelope["result"] ?? .null)
    }

    /// Sends one command; throws when the peer reports a failure.
    @discardableResult
    func ok(_ command: String, _ fields: [String: PeerJSON] = [:], timeout: Duration = .seconds(60)) async throws -> PeerJSON {
        let reply = try await call(command, fields, timeout: timeout)
        guard reply.ok else {
            throw InteropFailure("python \(command) failed: \(reply); peer stderr:\n\(process.standardError.suffix(3000))")
        }
        return reply.result
    }

    func newChannel(prefix: String = "specific.") async throws -> String {
        guard case .string(let name) = try await ok("new_channel", ["prefix": .string(prefix)]) else {
            throw InteropFailure("new_channel returned no name")
        }
        return name
    }

    func send(_ message: ChannelMessage, to channel: String) async throws {
        try await ok("send", ["channel": .string(channel), "message": PeerJSON(message)])
    }

    func send(literal: String, to channel: String) async throws {
        try await ok("send", ["channel": .string(channel), "literal": .string(literal)])
    }

    func groupSend(_ message: ChannelMessage, to group: String) async throws {
        try await ok("group_send", ["group": .string(group), "message": PeerJSON(message)])
    }

    func groupSend(literal: String, to group: String) async throws {
        try await ok("group_send", ["group": .string(group), "literal": .string(literal)])
    }

    func groupAdd(_ group: String, channel: String) async throws {
        try await ok("group_add", ["group": .string(group), "channel": .string(channel)])
    }

    func groupDiscard(_ group: String, channel: String) async throws {
        try await ok("group_discard", ["group": .string(group), "channel": .string(channel)])
    }

    /// Starts a background `receive` of `channel` (which subscribes a general channel); ``receive(from:timeout:)`` collects it.
    func listen(_ channel: String) async throws {
        try await ok("listen", ["channel": .string(channel)])
    }

    struct Received: Sendable {
        var message: ChannelMessage
        /// Python's `repr` of the received message.
        var repr: String
    }

    func receiveOutcome(from channel: String, timeout: Duration = .seconds(15)) async throws -> Result<Received, InteropFailure> {
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        let reply = try await call("receive", ["channel": .string(channel), "timeout": .string(String(seconds))], timeout: timeout + .seconds(30))
        guard reply.ok else {
            return .failure(InteropFailure("python receive(\(channel)): \(reply)"))
        }
        guard case .object(let object) = reply.result, let message = object["message"], case .string(let repr)? = object["repr"] else {
            throw InteropFailure("python receive returned \(reply.result)")
        }
        return .success(Received(message: try message.message(), repr: repr))
    }

    func receive(from channel: String, timeout: Duration = .seconds(15)) async throws -> Received {
        switch try await receiveOutcome(from: channel, timeout: timeout) {
        case .success(let received): return received
        case .failure(let failure): throw InteropFailure("\(failure); peer stderr:\n\(process.standardError.suffix(3000))")
        }
    }

    /// The bytes Python's layer would publish for `message` (`layer.serialize`).
    func serialize(_ message: ChannelMessage) async throws -> [UInt8] {
        try await bytes(ok("serialize", ["message": PeerJSON(message)]))
    }

    func serialize(literal: String) async throws -> [UInt8] {
        try await bytes(ok("serialize", ["literal": .string(literal)]))
    }

    private func bytes(_ result: PeerJSON) throws -> [UInt8] {
        guard case .binary(let bytes) = try result.message() else { throw InteropFailure("not bytes: \(result)") }
        return bytes
    }

    /// `channels_redis.utils._consistent_hash(name, ring_size)`.
    func consistentHash(_ name: String, ringSize: Int) async throws -> Int {
        guard let index = try await ok("consistent_hash", ["name": .string(name), "ring_size": .string(String(ringSize))]).message().intValue else {
            throw InteropFailure("consistent_hash returned no int")
        }
        return index
    }

    /// A plain redis-py subscriber of `channel` on `host`, outside the layer, confirmed by Redis.
    func rawSubscribe(host: String, channel: String) async throws {
        try await ok("raw_subscribe", ["host": .string(host), "channel": .string(channel)])
    }

    /// The next payload the plain subscriber on `host` saw, exactly as published.
    func rawReceive(host: String, timeout: Duration = .seconds(15)) async throws -> (channel: String, data: [UInt8]) {
        let seconds = Double(timeout.components.seconds)
        let result = try await ok("raw_receive", ["host": .string(host), "timeout": .string(String(seconds))], timeout: timeout + .seconds(30))
        guard case .object(let object) = result, case .string(let channel)? = object["channel"], let data = object["data"] else {
            throw InteropFailure("raw_receive returned \(result)")
        }
        return (channel, try bytes(data))
    }

    /// Flushes the layer, ends the peer and reaps it.
    func close() async {
        _ = try? await call("close", timeout: .seconds(15))
        _ = try? await process.waitForExit(timeout: .seconds(10))
        process.terminate()
    }
}

/// A value on the peer's pipe: JSON without numbers (peer.py tags them, see its header).
indirect enum PeerJSON: Sendable, CustomStringConvertible {
    case null
    case bool(Bool)
    case string(String)
    case array([PeerJSON])
    case object([String: PeerJSON])

    /// The tagged form of a message.
    init(_ message: ChannelMessage) {
        switch message {
        case .nil: self = .null
        case .bool(let value): self = .bool(value)
        case .int(let value): self = .object(["$int": .string(String(value))])
        case .uint(let value): self = .object(["$int": .string(String(value))])
        case .double(let value): self = .object(["$float": .string(hex64(value.bitPattern))])
        case .string(let value): self = .string(value)
        case .binary(let value): self = .object(["$bytes": .string(Data(value).base64EncodedString())])
        case .array(let elements): self = .array(elements.map(PeerJSON.init))
        case .map(let map): self = .object(["$map": .array(map.map { .array([.string($0.key), PeerJSON($0.value)]) })])
        }
    }

    /// From `JSONSerialization`'s output. The peer never writes JSON numbers, so any `NSNumber` here is a bool.
    init(any value: Any) throws {
        if value is NSNull {
            self = .null
        } else if let string = value as? String {
            self = .string(string)
        } else if let bool = value as? Bool {
            self = .bool(bool)
        } else if let array = value as? [Any] {
            self = .array(try array.map { try PeerJSON(any: $0) })
        } else if let object = value as? [String: Any] {
            self = .object(try object.mapValues { try PeerJSON(any: $0) })
        } else {
            throw InteropFailure("unexpected JSON value \(value)")
        }
    }

    /// The message a tagged form stands for.
    func message() throws -> ChannelMessage {
        switch self {
        case .null: return .nil
        case .bool(let value): return .bool(value)
        case .string(let value): return .string(value)
        case .array(let elements): return .array(try elements.map { try $0.message() })
        case .object(let object):
            guard object.count == 1, let (tag, payload) = object.first else { throw InteropFailure("not a tagged value: \(self)") }
            switch (tag, payload) {
            case ("$int", .string(let text)):
                if let value = Int64(text) { return .int(value) }
                if let value = UInt64(text) { return .uint(value) }
                throw InteropFailure("the Python int \(text) does not fit 64 bits")
            case ("$float", .string(let text)):
                guard let bits = UInt64(text, radix: 16) else { throw InteropFailure("bad $float \(text)") }
                return .double(Double(bitPattern: bits))
            case ("$bytes", .string(let text)):
                guard let data = Data(base64Encoded: text) else { throw InteropFailure("bad $bytes") }
                return .binary([UInt8](data))
            case ("$map", .array(let pairs)):
                var map: [(String, ChannelMessage)] = []
                map.reserveCapacity(pairs.count)
                for pair in pairs {
                    guard case .array(let entry) = pair, entry.count == 2, case .string(let key) = entry[0] else {
                        throw InteropFailure("a $map entry is not [str, value]: \(pair)")
                    }
                    map.append((key, try entry[1].message()))
                }
                var message: ChannelMessage = [:]
                for (key, value) in map {
                    guard message[key] == nil else { throw InteropFailure("duplicate key \(key) in $map") }
                    message[key] = value
                }
                return message
            default:
                throw InteropFailure("not a tagged value: \(self)")
            }
        }
    }

    /// One line of JSON: strings escaped as JSON requires, non-ASCII as raw UTF-8.
    func serialized() -> String {
        var bytes: [UInt8] = []
        append(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    private func append(to bytes: inout [UInt8]) {
        switch self {
        case .null: bytes += Array("null".utf8)
        case .bool(let value): bytes += Array((value ? "true" : "false").utf8)
        case .string(let value): Self.appendString(value, to: &bytes)
        case .array(let elements):
            bytes.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                element.append(to: &bytes)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let object):
            bytes.append(UInt8(ascii: "{"))
            for (index, (key, value)) in object.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                Self.appendString(key, to: &bytes)
                bytes.append(UInt8(ascii: ":"))
                value.append(to: &bytes)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    private static func appendString(_ string: String, to bytes: inout [UInt8]) {
        let hexDigits = Array("0123456789abcdef".utf8)
        bytes.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0..<0x20: bytes += Array("\\u00".utf8) + [hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0xF)]]
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    var description: String {
        let text = serialized()
        return text.count > 300 ? String(text.prefix(300)) + "…" : text
    }
}
