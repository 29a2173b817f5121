//! The Origin parser and matcher: configured patterns (`ORIGINS`) and the
//! presented header, matched and explained (the 403 diff).
//!
//! Input: lines; every line but the last is an `ORIGINS` entry, the last
//! is the presented `Origin` header (raw bytes, not necessarily UTF-8).
#![no_main]

use clawgate_policy::origin::{self, Allowlist, Presented};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (patterns_part, presented) = match data.iter().rposition(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let mut patterns = Vec::new();
    for line in patterns_part.split(|b| *b == b'\n') {
        if let Ok(s) = std::str::from_utf8(line) {
            if let Ok(p) = origin::parse_pattern(s) {
                // A pattern prints back as something that parses to itself.
                let shown = p.to_string();
                assert_eq!(
                    origin::parse_pattern(&shown).as_ref(),
                    Ok(&p),
                    "{s:?} → {shown:?}"
                );
                patterns.push(p);
            }
        }
    }
    let allow = Allowlist::new(patterns);
    let parsed = origin::parse_presented(Some(presented));
    let fast = allow.allows_raw(Some(presented));
    // The byte-compare fast path agrees with the full parse.
    assert_eq!(
        fast,
        allow.allows(&parsed),
        "{:?}",
        String::from_utf8_lossy(presented)
    );
    if let Presented::Valid(o) = &parsed {
        // The serialized origin is a fixed point of the parser.
        let again = origin::parse_presented(Some(o.to_string().as_bytes()));
        assert_eq!(again, parsed);
    }
    let d = origin::diff(&parsed, &allow);
    assert_eq!(d.hint == "origin allowed", fast);
    let _ = allow.allows_raw(None);
    let _ = origin::diff(&Presented::Absent, &allow);
});
