/// Durations as the guard's messages write them.
enum DurationText {
    /// `1500` -> `1.5 s`, `20000` -> `20 s`.
    static func seconds(milliseconds: Int) -> String {
        milliseconds % 1000 == 0 ? "\(milliseconds / 1000) s" : "\(Double(milliseconds) / 1000) s"
    }
}
