/// A chat room's name, checked so that its group, `chat_<room>`, is a valid Channels group name.
///
/// Django Channels accepts group names of ASCII letters, digits, `-`, `_` and `.`, shorter than
/// 100 characters; a name outside that would make `groupAdd` throw (and Django's consumer
/// crash), so the server answers such a URL with 400 instead.
struct RoomName: Sendable, CustomStringConvertible {
    /// The room as it appears in the URL: `lobby` in `/chat/lobby/`.
    let name: String

    /// The group every consumer of the room joins: `chat_<room>`, as in the Django tutorial.
    var group: String { "chat_\(name)" }

    var description: String { name }

    /// Checks a name taken from a URL path; `nil` when `chat_<name>` is not a valid group name.
    init?(_ name: String?) {
        guard let name, !name.isEmpty, "chat_".utf8.count + name.utf8.count < 100 else { return nil }
        let valid = name.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                true
            case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."):
                true
            default:
                false
            }
        }
        guard valid else { return nil }
        self.name = name
    }
}
