//! Admit: what is checked before anyone is identified. The request's form
//! (origin-form only: clawgate is not an open proxy), the client's address,
//! the request ID and the host the client addressed.
//!
//! The request ID is assigned first, before any refusal, so that every
//! answer and every log line of the request carries the same one.

use bytes::Bytes;
use http::{Method, Version};

use super::{headers, ClientRequest, Conn, Exchange, Refusal};
use crate::client_ip::{self, ClientIp};
use crate::config::Snapshot;
use crate::request_id;

/// What admission learned, for the phases after it.
pub(super) struct Admitted {
    pub client: ClientIp,
    /// The host the client addressed (`Host`, or h2's `:authority`).
    pub host: Option<Bytes>,
}

pub(super) fn admit(
    snap: &Snapshot,
    conn: &Conn,
    req: &ClientRequest,
    ex: &mut Exchange,
) -> Result<Admitted, Refusal> {
    let client = client_ip::resolve(
        conn.peer,
        req.fields.get_all("x-forwarded-for"),
        &snap.trusted_proxies,
    );
    // A trusted proxy in front may have named the request already.
    ex.request_id = request_id::assign(
        req.fields.get("x-request-id"),
        client.as_ref().is_ok_and(|c| c.peer_trusted),
        ex.clock.since_epoch,
    );
    check_form(req)?;
    let client = client.map_err(|_| Refusal::BadRequest("bad_x_forwarded_for"))?;
    ex.client = Some(client);
    let host = headers::request_host(req)?;
    if req.fields.repeated("origin") {
        return Err(Refusal::BadRequest("duplicate_origin"));
    }
    Ok(Admitted { client, host })
}

/// The request target names a path on this proxy, and one the gateway
/// resolves the way a prefix match sees it.
fn check_form(req: &ClientRequest) -> Result<(), Refusal> {
    // The one CONNECT taken is RFC 8441's WebSocket over an h2 stream,
    // which names a path here, not a host to tunnel to.
    if req.method == Method::CONNECT && !req.h2_websocket {
        return Err(Refusal::MethodNotAllowed);
    }
    if req.version < Version::HTTP_2 && req.uri.scheme().is_some() {
        return Err(Refusal::BadRequest("absolute_form"));
    }
    // Authority-form (`GET host:80`) and asterisk-form (`OPTIONS *`).
    if !req.path().starts_with('/') {
        return Err(Refusal::BadRequest("bad_target"));
    }
    clawgate_policy::target::check(req.path()).map_err(Refusal::BadRequest)
}
