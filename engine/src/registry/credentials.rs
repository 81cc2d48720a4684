//! Registry credentials from docker's `config.json` (`$DOCKER_CONFIG`, else
//! `~/.docker`): a `credHelpers` entry for the host, an `auths` entry, or
//! the `credsStore` helper (`docker-credential-NAME get`).

use std::path::PathBuf;

use base64::Engine as _;

/// The directory of docker's `config.json`: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn docker_config_dir() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
}

/// The keys `config.json` may file a registry under.
fn config_keys(host: &str) -> Vec<String> {
    let mut keys = vec![host.to_string(), format!("https://{host}"), format!("http://{host}")];
    if host == "registry-1.docker.io" || host == "docker.io" {
        keys.push("https://index.docker.io/v1/".into());
        keys.push("index.docker.io".into());
    }
    keys
}

/// Why credentials for a registry could not be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum CredentialError {
    #[error("`{}` is not valid JSON: {source}", path.display())]
    Config {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the `auth` of `{host}` in {} is not {what}", path.display())]
    BadAuth {
        host: String,
        path: std::path::PathBuf,
        what: &'static str,
    },
    #[error("cannot run credential helper `{program}`: {source}")]
    Helper {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("credential helper `{program}` found no credentials for `{host}`: {said}")]
    NotFound {
        program: String,
        host: String,
        said: String,
    },
    #[error("credential helper `{program}` printed no JSON: {source}")]
    HelperOutput {
        program: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("credential helper `{program}` gave no Username/Secret")]
    NoSecret { program: String },
}

/// Credentials for `host` from docker's `config.json`: a `credHelpers`
/// entry for the host, else an `auths` entry, else the `credsStore` helper.
pub(super) fn credentials(host: &str) -> Result<Option<(String, String)>, CredentialError> {
    let Some(dir) = docker_config_dir() else {
        return Ok(None);
    };
    let path = dir.join("config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(_) => return Ok(None),
    };
    let config: serde_json::Value = serde_json::from_str(&text).map_err(|source| CredentialError::Config {
        path: path.clone(),
        source,
    })?;
    let keys = config_keys(host);
    if let Some(helper) = keys.iter().find_map(|k| config["credHelpers"][k].as_str()) {
        return credential_helper(helper, host).map(Some);
    }
    if let Some(entry) = keys.iter().find_map(|k| config["auths"].get(k)) {
        if let Some(auth) = entry["auth"].as_str() {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth)
                .map_err(|_| CredentialError::BadAuth {
                    host: host.to_string(),
                    path: path.clone(),
                    what: "base64",
                })?;
            let text = String::from_utf8_lossy(&raw).to_string();
            let (user, pass) = text.split_once(':').ok_or_else(|| CredentialError::BadAuth {
                host: host.to_string(),
                path: path.clone(),
                what: "USER:PASSWORD",
            })?;
            return Ok(Some((user.to_string(), pass.to_string())));
        }
    }
    if let Some(store) = config["credsStore"].as_str() {
        return credential_helper(store, host).map(Some);
    }
    Ok(None)
}

/// Asks `docker-credential-NAME get` for the credentials of `host`.
fn credential_helper(name: &str, host: &str) -> Result<(String, String), CredentialError> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let program = format!("docker-credential-{name}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| CredentialError::Helper {
            program: program.clone(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(host.as_bytes());
    }
    let out = child.wait_with_output().map_err(|source| CredentialError::Helper {
        program: program.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(CredentialError::NotFound {
            program,
            host: host.to_string(),
            said: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        });
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|source| CredentialError::HelperOutput {
        program: program.clone(),
        source,
    })?;
    match (v["Username"].as_str(), v["Secret"].as_str()) {
        (Some(u), Some(s)) => Ok((u.to_string(), s.to_string())),
        _ => Err(CredentialError::NoSecret { program }),
    }
}
