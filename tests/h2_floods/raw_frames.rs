//! Raw-frame floods: CONTINUATION, SETTINGS and PING. Each writes the
//! connection preface and hand-built frames on a plain TcpStream, so nothing
//! in a client library paces or validates them.

use super::*;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const ENHANCE_YOUR_CALM: u32 = 0xb;
/// A flood that gets no byte accepted for this long has been stopped by
/// the server: it no longer reads the connection.
const STALL: Duration = Duration::from_secs(5);

/// The raw floods measure the process's RSS: one at a time.
static RAW_FLOOD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One frame: 24-bit length, type, flags, 31-bit stream ID, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 1 << 24);
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The preface and an empty SETTINGS frame: what a client says first.
fn opening() -> Vec<u8> {
    let mut b = PREFACE.to_vec();
    b.extend(frame(SETTINGS, 0, 0, &[]));
    b
}

/// What the server sent back, frame by frame.
#[derive(Default, Debug)]
struct Received {
    bytes: usize,
    /// Frames per type.
    frames: BTreeMap<u8, usize>,
    /// SETTINGS and PING frames with the ACK flag, per type.
    acks: BTreeMap<u8, usize>,
    /// (last stream ID, error code, debug data) of the first GOAWAY.
    goaway: Option<(u32, u32, String)>,
    /// How the read side ended: "eof" or the error; None while open.
    ended: Option<String>,
    buf: Vec<u8>,
}

impl Received {
    fn parse(&mut self) {
        let mut at = 0;
        while self.buf.len() - at >= 9 {
            let h = &self.buf[at..at + 9];
            let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
            if self.buf.len() - at < 9 + len {
                break;
            }
            let (kind, flags) = (h[3], h[4]);
            let payload = &self.buf[at + 9..at + 9 + len];
            *self.frames.entry(kind).or_default() += 1;
            if (kind == SETTINGS || kind == PING) && flags & ACK != 0 {
                *self.acks.entry(kind).or_default() += 1;
            }
            if kind == GOAWAY && self.goaway.is_none() && len >= 8 {
                let last = u32::from_be_bytes(payload[..4].try_into().unwrap()) & 0x7fff_ffff;
                let code = u32::from_be_bytes(payload[4..8].try_into().unwrap());
                let debug = String::from_utf8_lossy(&payload[8..]).into_owned();
                self.goaway = Some((last, code, debug));
            }
            at += 9 + len;
        }
        self.buf.drain(..at);
    }

    /// Read (bounded by `deadline`) until `enough` holds or the read side
    /// ends. Returns at the deadline with whatever was read.
    async fn read_until(
        &mut self,
        rd: &mut (impl AsyncRead + Unpin),
        deadline: Instant,
        enough: impl Fn(&Received) -> bool,
    ) {
        let mut chunk = vec![0u8; 64 * 1024];
        while self.ended.is_none() && !enough(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, rd.read(&mut chunk)).await {
                Err(_) => return,
                Ok(Ok(0)) => self.ended = Some("eof".into()),
                Ok(Ok(n)) => {
                    self.bytes += n;
                    self.buf.extend_from_slice(&chunk[..n]);
                    self.parse();
                }
                Ok(Err(e)) => self.ended = Some(format!("{:?}", e.kind())),
            }
        }
    }
}

/// How a flood's writing ended.
#[derive(Debug, PartialEq)]
enum End {
    /// A write failed or wrote nothing: the server closed (or reset) it.
    Closed(String),
    /// No byte accepted for `STALL`: the server stopped reading.
    Stalled,
    /// The reader saw the connection end (GOAWAY, EOF or reset).
    Ended,
    /// Every frame was written, or the time ran out: the flood's end.
    Capped,
}

struct Flood {
    frames: u64,
    bytes: u64,
    end: End,
    /// The highest RSS growth seen while flooding, KiB.
    rss_growth_kib: i64,
    elapsed: Duration,
}

/// Write copies of `one` (a whole frame) until `max_frames` are written,
/// `max_time` passes, a write fails, or no byte is accepted for `STALL`.
/// Never reads.
async fn flood_with(
    wr: &mut (impl AsyncWrite + Unpin),
    one: &[u8],
    max_frames: u64,
    max_time: Duration,
) -> Flood {
    let batch = one.repeat((64 * 1024 / one.len()).max(1));
    let total = max_frames * one.len() as u64;
    let base = rss_kib() as i64;
    let started = Instant::now();
    let mut peak = 0;
    let mut bytes = 0u64;
    let mut next_sample = 0u64;
    let end = loop {
        if bytes >= total || started.elapsed() >= max_time {
            break End::Capped;
        }
        // Continue mid-batch where the last partial write left off.
        let off = (bytes % batch.len() as u64) as usize;
        let take = (batch.len() - off).min((total - bytes) as usize);
        match tokio::time::timeout(STALL, wr.write(&batch[off..off + take])).await {
            Err(_) => break End::Stalled,
            Ok(Ok(0)) => break End::Closed("write returned 0".into()),
            Ok(Ok(n)) => bytes += n as u64,
            Ok(Err(e)) => break End::Closed(format!("{:?}", e.kind())),
        }
        if bytes >= next_sample {
            peak = peak.max(rss_kib() as i64 - base);
            next_sample = bytes + (1 << 20);
        }
    };
    // After a stall the server's buffers are as full as they get.
    peak = peak.max(rss_kib() as i64 - base);
    Flood {
        frames: bytes / one.len() as u64,
        bytes,
        end,
        rss_growth_kib: peak,
        elapsed: started.elapsed(),
    }
}

async fn connect(addr: SocketAddr) -> TcpStream {
    assert!(addr.ip().is_loopback());
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&opening()).await.unwrap();
    tcp
}

/// CONTINUATION flood (CVE-2024-27316 family): HEADERS without
/// END_HEADERS on stream 1, then CONTINUATION frames of valid HPACK (new
/// literal header names, never indexed) that never end the header block,
/// so a server that buffers and decodes them until END_HEADERS spends
/// memory and CPU without bound. The h2 crate (0.4.4 and later) counts the
/// CONTINUATION frames of one header block and, past the number needed to
/// fill `max_header_list_size` (the proxy's 64 KiB, 5 frames at most)
/// answers GOAWAY(ENHANCE_YOUR_CALM) and closes the connection. The
/// flood's end (64 MiB of header block or 10 s) is therefore never
/// reached, and a member on another connection is still served.
#[tokio::test]
async fn continuation_flood_gets_the_connection_closed() {
    let _one = RAW_FLOOD.lock().await;
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    let server = start(&cfg).await;
    let tcp = connect(server.addr).await;
    let (mut rd, mut wr) = tcp.into_split();

    // The server's frames are read all along: a GOAWAY ends the flood.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut got = Received::default();
            let deadline = Instant::now() + Duration::from_secs(40);
            got.read_until(&mut rd, deadline, |r| r.goaway.is_some())
                .await;
            stop.store(true, Ordering::Release);
            // After GOAWAY, the close (bounded).
            let deadline = Instant::now() + Duration::from_secs(10);
            got.read_until(&mut rd, deadline, |_| false).await;
            got
        })
    };

    // GET / with :authority, as a literal without indexing: END_STREAM,
    // not END_HEADERS.
    let mut block = vec![0x82, 0x86, 0x84, 0x01, 7];
    block.extend_from_slice(b"gw.test");
    wr.write_all(&frame(HEADERS, END_STREAM, 1, &block))
        .await
        .unwrap();

    const MAX_FRAMES: u64 = 100_000;
    const MAX_BYTES: u64 = 64 << 20;
    let max_time = Duration::from_secs(10);
    let started = Instant::now();
    let (mut frames, mut bytes, mut name) = (0u64, 0u64, 0u64);
    let end = loop {
        if frames >= MAX_FRAMES || bytes >= MAX_BYTES || started.elapsed() >= max_time {
            break End::Capped;
        }
        if stop.load(Ordering::Acquire) {
            break End::Ended;
        }
        // 16 frames of 20 headers each ("x-flood-NNNNNNNN: aaa…"): about
        // 1 KiB of header block per frame.
        let mut batch = Vec::new();
        for _ in 0..16 {
            let mut payload = Vec::with_capacity(1100);
            for _ in 0..20 {
                let n = format!("x-flood-{name:08}");
                payload.extend_from_slice(&[0x00, n.len() as u8]);
                payload.extend_from_slice(n.as_bytes());
                payload.push(32);
                payload.extend_from_slice(&[b'a'; 32]);
                name += 1;
            }
            batch.extend(frame(CONTINUATION, 0, 1, &payload));
        }
        match tokio::time::timeout(STALL, wr.write_all(&batch)).await {
            Err(_) => break End::Stalled,
            Ok(Err(e)) => break End::Closed(format!("{:?}", e.kind())),
            Ok(Ok(())) => {
                frames += 16;
                bytes += batch.len() as u64;
            }
        }
    };
    let elapsed = started.elapsed();
    let got = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("reader bounded")
        .unwrap();
    eprintln!(
        "continuation flood: {frames} CONTINUATION frames ({bytes} bytes) written in \
         {elapsed:?}; writing ended {end:?}; server sent {} bytes, frames by type {:?}, \
         GOAWAY {:?}, read side {:?}",
        got.bytes, got.frames, got.goaway, got.ended
    );
    assert!(
        matches!(end, End::Closed(_) | End::Ended),
        "the server did not end the connection: writing ended {end:?} after \
         {frames} frames / {bytes} bytes"
    );
    let (_, code, _) = got
        .goaway
        .clone()
        .unwrap_or_else(|| panic!("no GOAWAY before the close: {got:?}"));
    assert_eq!(code, ENHANCE_YOUR_CALM, "GOAWAY {:?}", got.goaway);
    assert!(got.ended.is_some(), "GOAWAY but the socket stayed open");
    assert_eq!(up.count(), 0, "no request reached the gateway");
    still_serving(&server, "a CONTINUATION flood").await;
}

/// Floods `one` (a frame of type `kind` the server must acknowledge)
/// without reading, then reads back (bounded) what the server sent, until
/// every frame written is acknowledged. Asserts that the server stopped
/// the flood (stopped reading, or closed), that the process's RSS grew by
/// less than 64 MiB meanwhile, that others were served throughout, and
/// that once read every frame written was acknowledged.
async fn ack_flood(what: &str, kind: u8, one: &[u8], max_frames: u64) {
    let up = Upstream::start().await;
    let cfg = ConfigDir::new(&[("prod", up.url())], &[MemberSpec::new("alice", ALICE)]);
    // A connection with no request is closed after header_read (30 s by
    // default): set far off, so that the read-back is not cut short.
    cfg.write_base("[timeouts]\nheader_read = \"5m\"\n");
    let server = start(&cfg).await;
    let tcp = connect(server.addr).await;
    let (mut rd, mut wr) = tcp.into_split();
    let f = flood_with(&mut wr, one, max_frames, Duration::from_secs(30)).await;
    // Others are served while the flooding connection sits stalled.
    still_serving(&server, what).await;
    let mut got = Received::default();
    // The opening SETTINGS frame is acknowledged too.
    let owed = f.frames as usize + usize::from(kind == SETTINGS);
    let reading = Instant::now();
    got.read_until(&mut rd, reading + Duration::from_secs(60), |r| {
        r.acks.get(&kind).copied().unwrap_or(0) >= owed
    })
    .await;
    eprintln!(
        "{what}: {} frames ({} bytes) written in {:?}; writing ended {:?}; peak RSS \
         growth {} KiB; read back {} bytes in {:?}: ACKs by type {:?}, frames by type \
         {:?}, GOAWAY {:?}, read side {:?}",
        f.frames,
        f.bytes,
        f.elapsed,
        f.end,
        f.rss_growth_kib,
        got.bytes,
        reading.elapsed(),
        got.acks,
        got.frames,
        got.goaway,
        got.ended
    );
    // With a client that reads the ACKs, the server reads on and the same
    // flood is written to its end (Capped): 85-90 MB in 10-25 s here.
    assert!(
        matches!(f.end, End::Stalled | End::Closed(_)),
        "{what}: the server read the whole flood: {} frames, {:?}",
        f.frames,
        f.end
    );
    assert!(
        f.rss_growth_kib < 64 * 1024,
        "{what}: RSS grew by {} KiB",
        f.rss_growth_kib
    );
    still_serving(&server, what).await;
    // The two requests of still_serving, none from the flood.
    assert_eq!(up.count(), 2);
    // Stalled, not dropped: once read, every frame is acknowledged.
    assert_eq!(
        got.acks.get(&kind).copied().unwrap_or(0),
        owed,
        "{what}: ACKs read back for {} frames written",
        f.frames
    );
    assert_eq!(got.goaway, None);
}

/// SETTINGS flood (CVE-2019-9515): non-ACK SETTINGS frames, each of which
/// the server must acknowledge, written without ever reading the ACKs so
/// that a server queueing them grows without bound. The h2 crate holds at
/// most one received SETTINGS frame whose ACK is not yet written, and reads
/// no further frame until that ACK fits in its write buffer (16 KiB,
/// flushed to the socket); with the
/// client not reading, that buffer and the socket buffers fill, and the
/// server stops reading the connection. The flood (up to 10 M frames,
/// 90 MB) stalls, the process's RSS grows by far less than the flood, and
/// other members are served.
#[tokio::test]
async fn settings_flood_is_met_with_backpressure() {
    let _one = RAW_FLOOD.lock().await;
    let settings = frame(SETTINGS, 0, 0, &[]);
    ack_flood("SETTINGS flood", SETTINGS, &settings, 10_000_000).await;
}

/// PING flood (CVE-2019-9512): PING frames, each owed a PING ACK, written
/// without ever reading the ACKs. The h2 crate keeps one pending pong and
/// reads no further frame until it is written to its write buffer (16 KiB,
/// flushed to the socket), so once the socket buffers are full the server
/// stops reading:
/// the flood (up to 5 M frames, 85 MB) stalls, RSS stays bounded, and other
/// members are served.
#[tokio::test]
async fn ping_flood_is_met_with_backpressure() {
    let _one = RAW_FLOOD.lock().await;
    let ping = frame(PING, 0, 0, b"floodpng");
    ack_flood("PING flood", PING, &ping, 5_000_000).await;
}
