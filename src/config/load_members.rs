//! The member files of a config directory, loaded strictly (any bad file
//! refuses the whole) or as a reload does (a bad file blocks only its
//! member: its last good version stays, a new one is left out).

use std::path::Path;

use clawgate_policy::identity::CredentialIndex;
use clawgate_policy::member::Member;

use super::{error, members, ConfigError, Fingerprint, Snapshot, Upstream, BASE_FILE};

/// A member file refused by [`super::load_keeping`] while the others applied.
#[derive(Debug)]
pub struct MemberFault {
    /// The file's stem (it may not be a valid member name).
    pub member: String,
    pub error: ConfigError,
    /// The member's last good file from the previous snapshot still
    /// applies; false for a new member, which is left out.
    pub kept: bool,
}

/// What the member files give: the members, their credential index, and
/// the files refused (only when loading as a reload does).
pub(super) struct Members {
    pub list: Vec<Member>,
    pub credentials: CredentialIndex,
    pub faults: Vec<MemberFault>,
}

/// Every member file under `members_dir` (and `candidate`), each folded
/// into `fp`. `keep`: `None` refuses on any bad file; `Some(previous)`
/// keeps going and keeps `previous`'s version of a broken member.
pub(super) fn load(
    members_dir: &Path,
    upstreams: &[Upstream],
    default_upstream: Option<usize>,
    fp: &mut Fingerprint,
    keep: Option<Option<&Snapshot>>,
    candidate: Option<members::Candidate<'_>>,
) -> Result<Members, ConfigError> {
    let mut member_list = Vec::new();
    let mut faults = Vec::new();
    for path in members::member_files_with(members_dir, candidate)? {
        let error = match member_from_file(&path, candidate, upstreams, default_upstream) {
            Ok((m, file_sha256)) => {
                fp.member(&m.name, &file_sha256);
                member_list.push(m);
                continue;
            }
            Err(e) => e,
        };
        let Some(previous) = keep else {
            return Err(error);
        };
        let kept = previous.and_then(|p| last_good(p, &path, upstreams));
        if let Some(m) = &kept {
            fp.kept(&m.name);
        }
        faults.push(MemberFault {
            member: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            kept: kept.is_some(),
            error,
        });
        member_list.extend(kept);
    }
    let credentials = CredentialIndex::build(&member_list).map_err(|c| {
        let file = &member_list[c.second].file;
        let key = c
            .credential
            .split(' ')
            .next()
            .filter(|k| k.starts_with("CERT_"));
        error::env_key_error(
            file,
            key.unwrap_or("TOKEN_SHA256"),
            format!(
                "{} is also claimed by member '{}' ({}); each credential must belong to one member",
                c.credential,
                member_list[c.first].name,
                member_list[c.first].file.display()
            ),
        )
    })?;

    Ok(Members {
        list: member_list,
        credentials,
        faults,
    })
}

/// One member file, its upstream resolved against `upstreams`.
fn member_from_file(
    path: &Path,
    candidate: Option<members::Candidate<'_>>,
    upstreams: &[Upstream],
    default_upstream: Option<usize>,
) -> Result<(Member, [u8; 32]), ConfigError> {
    let parsed = members::parse_member(path, candidate)?;
    let mut m = parsed.member;
    m.upstream = match parsed.upstream {
        Some((name, line)) => upstreams
            .iter()
            .position(|u| u.name == name)
            .ok_or_else(|| {
                let defined: Vec<_> = upstreams.iter().map(|u| u.name.as_str()).collect();
                ConfigError::line(
                    path,
                    line,
                    format!(
                        "UPSTREAM: no upstream named '{name}' in {BASE_FILE}; defined: {}",
                        defined.join(", ")
                    ),
                )
            })?,
        None => default_upstream.ok_or_else(|| {
            ConfigError::file(
                path,
                "no UPSTREAM and no [members] default_upstream: set one of them",
            )
        })?,
    };
    Ok((m, parsed.file_sha256))
}

/// The member `previous` built from `path`, its upstream found again by
/// name among the new `upstreams` (none if that upstream is gone).
fn last_good(previous: &Snapshot, path: &Path, upstreams: &[Upstream]) -> Option<Member> {
    let m = previous.members.iter().find(|m| m.file == path)?;
    let name = &previous.upstreams[m.upstream].name;
    let upstream = upstreams.iter().position(|u| &u.name == name)?;
    Some(Member {
        upstream,
        ..m.clone()
    })
}
