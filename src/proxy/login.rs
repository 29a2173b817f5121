//! `/_clawgate/login` and `/_clawgate/logout`: browser sessions.
//!
//! GET shows a one-field form; POST takes the member's token (form field
//! `token`, or a bearer header), checks it and the member's policy exactly
//! like any request, and answers 303 with a session cookie. The cookie
//! never outlives the token it was minted from.

use std::time::SystemTime;

use super::ClientRequest;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Either, Limited};

use super::{headers, local_body, Body, Exchange, LocalBody, Refusal, SESSION_COOKIE};
use crate::config::Snapshot;
use crate::deny::Reason;
use crate::identity::{self, IdentifyError, Via};
use crate::policy;
use crate::session;

pub const LOGIN_PATH: &str = "/_clawgate/login";
pub const LOGOUT_PATH: &str = "/_clawgate/logout";
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

/// Only same-site relative paths: never an open redirect.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            '&' => "&amp;".into(),
            '\'' => "&#39;".into(),
            c => c.to_string(),
        })
        .collect()
}

fn form(next: &str) -> String {
    format!(
        "<!doctype html><meta charset=utf-8><title>clawgate login</title>\
<form method=post action=\"{LOGIN_PATH}\"><p>Member token: <input type=password name=token autocomplete=off autofocus>\
<input type=hidden name=next value=\"{}\"> <button>Log in</button></form>",
        escape(next)
    )
}

pub(super) async fn handle(
    snap: &Snapshot,
    req: ClientRequest,
    ex: &mut Exchange,
) -> Result<Response<Body>, Refusal> {
    let Some(sess) = &snap.session else {
        return Err(Refusal::NotFound("sessions_disabled"));
    };
    let client = ex.client.expect("client ip resolved first");
    if req.path() == LOGOUT_PATH {
        return redirect(LOGIN_PATH, session::clear_cookie(SESSION_COOKIE));
    }
    let query_next = req.uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "next")
            .map(|(_, v)| v.into_owned())
    });
    if req.method == Method::GET {
        return Ok(page(StatusCode::OK, form(safe_next(query_next.as_deref()))));
    }
    if req.method != Method::POST {
        return Err(Refusal::MethodNotAllowed);
    }
    let origin = req.fields.get("origin").map(<[u8]>::to_vec);
    let bearer = req
        .fields
        .get("authorization")
        .and_then(identity::bearer)
        .map(<[u8]>::to_vec);
    let body = Limited::new(req.body, MAX_FORM)
        .collect()
        .await
        .map_err(|_| Refusal::PayloadTooLarge)?
        .to_bytes();
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
    let (member_id, token_id) =
        snap.credentials
            .identify_token(&token, now)
            .map_err(|e| match e {
                IdentifyError::TokenExpired { member, token_id } => {
                    ex.member = Some(member);
                    ex.credential = Some(token_id);
                    Refusal::Denied(Reason::TokenExpired)
                }
                _ => Refusal::Denied(Reason::BadToken),
            })?;
    ex.member = Some(member_id);
    ex.credential = Some(token_id.clone());
    let member = &snap.members[member_id];
    let origin = origin.as_deref();
    if let Err(reason) = policy::evaluate(member, origin, client.ip) {
        ex.diff = Some(std::sync::Arc::new(policy::Explained::new(
            policy::explain(member, origin, client.ip),
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
    let claims =
        crate::session::verify(&sess.key, value, now).ok_or_else(|| refuse(Reason::BadToken))?;
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
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_never_an_open_redirect() {
        assert_eq!(safe_next(Some("/chat?x=1")), "/chat?x=1");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn form_escapes_next() {
        assert!(form("/\"><script>").contains("/&quot;&gt;&lt;script&gt;"));
    }
}
