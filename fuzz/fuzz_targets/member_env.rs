//! The member env-file parser (`members/NAME.env`): any bytes in the file
//! give a member or a `ConfigError`, never a panic.
#![no_main]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// One 0600 file per fuzzing process, rewritten for every input (writing
/// keeps the mode). `parse_member_file` takes a path: the name and the
/// permission check are part of what is parsed.
fn member_file() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("clawgate-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("alice.env");
        std::fs::write(&path, b"").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        path
    })
}

fuzz_target!(|data: &[u8]| {
    let path = member_file();
    std::fs::write(path, data).expect("write member file");
    match clawgate::config::members::parse_member_file(path) {
        Ok(parsed) => {
            // What a loaded member feeds into on the request path.
            let m = parsed.member;
            let _ = clawgate_policy::identity::CredentialIndex::build(std::slice::from_ref(&m));
            let _ = m.origins.allows_raw(Some(b"https://alice.example.com"));
            let _ = m.origins.allows_raw(None);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
