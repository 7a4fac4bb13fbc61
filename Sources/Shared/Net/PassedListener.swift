/// A listening socket that a process holds and may pass on: to a worker (master-worker mode),
/// to a successor (`-x`), or to its own engine.
public struct PassedListener: Sendable, Equatable {
    public var frontend: String
    /// The address as `ListenAddress.description` writes it (for messages and matching).
    public var address: String
    public var backlog: Int32
    public var fd: Int32

    public init(frontend: String, address: String, backlog: Int32, fd: Int32) {
        self.frontend = frontend
        self.address = address
        self.backlog = backlog
        self.fd = fd
    }
}
