import Foundation

/// A file of the test's own in the temporary directory, `<tmp>/<prefix>-<UUID><suffix>`: for handing data to a child
/// process, or for reading what it wrote. Only ``remove()`` removes it.
///
/// ```swift
/// let input = try TemporaryFile("fernet-peer", suffix: ".json", contents: JSONSerialization.data(withJSONObject: requests))
/// defer { input.remove() }
/// let stdout = try await PythonPeer.output(script: "fernet_peer.py", arguments: [input.path])
/// ```
package struct TemporaryFile: Sendable {
    package let path: String

    /// A new path, where nothing is until something writes there.
    package init(_ prefix: String, suffix: String = "") {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)\(suffix)").path
    }

    /// A new file holding `contents`.
    package init(_ prefix: String, suffix: String = "", contents: some Sequence<UInt8>) throws {
        self.init(prefix, suffix: suffix)
        try Data(contents).write(to: URL(fileURLWithPath: path))
    }

    /// The bytes the file holds now.
    package func contents() throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Removes the file, if there is one.
    package func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
