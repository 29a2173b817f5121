//! Talking to a running clawgate's admin listener from the CLI: where it
//! is, a bounded plain-HTTP GET, and a Prometheus text-format reader.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Largest admin response read (a /metrics page with many members).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The admin base URL: `--admin` if given, else the loaded config's
/// `[admin] addr` (an unspecified address is dialled on loopback). `None`
/// when there is neither: never a guessed default, which on a shared host
/// may be another instance that would then be reported as this one.
pub fn admin_url(flag: Option<&str>, snap: Option<&crate::config::Snapshot>) -> Option<String> {
    match (flag, snap) {
        (Some(u), _) => Some(u.trim_end_matches('/').to_string()),
        (None, Some(s)) => Some(format!("http://{}", reachable(s.admin.addr))),
        (None, None) => None,
    }
}

/// The loud first line when the config did not load.
pub fn load_failed(dir: &Path, e: &crate::config::ConfigError, admin_given: bool) -> String {
    let then = if admin_given {
        "carrying on with --admin as given; which config that instance serves cannot be checked"
    } else {
        "not contacting any admin listener: its address is in the config (a default address may be another instance); fix the config, or pass --admin URL"
    };
    format!(
        "clawgate: THE CONFIGURATION IN {} DID NOT LOAD: {e}\nclawgate: {then}",
        dir.display()
    )
}

/// What `/readyz` says: its state line, and the config it serves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Readyz {
    pub state: String,
    pub config_dir: Option<String>,
    pub fingerprint: Option<String>,
    /// Loaded settings the instance cannot apply until it restarts.
    pub restart_pending: Vec<String>,
}

impl Readyz {
    pub fn parse(body: &str) -> Readyz {
        let mut lines = body.lines();
        let mut r = Readyz {
            state: lines.next().unwrap_or_default().trim().to_string(),
            ..Readyz::default()
        };
        for l in lines {
            let Some((k, v)) = l.split_once(':') else {
                continue;
            };
            let v = Some(v.trim().to_string());
            match k.trim() {
                crate::runtime::admin::READYZ_DIR => r.config_dir = v,
                crate::runtime::admin::READYZ_FINGERPRINT => r.fingerprint = v,
                crate::runtime::admin::READYZ_RESTART_PENDING => {
                    r.restart_pending = v
                        .iter()
                        .flat_map(|v| v.split_whitespace())
                        .filter(|k| *k != "-")
                        .map(str::to_string)
                        .collect()
                }
                _ => {}
            }
        }
        r
    }
}

/// `0.0.0.0:P` / `[::]:P` are dialled on the matching loopback address.
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(a) if a.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(a) if a.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// GET `url` (plain HTTP), bounded by `timeout`: status and body.
pub async fn get(url: &str, timeout: Duration) -> Result<(u16, String), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| format!("'{url}' is not a URL (e.g. http://127.0.0.1:9180)"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "'{url}': the admin listener speaks plain http:// (it stays on loopback)"
        ));
    }
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let fetch = async {
        let resp = client
            .get(uri)
            .await
            .map_err(|e| format!("{url}: {}", describe(&e)))?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("{url}: reading the body: {e}"))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(timeout, fetch).await.map_err(|_| {
        format!(
            "{url}: no answer within {}",
            humantime::format_duration(timeout)
        )
    })?
}

fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// One sample of the text exposition format.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    /// Whether this is a sample of `name` carrying every label pair.
    pub fn is(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.name == name
            && labels
                .iter()
                .all(|(k, v)| self.labels.get(*k).map(String::as_str) == Some(*v))
    }
}

/// The newest of the `name` samples carrying `labels`, read as a gauge of
/// unix seconds (`*_timestamp_seconds`); none when absent or unset (0).
pub fn newest<'a>(
    samples: &'a [Sample],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.is(name, labels) && s.value > 0.0)
        .max_by(|a, b| a.value.total_cmp(&b.value))
}

/// A `*_timestamp_seconds` sample's value as RFC 3339.
pub fn at(s: &Sample) -> String {
    super::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s.value as u64))
}

/// Parse the Prometheus text format; comments and malformed lines are skipped.
pub fn parse_prometheus(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        let mut end = None;
        loop {
            while chars
                .peek()
                .is_some_and(|(_, c)| *c == ',' || c.is_whitespace())
            {
                chars.next();
            }
            match chars.peek() {
                Some((i, '}')) => {
                    end = Some(*i + 1);
                    break;
                }
                None => break,
                _ => {}
            }
            let mut key = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return None;
            }
            let mut value = String::new();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some(other) => value.push(other),
                        None => return None,
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return None;
            }
            labels.insert(key.trim().to_string(), value);
        }
        rest = &r[end?..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_labels_and_escapes_parse() {
        let text = "# HELP x y\n# TYPE clawgate_denials_total counter\nclawgate_denials_total{member=\"alice\",reason=\"origin_not_allowed\"} 3\nup 1\nweird{a=\"q\\\"x\\\\\"} 2.5 1700000000\nbad{a=\"x} 1\n";
        let s = parse_prometheus(text);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].name, "clawgate_denials_total");
        assert_eq!(s[0].labels["member"], "alice");
        assert_eq!(s[0].labels["reason"], "origin_not_allowed");
        assert_eq!(s[0].value, 3.0);
        assert_eq!(s[1].name, "up");
        assert_eq!(s[2].labels["a"], "q\"x\\");
        assert_eq!(s[2].value, 2.5);
    }

    #[test]
    fn readyz_body_names_the_config() {
        let r = Readyz::parse("ready\nconfig_dir: /etc/clawgate\nconfig_fingerprint: 0123abcd\n");
        assert_eq!(r.state, "ready");
        assert_eq!(r.config_dir.as_deref(), Some("/etc/clawgate"));
        assert_eq!(r.fingerprint.as_deref(), Some("0123abcd"));
        let old = Readyz::parse("ready\n");
        assert_eq!((old.state.as_str(), old.fingerprint), ("ready", None));
    }

    #[test]
    fn unspecified_admin_address_is_dialled_on_loopback() {
        assert_eq!(
            reachable("0.0.0.0:9180".parse().unwrap()).to_string(),
            "127.0.0.1:9180"
        );
        assert_eq!(
            reachable("[::]:9180".parse().unwrap()).to_string(),
            "[::1]:9180"
        );
    }
}
