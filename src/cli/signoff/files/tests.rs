use super::*;
use crate::cli::signoff::Status;
use std::time::Duration;

fn scan(name: &str, tokens: Vec<(u8, Option<SystemTime>)>) -> FileScan {
    FileScan {
        name: name.into(),
        path: PathBuf::from(format!("{name}.env")),
        mode: 0o600,
        tokens: tokens
            .into_iter()
            .map(|(b, expires)| {
                let sha256 = [b; 32];
                TokenRecord {
                    id: TokenRecord::id_for(&sha256),
                    sha256,
                    expires,
                }
            })
            .collect(),
        origins: vec![],
        audit: false,
    }
}

#[test]
fn expiring_token_needs_a_later_successor() {
    let now = SystemTime::now();
    let soon = now + Duration::from_secs(3600);
    let later = now + Duration::from_secs(7200);
    let r = rotation_row(&[scan("a", vec![(1, Some(soon))])], now);
    assert_eq!(r.status, Status::Fail, "{}", r.evidence);
    assert!(r.evidence.contains("token rotate a"));
    let r = rotation_row(&[scan("a", vec![(1, Some(soon)), (2, None)])], now);
    assert_eq!(r.status, Status::Pass, "{}", r.evidence);
    // the successor expiring later but also within 24 h fails itself
    let r = rotation_row(&[scan("a", vec![(1, Some(soon)), (2, Some(later))])], now);
    assert_eq!(r.status, Status::Fail);
    assert!(r.evidence.contains(&TokenRecord::id_for(&[2; 32])));
    assert!(!r.evidence.contains(&TokenRecord::id_for(&[1; 32])));
    // far expiries are fine
    let far = now + Duration::from_secs(30 * 86400);
    let r = rotation_row(&[scan("a", vec![(1, Some(far))])], now);
    assert_eq!(r.status, Status::Pass);
}

#[test]
fn shared_token_names_both_members() {
    let r = shared_tokens_row(&[scan("a", vec![(1, None)]), scan("b", vec![(1, None)])]);
    assert_eq!(r.status, Status::Fail);
    assert!(r.evidence.contains("a and b"), "{}", r.evidence);
}
