import Foundation

/// Runs the reference Python implementation (channels_redis 4.3.0, msgpack, cryptography) for cross-checks.
///
/// The interpreter is the package's own virtual environment, `<package root>/.venv/bin/python3`, which
/// `bash .ci/test` creates. Without it the cross-checks fail (they never skip): compatibility with Python is
/// the point of this library.
enum PythonPeer {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// The result of running a script.
    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// The package root, found from this file's location (`<root>/Tests/ChannelsRedisTests/PythonPeer.swift`).
    static func packageRoot(filePath: String = #filePath) -> URL {
        URL(fileURLWithPath: filePath)
            .deletingLastPathComponent()  // ChannelsRedisTests
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()  // root
    }

    /// The path of the virtual environment's interpreter.
    ///
    /// - Throws: ``Failure`` naming the fix when `.venv` has not been created.
    static func python() throws -> String {
        let path = packageRoot().appendingPathComponent(".venv/bin/python3").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw Failure(
                description: "no Python at \(path): run `bash .ci/test` once to create .venv with channels-redis 4.3.0"
            )
        }
        return path
    }

    /// The path of a helper script in `Tests/ChannelsRedisTests/Python/`.
    static func script(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Python/\(name)").path
    }

    /// Runs `script` (a file name in `Tests/ChannelsRedisTests/Python/`) with `arguments` and waits for it.
    ///
    /// Output goes through temporary files rather than pipes, so a chatty script cannot deadlock the test.
    static func run(script name: String, arguments: [String]) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try python())
        process.arguments = [script(name)] + arguments
        let directory = FileManager.default.temporaryDirectory
        let stdoutURL = directory.appendingPathComponent("python-peer-\(UUID().uuidString).out")
        let stderrURL = directory.appendingPathComponent("python-peer-\(UUID().uuidString).err")
        guard FileManager.default.createFile(atPath: stdoutURL.path, contents: nil),
            FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        else {
            throw Failure(description: "cannot create output files in \(directory.path)")
        }
        defer {
            try? FileManager.default.removeItem(at: stdoutURL)
            try? FileManager.default.removeItem(at: stderrURL)
        }
        let stdoutHandle = try FileHandle(forWritingTo: stdoutURL)
        let stderrHandle = try FileHandle(forWritingTo: stderrURL)
        process.standardOutput = stdoutHandle
        process.standardError = stderrHandle
        try process.run()
        process.waitUntilExit()
        try stdoutHandle.close()
        try stderrHandle.close()
        return Output(
            status: process.terminationStatus,
            stdout: String(decoding: try Data(contentsOf: stdoutURL), as: UTF8.self),
            stderr: String(decoding: try Data(contentsOf: stderrURL), as: UTF8.self)
        )
    }
}
