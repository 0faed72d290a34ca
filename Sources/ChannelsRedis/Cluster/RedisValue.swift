internal import CHiredis

/// A RESP2 reply copied out of hiredis: for the few replies the layer keeps and reads at leisure (the cluster's slot
/// map), never for messages. A Redis error reply is a value (`.error`), as the callers branch on it.
enum RedisValue: Sendable, Hashable {
    case simple(String)
    case error(String)
    case integer(Int)
    /// A bulk string; `nil` is the null bulk string.
    case bulk([UInt8]?)
    /// An array; `nil` is the null array.
    case array([RedisValue]?)

    /// Copies `reply` and everything in it (hiredis frees it when the callback returns).
    init(_ reply: UnsafePointer<redisReply>) {
        switch reply.pointee.type {
        case REDIS_REPLY_STATUS:
            self = .simple(RedisReply.text(reply) ?? "")
        case REDIS_REPLY_ERROR:
            self = .error(RedisReply.text(reply) ?? "")
        case REDIS_REPLY_INTEGER:
            self = .integer(Int(reply.pointee.integer))
        case REDIS_REPLY_STRING:
            self = .bulk(Array(RedisReply.bytes(reply)))
        case REDIS_REPLY_ARRAY:
            var elements: [RedisValue] = []
            elements.reserveCapacity(reply.pointee.elements)
            for index in 0..<reply.pointee.elements {
                guard let element = reply.pointee.element[index] else { continue }
                elements.append(RedisValue(element))
            }
            self = .array(elements)
        default:  // REDIS_REPLY_NIL: hiredis 0.14 has one nil for both null kinds
            self = .bulk(nil)
        }
    }

    /// A simple string, or a bulk string decoded as UTF-8.
    var string: String? {
        switch self {
        case .simple(let text): text
        case .bulk(let bytes?): String(decoding: bytes, as: UTF8.self)
        default: nil
        }
    }

    var integer: Int? {
        if case .integer(let value) = self { value } else { nil }
    }

    var array: [RedisValue]? {
        if case .array(let values?) = self { values } else { nil }
    }

    var errorMessage: String? {
        if case .error(let message) = self { message } else { nil }
    }
}
