use super::*;
use std::fs::File;
use std::io::Write;

#[test]
fn tail_returns_the_last_lines_across_chunks() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("access.log");
    let mut f = File::create(&p).unwrap();
    for i in 0..20_000 {
        writeln!(f, "line {i} {}", "x".repeat(20)).unwrap();
    }
    drop(f);
    let t = tail_file(&p, 3).unwrap();
    assert_eq!(t.len(), 3);
    assert!(t[2].starts_with("line 19999 "));
    let t = tail_file(&p, 5000).unwrap();
    assert_eq!(t.len(), 5000);
    assert!(t[0].starts_with("line 15000 "));
    assert!(tail_file(&p, 0).unwrap().is_empty());
}
