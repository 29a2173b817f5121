use super::*;

#[test]
fn rotating_file_keeps_the_newest_files_within_the_limit() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("access.log");
    let mut f = RotatingFile::open(path.clone(), 100, 2).unwrap();
    for i in 0..10 {
        f.write_all(format!("{{\"line\":{i:040}}}\n").as_bytes())
            .unwrap();
    }
    f.flush().unwrap();
    let current = fs::read_to_string(&path).unwrap();
    assert!(current.len() <= 100, "{}", current.len());
    assert!(current.contains("\"line\":0000000000000000000000000000000000000009"));
    assert!(path.with_extension("log.1").exists());
    assert!(path.with_extension("log.2").exists());
    assert!(!path.with_extension("log.3").exists(), "keep = 2");
}

fn diff() -> Explained {
    Explained::new(clawgate_policy::authorize::Diff {
        origin: clawgate_policy::origin::OriginDiff {
            presented: Some("https://evil.example.net".into()),
            allowed: vec!["https://app.example.com".into(), "none".into()],
            nearest: Some("https://app.example.com".into()),
            hint: "host differs: \"evil\" \\ app".into(),
        },
        client_ip: clawgate_policy::authorize::IpDiff {
            presented: "10.0.0.9".into(),
            allowed: vec!["127.0.0.0/8".into()],
        },
    })
}

/// The hand-written line says what `Serialize` says: the same JSON
/// value always, and the same bytes where JSON has one spelling
/// (serde_json writes `\n` where `push_json_string` writes `\u000a`).
#[test]
fn a_line_is_the_json_serde_would_write() {
    let explained = diff();
    let v6: IpAddr = "2001:db8::7".parse().unwrap();
    let full = Record {
        ts: log_writer::Timestamp(std::time::Duration::from_millis(1_764_050_462_345)),
        kind: "http",
        request_id: "01a2-\"quoted\"",
        member: "alice",
        credential: Some("tok_3bc247a274a1"),
        client_ip: Some(v6),
        ip_source: Some(IpSource::ForwardedFor { hop_from_right: 12 }),
        method: "PATCH",
        path: "/v1/é/\\x",
        status: 403,
        decision: "deny",
        reason: Some("origin_not_allowed"),
        upstream: Some("prod"),
        upstream_addr: Some("127.0.0.1:18789"),
        upstream_ms: Some(0.1 + 0.2),
        duration_ms: 1_234_567.0,
        bytes_in: Some(0),
        bytes_out: Some(u64::MAX),
        diff: Some(&explained),
    };
    let bare = Record {
        ts: log_writer::Timestamp(std::time::Duration::ZERO),
        kind: "websocket",
        request_id: "r",
        member: "-",
        credential: None,
        client_ip: None,
        ip_source: None,
        method: "GET",
        path: "-",
        status: 101,
        decision: "closed",
        reason: None,
        upstream: None,
        upstream_addr: None,
        upstream_ms: None,
        duration_ms: 1e-7,
        bytes_in: None,
        bytes_out: None,
        diff: None,
    };
    let v4 = Record {
        client_ip: Some("192.0.2.255".parse().unwrap()),
        ip_source: Some(IpSource::Socket),
        upstream_ms: Some(f64::NAN),
        duration_ms: 0.000623,
        ..bare.clone()
    };
    let control = Record {
        path: "/a\nb\u{1}c",
        ..bare.clone()
    };
    for (name, rec) in [("full", &full), ("bare", &bare), ("v4", &v4)] {
        let mut ours = String::new();
        rec.write_line(&mut ours);
        let serde = serde_json::to_string(rec).unwrap() + "\n";
        assert_eq!(ours, serde, "{name}");
    }
    let mut ours = String::new();
    control.write_line(&mut ours);
    let parsed: serde_json::Value = serde_json::from_str(&ours).unwrap();
    assert_eq!(parsed, serde_json::to_value(&control).unwrap());
    assert_eq!(parsed["path"], "/a\nb\u{1}c");
}

#[test]
fn only_a_regular_file_rotates() {
    let d = tempfile::tempdir().unwrap();
    let f = RotatingFile::open(d.path().join("access.log"), 100, 2).unwrap();
    assert_eq!(f.max_bytes, 100);
    // Opened, not written: nothing past the limit is ever renamed.
    let null = RotatingFile::open(PathBuf::from("/dev/null"), 100, 2).unwrap();
    assert_eq!(null.max_bytes, u64::MAX, "a device never rotates");
}
