//! The per-request decision path, without sockets: identify (token, client
//! certificate), the origin check, the CIDR check, identify + policy
//! together, and the 403 diff.
//!
//! Members are written as a real config directory (`clawgate.toml` plus one
//! `members/<name>.env` each, mode 0600) and read with `config::load`, so
//! the bench measures exactly what `clawgate run` would build. Three sizes:
//! 10, 1,000 and 10,000 members, each size holding 100,000 egress CIDRs in
//! total (10,000 / 100 / 10 per member).
//!
//! Run: `cargo bench --bench decision -- --warm-up-time 0.5 --measurement-time 2`
//! (criterion's own `--help` lists filters; e.g. `-- decision/` for one group).
//! Before the timed groups it prints heap allocations per operation, counted
//! by a wrapping global allocator (this file only; the library stays
//! `forbid(unsafe_code)`).
//!
//! Target (issue 8): `decision/identify_token+evaluate/10000` under 1 µs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::fs;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use sha2::{Digest, Sha256};

use clawgate::config::{self, Snapshot};
use clawgate_policy::authorize;
use clawgate_policy::cidr::{self, CidrSet};
use clawgate_policy::identity::{self, PeerCert, Presented};
use clawgate_policy::origin::{self, Allowlist};

// ---- allocation counter (bench binary only) -------------------------------

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; the only
// addition is a relaxed counter increment.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap allocations per call of `f`, averaged over 1,000 calls.
fn allocs_per_op<R>(mut f: impl FnMut() -> R) -> f64 {
    const N: u64 = 1_000;
    black_box(f());
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..N {
        black_box(f());
    }
    (ALLOCS.load(Ordering::Relaxed) - before) as f64 / N as f64
}

// ---- fixture -----------------------------------------------------------------

const SIZES: [usize; 3] = [10, 1_000, 10_000];
const TOTAL_CIDRS: usize = 100_000;

fn token_of(i: usize) -> String {
    format!("bench-token-{i:06}-6f1c2a9e4b7d40c8a3e5f0b1d2c3e4f5")
}

fn cert_of(i: usize) -> [u8; 32] {
    Sha256::digest(format!("bench-cert-{i}").as_bytes()).into()
}

/// The `g`-th of the 100,000 networks: disjoint IPv4 /28s inside 10.0.0.0/8
/// with a gap after each (so merging cannot collapse them), every eighth an
/// IPv6 /64 instead.
fn net_of(g: usize) -> String {
    if g % 8 == 7 {
        format!("2001:db8:{:x}:{:x}::/64", g >> 16, g & 0xffff)
    } else {
        let a = 0x0a00_0000u32 + ((g as u32) << 5);
        format!("{}/28", Ipv4Addr::from(a))
    }
}

/// An address inside network `g` (IPv4 networks only).
fn ip_in(g: usize) -> IpAddr {
    assert!(g % 8 != 7);
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000u32 + ((g as u32) << 5) + 3))
}

/// Write a config dir with `n` members and load it.
fn snapshot(n: usize, dir: &Path) -> Snapshot {
    fs::create_dir_all(dir.join("members")).unwrap();
    fs::write(
        dir.join("clawgate.toml"),
        "[listen]\naddr = \"127.0.0.1:0\"\n[admin]\naddr = \"127.0.0.1:0\"\n\
         [log]\naccess = \"off\"\n[upstreams.prod]\nurl = \"http://127.0.0.1:18789\"\n",
    )
    .unwrap();
    let per = TOTAL_CIDRS / n;
    for i in 0..n {
        let mut cidrs = String::with_capacity(per * 20);
        for j in 0..per {
            let _ = write!(cidrs, "{} ", net_of(i * per + j));
        }
        let tok = hex::encode(Sha256::digest(token_of(i).as_bytes()));
        // A second, expiring token: the dual-write rotation window.
        let old = hex::encode(Sha256::digest(format!("old-{}", token_of(i)).as_bytes()));
        let text = format!(
            "TOKEN_SHA256=\"{tok} {old}@2099-01-01T00:00:00Z\"\n\
             CERT_SHA256={}\n\
             ORIGINS=\"none https://m{i}.example.com http://127.0.0.1:3000 https://*.m{i}.example.org\"\n\
             EGRESS_CIDRS=\"{}\"\n\
             SCOPES=\"operator.read operator.write\"\n",
            hex::encode(cert_of(i)),
            cidrs.trim_end()
        );
        let p = dir.join("members").join(format!("m{i:05}.env"));
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    }
    config::load(dir).unwrap_or_else(|e| panic!("bench config does not load: {e}"))
}

struct Fixture {
    n: usize,
    snap: Snapshot,
    /// The probed member: in the middle of the set.
    probe: usize,
    token: String,
    bearer_header: String,
    cert: PeerCert,
    origin_ok: String,
    ip_ok: IpAddr,
}

fn fixture(n: usize) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = std::time::Instant::now();
    let snap = snapshot(n, tmp.path());
    eprintln!(
        "fixture: {n} members, {TOTAL_CIDRS} CIDRs written + config::load in {:.2?}",
        t0.elapsed()
    );
    let probe = n / 2;
    let per = TOTAL_CIDRS / n;
    // the member's own network: the first IPv4 one it holds
    let g = (probe * per..probe * per + per)
        .find(|g| g % 8 != 7)
        .unwrap();
    let idx = snap
        .member_by_name(&format!("m{probe:05}"))
        .map(|(i, _)| i)
        .unwrap();
    Fixture {
        n,
        probe: idx,
        token: token_of(probe),
        bearer_header: format!("Bearer {}", token_of(probe)),
        cert: PeerCert {
            sha256: cert_of(probe),
            sans: Vec::new(),
        },
        origin_ok: format!("https://m{probe}.example.com"),
        ip_ok: ip_in(g),
        snap,
    }
}

// ---- benches -------------------------------------------------------------------

fn report_allocations(fx: &Fixture) {
    let now = SystemTime::now();
    let m = &fx.snap.members[fx.probe];
    let tok = Presented {
        bearer: Some(fx.token.as_bytes()),
        ..Default::default()
    };
    let cert = Presented {
        cert: Some(&fx.cert),
        ..Default::default()
    };
    let o = Some(fx.origin_ok.as_bytes());
    let bad = Some(&b"http://m0.example.com:8443"[..]);
    eprintln!(
        "allocations/op at {} members: identify(token) {:.1}, identify(cert) {:.1}, \
         evaluate {:.1}, identify+evaluate {:.1}, explain {:.1}",
        fx.n,
        allocs_per_op(|| fx.snap.credentials.identify(&tok, now)),
        allocs_per_op(|| fx.snap.credentials.identify(&cert, now)),
        allocs_per_op(|| authorize::evaluate(m, o, fx.ip_ok)),
        allocs_per_op(|| {
            let id = fx.snap.credentials.identify(&tok, now).unwrap();
            authorize::evaluate(&fx.snap.members[id.member], o, fx.ip_ok)
        }),
        allocs_per_op(|| authorize::explain(m, bad, fx.ip_ok)),
    );
}

fn per_size(c: &mut Criterion) {
    for n in SIZES {
        let fx = fixture(n);
        report_allocations(&fx);
        let now = SystemTime::now();
        let creds = &fx.snap.credentials;
        let member = &fx.snap.members[fx.probe];

        let mut g = c.benchmark_group("identify");
        g.bench_with_input(BenchmarkId::new("token", n), &fx, |b, fx| {
            let p = Presented {
                bearer: Some(fx.token.as_bytes()),
                ..Default::default()
            };
            b.iter(|| creds.identify(black_box(&p), now))
        });
        g.bench_with_input(BenchmarkId::new("token_unknown", n), &fx, |b, _| {
            let p = Presented {
                bearer: Some(b"not-a-member-token-6f1c2a9e4b7d40c8a3e5f0b1d2c3e4f5"),
                ..Default::default()
            };
            b.iter(|| creds.identify(black_box(&p), now))
        });
        g.bench_with_input(BenchmarkId::new("cert", n), &fx, |b, fx| {
            let p = Presented {
                cert: Some(&fx.cert),
                ..Default::default()
            };
            b.iter(|| creds.identify(black_box(&p), now))
        });
        g.finish();

        let mut g = c.benchmark_group("decision");
        // What the proxy does per member request: parse the Authorization
        // header, identify, then policy (origin, CIDR).
        g.bench_with_input(
            BenchmarkId::new("identify_token+evaluate", n),
            &fx,
            |b, fx| {
                let origin = Some(fx.origin_ok.as_bytes());
                b.iter(|| {
                    let p = Presented {
                        bearer: identity::bearer(black_box(fx.bearer_header.as_bytes())),
                        ..Default::default()
                    };
                    let id = creds.identify(&p, now).unwrap();
                    authorize::evaluate(&fx.snap.members[id.member], black_box(origin), fx.ip_ok)
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("identify_cert+evaluate", n),
            &fx,
            |b, fx| {
                let p = Presented {
                    cert: Some(&fx.cert),
                    ..Default::default()
                };
                b.iter(|| {
                    let id = creds.identify(black_box(&p), now).unwrap();
                    authorize::evaluate(&fx.snap.members[id.member], None, fx.ip_ok)
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("evaluate_only", n), &fx, |b, fx| {
            let origin = Some(fx.origin_ok.as_bytes());
            b.iter(|| authorize::evaluate(member, black_box(origin), black_box(fx.ip_ok)))
        });
        g.finish();

        // The 403 path: a wrong port on a browser origin, address outside
        // the member's CIDRs (the diff lists at most 32 of them).
        let mut g = c.benchmark_group("explain");
        g.bench_with_input(BenchmarkId::new("origin_port+cidr", n), &fx, |b, _| {
            let bad = Some(&b"https://m1.example.com:8443"[..]);
            let ip: IpAddr = "192.0.2.7".parse().unwrap();
            b.iter(|| authorize::explain(member, black_box(bad), ip))
        });
        g.bench_with_input(BenchmarkId::new("deny_body_json", n), &fx, |b, _| {
            let bad = Some(&b"https://m1.example.com:8443"[..]);
            let ip: IpAddr = "192.0.2.7".parse().unwrap();
            b.iter(|| {
                let d = authorize::Explained::new(authorize::explain(member, black_box(bad), ip));
                clawgate::deny::forbidden(
                    clawgate_policy::Reason::OriginNotAllowed,
                    "0190aaaa-bbbb-7ccc-8ddd-eeeeffff0000",
                    &member.name,
                    &d,
                )
            })
        });
        g.finish();
    }
}

fn origin_check(c: &mut Criterion) {
    let list = Allowlist::new(
        [
            "none",
            "https://app.example.com",
            "http://127.0.0.1:3000",
            "https://*.example.org",
        ]
        .iter()
        .map(|p| origin::parse_pattern(p).unwrap())
        .collect(),
    );
    let mut g = c.benchmark_group("origin");
    let cases: [(&str, Option<&[u8]>, bool); 6] = [
        ("absent", None, true),
        ("exact_bytes", Some(b"https://app.example.com"), true),
        ("exact_second_entry", Some(b"http://127.0.0.1:3000"), true),
        // needs parsing: upper case and an explicit default port
        (
            "parsed_case_port",
            Some(b"HTTPS://App.Example.COM:443"),
            true,
        ),
        ("parsed_wildcard", Some(b"https://x.example.org"), true),
        ("parsed_miss", Some(b"https://evil.example.net"), false),
    ];
    for (name, v, want) in cases {
        assert_eq!(list.allows_raw(v), want, "{name}");
        g.bench_function(name, |b| b.iter(|| list.allows_raw(black_box(v))));
    }
    g.finish();
}

fn cidr_check(c: &mut Criterion) {
    let nets = (0..TOTAL_CIDRS)
        .map(|g| cidr::parse_net(&net_of(g)).unwrap())
        .collect::<Vec<_>>();
    let set = CidrSet::new(nets.clone());
    let hit = ip_in(TOTAL_CIDRS / 2 + 1);
    let miss: IpAddr = "10.0.0.20".parse().unwrap(); // in the gap after net 0
    let v6_hit: IpAddr = "2001:db8:0:7::1".parse().unwrap();
    let mapped: IpAddr = format!("::ffff:{hit}").parse().unwrap();
    assert!(set.contains(hit) && !set.contains(miss) && set.contains(v6_hit));
    let mut g = c.benchmark_group("cidr_100k");
    g.bench_function("v4_hit", |b| b.iter(|| set.contains(black_box(hit))));
    g.bench_function("v4_miss", |b| b.iter(|| set.contains(black_box(miss))));
    g.bench_function("v6_hit", |b| b.iter(|| set.contains(black_box(v6_hit))));
    g.bench_function("v4_mapped_v6_hit", |b| {
        b.iter(|| set.contains(black_box(mapped)))
    });
    // The naive structure, for scale: a linear scan over the networks.
    g.bench_function("naive_linear_scan_v4_hit", |b| {
        b.iter(|| nets.iter().any(|n| n.contains(&black_box(hit))))
    });
    g.finish();
}

criterion_group!(benches, origin_check, cidr_check, per_size);
criterion_main!(benches);
