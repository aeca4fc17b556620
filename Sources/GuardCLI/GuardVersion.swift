/// The release of milvus-guard, in one place: `milvus-guard --version` prints it.
public enum GuardVersion {
    /// The current version, semantic-versioning style.
    public static let current = "0.1.0"
}
