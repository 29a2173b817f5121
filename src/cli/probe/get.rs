//! The probe's plain HTTP step: one `GET` as the member, its status,
//! request ID and, on a refusal, the reason and diff from the JSON body.

use super::*;

pub(super) async fn http_step(s: &Setup, fp: &mut Option<String>) -> Step {
    let t = &s.target;
    let mut step = new_step("http", format!("GET {}", t.path));
    let t0 = Instant::now();
    let (stream, cert) = match connect(s).await {
        Ok(c) => c,
        Err(e) => {
            step.detail = e;
            return step;
        }
    };
    *fp = cert;
    step.connect_ms = Some(ms(t0.elapsed()));
    let (mut sender, conn) = match hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(
        TokioIo::new(stream),
    )
    .await
    {
        Ok(p) => p,
        Err(e) => {
            step.detail = format!("HTTP handshake: {e}");
            return step;
        }
    };
    let driver = tokio::spawn(conn);
    let mut b = Request::get(t.path.as_str())
        .header(http::header::HOST, t.authority.as_str())
        .header(http::header::USER_AGENT, "clawgate-probe");
    if let Some(tok) = &s.token {
        b = b.header(http::header::AUTHORIZATION, tok.clone());
    }
    if let Some(o) = &s.origin {
        b = b.header(http::header::ORIGIN, o.clone());
    }
    let req = match b.body(Empty::new()) {
        Ok(r) => r,
        Err(e) => {
            step.detail = format!("building the request: {e}");
            return step;
        }
    };
    let t1 = Instant::now();
    let resp = match tokio::time::timeout(s.timeout, sender.send_request(req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            step.detail = format!("request failed: {e}");
            driver.abort();
            return step;
        }
        Err(_) => {
            step.detail = format!("no response within {:?}", s.timeout);
            driver.abort();
            return step;
        }
    };
    step.latency_ms = Some(ms(t1.elapsed()));
    let status = resp.status();
    step.status = Some(status.as_u16());
    step.request_id = request_id(resp.headers());
    let body = tokio::time::timeout(
        s.timeout,
        Limited::new(resp.into_body(), MAX_BODY).collect(),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .map(|c| c.to_bytes())
    .unwrap_or_default();
    driver.abort();
    step.pass = status.is_success() || status.is_redirection();
    if !step.pass {
        explain_body(&mut step, &body);
    }
    step.detail = match status.as_u16() {
        s if step.pass => format!("{s} {}", status.canonical_reason().unwrap_or("")),
        401 => "401: the credential was not accepted (wrong token file, expired token, or unknown certificate)".into(),
        403 => "403: identified, refused by policy (see the diff)".into(),
        502 | 504 => format!("{}: clawgate could not reach the gateway", status.as_u16()),
        s => format!("{s} {}", status.canonical_reason().unwrap_or("")),
    };
    step
}
