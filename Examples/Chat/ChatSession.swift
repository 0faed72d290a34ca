import ChannelsRedis
import Synchronization

/// One participant in one room, from joining to leaving.
///
/// Four loops run side by side: the room's events in (``receive(_:)``), lines typed out
/// (``read(_:)``), the outbox sending (``Outbox``), and the layer's connection events
/// (``watch(_:)``), which hold the outbox during an outage and say so, once, on the terminal.
final class ChatSession: Sendable {
    /// How long after its own reconnect the chat waits before it sends what it queued during an outage.
    ///
    /// Pub/sub delivers to whoever is subscribed at that moment, so a line sent the instant this
    /// chat is back would miss participants still reconnecting. They retry on the same schedule
    /// (at most ``reconnectBackoff`` apart, ±20 %), so this grace covers them.
    static let queuedLinesGrace: Duration = .seconds(2)
    /// The longest pause between two reconnect attempts (the library's default is 5 s): a chat can
    /// afford to retry twice a second, and it keeps ``queuedLinesGrace`` short.
    static let reconnectBackoff: Duration = .milliseconds(500)
    /// How long `/who` waits for answers.
    static let whoWindow: Duration = .seconds(1)
    /// How long leaving waits for queued lines and the leave notice to reach Redis.
    static let leaveTimeout: Duration = .seconds(6)

    let layer: RedisPubSubChannelLayer
    let room: String
    let group: String
    /// This participant's own channel: a member of ``group``, and where `/who` answers come.
    let channel: String
    let isBot: Bool
    private let terminal: Terminal
    private let outbox = Outbox()
    private let leaveRequests: LeaveRequests
    private let state: Mutex<State>

    private struct State {
        var name: String
        /// Shards whose connection is down; the chat is offline while this is not empty.
        var downShards: Set<Int> = []
        /// The names that answered the `/who` in progress, if one is.
        var whoAnswers: [String]?
    }

    init(
        layer: RedisPubSubChannelLayer,
        room: String,
        name: String,
        channel: String,
        isBot: Bool,
        terminal: Terminal,
        leaveRequests: LeaveRequests
    ) {
        self.layer = layer
        self.room = room
        self.group = ChatNames.group(ofRoom: room)
        self.channel = channel
        self.isBot = isBot
        self.terminal = terminal
        self.leaveRequests = leaveRequests
        self.state = Mutex(State(name: name))
    }

    private var name: String { state.withLock { $0.name } }

    private var isOnline: Bool { state.withLock { $0.downShards.isEmpty } }

    /// Joins the room's group; returns once Redis confirmed the subscription.
    ///
    /// - Throws: What `groupAdd` throws: Redis could not be reached within the send timeout, say.
    func join() async throws {
        try await layer.groupAdd(group, channel: channel)
    }

    /// Announces the join, runs until a leave request, then leaves: sends what is queued and the
    /// leave notice (waiting up to ``leaveTimeout`` for Redis) and returns.
    ///
    /// - Parameters:
    ///   - messages: The messages of ``channel``.
    ///   - events: The layer's connection events, made before ``join()`` so none is missed.
    ///   - input: The lines typed; `nil` for a bot, which reads nothing.
    func run(messages: ChannelMessageSequence, events: AsyncStream<ConnectionEvent>, input: AsyncStream<String>?) async {
        let me = name
        send(.join, text: "\(me) joined")
        if isBot {
            terminal.notice("\(me) (a bot) joined #\(room); it answers every message once")
        } else {
            terminal.notice("you joined #\(room) as \(me); type a line to send it, /help for commands")
        }
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await self.receive(messages) }
            tasks.addTask { await self.watch(events) }
            tasks.addTask {
                await self.outbox.run(
                    send: { try await self.layer.groupSend($0, to: self.group) },
                    failed: { event, error in
                        self.terminal.notice("could not send \"\(event["message"]?.stringValue ?? "")\": \(error.message)")
                    }
                )
            }
            if let input {
                tasks.addTask { await self.read(input) }
            }
            var requests = leaveRequests.requests.makeAsyncIterator()
            _ = await requests.next()
            await leave()
            tasks.cancelAll()
        }
    }

    // MARK: Leaving

    private func leave() async {
        let me = name
        send(.leave, text: "\(me) left")
        outbox.finish()
        let deadline = ContinuousClock.now + Self.leaveTimeout
        while !outbox.isEmpty && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if !outbox.isEmpty {
            let unsent = outbox.abandon()
            let lost =
                switch unsent {
                case 1: "the leave notice was"
                case 2: "the queued line and the leave notice were"
                default: "the \(unsent - 1) queued lines and the leave notice were"
                }
            terminal.notice("Redis is still unreachable: \(lost) not sent")
            // A send may still wait for Redis; closing ends it at once instead of after its timeout.
            await layer.close()
        }
        terminal.notice("you left #\(room)")
    }

    // MARK: Typing

    private func read(_ input: AsyncStream<String>) async {
        for await line in input {
            if await handle(line: line) == .leave {
                leaveRequests.request(.quitCommand)
                return
            }
        }
        leaveRequests.request(.endOfInput)
    }

    private enum LineOutcome {
        case stay, leave
    }

    private func handle(line: String) async -> LineOutcome {
        guard line.hasPrefix("/"), !line.hasPrefix("//") else {
            let text = line.hasPrefix("//") ? String(line.dropFirst()) : line
            if !text.isEmpty { send(.message, text: text) }
            return .stay
        }
        let parts = line.dropFirst().split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        let argument = parts.count > 1 ? String(parts[1]).trimmingSpaces() : ""
        switch parts.first.map(String.init) ?? "" {
        case "quit":
            return .leave
        case "nick":
            rename(to: argument)
        case "who":
            askWho()
        case "help":
            terminal.notice("/nick NEW: change your name   /who: list who is here   /quit: leave (so do Ctrl-C and Ctrl-D)")
            terminal.notice("a line starting with / is a command; start it with // to send it as text")
        default:
            terminal.notice("unknown command \(line.split(separator: " ").first ?? ""); /help lists the commands")
        }
        return .stay
    }

    private func rename(to newName: String) {
        if let problem = ChatNames.problem(withName: newName) {
            terminal.notice("cannot rename: \(problem) (usage: /nick NEW)")
            return
        }
        let oldName = state.withLock { state in
            defer { state.name = newName }
            return state.name
        }
        guard oldName != newName else {
            terminal.notice("you are already \(newName)")
            return
        }
        send(.nick, text: "\(oldName) is now known as \(newName)")
        terminal.notice("\(oldName) is now known as \(newName)")
    }

    /// Asks the room who is here: each other participant answers on this chat's own channel, and
    /// after ``whoWindow`` the names that answered are shown, with this participant's own first.
    private func askWho() {
        guard isOnline else {
            terminal.notice("Redis is unreachable; try /who again once the connection is back")
            return
        }
        let started = state.withLock { state in
            guard state.whoAnswers == nil else { return false }
            state.whoAnswers = []
            return true
        }
        guard started else {
            terminal.notice("still waiting for the answers to the last /who")
            return
        }
        let me = name
        // Its own task, so that lines typed in the meantime go out at once.
        Task {
            let request = ChatEvent(.who, sender: me, text: "\(me) asked who is here", replyTo: channel)
            do {
                try await layer.groupSend(request.message, to: group)
                try? await Task.sleep(for: Self.whoWindow)
            } catch let error as ChannelLayerError where error.code == .layerClosed {
                return  // left meanwhile
            } catch {
                terminal.notice("could not ask who is here: \((error as? ChannelLayerError)?.message ?? "\(error)")")
            }
            let answers = state.withLock { state in
                defer { state.whoAnswers = nil }
                return state.whoAnswers ?? []
            }
            let names = ["\(name) (you)"] + answers.sorted()
            terminal.notice("\(names.count) here in #\(room): \(names.joined(separator: ", "))")
        }
    }

    private func send(_ kind: ChatEvent.Kind, text: String, fromBot: Bool = false) {
        outbox.enqueue(ChatEvent(kind, sender: name, text: text, replyTo: channel, fromBot: fromBot).message)
    }

    // MARK: The room

    private func receive(_ messages: ChannelMessageSequence) async {
        do {
            for try await message in messages {
                await handle(message)
            }
        } catch let error where error.code == .layerClosed || error.code == .channelClosed {
            // Leaving.
        } catch {
            terminal.notice("stopped receiving: \(error.message)")
        }
    }

    private func handle(_ message: ChannelMessage) async {
        // Other types cannot come from a chat or the tutorial's page; whatever sent them, skip them.
        guard let event = ChatEvent(message) else { return }
        // The echo of an event of ours: the terminal showed it when it was made.
        if event.replyTo == channel, event.kind != .here { return }
        switch event.kind {
        case .join, .leave, .nick:
            terminal.notice(event.text)
        case .who:
            guard let asker = event.replyTo else { return }
            let me = name
            let answer = ChatEvent(.here, sender: me, text: "\(me) is here")
            _ = try? await layer.send(answer.message, to: asker)
        case .here:
            guard let sender = event.sender else { return }
            state.withLock { state in state.whoAnswers?.append(sender) }
        case .message:
            terminal.message(from: event.sender ?? ChatEvent.webSender, event.text)
            if isBot, !event.fromBot {
                send(.message, text: "I heard \"\(event.text)\"", fromBot: true)
            }
        }
    }

    // MARK: Redis

    private func watch(_ events: AsyncStream<ConnectionEvent>) async {
        for await event in events {
            switch event {
            case .disconnected(let shard, _):
                let wasOnline = state.withLock { state in
                    defer { state.downShards.insert(shard) }
                    return state.downShards.isEmpty
                }
                guard wasOnline else { continue }
                outbox.setOnline(false)
                terminal.notice("connection to Redis lost; reconnecting… (lines you type are queued and sent once it is back)")
            case .reconnected(let shard):
                let backOnline = state.withLock { state in
                    state.downShards.remove(shard) != nil && state.downShards.isEmpty
                }
                guard backOnline else { continue }
                let queued = outbox.count
                let sending = queued == 0 ? "" : queued == 1 ? "; sending the queued line" : "; sending the \(queued) queued lines"
                terminal.notice("connection to Redis is back\(sending); messages sent by others meanwhile were missed")
                try? await Task.sleep(for: Self.queuedLinesGrace)
                // Still online? A new outage during the grace keeps the outbox held.
                if isOnline { outbox.setOnline(true) }
            }
        }
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
