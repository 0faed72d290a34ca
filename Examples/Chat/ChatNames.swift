/// What a room and a participant may be called.
///
/// A room becomes the Channels group `chat_<room>`, so it must pass the group-name rules that
/// Django Channels enforces (`^[a-zA-Z0-9\-_.]+$`, fewer than 100 characters): the library would
/// throw `invalidName` at `groupAdd`, but the chat checks first, before it connects, and says
/// which rule a name broke in the words of the command line.
enum ChatNames {
    /// What every room's group name starts with, as in the Django Channels tutorial.
    static let groupPrefix = "chat_"
    /// The longest room: `chat_` plus the room must stay under Channels' 100 characters.
    static let maximumRoomLength = 99 - groupPrefix.count
    /// The longest participant name; long enough for "firstname.lastname", short enough for a line prefix.
    static let maximumNameLength = 32

    /// The Channels group of a room.
    static func group(ofRoom room: String) -> String {
        groupPrefix + room
    }

    /// Why `room` cannot be used, or `nil` when it can.
    static func problem(withRoom room: String) -> String? {
        if room.isEmpty {
            return "the room must not be empty"
        }
        if let bad = room.unicodeScalars.first(where: { !isGroupNameScalar($0) }) {
            return "the room '\(shown(room))' contains \(describe(bad)): the Channels group '\(groupPrefix)<room>' may contain "
                + "only ASCII letters, digits, '-', '_' and '.'"
        }
        if room.unicodeScalars.count > maximumRoomLength {
            return "the room is \(room.unicodeScalars.count) characters long; at most \(maximumRoomLength) fit in a Channels "
                + "group name ('\(groupPrefix)<room>' must be under 100 characters)"
        }
        return nil
    }

    /// Why `name` cannot be used as a participant's name, or `nil` when it can.
    ///
    /// A name is shown at the start of every line its owner sends, so it must be non-empty, printable
    /// (no newline, tab or other control character), without spaces around it, and short.
    static func problem(withName name: String) -> String? {
        if name.isEmpty {
            return "the name must not be empty"
        }
        if let bad = name.unicodeScalars.first(where: isControl) {
            return "the name '\(shown(name))' contains \(describe(bad)); names are one line of printable text"
        }
        if name.first!.isWhitespace || name.last!.isWhitespace {
            return "the name '\(name)' must not start or end with a space"
        }
        if name.count > maximumNameLength {
            return "the name is \(name.count) characters long; at most \(maximumNameLength) are allowed"
        }
        return nil
    }

    /// `[a-zA-Z0-9\-_.]`, the characters of a Channels group name.
    private static func isGroupNameScalar(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", "-", "_", ".": true
        default: false
        }
    }

    /// Control characters, and the Unicode line and paragraph separators, which would break a line.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.generalCategory == .control || scalar == "\u{2028}" || scalar == "\u{2029}"
    }

    /// `text` with control characters escaped, so an error message stays on one line.
    static func shown(_ text: String) -> String {
        var result = ""
        for scalar in text.unicodeScalars {
            result += isControl(scalar) ? scalar.escaped(asASCII: true) : String(scalar)
        }
        return result
    }

    /// `' ' (U+0020)`.
    private static func describe(_ scalar: Unicode.Scalar) -> String {
        let hex = String(scalar.value, radix: 16, uppercase: true)
        let code = String(repeating: "0", count: max(0, 4 - hex.count)) + hex
        return "'\(scalar.escaped(asASCII: false))' (U+\(code))"
    }
}
