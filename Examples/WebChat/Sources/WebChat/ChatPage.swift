import ChannelsRedis
import Hummingbird

/// The two HTML pages: the lobby (`/`, the tutorial's index.html) and a room (`/chat/<room>/`, the
/// tutorial's room.html).
///
/// The room page keeps the Django tutorial's element ids (`#chat-log`, `#chat-message-input`,
/// `#chat-message-submit`) and its script's behaviour: it opens `ws://<host>/ws/chat/<room>/`,
/// sends `{"message": text}` on Send or Enter, and appends each frame's `message` to the log. So
/// this page works against the Django tutorial's server, and the tutorial's page against this one.
/// What it adds is cosmetic: a style sheet, a `sender: ` prefix when a frame names a sender the
/// text does not already start with, `?name=` passed on to the socket, and a line when the socket
/// closes.
struct ChatPage: ResponseGenerator {
    let html: String

    func response(from request: Request, context: some RequestContext) throws -> Response {
        Response(
            status: .ok,
            headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: html))
        )
    }

    /// The lobby: asks for a room and goes to `/chat/<room>/`.
    static let lobby = ChatPage(
        html: """
            <!DOCTYPE html>
            <html>
            <head>
                <meta charset="utf-8"/>
                <title>Chat Rooms</title>
            \(style)
            </head>
            <body>
                <h1>ChannelsRedis WebChat</h1>
                What chat room would you like to enter?<br>
                <input id="room-name-input" type="text" size="100"><br>
                <input id="room-name-submit" type="button" value="Enter">

                <script>
                    document.querySelector('#room-name-input').focus();
                    document.querySelector('#room-name-input').onkeyup = function(e) {
                        if (e.key === 'Enter') {  // enter, return
                            document.querySelector('#room-name-submit').click();
                        }
                    };

                    document.querySelector('#room-name-submit').onclick = function(e) {
                        var roomName = document.querySelector('#room-name-input').value;
                        window.location.pathname = '/chat/' + roomName + '/';
                    };
                </script>
            </body>
            </html>

            """
    )

    /// A room's page.
    static func room(_ room: RoomName) -> ChatPage {
        // A valid room name is letters, digits, '-', '_' and '.', so it needs no HTML escaping; the
        // JSON form goes into a <script type="application/json">, as Django's json_script does.
        let roomJSON = String(decoding: (try? JSONSerializer().serialize(.string(room.name))) ?? [], as: UTF8.self)
        return ChatPage(
            html: """
                <!DOCTYPE html>
                <html>
                <head>
                    <meta charset="utf-8"/>
                    <title>Chat Room #\(room.name)</title>
                \(style)
                </head>
                <body>
                    <h1>#\(room.name)</h1>
                    <textarea id="chat-log" cols="100" rows="20" readonly></textarea><br>
                    <input id="chat-message-input" type="text" size="100" autocomplete="off"><br>
                    <input id="chat-message-submit" type="button" value="Send">
                    <p class="hint">Group <code>\(room.group)</code> on ChannelsRedis: Django Channels consumers and the terminal chat in this room see what you say.</p>
                    <script id="room-name" type="application/json">\(roomJSON)</script>
                    <script>
                        const roomName = JSON.parse(document.getElementById('room-name').textContent);
                        const chatLog = document.querySelector('#chat-log');

                        const chatSocket = new WebSocket(
                            (window.location.protocol === 'https:' ? 'wss://' : 'ws://')
                            + window.location.host
                            + '/ws/chat/'
                            + roomName
                            + '/'
                            + window.location.search
                        );

                        // "sender: text" when the frame names a sender that the text does not already start with.
                        function line(data) {
                            const text = (typeof data.message === 'string') ? data.message : JSON.stringify(data.message);
                            if (typeof data.sender === 'string' && (data.kind === undefined || data.kind === 'message')
                                && !text.startsWith(data.sender + ': ')) {
                                return data.sender + ': ' + text;
                            }
                            return text;
                        }

                        chatSocket.onmessage = function(e) {
                            const data = JSON.parse(e.data);
                            chatLog.value += (line(data) + '\\n');
                            chatLog.scrollTop = chatLog.scrollHeight;
                        };

                        chatSocket.onclose = function(e) {
                            console.error('Chat socket closed unexpectedly');
                            chatLog.value += '*** disconnected from the server\\n';
                        };

                        document.querySelector('#chat-message-input').focus();
                        document.querySelector('#chat-message-input').onkeyup = function(e) {
                            if (e.key === 'Enter') {  // enter, return
                                document.querySelector('#chat-message-submit').click();
                            }
                        };

                        document.querySelector('#chat-message-submit').onclick = function(e) {
                            const messageInputDom = document.querySelector('#chat-message-input');
                            const message = messageInputDom.value;
                            chatSocket.send(JSON.stringify({
                                'message': message
                            }));
                            messageInputDom.value = '';
                        };
                    </script>
                </body>
                </html>

                """
        )
    }

    private static let style = """
            <style>
                body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
                h1 { font-size: 1.3em; margin: 0 0 0.6em; }
                textarea, input[type=text] { font: 14px ui-monospace, monospace; max-width: 100%; }
                textarea { background: #fff; border: 1px solid #bbb; padding: 0.4em; }
                input[type=button] { margin-top: 0.4em; padding: 0.3em 1.2em; }
                .hint { color: #666; font-size: 0.85em; }
            </style>
        """
}
