#if canImport(FoundationEssentials)
    import FoundationEssentials
#elseif canImport(Foundation)
    import Foundation
#endif

/// ISO 8601 timestamps the way Django writes them and Python reads them, without a `DateFormatter`.
///
/// Hand-written rather than `ISO8601DateFormatter`: that class is not `Sendable`, costs a calendar and time-zone
/// lookup per call, and writes neither Django's "milliseconds only when there are microseconds" rule nor reads
/// Python's variants (`' '` separator, `+0530`). This is pure integer arithmetic on a UTF-8 buffer.
enum ISO8601Timestamp {
    /// Why a string is not a timestamp, for ``ChannelLayerError`` messages.
    struct Invalid: Error {
        var reason: String
    }

    /// Seconds from 1970-01-01 (Unix) to 2001-01-01 (`Date`'s reference date).
    static let unixToReference: Int64 = 978_307_200

    /// Unix seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: Python's `datetime.min` and `datetime.max`.
    static let unixRange: ClosedRange<Int64> = -62_135_596_800...253_402_300_799

    // MARK: Formatting

    /// The text Django's `DjangoJSONEncoder` writes for the same instant as an aware UTC `datetime`.
    ///
    /// That is `datetime.isoformat()` with the microseconds cut to milliseconds and `+00:00` written `Z`:
    /// `2026-12-01T19:33:57.123Z`, or `2026-12-01T19:33:57Z` when the microseconds are zero (`isoformat()` leaves
    /// them out then). The date is first rounded to the microsecond, as `datetime.fromtimestamp` does, so that
    /// `.123` stored as the nearest `Double` below it still writes `.123`.
    ///
    /// - Returns: `nil` when the date is not finite or falls outside years 1...9999, which Python cannot hold.
    static func format(_ date: Date) -> String? {
        let interval = date.timeIntervalSinceReferenceDate
        // Anything beyond about ±3e11 s is outside Python's range anyway; the bound keeps Int64 conversion safe.
        guard interval.isFinite, abs(interval) < 1e13 else { return nil }
        let whole = interval.rounded(.down)
        let fraction = interval - whole  // Exact, but for a tiny negative interval, where it rounds to 1: see the carry.
        var micros: Int64
        let milliseconds = (fraction * 1000).rounded()
        if milliseconds < 1000, abs(whole + milliseconds / 1000 - interval) <= interval.ulp {
            // Within one ulp of a whole millisecond, it is that millisecond. Near 2001 this is what rounding to the
            // microsecond gives anyway; centuries away, where a Double is coarser than a microsecond, it keeps a
            // date read from `.123` writing `.123` rather than `.122`.
            micros = Int64(milliseconds) * 1000
        } else {
            micros = Int64((fraction * 1_000_000).rounded(.toNearestOrEven))
        }
        var seconds = Int64(whole) + unixToReference
        if micros == 1_000_000 {
            micros = 0
            seconds += 1
        }
        guard unixRange.contains(seconds) else { return nil }

        let days = floorDivide(seconds, 86_400)
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = civil(fromDays: days)

        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        appendDigits(year, count: 4, to: &bytes)
        bytes.append(UInt8(ascii: "-"))
        appendDigits(month, count: 2, to: &bytes)
        bytes.append(UInt8(ascii: "-"))
        appendDigits(day, count: 2, to: &bytes)
        bytes.append(UInt8(ascii: "T"))
        appendDigits(secondOfDay / 3600, count: 2, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        appendDigits(secondOfDay / 60 % 60, count: 2, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        appendDigits(secondOfDay % 60, count: 2, to: &bytes)
        if micros != 0 {
            // Django: `r[:23] + r[26:]`, which keeps milliseconds even when they are `.000`.
            bytes.append(UInt8(ascii: "."))
            appendDigits(micros / 1000, count: 3, to: &bytes)
        }
        bytes.append(UInt8(ascii: "Z"))
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func appendDigits(_ value: Int64, count: Int, to bytes: inout [UInt8]) {
        var divisor: Int64 = 1
        for _ in 1..<count { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8(rest / divisor))
            rest %= divisor
            divisor /= 10
        }
    }

    // MARK: Parsing

    /// Reads an ISO 8601 / RFC 3339 timestamp with a UTC offset.
    ///
    /// Accepts what Python's `datetime.isoformat()` (and `str(datetime)`), Django, JavaScript's `toISOString()`
    /// and `strftime("%Y-%m-%dT%H:%M:%S%z")` write: `YYYY-MM-DD`, then `T`, `t` or a space, `HH:MM:SS`, an
    /// optional fraction of any length after `.` or `,` (nanoseconds are kept, further digits dropped, as Python
    /// drops digits past microseconds), then `Z`, `z`, `±HH:MM`, `±HHMM` or `±HH:MM:SS`. A timestamp without an
    /// offset (a naive `datetime`) is rejected: it names no instant. Seconds run 0...59, as in Python.
    static func parse(_ text: String) throws(Invalid) -> Date {
        var text = text
        let result = text.withUTF8 { parse(utf8: $0) }
        switch result {
        case .success(let date):
            return date
        case .failure(let failure):
            let shown = text.count <= 64 ? text : String(text.prefix(64)) + "…"
            throw Invalid(reason: "'\(shown)' is not an ISO 8601 date: \(failure.reason)")
        }
    }

    private static let shape = "expected YYYY-MM-DDTHH:MM:SS[.fraction] then Z or ±HH:MM"

    private static func parse(utf8 bytes: UnsafeBufferPointer<UInt8>) -> Result<Date, Invalid> {
        var position = 0

        func digits(_ count: Int) -> Int64? {
            guard bytes.count - position >= count else { return nil }
            var value: Int64 = 0
            for _ in 0..<count {
                let digit = bytes[position] &- UInt8(ascii: "0")
                guard digit < 10 else { return nil }
                value = value * 10 + Int64(digit)
                position += 1
            }
            return value
        }

        /// Consumes one byte equal to `a`, `b` or `c`.
        func skip(_ a: UInt8, _ b: UInt8? = nil, _ c: UInt8? = nil) -> Bool {
            guard position < bytes.count else { return false }
            let byte = bytes[position]
            guard byte == a || byte == b || byte == c else { return false }
            position += 1
            return true
        }

        guard let year = digits(4), skip(UInt8(ascii: "-")), let month = digits(2), skip(UInt8(ascii: "-")),
            let day = digits(2)
        else { return .failure(Invalid(reason: shape)) }
        guard skip(UInt8(ascii: "T"), UInt8(ascii: "t"), UInt8(ascii: " ")) else {
            return .failure(Invalid(reason: position == bytes.count ? "no time of day" : shape))
        }
        guard let hour = digits(2), skip(UInt8(ascii: ":")), let minute = digits(2), skip(UInt8(ascii: ":")),
            let second = digits(2)
        else { return .failure(Invalid(reason: shape)) }

        var nanos: Int64 = 0
        if skip(UInt8(ascii: "."), UInt8(ascii: ",")) {
            var count = 0
            while position < bytes.count, case let digit = bytes[position] &- UInt8(ascii: "0"), digit < 10 {
                if count < 9 { nanos = nanos * 10 + Int64(digit) }
                count += 1
                position += 1
            }
            guard count > 0 else { return .failure(Invalid(reason: "no digits after the decimal point")) }
            for _ in count..<max(count, 9) { nanos *= 10 }
        }

        guard position < bytes.count else {
            return .failure(Invalid(reason: "no UTC offset: a naive datetime names no instant; write Z or ±HH:MM"))
        }
        var offset: Int64 = 0
        if skip(UInt8(ascii: "Z"), UInt8(ascii: "z")) {
            offset = 0
        } else if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
            let sign: Int64 = bytes[position] == UInt8(ascii: "-") ? -1 : 1
            position += 1
            guard let offsetHours = digits(2) else { return .failure(Invalid(reason: "malformed UTC offset")) }
            var offsetMinutes: Int64 = 0
            var offsetSeconds: Int64 = 0
            if skip(UInt8(ascii: ":")) {
                guard let minutes = digits(2) else { return .failure(Invalid(reason: "malformed UTC offset")) }
                offsetMinutes = minutes
                if skip(UInt8(ascii: ":")) {
                    guard let seconds = digits(2) else { return .failure(Invalid(reason: "malformed UTC offset")) }
                    offsetSeconds = seconds
                }
            } else if position < bytes.count {
                guard let minutes = digits(2) else { return .failure(Invalid(reason: "malformed UTC offset")) }
                offsetMinutes = minutes
            }
            guard offsetHours < 24, offsetMinutes < 60, offsetSeconds < 60 else {
                return .failure(Invalid(reason: "UTC offset out of range (at most ±23:59:59)"))
            }
            offset = sign * (offsetHours * 3600 + offsetMinutes * 60 + offsetSeconds)
        } else {
            return .failure(Invalid(reason: shape))
        }
        guard position == bytes.count else { return .failure(Invalid(reason: "unexpected text after the UTC offset")) }

        guard year >= 1 else { return .failure(Invalid(reason: "year 0 is out of range 1...9999")) }
        guard (1...12).contains(month) else { return .failure(Invalid(reason: "month \(month) is out of range 1...12")) }
        let monthLength = daysIn(month: month, year: year)
        guard (1...monthLength).contains(day) else {
            return .failure(Invalid(reason: "day \(day) is out of range 1...\(monthLength) for \(year)-\(month < 10 ? "0" : "")\(month)"))
        }
        guard hour < 24 else { return .failure(Invalid(reason: "hour \(hour) is out of range 0...23")) }
        guard minute < 60 else { return .failure(Invalid(reason: "minute \(minute) is out of range 0...59")) }
        guard second < 60 else { return .failure(Invalid(reason: "second \(second) is out of range 0...59")) }

        let unix = days(fromYear: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60 + second - offset
        // One rounding for the whole seconds (exact below 2^53) and one for the sum.
        let interval = Double(unix - unixToReference) + Double(nanos) / 1_000_000_000
        return .success(Date(timeIntervalSinceReferenceDate: interval))
    }

    // MARK: Calendar arithmetic (proleptic Gregorian, Howard Hinnant's days_from_civil / civil_from_days)

    static func isLeap(_ year: Int64) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days from 1970-01-01 to the given date.
    static func days(fromYear year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = floorDivide(y, 400)
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The date `days` after 1970-01-01.
    static func civil(fromDays days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = floorDivide(z, 146_097)
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private static func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
        let quotient = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? quotient - 1 : quotient
    }
}
