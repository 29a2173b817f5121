//! `/_clawgate/login` and `/_clawgate/logout`: browser sessions.
//!
//! GET shows a one-field form; POST takes the member's token (form field
//! `token`, or a bearer header), checks it and the member's policy exactly
//! like any request, and answers 303 with a session cookie. The cookie
//! never outlives the token it was minted from. Logout is a POST.
//!
//! The form is a password prompt an attacker would love to frame, replay
//! slowly or brute-force: every answer here is unframeable and uncached,
//! the body has `header_read` to arrive, failures count towards the
//! per-IP block, and a blocked address is refused before its token is
//! looked at.

use std::time::SystemTime;

use super::ClientRequest;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Either, LengthLimitError, Limited};

use super::respond::respond;
use super::{headers, local_body, Body, Decision, Exchange, LocalBody, Refusal, SESSION_COOKIE};
use crate::config::Snapshot;
use crate::deny;
use crate::state::State;
use clawgate_policy::authorize;
use clawgate_policy::identity::{self, IdentifyError, Via};
use clawgate_policy::session;
use clawgate_policy::Reason;

pub const LOGIN_PATH: &str = "/_clawgate/login";
pub const LOGOUT_PATH: &str = "/_clawgate/logout";
/// clawgate's own pages; every answer under it carries [`PAGE_FIELDS`].
const PAGES: &str = "/_clawgate/";
const MAX_FORM: usize = 8 * 1024;

pub fn is_session_path(path: &str) -> bool {
    path == LOGIN_PATH || path == LOGOUT_PATH
}

fn page(status: StatusCode, html: String) -> Response<Body> {
    let mut r = Response::new(Either::Right(LocalBody::new(html)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn redirect(to: &str, cookie: String) -> Result<Response<Body>, Refusal> {
    let mut r = local_body::empty(StatusCode::SEE_OTHER).map(Either::Right);
    let loc = HeaderValue::from_str(to).map_err(|_| Refusal::BadRequest("bad_next"))?;
    r.headers_mut().insert(header::LOCATION, loc);
    let c = HeaderValue::from_str(&cookie).map_err(|_| Refusal::BadRequest("bad_cookie"))?;
    r.headers_mut().insert(header::SET_COOKIE, c);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// Only a same-origin absolute path: never an open redirect. Browsers
/// drop tabs and newlines from a URL and read `\` as `/`, so
/// `/\t/evil.example` is `//evil.example`, another host; and a gateway
/// behind may decode `%2F` or `%5C` before it redirects again. So the
/// value must be printable ASCII starting with one `/`, and, percent-
/// decoded, hold no control byte, whitespace or backslash and not start
/// with `//`. Anything else is `/`.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if same_origin_path(n.as_bytes()) => n,
        _ => "/",
    }
}

fn same_origin_path(raw: &[u8]) -> bool {
    // Raw: visible ASCII only (no space, control, DEL or non-ASCII byte).
    if !raw.iter().all(|b| b.is_ascii_graphic()) {
        return false;
    }
    let mut decoded = PercentDecoded { raw, at: 0 };
    if raw.first() != Some(&b'/') || matches!(decoded.nth(1), Some(b'/' | b'\\')) {
        return false;
    }
    PercentDecoded { raw, at: 0 }
        .all(|b| !(b.is_ascii_control() || b.is_ascii_whitespace() || b == b'\\'))
}

/// The bytes of `raw` with each `%XX` decoded once; a `%` not followed by
/// two hex digits stands for itself.
struct PercentDecoded<'a> {
    raw: &'a [u8],
    at: usize,
}

impl Iterator for PercentDecoded<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let b = *self.raw.get(self.at)?;
        let hex = |i: usize| {
            self.raw
                .get(self.at + i)
                .and_then(|&h| (h as char).to_digit(16))
        };
        if let (b'%', Some(hi), Some(lo)) = (b, hex(1), hex(2)) {
            self.at += 3;
            return Some((hi * 16 + lo) as u8);
        }
        self.at += 1;
        Some(b)
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    crate::deny_page::escape(&mut out, s);
    out
}

fn form(next: &str) -> String {
    format!(
        "<!doctype html><meta charset=utf-8><title>clawgate login</title>\
<form method=post action=\"{LOGIN_PATH}\"><p>Member token: <input type=password name=token autocomplete=off autofocus>\
<input type=hidden name=next value=\"{}\"> <button>Log in</button></form>",
        escape(next)
    )
}

/// Every answer under `/_clawgate/`: neither framed (clickjacking the
/// token prompt), cached, nor leaking its URL in a `Referer` to another
/// origin. The page loads nothing, so it may load nothing.
///
/// `same-origin`, not `no-referrer`: under `no-referrer` browsers send
/// the form's POST with `Origin: null` (Fetch, "serializing a request
/// origin"), and the login's Origin check must then refuse every member.
const PAGE_FIELDS: [(HeaderName, &str); 4] = [
    (header::X_FRAME_OPTIONS, "DENY"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (header::CACHE_CONTROL, "no-store"),
    (header::REFERRER_POLICY, "same-origin"),
];

/// Answer `/_clawgate/login` or `/_clawgate/logout`, refusals mapped here
/// too so that they carry [`PAGE_FIELDS`] like the pages.
pub(super) async fn handle(
    state: &State,
    snap: &Snapshot,
    req: ClientRequest,
    ex: &mut Exchange,
) -> Response<Body> {
    let mut resp = match answer(state, snap, req, ex).await {
        Ok(r) => r,
        Err(refusal) => respond(snap, ex, refusal, false),
    };
    add_page_fields(&mut resp);
    resp
}

/// Whether `path` is under clawgate's own pages, so that a refusal taken
/// before [`handle`] (a duplicate `Origin`, `bad_path`) is answered like
/// the pages' own.
pub(super) fn is_page(path: &str) -> bool {
    path.starts_with(PAGES)
}

/// [`PAGE_FIELDS`] onto `resp`, each once.
pub(super) fn add_page_fields(resp: &mut Response<Body>) {
    for (name, value) in PAGE_FIELDS {
        // A JSON answer carries some fields prewritten: not twice.
        let prewritten = super::head_fields(resp.body_mut())
            .is_some_and(|f| f.iter().any(|(n, _)| n.eq_ignore_ascii_case(name.as_ref())));
        if !prewritten && !resp.headers().contains_key(&name) {
            resp.headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
    }
}

/// 405 naming the methods this path takes.
fn method_not_allowed(ex: &mut Exchange, allow: &'static str) -> Response<Body> {
    ex.decision = Decision::Error;
    let answer = deny::error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        ex.request_id.as_str(),
    );
    let mut r = local_body::answer(answer).map(Either::Right);
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

async fn answer(
    state: &State,
    snap: &Snapshot,
    req: ClientRequest,
    ex: &mut Exchange,
) -> Result<Response<Body>, Refusal> {
    let Some(sess) = &snap.session else {
        return Err(Refusal::NotFound("sessions_disabled"));
    };
    let client = ex.client.expect("client ip resolved first");
    if req.path() == LOGOUT_PATH {
        // A GET that logged out could be fired by any page (an <img>).
        if req.method != Method::POST {
            return Ok(method_not_allowed(ex, "POST"));
        }
        return redirect(LOGIN_PATH, session::clear_cookie(SESSION_COOKIE));
    }
    let query_next = req.uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "next")
            .map(|(_, v)| v.into_owned())
    });
    if req.method == Method::GET || req.method == Method::HEAD {
        return Ok(page(StatusCode::OK, form(safe_next(query_next.as_deref()))));
    }
    if req.method != Method::POST {
        return Ok(method_not_allowed(ex, "GET, HEAD, POST"));
    }
    // Before the token is read: a blocked address learns nothing, not
    // even whether its next guess was right.
    if let Some(left) = state.limiter.blocked(client.ip) {
        return Err(Refusal::TooManyFailures(left));
    }
    let origin = req.fields.get("origin").map(<[u8]>::to_vec);
    let bearer = req
        .fields
        .get("authorization")
        .and_then(identity::bearer)
        .map(<[u8]>::to_vec);
    // The whole form within `header_read`, as a head would be: a declared
    // length and silence must not hold the connection.
    let read = Limited::new(req.body, MAX_FORM).collect();
    let body = match tokio::time::timeout(snap.timeouts.header_read, read).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) if e.is::<LengthLimitError>() => return Err(Refusal::PayloadTooLarge),
        Ok(Err(_)) => return Err(Refusal::BadRequest("bad_request_body")),
        Err(_) => return Err(Refusal::BodyTimeout),
    };
    let mut token = bearer;
    let mut next = query_next;
    for (k, v) in form_urlencoded::parse(&body) {
        match &*k {
            "token" if token.is_none() => token = Some(v.trim().as_bytes().to_vec()),
            "next" => next = Some(v.into_owned()),
            _ => {}
        }
    }
    let token = token.ok_or(Refusal::Denied(Reason::NoCredentials))?;
    let now = SystemTime::now();
    let (member_id, token_id) = match snap.credentials.identify_token(&token, now) {
        Ok(found) => found,
        Err(e) => {
            let reason = match e {
                IdentifyError::TokenExpired { member, token_id } => {
                    ex.member = Some(member);
                    ex.credential = Some(token_id);
                    Reason::TokenExpired
                }
                _ => Reason::BadToken,
            };
            // A failed login is a failed authentication, as on any path.
            if let Some(left) = state.limiter.failed(client.ip, &snap.limits.per_ip) {
                return Err(Refusal::TooManyFailures(left));
            }
            return Err(Refusal::Denied(reason));
        }
    };
    ex.member = Some(member_id);
    ex.credential = Some(token_id.clone());
    let member = &snap.members[member_id];
    let origin = origin.as_deref();
    if let Err(reason) = authorize::evaluate(member, origin, client.ip) {
        ex.diff = Some(std::sync::Arc::new(authorize::Explained::new(
            authorize::explain(member, origin, client.ip),
        )));
        return Err(Refusal::Denied(reason));
    }
    let mut expires = now + sess.ttl;
    if let Some(t) = member.token(&token_id).and_then(|t| t.expires) {
        expires = expires.min(t);
    }
    let value = session::mint(&sess.key, &member.name, &token_id, expires);
    let max_age = expires.duration_since(now).unwrap_or_default();
    redirect(
        safe_next(next.as_deref()),
        session::set_cookie(SESSION_COOKIE, &value, max_age),
    )
}

/// A browser's session cookie, checked against the current snapshot: the
/// member must still exist and the token it was minted from still be valid.
/// Without one, a browser asking for a page is sent to the login form.
pub(super) fn session_identity(
    snap: &Snapshot,
    req: &ClientRequest,
    now: SystemTime,
) -> Result<identity::Identity, Refusal> {
    let Some(sess) = &snap.session else {
        return Err(Refusal::Denied(Reason::NoCredentials));
    };
    // A browser asking for a page gets the login form instead of a JSON 401,
    // also when its cookie went stale (token rotated, key changed).
    let refuse = |reason: Reason| {
        let wants_html = req.method == Method::GET
            && req
                .fields
                .get_str("accept")
                .is_some_and(|a| a.contains("text/html"))
            && headers::upgrade_requested(&req.fields).is_none();
        if !wants_html {
            return Refusal::Denied(reason);
        }
        let next = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("next", next)
            .finish();
        Refusal::LoginRedirect(format!("{}?{q}", LOGIN_PATH))
    };
    let Some(value) = super::cookie::cookie(&req.fields, SESSION_COOKIE) else {
        return Err(refuse(Reason::NoCredentials));
    };
    let claims = clawgate_policy::session::verify(&sess.key, value, now)
        .ok_or_else(|| refuse(Reason::BadToken))?;
    let (member, m) = snap
        .member_by_name(&claims.member)
        .ok_or_else(|| refuse(Reason::BadToken))?;
    if m.token(&claims.token_id).is_none() {
        return Err(refuse(Reason::BadToken));
    }
    if !snap.credentials.token_valid(member, &claims.token_id, now) {
        return Err(refuse(Reason::TokenExpired));
    }
    Ok(identity::Identity {
        member,
        via: Via::Session {
            token_id: claims.token_id.into(),
            expires: claims.expires,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_never_an_open_redirect() {
        for good in ["/chat?x=1", "/", "/a/b%2Fc", "/%E2%82%AC", "/100%", "/%zz"] {
            assert_eq!(safe_next(Some(good)), good);
        }
        for bad in [
            "//evil.example",
            "/%09/evil.example",
            "/\t/evil.example",
            "/%2F/evil.example",
            "/%2f/evil.example",
            "/\\evil.example",
            "/%5Cevil.example",
            "/%5cevil.example",
            "/a\\b",
            "https://evil.example",
            "javascript:alert(1)",
            "/%0d%0aSet-Cookie:x=y",
            "/\r\nSet-Cookie:x=y",
            "/%00",
            "/%7F",
            "/a b",
            "/a%20b",
            "/\u{e9}",
            "%2F%2Fevil.example",
            "evil.example",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn form_escapes_next() {
        assert!(form("/\"><script>").contains("/&quot;&gt;&lt;script&gt;"));
    }
}
