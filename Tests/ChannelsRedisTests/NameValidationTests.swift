import Testing

@testable import ChannelsRedis

@Suite struct NameValidationTests {
    static let rule = "only ASCII alphanumerics, hyphens, underscores, or periods"
    static let channelRule = "\(rule) (and one '!' before a process-local suffix) are allowed"
    static let groupRule = "\(rule) are allowed"

    @Test(arguments: [
        "a", "asgispecific.3f2a9c7e5b1d4e8f9a0b1c2d3e4f5a6b", "chat_lobby", "A-Z.a_z-0.9", "...", "-", "worker!",
        "worker!abc-._XYZ09", "a!b.c", String(repeating: "x", count: 99), "a!" + String(repeating: "y", count: 97),
    ])
    func acceptsValidChannelNames(name: String) throws {
        try NameValidation.validateChannel(name)
    }

    @Test(arguments: ["a", "chat_lobby", "asgi__group__chat", "A-Z.a_z-0.9", String(repeating: "g", count: 99)])
    func acceptsValidGroupNames(name: String) throws {
        try NameValidation.validateGroup(name)
    }

    @Test func rejectsEmptyNames() {
        expectInvalid("Invalid channel name '': must not be empty") { try NameValidation.validateChannel("") }
        expectInvalid("Invalid group name '': must not be empty") { try NameValidation.validateGroup("") }
    }

    @Test func rejectsNamesOfOneHundredCharactersOrMore() {
        let hundred = String(repeating: "x", count: 100)
        let quoted = String(repeating: "x", count: 60) + "…"
        expectInvalid("Invalid channel name '\(quoted)': must be less than 100 characters (it has 100)") {
            try NameValidation.validateChannel(hundred)
        }
        expectInvalid("Invalid group name '\(quoted)': must be less than 100 characters (it has 150)") {
            try NameValidation.validateGroup(String(repeating: "x", count: 150))
        }
    }

    /// Length is counted in code points, as Python's `len` counts it: 50 two-byte characters are not too long (but
    /// are not ASCII either), 100 of them are.
    @Test func countsLengthInCharactersNotBytes() {
        let fifty = String(repeating: "é", count: 50)
        expectInvalid("Invalid channel name '\(fifty)': \(Self.channelRule); found 'é' (U+00E9)") {
            try NameValidation.validateChannel(fifty)
        }
        let hundred = String(repeating: "é", count: 100)
        let error = expectInvalid(nil) { try NameValidation.validateChannel(hundred) }
        #expect(error?.message.hasSuffix("must be less than 100 characters (it has 100)") == true)
    }

    @Test func rejectsCharactersOutsideTheChannelAlphabet() {
        let cases: [(name: String, found: String)] = [
            ("a b", "' ' (U+0020)"),
            ("chat/room", "'/' (U+002F)"),
            ("chat:room", "':' (U+003A)"),
            ("chat*", "'*' (U+002A)"),
            ("naïve", "'ï' (U+00EF)"),
            ("a!é", "'é' (U+00E9)"),  // Python's Unicode \w would allow this one; the spec does not.
            ("rocket🚀", "'🚀' (U+1F680)"),
            ("a!b c", "' ' (U+0020)"),
        ]
        for (name, found) in cases {
            expectInvalid("Invalid channel name '\(name)': \(Self.channelRule); found \(found)") {
                try NameValidation.validateChannel(name)
            }
        }
    }

    /// Python's `$` matches before a trailing newline, so Channels accepts `"chat\n"`; the spec does not.
    @Test func rejectsATrailingNewlineAndEscapesItInTheMessage() {
        expectInvalid(#"Invalid channel name 'chat\n': \#(Self.channelRule); found '\n' (U+000A)"#) {
            try NameValidation.validateChannel("chat\n")
        }
        expectInvalid(#"Invalid group name 'it\'s': \#(Self.groupRule); found '\'' (U+0027)"#) {
            try NameValidation.validateGroup("it's")
        }
    }

    @Test func rejectsMisplacedExclamationMarks() {
        expectInvalid("Invalid channel name '!local': the '!' of a process-local name must follow at least one character") {
            try NameValidation.validateChannel("!local")
        }
        expectInvalid("Invalid channel name '!': the '!' of a process-local name must follow at least one character") {
            try NameValidation.validateChannel("!")
        }
        expectInvalid("Invalid channel name 'a!b!c': only one '!' is allowed") { try NameValidation.validateChannel("a!b!c") }
        expectInvalid("Invalid channel name 'a!!': only one '!' is allowed") { try NameValidation.validateChannel("a!!") }
    }

    @Test func rejectsExclamationMarksInGroups() {
        expectInvalid("Invalid group name 'chat!x': \(Self.groupRule); found '!' (U+0021)") { try NameValidation.validateGroup("chat!x") }
        expectInvalid("Invalid group name 'a b': \(Self.groupRule); found ' ' (U+0020)") { try NameValidation.validateGroup("a b") }
    }

    @Test func truncatesLongNamesInMessages() {
        let name = String(repeating: "ab", count: 40) + " "
        let error = expectInvalid(nil) { try NameValidation.validateChannel(name) }
        #expect(error?.message == "Invalid channel name '\(String(repeating: "ab", count: 30))…': \(Self.channelRule); found ' ' (U+0020)")
    }

    /// The byte loop against the spec's regular expressions, on random short strings over an alphabet that hits every
    /// rule.
    @Test func agreesWithTheSpecRegularExpressions() throws {
        let channelPattern = try Regex(#"[a-zA-Z0-9\-_.]+(![a-zA-Z0-9\-_.]*)?"#)
        let groupPattern = try Regex(#"[a-zA-Z0-9\-_.]+"#)
        let alphabet: [Character] = ["a", "Z", "0", "9", "-", "_", ".", "!", " ", "é", "/", "\n", "~"]
        var state: UInt64 = 0x1234_5678
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state >> 33)
        }
        for _ in 0..<3000 {
            let name = String((0..<(next() % 8)).map { _ in alphabet[next() % alphabet.count] })
            let channelValid = (try? NameValidation.validateChannel(name)) != nil
            let groupValid = (try? NameValidation.validateGroup(name)) != nil
            #expect(channelValid == (name.wholeMatch(of: channelPattern) != nil), "\(name.debugDescription)")
            #expect(groupValid == (name.wholeMatch(of: groupPattern) != nil), "\(name.debugDescription)")
        }
    }
}

/// Expects `.invalidName`, and the exact message unless `message` is nil; returns the error for further checks.
@discardableResult
private func expectInvalid(
    _ message: String?,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) -> ChannelLayerError? {
    do {
        try body()
        Issue.record("expected an invalidName error", sourceLocation: sourceLocation)
        return nil
    } catch let error as ChannelLayerError {
        #expect(error.code == .invalidName, sourceLocation: sourceLocation)
        if let message { #expect(error.message == message, sourceLocation: sourceLocation) }
        return error
    } catch {
        Issue.record("expected a ChannelLayerError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
