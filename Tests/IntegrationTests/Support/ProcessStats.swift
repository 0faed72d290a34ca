import ChannelsRedisTestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Resource counts of the test process, from `/proc/self`, for leak tests.
///
/// Tests run in parallel in one process, so a count moves with other tests too: compare before and after many iterations
/// with a margin, warm up first (the fixtures' spawn thread and the library's loops start once), and wait for counts to
/// settle with ``eventually(timeout:pollingEvery:_:isolation:sourceLocation:_:)`` rather than once.
///
/// ```swift
/// let before = try ProcessStats.snapshot()
/// for _ in 0..<50 { try await openAndCloseLayer() }
/// try await eventually { try ProcessStats.openFileDescriptorCount() <= before.openFileDescriptors + 4 }
/// ```
enum ProcessStats {
    struct Snapshot: Sendable, Equatable, CustomStringConvertible {
        var openFileDescriptors: Int
        var threads: Int
        var residentBytes: Int

        var description: String {
            "\(openFileDescriptors) open descriptors, \(threads) threads, \(residentBytes / 1024) KiB resident"
        }
    }

    static func snapshot() throws -> Snapshot {
        Snapshot(openFileDescriptors: try openFileDescriptorCount(), threads: try threadCount(), residentBytes: try residentMemoryBytes())
    }

    /// Entries of `/proc/self/fd`, not counting the one used to read it.
    static func openFileDescriptorCount() throws -> Int {
        try openFileDescriptors().count
    }

    /// Each open descriptor and what it refers to (`socket:[1234]`, `pipe:[5678]`, a path): for a leak test's message.
    static func openFileDescriptors() throws -> [Int32: String] {
        guard let directory = opendir("/proc/self/fd") else {
            throw FixtureError.systemCall("opendir(/proc/self/fd)")
        }
        defer { closedir(directory) }
        let own = dirfd(directory)
        var result: [Int32: String] = [:]
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let fd = Int32(name), fd != own else {
                continue
            }
            var target = [CChar](repeating: 0, count: 4096)
            let length = readlink("/proc/self/fd/\(name)", &target, target.count - 1)
            result[fd] = length >= 0 ? String(decoding: target.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
        }
        return result
    }

    /// `Threads:` of `/proc/self/status`.
    static func threadCount() throws -> Int {
        try statusField("Threads")
    }

    /// `VmRSS:` of `/proc/self/status`, in bytes.
    static func residentMemoryBytes() throws -> Int {
        try statusField("VmRSS") * 1024
    }

    /// The number at the start of a `/proc/self/status` field (`VmRSS:   12345 kB` gives 12345).
    private static func statusField(_ name: String) throws -> Int {
        let status = try readProcFile("/proc/self/status")
        for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
            // The value follows a tab and maybe spaces: "VmRSS:\t   12345 kB".
            if let value = line.dropFirst(name.count + 1).split(whereSeparator: \.isWhitespace).first, let number = Int(value) {
                return number
            }
        }
        throw FixtureError(.notFound, "/proc/self/status has no \(name): field")
    }

    /// Reads a `/proc` file to its end (they report a size of 0, so read until EOF).
    private static func readProcFile(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw FixtureError.systemCall("open(\(path))")
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(fd, &chunk, chunk.count)
            if count > 0 {
                bytes += chunk.prefix(count)
            } else if count == 0 {
                return String(decoding: bytes, as: UTF8.self)
            } else if errno != EINTR {
                throw FixtureError.systemCall("read(\(path))")
            }
        }
    }
}
