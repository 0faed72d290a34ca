import ChannelsRedis

/// The chat's wire format: the Django Channels tutorial's, with extra fields that ride along.
///
/// Every event sent to the room's group is `{"type": "chat.message", "message": <text>}`, because the
/// tutorial's `ChatConsumer` has only a `chat_message` handler and would crash on any other type.
/// The extra fields a Django consumer ignores:
///
/// - `sender`: the participant's name.
/// - `kind`: `message` (what someone typed), `join`, `leave`, `nick` (a rename) or `who` (a request to
///   answer `/who`). For all but `message`, `message` is a sentence for people ("alice joined"), so a
///   Django tab shows something sensible.
/// - `reply_to`: the sender's own channel. `/who` answers go there, and it is how a chat recognises
///   (and skips) the echo of its own events.
/// - `bot`: `true` on a `--bot`'s answers, so that two bots never answer each other forever.
///
/// A `/who` answer goes to the asker's channel only: `{"type": "chat.message", "kind": "here",
/// "sender": <name>, "message": "<name> is here"}`.
///
/// Incoming events are read leniently: what Django sends (`{"type": "chat.message", "message": text}`,
/// no `kind`, no `sender`) is a plain message from ``ChatEvent/webSender``; an unknown `kind` is shown
/// as a message too; a `message` that is not a string is shown as its description; any other `type`
/// is ignored.
struct ChatEvent: Sendable {
    /// The only `type` the chat sends and reads.
    static let type = "chat.message"
    /// How a message with no `sender` (one from the Django tutorial's page) is shown.
    static let webSender = "(web)"

    /// What an event is about.
    enum Kind: String, Sendable {
        case message, join, leave, nick, who, here
    }

    /// The `kind` field; an absent or unknown one reads as ``Kind/message``.
    var kind: Kind
    /// The `sender` field, if it is a string.
    var sender: String?
    /// The `message` field as text: the string itself, or the description of any other value.
    var text: String
    /// The `reply_to` field, if it is a string.
    var replyTo: String?
    /// Whether the `bot` field is `true`.
    var fromBot: Bool

    /// An event to send.
    init(_ kind: Kind, sender: String, text: String, replyTo: String? = nil, fromBot: Bool = false) {
        self.kind = kind
        self.sender = sender
        self.text = text
        self.replyTo = replyTo
        self.fromBot = fromBot
    }

    /// Reads a received message; `nil` for anything but a map of type `chat.message`.
    init?(_ message: ChannelMessage) {
        guard message.mapValue != nil, message.type == Self.type else { return nil }
        kind = message["kind"]?.stringValue.flatMap(Kind.init(rawValue:)) ?? .message
        sender = message["sender"]?.stringValue
        switch message["message"] {
        case .string(let text)?: self.text = text
        case let other?: self.text = other.description
        case nil: self.text = "(no \"message\" field)"
        }
        replyTo = message["reply_to"]?.stringValue
        fromBot = message["bot"]?.boolValue ?? false
    }

    /// The event as it goes on the wire.
    var message: ChannelMessage {
        var message: ChannelMessage = ["type": .string(Self.type), "message": .string(text), "kind": .string(kind.rawValue)]
        if let sender { message["sender"] = .string(sender) }
        if let replyTo { message["reply_to"] = .string(replyTo) }
        if fromBot { message["bot"] = true }
        return message
    }
}
