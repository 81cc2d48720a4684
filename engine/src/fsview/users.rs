//! Users and groups of an image: `user[:group]` (names or numbers) looked
//! up in the merged view's `/etc/passwd` and `/etc/group`.

use super::View;

/// Parses `/etc/passwd` or `/etc/group` and finds `name`'s numeric id
/// (and, for passwd, the primary gid).
pub fn lookup_id(file: &[u8], name: &str) -> Option<(u32, u32)> {
    for line in file.split(|&b| b == b'\n') {
        let fields: Vec<&[u8]> = line.split(|&b| b == b':').collect();
        if fields.len() >= 3 && fields[0] == name.as_bytes() {
            let id = std::str::from_utf8(fields[2]).ok()?.parse().ok()?;
            let gid = fields
                .get(3)
                .and_then(|g| std::str::from_utf8(g).ok()?.parse().ok())
                .unwrap_or(id);
            return Some((id, gid));
        }
    }
    None
}

/// A user or group an image does not define.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("{kind} `{name}`: the image has no {file}")]
    NoFile {
        kind: &'static str,
        name: String,
        file: &'static str,
    },
    #[error("{kind} `{name}` is not in the image's {file}")]
    Unknown {
        kind: &'static str,
        name: String,
        file: &'static str,
    },
}

/// Resolves `user[:group]` (names or numbers) against an image's passwd and group files.
pub fn resolve_user(view: &View<'_>, spec: &str) -> std::result::Result<(u32, u32), UserError> {
    let missing = |kind: &'static str, name: &str, file: &'static str| UserError::NoFile {
        kind,
        name: name.to_string(),
        file,
    };
    let unknown = |kind: &'static str, name: &str, file: &'static str| UserError::Unknown {
        kind,
        name: name.to_string(),
        file,
    };
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (uid, primary_gid) = match user.parse::<u32>() {
        Ok(uid) => {
            let gid = view
                .read_file("/etc/passwd")
                .and_then(|f| {
                    String::from_utf8_lossy(&f).lines().find_map(|l| {
                        let fields: Vec<&str> = l.split(':').collect();
                        (fields.len() >= 4 && fields[2] == user)
                            .then(|| fields[3].parse().ok())
                            .flatten()
                    })
                })
                .unwrap_or(uid);
            (uid, gid)
        }
        Err(_) => {
            let passwd = view
                .read_file("/etc/passwd")
                .ok_or_else(|| missing("user", user, "/etc/passwd"))?;
            lookup_id(&passwd, user).ok_or_else(|| unknown("user", user, "/etc/passwd"))?
        }
    };
    let gid = match group {
        None => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let groups = view
                    .read_file("/etc/group")
                    .ok_or_else(|| missing("group", g, "/etc/group"))?;
                lookup_id(&groups, g)
                    .ok_or_else(|| unknown("group", g, "/etc/group"))?
                    .0
            }
        },
    };
    Ok((uid, gid))
}
