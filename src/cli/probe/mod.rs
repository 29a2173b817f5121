//! `clawgate probe`: the minimal channel probe through the proxy, as a
//! member. An HTTP GET, then a WebSocket upgrade and one message round
//! trip, each with its timestamp, request ID, status and latency; a 403
//! prints the origins diff from its body. The exit code is the verdict.
//!
//! The WebSocket step passes on a 101 followed by a frame: our own text
//! echoed back (a test upstream), or the server's first frame (OpenClaw
//! greets a new connection with a challenge).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

mod get;
mod text;
mod tls;
mod ws;

use get::http_step;
use ws::ws_step;

use clawgate_policy::identity::sha256;
use clawgate_policy::member::TokenRecord;

/// Largest response body read (a 403 diff is small).
const MAX_BODY: usize = 256 * 1024;

#[derive(clap::Args, Debug)]
#[command(group(
    clap::ArgGroup::new("credential").required(true).args(["token_file", "cert"])
))]
pub struct Args {
    /// clawgate's URL as a member reaches it, e.g. https://gw.example.com:8443/
    pub url: String,
    /// File holding the member's token (first line); never printed.
    #[arg(long, value_name = "F")]
    pub token_file: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS; needs --key and an https:// URL.
    #[arg(long, value_name = "PEM", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Origin header to send (a browser's page origin); omit for a CLI client.
    #[arg(long, value_name = "O")]
    pub origin: Option<String>,
    /// CA (or clawgate's own certificate) to verify https:// against.
    #[arg(long, value_name = "PEM", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// Do not verify clawgate's certificate (its SHA-256 is still printed).
    #[arg(long)]
    pub insecure: bool,
    /// Path of the WebSocket step [default: the URL's path].
    #[arg(long, value_name = "P")]
    pub ws_path: Option<String>,
    /// Bound on each step (connect, response, first frame).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Output: text, or json for scripts.
    #[arg(long, value_enum, default_value_t = super::Format::Text)]
    pub format: super::Format,
}

#[derive(Serialize, Debug)]
pub struct Step {
    pub step: &'static str,
    pub started: String,
    pub target: String,
    pub status: Option<u16>,
    pub request_id: Option<String>,
    pub connect_ms: Option<f64>,
    /// Request sent to response headers.
    pub latency_ms: Option<f64>,
    /// WebSocket: a ping sent to its pong back.
    pub round_trip_ms: Option<f64>,
    pub pass: bool,
    pub detail: String,
    pub reason: Option<String>,
    /// The 403 body's `origin` and `client_ip` halves.
    pub diff: Option<Value>,
}

#[derive(Serialize, Debug)]
pub struct Outcome {
    pub url: String,
    pub credential: String,
    pub server_cert_sha256: Option<String>,
    pub pass: bool,
    pub steps: Vec<Step>,
}

struct Target {
    tls: bool,
    host: String,
    port: u16,
    authority: String,
    path: String,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type Stream = Box<dyn Io>;

struct Setup {
    target: Target,
    token: Option<HeaderValue>,
    origin: Option<HeaderValue>,
    tls: Option<Arc<ClientConfig>>,
    credential: String,
    timeout: Duration,
}

pub fn run(args: Args) -> ExitCode {
    let setup = match prepare(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("clawgate probe: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("clawgate probe: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let ws_path = args.ws_path.clone();
    let outcome = rt.block_on(probe(&setup, ws_path.as_deref(), &args.url));
    match args.format {
        super::Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&outcome).unwrap_or_default()
        ),
        super::Format::Md => print!("{}", text::markdown(&outcome)),
        super::Format::Text => print!("{}", text::text(&outcome)),
    }
    if outcome.pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn prepare(args: &Args) -> Result<Setup, String> {
    let uri: Uri = args
        .url
        .parse()
        .map_err(|_| format!("'{}' is not a URL (e.g. https://127.0.0.1:8443/)", args.url))?;
    let tls = match uri.scheme_str() {
        Some("https") | Some("wss") => true,
        Some("http") | Some("ws") => false,
        _ => {
            return Err(format!(
                "'{}': use http:// or https:// (the WebSocket step derives ws:// or wss://)",
                args.url
            ))
        }
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("'{}' has no host", args.url))?;
    let host = super::gateway_config::authority_host(authority).to_string();
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into());
    let target = Target {
        tls,
        host,
        port,
        authority: authority.as_str().to_string(),
        path,
    };

    let (token, credential) = match &args.token_file {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("{}: {e} (the file holds the member's token)", f.display()))?;
            let t = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .ok_or_else(|| {
                    format!(
                        "{}: empty; put the member's token on the first line",
                        f.display()
                    )
                })?;
            let v = HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                format!(
                    "{}: the token holds characters a header cannot carry",
                    f.display()
                )
            })?;
            let id = TokenRecord::id_for(&sha256(t.as_bytes()));
            (Some(v), format!("token {id} from {}", f.display()))
        }
        None => (None, String::new()),
    };
    let credential = match &args.cert {
        Some(c) => {
            let fp = crate::net::tls::peer_cert(&crate::config::tls::first_cert(c)?);
            format!("certificate sha256 {}", hex::encode(fp.sha256))
        }
        None => credential,
    };
    let origin = match &args.origin {
        Some(o) => Some(
            HeaderValue::from_str(o)
                .map_err(|_| format!("--origin '{o}' is not a header value"))?,
        ),
        None => None,
    };
    let tls_cfg = if tls {
        Some(tls::tls_config(args)?)
    } else {
        if args.cert.is_some() {
            return Err("--cert needs an https:// URL: client certificates travel in TLS".into());
        }
        None
    };
    Ok(Setup {
        target,
        token,
        origin,
        tls: tls_cfg,
        credential,
        timeout: args.timeout,
    })
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// TCP (and TLS) to clawgate; the server certificate's SHA-256 when TLS.
async fn connect(s: &Setup) -> Result<(Stream, Option<String>), String> {
    let t = &s.target;
    let tcp = tokio::time::timeout(s.timeout, TcpStream::connect((t.host.as_str(), t.port)))
        .await
        .map_err(|_| {
            format!(
                "no TCP connection to {} within {:?}",
                t.authority, s.timeout
            )
        })?
        .map_err(|e| format!("cannot connect to {}: {e}", t.authority))?;
    let _ = tcp.set_nodelay(true);
    let Some(cfg) = &s.tls else {
        return Ok((Box::new(tcp), None));
    };
    let name = ServerName::try_from(t.host.clone())
        .map_err(|_| format!("'{}' is not a valid TLS server name", t.host))?;
    let tls = tokio::time::timeout(
        s.timeout,
        tokio_rustls::TlsConnector::from(cfg.clone()).connect(name, tcp),
    )
    .await
    .map_err(|_| format!("TLS handshake with {} timed out", t.authority))?
    .map_err(|e| format!("TLS handshake with {}: {e}", t.authority))?;
    let fp = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| hex::encode(sha256(c.as_ref())));
    Ok((Box::new(tls), fp))
}

fn request_id(h: &HeaderMap) -> Option<String> {
    h.get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Fill reason and diff from a JSON error body.
fn explain_body(step: &mut Step, body: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    step.reason = v.get("reason").and_then(Value::as_str).map(str::to_string);
    if step.request_id.is_none() {
        step.request_id = v
            .get("request_id")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    if v.get("origin").is_some() || v.get("client_ip").is_some() {
        step.diff = Some(serde_json::json!({
            "origin": v.get("origin"),
            "client_ip": v.get("client_ip"),
        }));
    }
}

fn new_step(step: &'static str, target: String) -> Step {
    Step {
        step,
        started: now(),
        target,
        status: None,
        request_id: None,
        connect_ms: None,
        latency_ms: None,
        round_trip_ms: None,
        pass: false,
        detail: String::new(),
        reason: None,
        diff: None,
    }
}

async fn probe(s: &Setup, ws_path: Option<&str>, url: &str) -> Outcome {
    let mut fp = None;
    let http = http_step(s, &mut fp).await;
    let ws_path = ws_path.unwrap_or(&s.target.path).to_string();
    let ws = ws_step(s, &ws_path).await;
    Outcome {
        url: url.to_string(),
        credential: s.credential.clone(),
        server_cert_sha256: fp,
        pass: http.pass && ws.pass,
        steps: vec![http, ws],
    }
}
