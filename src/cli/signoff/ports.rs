//! The port/bind table and the exposure and observability rows that need
//! the loaded snapshot: where each listener and upstream is reachable from,
//! and what clashes.

use std::net::{IpAddr, SocketAddr};

use super::{gateway_config, row, Port, Row, EXPOSURE, OBSERVABILITY};
use crate::config::{self, raw::RawBase, AccessLog, Snapshot};

/// `loopback`, `lan` (private ranges) or `any`.
pub fn reach(ip: IpAddr) -> &'static str {
    let ip = clawgate_policy::cidr::canonical(ip);
    if ip.is_unspecified() {
        return "any";
    }
    if ip.is_loopback() {
        return "loopback";
    }
    let private = match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_private() || a.is_link_local() || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(a) => {
            let s = a.segments()[0];
            (s & 0xfe00) == 0xfc00 || (s & 0xffc0) == 0xfe80
        }
    };
    if private {
        "lan"
    } else {
        "any"
    }
}

pub(super) fn listener(role: &'static str, name: &str, addr: SocketAddr, tls: bool) -> Port {
    Port {
        role,
        name: name.into(),
        address: addr.ip().to_string(),
        port: addr.port(),
        tls,
        reach: reach(addr.ip()),
        conflicts: Vec::new(),
    }
}

pub(super) fn overlaps(a: &str, b: &str) -> bool {
    let (Ok(a), Ok(b)) = (a.parse::<IpAddr>(), b.parse::<IpAddr>()) else {
        return a == b;
    };
    a == b || a.is_unspecified() || b.is_unspecified()
}

/// Member listener, admin listener, then each upstream, with conflicts.
pub fn port_table(s: &Snapshot) -> Vec<Port> {
    let mut member = listener("member", "listen", s.listen.addr, s.listen.tls.is_some());
    let mut admin = listener("admin", "admin", s.admin.addr, false);
    if member.port != 0 && member.port == admin.port && overlaps(&member.address, &admin.address) {
        member.conflicts.push(format!(
            "same port as the admin listener ({})",
            s.admin.addr
        ));
        admin.conflicts.push(format!(
            "same port as the member listener ({})",
            s.listen.addr
        ));
    }
    // The loader refuses a non-loopback admin without allow_public.
    if admin.reach != "loopback" {
        admin.conflicts.push(
            "admin on a non-loopback address (allowed by [admin] allow_public = true)".into(),
        );
    }
    let mut ports = vec![member, admin];
    for up in &s.upstreams {
        let host = gateway_config::authority_host(&up.authority).to_string();
        let port = up.authority.port_u16().unwrap_or(80);
        let reach = match host.parse::<IpAddr>() {
            Ok(ip) => reach(ip),
            Err(_) if host.eq_ignore_ascii_case("localhost") => "loopback",
            Err(_) => "unknown",
        };
        let mut p = Port {
            role: "upstream",
            name: up.name.clone(),
            address: host.clone(),
            port,
            tls: false,
            reach,
            conflicts: Vec::new(),
        };
        for l in &ports[..2] {
            let same_host = overlaps(&l.address, &host)
                || (l
                    .address
                    .parse::<IpAddr>()
                    .is_ok_and(|a| a.is_unspecified())
                    && reach == "loopback");
            if l.port != 0 && l.port == port && same_host {
                p.conflicts.push(format!(
                    "is clawgate's own {} listener ({}:{}): requests would loop",
                    l.role, l.address, l.port
                ));
            }
        }
        match reach {
            "loopback" => {}
            "unknown" => p.conflicts.push(format!(
                "upstream host '{host}' is a name: cannot tell it is loopback; use 127.0.0.1"
            )),
            _ => p.conflicts.push(
                "upstream on a non-loopback address: identity headers cross the network in plain HTTP".into(),
            ),
        }
        ports.push(p);
    }
    ports
}

pub(super) fn member_listener_row(s: &Snapshot) -> Row {
    let check = "member listener is TLS or loopback-only";
    let addr = s.listen.addr;
    let r = reach(addr.ip());
    match &s.listen.tls {
        Some(t) => {
            let mtls = match t.client_auth {
                Some(config::ClientAuth::Required) => ", mTLS required",
                Some(config::ClientAuth::Optional) => ", mTLS optional",
                None => "",
            };
            row(
                EXPOSURE,
                check,
                true,
                format!("{addr} TLS ({}{mtls}), reach {r}", t.cert.display()),
            )
        }
        None if r == "loopback" => row(
            EXPOSURE,
            check,
            true,
            format!("{addr} plain HTTP, loopback only"),
        ),
        None => row(
            EXPOSURE,
            check,
            false,
            format!(
                "{addr} is plain HTTP reachable from {r}: tokens would cross the network in clear; set [listen] tls_cert and tls_key, or bind 127.0.0.1"
            ),
        ),
    }
}

/// The admin address and its `allow_public`, from the snapshot or, when
/// the loader refused the config (as it does a public admin without
/// consent), from the file itself, so the row still says what is wrong.
pub(super) fn admin_of(
    loaded: Option<&Snapshot>,
    raw: Option<&RawBase>,
) -> Option<(SocketAddr, bool)> {
    if let Some(s) = loaded {
        return Some((s.admin.addr, s.admin.allow_public));
    }
    let admin = raw?.admin.as_ref();
    let addr = admin
        .and_then(|a| a.addr.as_ref())
        .map_or(config::DEFAULT_ADMIN_ADDR, |a| a.get_ref())
        .parse()
        .ok()?;
    Some((addr, admin.is_some_and(|a| a.allow_public)))
}

pub(super) fn admin_row(admin: Option<(SocketAddr, bool)>) -> Row {
    let check = "admin listener on loopback";
    let Some((addr, allow_public)) = admin else {
        return row(EXPOSURE, check, false, super::not_loaded());
    };
    let r = reach(addr.ip());
    if r == "loopback" {
        row(EXPOSURE, check, true, format!("{addr} (loopback)"))
    } else if allow_public {
        row(
            EXPOSURE,
            check,
            true,
            format!("{addr} reachable from {r}, allowed by [admin] allow_public = true"),
        )
    } else {
        row(
            EXPOSURE,
            check,
            false,
            format!(
                "{addr} is reachable from {r} and the proxy refuses to start: {}",
                config::ADMIN_FIX
            ),
        )
    }
}

pub(super) fn upstreams_row(ports: &[Port]) -> Row {
    let check = "upstreams on loopback";
    let ups: Vec<&Port> = ports.iter().filter(|p| p.role == "upstream").collect();
    let bad: Vec<String> = ups
        .iter()
        .filter(|p| p.reach != "loopback")
        .map(|p| {
            format!(
                "{} at {}:{} is {}: run the gateway on loopback next to clawgate",
                p.name, p.address, p.port, p.reach
            )
        })
        .collect();
    if bad.is_empty() {
        let list: Vec<String> = ups
            .iter()
            .map(|p| format!("{} {}:{}", p.name, p.address, p.port))
            .collect();
        row(EXPOSURE, check, true, list.join(", "))
    } else {
        row(EXPOSURE, check, false, bad.join("; "))
    }
}

pub(super) fn conflicts_row(ports: &[Port]) -> Row {
    let check = "no port clashes or proxy loops";
    let bad: Vec<String> = ports
        .iter()
        .flat_map(|p| {
            p.conflicts
                .iter()
                .filter(|c| c.contains("same port") || c.contains("would loop"))
                .map(move |c| format!("{} {}: {c}", p.role, p.name))
        })
        .collect();
    if bad.is_empty() {
        row(
            EXPOSURE,
            check,
            true,
            format!("{} ports, all distinct", ports.len()),
        )
    } else {
        row(EXPOSURE, check, false, bad.join("; "))
    }
}

pub(super) fn access_log_row(s: &Snapshot) -> Row {
    let check = "access log on";
    match &s.log.access {
        AccessLog::Off => row(
            OBSERVABILITY,
            check,
            false,
            "[log] access = \"off\": denials leave no trail; set \"stdout\" or a file path".into(),
        ),
        AccessLog::Stdout => row(OBSERVABILITY, check, true, "stdout (JSON lines)".into()),
        AccessLog::File(p) => row(
            OBSERVABILITY,
            check,
            true,
            format!(
                "{} (rotated at {} bytes, {} kept)",
                p.display(),
                s.log.max_bytes,
                s.log.keep
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reach_classifies_loopback_private_and_public() {
        let r = |s: &str| reach(s.parse().unwrap());
        assert_eq!(r("127.0.0.1"), "loopback");
        assert_eq!(r("::1"), "loopback");
        assert_eq!(r("10.1.2.3"), "lan");
        assert_eq!(r("192.168.1.1"), "lan");
        assert_eq!(r("100.64.0.1"), "lan");
        assert_eq!(r("fd00::1"), "lan");
        assert_eq!(r("0.0.0.0"), "any");
        assert_eq!(r("::"), "any");
        assert_eq!(r("203.0.113.9"), "any");
    }
}
