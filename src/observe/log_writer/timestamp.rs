//! The timestamps the hand-made log lines carry.

use std::cell::RefCell;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An RFC 3339 UTC timestamp with `DIGITS` (3 or 6) fractional digits,
/// as `humantime` prints it, written without allocating: the part up to
/// the second is formatted once a second per thread, not once a line.
#[derive(Clone, Copy, Debug)]
pub struct Timestamp<const DIGITS: u32>(pub Duration);

impl<const DIGITS: u32> Timestamp<DIGITS> {
    pub fn now() -> Self {
        Timestamp(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        )
    }
}

impl<const DIGITS: u32> fmt::Display for Timestamp<DIGITS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const { assert!(DIGITS == 3 || DIGITS == 6) };
        thread_local! {
            static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
        }
        let since = self.0;
        SECOND.with(|c| {
            let mut c = c.borrow_mut();
            if c.0 != since.as_secs() {
                let whole = UNIX_EPOCH + Duration::from_secs(since.as_secs());
                let s = humantime::format_rfc3339_seconds(whole).to_string();
                // `…T06:01:02Z`: keep it without the `Z`.
                *c = (since.as_secs(), s.trim_end_matches('Z').to_string());
            }
            f.write_str(&c.1)
        })?;
        let mut digits = [b'0'; 6];
        let mut n = since.subsec_micros() / 10u32.pow(6 - DIGITS);
        for d in digits[..DIGITS as usize].iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        f.write_str(".")?;
        f.write_str(std::str::from_utf8(&digits[..DIGITS as usize]).unwrap_or("000000"))?;
        f.write_str("Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_humantime_across_seconds_and_small_fractions() {
        for micros in [
            0u64,
            7,
            999,
            1_000,
            999_999,
            1_000_000,
            1_764_050_462_000_042,
            1_764_050_462_045_999,
            1_764_050_463_500_000,
        ] {
            let since = Duration::from_micros(micros);
            let at = UNIX_EPOCH + since;
            assert_eq!(
                Timestamp::<6>(since).to_string(),
                humantime::format_rfc3339_micros(at).to_string()
            );
            assert_eq!(
                Timestamp::<3>(since).to_string(),
                humantime::format_rfc3339_millis(at).to_string()
            );
        }
    }
}
