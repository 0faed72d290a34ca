import ChannelsRedis
import ChannelsRedisTestSupport
import Foundation
import Testing

// Interop with the real Python channels_redis 4.3.0 (issue 4): a Swift layer and a Python
// `channels_redis.pubsub.RedisPubSubChannelLayer` share one Redis (or three) and talk both ways.
//
// The Python side is `Tests/Python/peer.py`, a long-running process driven over stdin/stdout with one JSON command per
// line (``InteropPeer``). Messages cross that pipe in a tagged form (ints as decimal strings, floats as their IEEE bits,
// bytes as base64, maps as ordered pairs: ``PeerJSON``), so every value is compared exactly (``expectExact``): key order,
// string bytes (no Unicode normalisation), float bits, int vs uint. A missing venv or redis-server fails the tests;
// nothing is skipped. The fixtures (``withInterop``, the setups, the message corpora) are in Support/.

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
            let inbox = try await MessageCollector(env.layer, channel: channel)
            defer { inbox.cancel() }
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
                let inbox = try await MessageCollector(env.layer, channel: channel)
                defer { inbox.cancel() }
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

/// A byte of URL-safe base64 or its padding, the alphabet of Fernet tokens.
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
