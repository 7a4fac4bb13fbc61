import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The direct children of a process (its workers, for a master).
func children(of pid: Int32) -> [Int32] {
    let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
    return text.split(separator: " ").compactMap { Int32($0) }
}

func isAlive(_ pid: Int32) -> Bool {
    // A zombie is not alive for our purposes.
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
    guard let close = stat.lastIndex(of: ")") else { return false }
    let state = stat[stat.index(close, offsetBy: 2)]
    return state != "Z"
}

/// Whether `pid` still holds the socket listening on 127.0.0.1:`port`: a worker closes its
/// listeners as the first step of a soft stop, so this tells that the stop has begun there.
func holdsListener(pid: Int32, port: Int) -> Bool {
    guard let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return false }
    let local = String(format: "0100007F:%04X", port)
    let inodes = table.split(separator: "\n").dropFirst().compactMap { line -> String? in
        let fields = line.split(separator: " ")
        // local_address, state 0A (LISTEN), inode in the tenth column.
        guard fields.count > 9, fields[1] == local, fields[3] == "0A" else { return nil }
        return "socket:[\(fields[9])]"
    }
    guard !inodes.isEmpty else { return false }
    let fdDir = "/proc/\(pid)/fd"
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: fdDir)) ?? []
    return entries.contains { entry in
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fdDir)/\(entry)") else { return false }
        return inodes.contains(target)
    }
}

/// The resident memory of a process, in kilobytes (0 when it is gone).
func residentKilobytes(_ pid: Int32) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
}
