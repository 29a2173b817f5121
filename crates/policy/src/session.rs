//! Browser sessions: a signed cookie that stands in for a member's token.
//!
//! Browsers cannot attach `Authorization` to the Control UI's WebSocket, so
//! a member logs in once at `/_clawgate/login` with their token and gets
//! `clawgate_session=<base64 of v1|member|token id|expiry>.<hmac>`, HttpOnly,
//! Secure, SameSite=Strict. The HMAC (SHA-256, key from `[session]
//! key_file`) binds member, token ID and expiry; the cookie dies with its
//! token: revoking or expiring the token invalidates every session minted
//! from it, checked on each request and on reload for open WebSockets.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "v1";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// What a valid cookie says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub member: String,
    pub token_id: String,
    pub expires: SystemTime,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn mac(key: &[u8], payload: &str) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(payload.as_bytes());
    m
}

/// Mint a cookie value for `member`/`token_id`, valid for `ttl` (capped at
/// the token's own expiry by the caller).
/// The browser session cookie's name (set by `/_clawgate/login`).
pub const COOKIE_NAME: &str = "clawgate_session";

pub fn mint(key: &[u8], member: &str, token_id: &str, expires: SystemTime) -> String {
    let payload = B64.encode(format!("{VERSION}|{member}|{token_id}|{}", unix(expires)));
    let tag = B64.encode(mac(key, &payload).finalize().into_bytes());
    format!("{payload}.{tag}")
}

/// Verify signature and expiry. Whether the member and token still exist
/// is the caller's check against the current snapshot.
pub fn verify(key: &[u8], value: &str, now: SystemTime) -> Option<Claims> {
    let (payload, tag) = value.rsplit_once('.')?;
    let tag = B64.decode(tag).ok()?;
    mac(key, payload).verify_slice(&tag).ok()?;
    let payload = String::from_utf8(B64.decode(payload).ok()?).ok()?;
    let mut parts = payload.split('|');
    let (v, member, token_id, exp) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if v != VERSION || parts.next().is_some() {
        return None;
    }
    let expires = UNIX_EPOCH + Duration::from_secs(exp.parse().ok()?);
    if now >= expires {
        return None;
    }
    Some(Claims {
        member: member.to_string(),
        token_id: token_id.to_string(),
        expires,
    })
}

/// The `Set-Cookie` value for a new session.
pub fn set_cookie(name: &str, value: &str, max_age: Duration) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={}; Secure; HttpOnly; SameSite=Strict",
        max_age.as_secs()
    )
}

/// The `Set-Cookie` value that removes the session.
pub fn clear_cookie(name: &str) -> String {
    format!("{name}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn minted_cookie_verifies_and_carries_its_claims() {
        let exp = SystemTime::now() + Duration::from_secs(60);
        let c = mint(KEY, "alice", "tok_abc", exp);
        let claims = verify(KEY, &c, SystemTime::now()).unwrap();
        assert_eq!(claims.member, "alice");
        assert_eq!(claims.token_id, "tok_abc");
    }

    #[test]
    fn tampered_expired_or_foreign_cookies_fail() {
        let exp = SystemTime::now() + Duration::from_secs(60);
        let c = mint(KEY, "alice", "tok_abc", exp);
        let forged = format!(
            "{}.{}",
            B64.encode("v1|bob|tok_abc|9999999999"),
            c.split_once('.').unwrap().1
        );
        assert!(verify(KEY, &forged, SystemTime::now()).is_none());
        assert!(verify(b"another-key-another-key-another!", &c, SystemTime::now()).is_none());
        assert!(verify(KEY, &c, exp + Duration::from_secs(1)).is_none());
        assert!(verify(KEY, "garbage", SystemTime::now()).is_none());
        assert!(verify(KEY, "", SystemTime::now()).is_none());
    }

    #[test]
    fn cookie_attributes_are_strict() {
        let s = set_cookie("clawgate_session", "v", Duration::from_secs(10));
        for attr in [
            "Secure",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
            "Max-Age=10",
        ] {
            assert!(s.contains(attr), "{s}");
        }
    }
}
