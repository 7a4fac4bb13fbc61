import NIOCore
import Testing
@testable import Worker

/// Random and mutated inputs through the request/response parsers and the body reader: any
/// outcome is fine except a crash (the test process would die).
@Suite struct ParserFuzzTests {
    static let seeds = [
        "GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc",
        "HTTP/1.0 101 Switching\r\nUpgrade: websocket\r\n\r\n",
    ]

    static let interesting: [UInt8] = Array("\r\n :;,0123456789abcdefHTP/.-\t\u{0}\u{7f}".utf8) + [0xff, 0xc3]

    func mutate(_ input: [UInt8], _ g: inout SplitMix64) -> [UInt8] {
        var bytes = input
        for _ in 0...g.below(8) {
            switch g.below(4) {
            case 0 where !bytes.isEmpty: bytes[g.below(bytes.count)] = Self.interesting[g.below(Self.interesting.count)]
            case 1: bytes.insert(Self.interesting[g.below(Self.interesting.count)], at: g.below(bytes.count + 1))
            case 2 where !bytes.isEmpty: bytes.remove(at: g.below(bytes.count))
            default:
                let start = g.below(bytes.count + 1)
                bytes.insert(contentsOf: bytes[start..<min(bytes.count, start + g.below(16))], at: g.below(bytes.count + 1))
            }
        }
        return bytes
    }

    @Test func parsersSurviveMutatedInput() throws {
        var g = SplitMix64(seed: 0x5eed)
        for round in 0..<20_000 {
            let seed = Array(Self.seeds[round % Self.seeds.count].utf8)
            let input = mutate(seed, &g)
            var buffer = ByteBuffer(bytes: input)
            _ = HeadParser.parseRequest(buffer, limit: 1 + g.below(200))
            if case .complete(let head, let length) = HeadParser.parseResponse(buffer, limit: 4096) {
                buffer.moveReaderIndex(forwardBy: length)
                var reader = BodyReader(HeadParser.responseFraming(head, requestMethod: "GET"), dechunk: g.below(2) == 0)
                _ = head.value(named: "content-length")
                while buffer.readableBytes > 0, !reader.isDone {
                    guard let slice = try? reader.consume(&buffer), slice.readableBytes > 0 else { break }
                }
            }
            var chunked = ByteBuffer(bytes: mutate(Array("5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n".utf8), &g))
            var reader = BodyReader(.chunked, dechunk: g.below(2) == 0)
            while chunked.readableBytes > 0, !reader.isDone {
                // nil: no progress possible (or bad framing): this input is done.
                guard (try? reader.consume(&chunked)) != nil else { break }
            }
        }
    }
}
