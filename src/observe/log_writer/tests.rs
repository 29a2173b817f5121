use super::*;

#[test]
fn pieces_end_with_whole_lines_and_lose_nothing() {
    let lines: Vec<String> = (0..50)
        .map(|i| format!("{}\n", "x".repeat(i * 7)))
        .collect();
    let mut batch: Vec<u8> = lines.concat().into_bytes();
    // A line longer than a piece, and a last line without its newline.
    batch.extend_from_slice(&[b'y'; 300]);
    batch.extend_from_slice(b"\nz");
    for size in [1, 16, 64, 100, 299, 4096] {
        let pieces: Vec<&[u8]> = whole_lines(&batch, size).collect();
        assert_eq!(pieces.concat(), batch, "size {size}");
        for p in &pieces[..pieces.len() - 1] {
            assert_eq!(p.last(), Some(&b'\n'), "size {size}");
            // Over `size` only when it is one line.
            assert!(
                p.len() <= size || p.iter().filter(|&&b| b == b'\n').count() == 1,
                "size {size}: {} bytes",
                p.len()
            );
        }
    }
    assert_eq!(whole_lines(b"", 16).count(), 0);
}

/// A sink the test can read back (the denial log's tests use it too).
#[derive(Clone, Default)]
pub(crate) struct Shared(pub(crate) Arc<Mutex<Vec<u8>>>);
impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn notice(out: &mut dyn Write, n: u64) {
    let _ = writeln!(out, "dropped {n}");
}

#[test]
fn past_its_bound_a_batch_drops_lines_and_says_so_after_the_next_write() {
    let sink = Shared::default();
    let batch = LineBatch::new(
        Box::new(sink.clone()),
        10,
        Extras {
            notice: Some(notice),
            ..Extras::default()
        },
    );
    assert!(batch.push(b"abcd\n"));
    assert!(batch.push(b"efgh\n"));
    assert!(!batch.push(b"i\n"), "11 bytes pending would pass the bound");
    assert_eq!(batch.dropped(), 1);
    assert!(batch.write_out());
    assert!(!batch.write_out(), "nothing left");
    assert!(batch.push(b"j\n"), "room again once written");
    assert!(batch.write_out());
    assert_eq!(
        String::from_utf8(sink.0.lock().unwrap().clone()).unwrap(),
        "abcd\nefgh\ndropped 1\nj\n",
        "the notice follows the batch it was dropped from, once"
    );
}

/// A sink that takes `room` bytes, then fails (a full disk).
struct Full(usize);
impl Write for Full {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0 == 0 {
            return Err(std::io::Error::other("no space left on device"));
        }
        let n = buf.len().min(self.0);
        self.0 -= n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn lines_a_failing_sink_did_not_take_are_counted_as_dropped() {
    let batch = LineBatch::new(Box::new(Full(WRITE_CHUNK)), 1 << 20, Extras::default());
    let line = [b"x".repeat(99), b"\n".to_vec()].concat();
    for _ in 0..400 {
        assert!(batch.push(&line));
    }
    batch.write_out();
    // The first piece (163 whole lines, 16,300 bytes) went through.
    assert_eq!(batch.dropped(), 400 - (WRITE_CHUNK / 100) as u64);
}

#[test]
fn a_burst_past_a_quarter_of_the_bound_wakes_the_writer_once() {
    // This thread stands in for the writer: an unpark before its park
    // makes the park return at once, where without one it sleeps out
    // its timeout. Deterministic either way.
    let batch = LineBatch::new(Box::new(Shared::default()), 400, Extras::default());
    batch.pending.lock().unwrap().writer = Writer::Running(Some(std::thread::current()));
    let parked = || {
        let t = std::time::Instant::now();
        std::thread::park_timeout(Duration::from_secs(2));
        t.elapsed() < Duration::from_secs(1)
    };
    let line = [b"x".repeat(49), b"\n".to_vec()].concat();
    assert!(
        batch.push(&line) && batch.push(&line),
        "100 bytes: a quarter"
    );
    assert!(parked(), "the push that reached a quarter woke the writer");
    assert!(batch.push(&line));
    assert!(
        !parked(),
        "and only once until the writer looks (this park timed out)"
    );
    // The writer's look: clears the flag and empties the batch.
    batch.woken.store(false, Ordering::Relaxed);
    assert!(batch.write_out());
    assert!(batch.push(&line), "50 bytes: under a quarter");
    assert!(batch.push(&line));
    assert!(parked(), "a new burst wakes it again");
}
