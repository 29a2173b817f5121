//! The WebSocket frame tracker the relay runs over both directions of a
//! tunnel (the client's side is attacker-controlled): any bytes, in any
//! chunking, never panic, and a boundary is where the tracker says.
//!
//! Input: the first byte sets the chunk size; the rest is the stream.
#![no_main]

use clawgate::tunnel::relay::FrameTracker;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let mut whole = FrameTracker::default();
    whole.feed(stream);
    let mut chunked = FrameTracker::default();
    for c in stream.chunks(usize::from(chunk).max(1)) {
        chunked.feed(c);
    }
    // Chunking never changes what the tracker concludes.
    assert_eq!(whole.at_boundary(), chunked.at_boundary());
    assert_eq!(whole.saw_close(), chunked.saw_close());
});
