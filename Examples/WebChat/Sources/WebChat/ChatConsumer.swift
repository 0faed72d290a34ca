import ChannelsRedis
import HummingbirdWebSocket
import Logging

/// One browser tab's WebSocket: a consumer with its own channel in the room's group, as the Django
/// tutorial's `ChatConsumer` is.
///
/// It speaks the tutorial's protocol. From the browser, `{"message": text}` becomes
/// `groupSend(["type": "chat.message", "message": text, …], to: "chat_<room>")`. Every
/// `chat.message` event of the group goes to the browser as `{"message": …}`; events of other types
/// are ignored. Only `chat.message` events are ever sent: the tutorial's consumer has no handler for
/// anything else and would fail on it.
///
/// The extra fields are the terminal chat's (Examples/Chat/ChatEvent.swift), which a Django consumer
/// ignores: `sender` (the tab's name), `kind` (`message`, `join`, `leave`; the browser also gets
/// `sender` and `kind` when an event has them) and `reply_to` (the tab's channel). A terminal's
/// `/who` (`kind: "who"`) is answered on its `reply_to` channel with `kind: "here"`, as the terminal
/// chat answers it.
struct ChatConsumer: Sendable {
    /// What the layer puts into every local channel when Redis goes away and comes back
    /// (`Configuration.onDisconnect` and `onReconnect`); local only, never published.
    static let disconnectedType = "webchat.redis_disconnected"
    static let reconnectedType = "webchat.redis_reconnected"

    /// The largest message a browser may send (a WebSocket message may span frames).
    static let maximumMessageSize = 64 * 1024

    let layer: RedisPubSubChannelLayer
    let room: RoomName
    /// The name given with `?name=`, or `nil` for one made from the channel's name.
    let requestedName: String?
    let logger: Logger

    /// Runs the consumer until the socket closes (or the layer does).
    ///
    /// The channel lives exactly as long as this call: `withChannel` discards it, and with it the
    /// group membership, however the socket ends.
    func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        do {
            try await layer.withChannel { channel, messages in
                try await layer.groupAdd(room.group, channel: channel)
                let name = requestedName ?? "web-\(channel.suffix(4))"
                var logger = self.logger
                logger[metadataKey: "webchat_channel"] = "\(channel)"
                logger[metadataKey: "webchat_room"] = "\(room)"
                logger.debug("tab joined", metadata: ["webchat_name": "\(name)"])

                let me = Participant(channel: channel, name: name)
                _ = try? await layer.groupSend(Self.event(kind: "join", text: "\(name) joined", from: me), to: room.group)
                do {
                    try await withThrowingTaskGroup(of: Void.self) { tasks in
                        tasks.addTask { try await forwardGroupEvents(messages, to: outbound, for: me) }
                        tasks.addTask { try await forwardBrowserMessages(inbound, to: outbound, from: me) }
                        // Whichever side ends first (usually the browser closing the socket) ends both.
                        try await tasks.next()
                        tasks.cancelAll()
                    }
                } catch {
                    // A socket reset, or the layer closing under us: the tab is gone either way.
                    logger.debug("tab ended", metadata: ["webchat_error": "\(error)"])
                }
                _ = try? await layer.groupSend(Self.event(kind: "leave", text: "\(name) left", from: me), to: room.group)
                logger.debug("tab left")
            }
        } catch {
            // newChannel or groupAdd failed: Redis is down (they wait `sendTimeout`), or the layer is closed.
            logger.warning("could not join the room", metadata: ["webchat_room": "\(room)", "webchat_error": "\(error)"])
            try? await outbound.writeTextMessage(Self.notice("*** cannot join #\(room): \(Self.reason(error))"))
        }
    }

    /// Group events to the browser, until the channel ends or the task is cancelled.
    private func forwardGroupEvents(
        _ messages: ChannelMessageSequence,
        to outbound: WebSocketOutboundWriter,
        for me: Participant
    ) async throws {
        for try await event in messages {
            if event.type == "chat.message", event["kind"]?.stringValue == "who" {
                // A terminal's /who: answer on the asker's channel (type chat.message, as everything sent).
                if let asker = event["reply_to"]?.stringValue, asker != me.channel {
                    let answer: ChannelMessage = [
                        "type": "chat.message", "kind": "here", "sender": .string(me.name), "message": "\(me.name) is here",
                    ]
                    _ = try? await layer.send(answer, to: asker)
                }
                continue
            }
            guard let frame = Self.browserFrame(for: event) else { continue }
            try await outbound.writeTextMessage(frame)
        }
    }

    /// Browser messages to the group, until the socket closes.
    private func forwardBrowserMessages(
        _ inbound: WebSocketInboundStream,
        to outbound: WebSocketOutboundWriter,
        from me: Participant
    ) async throws {
        for try await message in inbound.messages(maxSize: Self.maximumMessageSize) {
            guard case .text(let text) = message else {
                try await outbound.writeTextMessage(Self.notice("*** not sent: send text frames of JSON like {\"message\": \"hi\"}"))
                continue
            }
            guard let chat = Self.chatMessage(fromBrowserFrame: text) else {
                try await outbound.writeTextMessage(Self.notice("*** not sent: send JSON like {\"message\": \"hi\"}"))
                continue
            }
            var event = Self.event(kind: "message", text: "", from: me)
            event["message"] = chat
            do {
                try await layer.groupSend(event, to: room.group)
            } catch {
                // While Redis is down the send waits `sendTimeout`, then lands here; the server keeps running.
                logger.info("message not sent", metadata: ["webchat_room": "\(room)", "webchat_error": "\(error)"])
                try await outbound.writeTextMessage(Self.notice("*** not sent: \(Self.reason(error))"))
            }
        }
    }
}

// MARK: - The wire formats

extension ChatConsumer {
    /// A tab in a room: its channel, and the name it is shown by.
    struct Participant: Sendable {
        let channel: String
        let name: String
    }

    /// A `chat.message` event for the group, in the shape the terminal chat uses.
    static func event(kind: String, text: String, from sender: Participant) -> ChannelMessage {
        [
            "type": "chat.message", "message": .string(text), "sender": .string(sender.name), "kind": .string(kind),
            "reply_to": .string(sender.channel),
        ]
    }

    /// The `message` of a browser frame, `{"message": …}`; `nil` when the frame is not such JSON.
    ///
    /// The value is passed on as it is, as the tutorial's consumer does; browsers send strings.
    static func chatMessage(fromBrowserFrame text: String) -> ChannelMessage? {
        let bytes = Array(text.utf8)
        let frame = try? bytes.withUnsafeBytes { buffer in try JSONSerializer().deserialize(buffer) }
        return frame?["message"]
    }

    /// The browser's frame for a group event: `{"message": text}` plus `sender` and `kind` when the
    /// event has them, or a status line for the layer's connection notices; `nil` for anything else.
    static func browserFrame(for event: ChannelMessage) -> String? {
        switch event.type {
        case "chat.message":
            guard let message = event["message"] else { return nil }
            var frame: ChannelMessage = ["message": .string(message.stringValue ?? jsonText(message))]
            if let sender = event["sender"]?.stringValue { frame["sender"] = .string(sender) }
            if let kind = event["kind"]?.stringValue { frame["kind"] = .string(kind) }
            return jsonText(frame)
        case disconnectedType:
            return notice("*** lost the connection to Redis; reconnecting")
        case reconnectedType:
            return notice("*** reconnected to Redis; messages sent meanwhile were lost")
        default:
            return nil
        }
    }

    /// A line for this tab only: `{"message": text, "kind": "status"}`.
    static func notice(_ text: String) -> String {
        jsonText(["message": .string(text), "kind": "status"])
    }

    /// JSON as Python's `json.dumps` writes it; a value JSON cannot carry (bytes) as its Python repr.
    static func jsonText(_ message: ChannelMessage) -> String {
        guard let bytes = try? JSONSerializer().serialize(message) else { return message.description }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Why a send failed, for the tab.
    static func reason(_ error: any Error) -> String {
        guard let error = error as? ChannelLayerError else { return "\(error)" }
        switch error.code {
        case .timeout, .connectionFailed, .connectionLost: return "Redis is unavailable"
        case .messageTooLarge: return "the message is too large"
        case .layerClosed: return "the server is shutting down"
        default: return error.message
        }
    }
}
