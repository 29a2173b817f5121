//! Malformed gateway responses: 502 `upstream_reset`, and the proxy
//! keeps serving.

use super::*;

#[tokio::test]
async fn malformed_responses_give_502_upstream_reset_and_the_proxy_keeps_serving() {
    let (fake, _cfg, server) = setup().await;
    let paths = [
        "/garbage",
        "/two-lengths",
        "/huge-head",
        "/huge-head-unended",
        "/many-headers",
    ];
    for (n, path) in paths.iter().enumerate() {
        let r = alice_get(server.addr, path).await;
        assert_eq!(
            r.status,
            502,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let b = r.json();
        assert_eq!(b["reason"], "upstream_reset", "{path}");
        assert_eq!(b["request_id"], r.request_id());
        let times = fake.seen().iter().filter(|s| s.target == *path).count();
        assert_eq!(times, 1, "{path} is not replayed");

        let r = alice_get(server.addr, "/plain").await;
        assert_eq!(r.status, 200, "after {path}");
        assert!(r.body.starts_with(b"conn="));
        let m = metrics(server.admin_addr).await;
        assert_eq!(
            sample(
                &m,
                r#"clawgate_upstream_errors_total{kind="reset",upstream="gw"}"#
            ),
            (n + 1) as f64,
            "after {path}"
        );
    }
}
