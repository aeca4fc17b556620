import Glibc

/// UTC times as milliseconds since the Unix epoch, and their RFC 3339 text, without Foundation.
public enum AuditTime {
    /// The current time in UTC milliseconds (`clock_gettime(CLOCK_REALTIME)`).
    public static func nowMilliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }

    /// Nanoseconds on `CLOCK_MONOTONIC`, for measuring intervals.
    static func monotonicNanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    /// Sleeps the calling thread for `nanoseconds` (less than a second), resuming after a signal.
    static func sleep(nanoseconds: Int64) {
        var slice = timespec(tv_sec: 0, tv_nsec: Int(max(0, min(nanoseconds, 999_999_999))))
        var left = timespec()
        while nanosleep(&slice, &left) != 0 && errno == EINTR { slice = left }
    }

    /// RFC 3339 in UTC with milliseconds: `2025-05-01T12:00:00.123Z`. A time whose year does not fit (only an
    /// altered store holds one) is written as its number: `time_ms -9223372036854775808`.
    public static func format(milliseconds: Int64) -> String {
        // Floor division: -1 ms is 23:59:59.999 of the day before 1970.
        let remainder = milliseconds % 1000
        let seconds = milliseconds / 1000 - (remainder < 0 ? 1 : 0)
        let millis = Int(remainder < 0 ? remainder + 1000 : remainder)
        var time = time_t(seconds)
        var parts = tm()
        guard gmtime_r(&time, &parts) != nil, parts.tm_year <= 9999 - 1900, parts.tm_year >= -1900 else {
            return "time_ms \(milliseconds)"
        }
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
        }
        return "\(pad(Int(parts.tm_year) + 1900, 4))-\(pad(Int(parts.tm_mon) + 1, 2))-\(pad(Int(parts.tm_mday), 2))"
            + "T\(pad(Int(parts.tm_hour), 2)):\(pad(Int(parts.tm_min), 2)):\(pad(Int(parts.tm_sec), 2))"
            + ".\(pad(millis, 3))Z"
    }

    /// Parses an RFC 3339 time (`2025-05-01T12:00:00Z`, `…T12:00:00.5+02:00`, a space instead of `T`, lowercase
    /// `t`/`z`) or a bare date (`2025-05-01`, midnight UTC). Fractions beyond milliseconds are truncated.
    ///
    /// - Returns: UTC milliseconds, or nil if `text` is not such a time or names an impossible date.
    public static func parse(_ text: String) -> Int64? {
        var scanner = Scanner(Array(text.utf8))
        guard let year = scanner.digits(4), scanner.take("-"), let month = scanner.digits(2), scanner.take("-"),
            let day = scanner.digits(2)
        else { return nil }
        var hour = 0
        var minute = 0
        var second = 0
        var millis = 0
        var offsetMinutes = 0
        if !scanner.atEnd {
            guard scanner.take("T") || scanner.take("t") || scanner.take(" "), let h = scanner.digits(2),
                scanner.take(":"), let m = scanner.digits(2), scanner.take(":"), let s = scanner.digits(2)
            else { return nil }
            (hour, minute, second) = (h, m, s)
            if scanner.take(".") {
                var count = 0
                while let digit = scanner.digits(1) {
                    if count < 3 { millis = millis * 10 + digit }
                    count += 1
                }
                guard count > 0 else { return nil }
                for _ in count..<max(count, 3) { millis *= 10 }
            }
            if scanner.take("Z") || scanner.take("z") {
                offsetMinutes = 0
            } else if let sign = scanner.sign(), let oh = scanner.digits(2), scanner.take(":"),
                let om = scanner.digits(2)
            {
                guard oh < 24, om < 60 else { return nil }
                offsetMinutes = sign * (oh * 60 + om)
            } else {
                return nil
            }
            guard scanner.atEnd else { return nil }
        }
        guard (1...12).contains(month), (1...Self.daysIn(month: month, year: year)).contains(day), hour < 24,
            minute < 60, second < 61
        else { return nil }
        let days = Self.daysFromCivil(year: year, month: month, day: day)
        let seconds =
            Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + min(second, 59))
            - Int64(offsetMinutes * 60)
        return seconds * 1000 + Int64(millis)
    }

    /// Parses a `--since`/`--until` value: a duration back from `now` (`30s`, `30m`, `1h`, `7d`, `2w`) or an RFC 3339
    /// time or date (see ``parse(_:)``).
    ///
    /// - Returns: UTC milliseconds, or nil if `text` is neither.
    public static func parseBound(_ text: String, now: Int64) -> Int64? {
        if let unit = text.last, let amount = Int64(text.dropLast()), amount >= 0, text.first?.isNumber == true {
            let scale: Int64? =
                switch unit {
                case "s": 1000
                case "m": 60_000
                case "h": 3_600_000
                case "d": 86_400_000
                case "w": 604_800_000
                default: nil
                }
            if let scale {
                let (product, overflow) = amount.multipliedReportingOverflow(by: scale)
                return overflow ? nil : now - product
            }
        }
        return Self.parse(text)
    }

    private static func isLeap(_ year: Int) -> Bool { (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: Self.isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
    private static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    private struct Scanner {
        let bytes: [UInt8]
        var index = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool { self.index == self.bytes.count }

        mutating func take(_ character: Character) -> Bool {
            guard let ascii = character.asciiValue, self.index < self.bytes.count, self.bytes[self.index] == ascii
            else { return false }
            self.index += 1
            return true
        }

        mutating func sign() -> Int? {
            if self.take("+") { return 1 }
            if self.take("-") { return -1 }
            return nil
        }

        mutating func digits(_ count: Int) -> Int? {
            guard self.index + count <= self.bytes.count else { return nil }
            var value = 0
            for byte in self.bytes[self.index..<self.index + count] {
                guard byte >= 0x30, byte <= 0x39 else { return nil }
                value = value * 10 + Int(byte - 0x30)
            }
            self.index += count
            return value
        }
    }
}
