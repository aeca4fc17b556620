import CLinux
import Glibc

/// Owns one non-blocking socket descriptor; `deinit` closes it. All `sockaddr` and pointer work of the
/// proxy lives here.
final class Socket {
    let descriptor: Int32
    /// The peer, as text (`127.0.0.1:53422`, `unix`), for logs and, later, audit records.
    private(set) var peer: String = "-"
    private var isClosed = false

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    deinit { self.close() }

    func close() {
        guard !self.isClosed else { return }
        self.isClosed = true
        Glibc.close(self.descriptor)
    }

    /// What a read produced.
    enum ReadResult {
        case bytes(Int)
        case wouldBlock
        case endOfFile
    }

    // MARK: Listening

    /// Binds and listens on a TCP address.
    /// - Throws: ``ProxyError`` naming the address and the system's reason.
    static func listen(on address: SocketAddress, backlog: Int32 = 1024) throws -> Socket {
        let resolved = try self.resolve(address)
        let socket = try Self.make(family: resolved.family, for: address)
        let fd = socket.descriptor
        if case .tcp = address { socket.setOption(SOL_SOCKET, SO_REUSEADDR, 1) }
        if case .unix(let path) = address { unlink(path) }
        let bound = resolved.withSockaddr { Glibc.bind(fd, $0, $1) }
        guard bound == 0 else { throw ProxyError("cannot listen on \(address): \(errnoText())") }
        guard Glibc.listen(fd, backlog) == 0 else { throw ProxyError("cannot listen on \(address): \(errnoText())") }
        return socket
    }

    /// The port the kernel chose when listening on port 0.
    var localPort: UInt16? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(self.descriptor, $0, &length) }
        }
        guard ok == 0 else { return nil }
        let family = Int32(storage.ss_family)
        return withUnsafePointer(to: &storage) { pointer in
            switch family {
            case AF_INET:
                pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
            case AF_INET6:
                pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    UInt16(bigEndian: $0.pointee.sin6_port)
                }
            default: nil
            }
        }
    }

    /// Accepts one pending connection, non-blocking; nil when none is waiting.
    /// - Throws: ``ProxyError`` for failures other than "nothing to accept" (e.g. out of descriptors).
    func accept() throws -> Socket? { try Self.accept(listener: self.descriptor) }

    /// Accepts from a listening descriptor shared by several loops (the listening ``Socket`` itself is
    /// owned by the server).
    static func accept(listener: Int32) throws -> Socket? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                clinux_accept(listener, $0, &length)
            }
        }
        if fd < 0 {
            switch errno {
            case EAGAIN, EWOULDBLOCK, EINTR, ECONNABORTED, EPROTO: return nil
            default: throw ProxyError("accept failed: \(errnoText())")
            }
        }
        let socket = Socket(descriptor: fd)
        socket.peer = Self.describe(&storage)
        if Int32(storage.ss_family) != AF_UNIX { socket.setOption(Int32(IPPROTO_TCP), TCP_NODELAY, 1) }
        return socket
    }

    // MARK: Connecting

    /// Starts a non-blocking connect. Completion is signalled by writability; then call
    /// ``connectionError()``.
    /// - Throws: ``ProxyError`` when the address can't be resolved or the connect fails at once.
    static func connect(to address: SocketAddress) throws -> Socket {
        try self.connect(to: self.resolve(address), for: address)
    }

    /// Starts a non-blocking connect to an address resolved before (no DNS here: an event loop may call it).
    static func connect(to resolved: ResolvedAddress, for address: SocketAddress) throws -> Socket {
        let socket = try Self.make(family: resolved.family, for: address)
        let fd = socket.descriptor
        socket.peer = address.description
        if resolved.family != AF_UNIX { socket.setOption(Int32(IPPROTO_TCP), TCP_NODELAY, 1) }
        let result = resolved.withSockaddr { Glibc.connect(fd, $0, $1) }
        if result != 0 && errno != EINPROGRESS && errno != EAGAIN {
            throw ProxyError(errnoText())
        }
        return socket
    }

    /// The outcome of a non-blocking connect (`SO_ERROR`): nil once connected.
    func connectionError() -> String? {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(self.descriptor, SOL_SOCKET, SO_ERROR, &value, &length) == 0 else { return errnoText() }
        return value == 0 ? nil : String(cString: strerror(value))
    }

    // MARK: I/O

    func read(into buffer: UnsafeMutableRawBufferPointer) -> ReadResult {
        while true {
            let n = Glibc.read(self.descriptor, buffer.baseAddress, buffer.count)
            if n > 0 { return .bytes(n) }
            if n == 0 { return .endOfFile }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: return .endOfFile
            }
        }
    }

    /// Writes as much as the kernel takes. Returns the count written (0 when it would block), or nil
    /// when the connection is broken.
    func write(_ bytes: UnsafeRawBufferPointer) -> Int? {
        while true {
            let n = Glibc.send(self.descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
            if n >= 0 { return n }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return 0
            default: return nil
            }
        }
    }

    func shutdownWrite() { Glibc.shutdown(self.descriptor, Int32(SHUT_WR)) }

    private func setOption(_ level: Int32, _ name: Int32, _ value: Int32) {
        var value = value
        _ = setsockopt(self.descriptor, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// A non-blocking, close-on-exec stream socket.
    private static func make(family: Int32, for address: SocketAddress) throws -> Socket {
        let fd = Glibc.socket(
            family,
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue),
            0
        )
        guard fd >= 0 else { throw ProxyError("cannot create a socket for \(address): \(errnoText())") }
        return Socket(descriptor: fd)
    }

    // MARK: Addresses

    /// A resolved address in the form `bind`/`connect` take: plain bytes, so it may cross threads (a name is
    /// resolved off the event loops, see ``UpstreamPool``).
    struct ResolvedAddress: @unchecked Sendable {
        var family: Int32
        var storage = sockaddr_storage()
        var length: socklen_t = 0

        fileprivate func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
            withUnsafePointer(to: self.storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, self.length) }
            }
        }
    }

    /// `address` resolved without DNS: a Unix path or a numeric host; nil for a name, which needs
    /// ``resolve(_:)``.
    static func numericAddress(_ address: SocketAddress) -> ResolvedAddress? {
        if case .tcp = address {
            return (try? self.resolve(address, flags: AI_NUMERICSERV | AI_NUMERICHOST))?.first
        }
        return (try? self.resolve(address, flags: 0))?.first
    }

    /// Resolves with getaddrinfo, which blocks while DNS answers (numeric addresses never touch DNS): call it on
    /// the resolver thread or at start, never on an event loop for a name.
    static func resolve(_ address: SocketAddress) throws -> ResolvedAddress {
        // Never empty: getaddrinfo fails rather than answer nothing.
        try self.resolve(address, flags: AI_NUMERICSERV)[0]
    }

    /// Every address getaddrinfo gives, in its order of preference (a name may have IPv6 and IPv4 addresses).
    static func resolveAll(_ address: SocketAddress) throws -> [ResolvedAddress] {
        try self.resolve(address, flags: AI_NUMERICSERV)
    }

    private static func resolve(_ address: SocketAddress, flags: Int32) throws -> [ResolvedAddress] {
        switch address {
        case .unix(let path):
            var resolved = ResolvedAddress(family: AF_UNIX)
            var un = sockaddr_un()
            un.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: un.sun_path) else {
                throw ProxyError("unix socket path too long: \(path)")
            }
            withUnsafeMutableBytes(of: &un.sun_path) { raw in
                raw.copyBytes(from: bytes)
                raw[bytes.count] = 0
            }
            withUnsafeMutableBytes(of: &resolved.storage) { raw in
                withUnsafeBytes(of: un) { raw.copyMemory(from: $0) }
            }
            resolved.length = socklen_t(MemoryLayout<sockaddr_un>.size)
            return [resolved]
        case .tcp(let host, let port):
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_flags = flags
            var list: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host, String(port), &hints, &list)
            guard status == 0, list != nil else {
                throw ProxyError("cannot resolve \(host): \(String(cString: gai_strerror(status)))")
            }
            defer { freeaddrinfo(list) }
            var all: [ResolvedAddress] = []
            var next = list
            while let entry = next {
                defer { next = entry.pointee.ai_next }
                guard let socketAddress = entry.pointee.ai_addr,
                    entry.pointee.ai_addrlen <= MemoryLayout<sockaddr_storage>.size
                else { continue }
                var resolved = ResolvedAddress(family: entry.pointee.ai_family)
                withUnsafeMutableBytes(of: &resolved.storage) { raw in
                    raw.copyMemory(
                        from: UnsafeRawBufferPointer(start: socketAddress, count: Int(entry.pointee.ai_addrlen))
                    )
                }
                resolved.length = entry.pointee.ai_addrlen
                all.append(resolved)
            }
            guard !all.isEmpty else { throw ProxyError("cannot resolve \(host): no usable address") }
            return all
        }
    }

    private static func describe(_ storage: inout sockaddr_storage) -> String {
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let family = Int32(storage.ss_family)
        if family == AF_UNIX { return "unix" }
        let length = socklen_t(family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
        let status = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo(
                    $0,
                    length,
                    &host,
                    socklen_t(host.count),
                    &service,
                    socklen_t(service.count),
                    NI_NUMERICHOST | NI_NUMERICSERV
                )
            }
        }
        guard status == 0 else { return "?" }
        let hostText = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let serviceText = String(decoding: service.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return family == AF_INET6 ? "[\(hostText)]:\(serviceText)" : "\(hostText):\(serviceText)"
    }
}

@available(*, unavailable)
extension Socket: Sendable {}

/// `strerror(errno)`, captured at once.
func errnoText() -> String { String(cString: strerror(errno)) }
