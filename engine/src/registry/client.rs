//! The distribution-protocol client: plain HTTP for loopback registries (or
//! ones named insecure), HTTPS otherwise; anonymous, basic and bearer-token
//! auth (`WWW-Authenticate`), credentials from `~/.docker/config.json`;
//! retries of transient failures; errors that name the registry, the
//! repository and what it answered.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;

/// A failed registry exchange.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry `{registry}` answered {status} for `{repository}` ({what}){detail}")]
    Status {
        registry: String,
        repository: String,
        what: String,
        status: u16,
        detail: String,
    },
    #[error("cannot reach registry `{registry}` for `{repository}`: {reason}")]
    Transport {
        registry: String,
        repository: String,
        reason: String,
    },
}

/// A client for one process; tokens are cached per (host, scope).
pub struct Client {
    agent: ureq::Agent,
    insecure: Vec<String>,
    tokens: Mutex<HashMap<String, String>>,
}

const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// A response body with its content type and digest header.
pub struct Fetched {
    pub content_type: String,
    pub docker_digest: Option<String>,
    pub body: Box<dyn Read + Send>,
}

fn is_loopback(host: &str) -> bool {
    let h = host.rsplit_once(':').map_or(
        host,
        |(h, p)| if p.chars().all(|c| c.is_ascii_digit()) { h } else { host },
    );
    h == "localhost" || h.starts_with("127.") || h == "[::1]"
}

/// Basic credentials for `host` from `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
fn credentials(host: &str) -> Option<(String, String)> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".docker")))?;
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    let auths = config.get("auths")?.as_object()?;
    let keys = [host.to_string(), format!("https://{host}"), format!("http://{host}")];
    let entry = keys.iter().find_map(|k| auths.get(k)).or_else(|| {
        (host == "registry-1.docker.io")
            .then(|| auths.get("https://index.docker.io/v1/"))
            .flatten()
    })?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(entry.get("auth")?.as_str()?)
        .ok()?;
    let (user, pass) = String::from_utf8(raw)
        .ok()?
        .split_once(':')
        .map(|(u, p)| (u.to_string(), p.to_string()))?;
    Some((user, pass))
}

fn challenge_params(header: &str) -> (String, HashMap<String, String>) {
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            (quoted[..end].to_string(), quoted.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        params.insert(key, value);
        rest = next.trim_start_matches(',').trim();
    }
    (scheme.to_ascii_lowercase(), params)
}

impl Client {
    pub fn new(insecure: Vec<String>) -> Client {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(15))
            .timeout_read(Duration::from_secs(300))
            .build();
        Client {
            agent,
            insecure,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    fn base(&self, host: &str) -> String {
        let plain = is_loopback(host) || self.insecure.iter().any(|h| h == host);
        format!("{}://{host}", if plain { "http" } else { "https" })
    }

    fn status_error(&self, host: &str, repo: &str, what: &str, resp: ureq::Response) -> RegistryError {
        let status = resp.status();
        let body = resp.into_string().unwrap_or_default();
        let detail = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["errors"].as_array().and_then(|e| e.first().cloned()))
            .map(|e| {
                format!(
                    ": {} {}",
                    e["code"].as_str().unwrap_or(""),
                    e["message"].as_str().unwrap_or("")
                )
            })
            .unwrap_or_default();
        RegistryError::Status {
            registry: host.into(),
            repository: repo.into(),
            what: what.into(),
            status,
            detail,
        }
    }

    /// Gets a token or basic header for a 401 challenge.
    fn authorize(&self, host: &str, repo: &str, challenge: &str) -> Result<String, RegistryError> {
        let (scheme, params) = challenge_params(challenge);
        let creds = credentials(host);
        if scheme == "basic" {
            let (u, p) = creds.ok_or_else(|| RegistryError::Status {
                registry: host.into(),
                repository: repo.into(),
                what: "credentials".into(),
                status: 401,
                detail: ": no credentials for this registry in ~/.docker/config.json".into(),
            })?;
            return Ok(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            ));
        }
        let realm = params.get("realm").cloned().unwrap_or_default();
        let scope = params
            .get("scope")
            .cloned()
            .unwrap_or_else(|| format!("repository:{repo}:pull"));
        let mut req = self.agent.get(&realm).query("scope", &scope);
        if let Some(service) = params.get("service") {
            req = req.query("service", service);
        }
        if let Some((u, p)) = creds {
            req = req.set(
                "Authorization",
                &format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                ),
            );
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => return Err(self.status_error(host, repo, "token", r)),
            Err(e) => {
                return Err(RegistryError::Transport {
                    registry: host.into(),
                    repository: repo.into(),
                    reason: e.to_string(),
                })
            }
        };
        let text = resp.into_string().unwrap_or_default();
        let body: serde_json::Value = serde_json::from_str(&text).map_err(|e| RegistryError::Transport {
            registry: host.into(),
            repository: repo.into(),
            reason: format!("bad token response: {e}"),
        })?;
        let token = body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .unwrap_or_default();
        Ok(format!("Bearer {token}"))
    }

    /// GET `path` under `/v2/` with auth and retries.
    pub fn get(
        &self,
        host: &str,
        repo: &str,
        path: &str,
        accept: Option<&str>,
        what: &str,
    ) -> Result<Fetched, RegistryError> {
        let url = format!("{}/v2/{path}", self.base(host));
        let key = format!("{host} {repo}");
        let mut attempt = 0;
        let mut authorized = false;
        loop {
            attempt += 1;
            let mut req = self.agent.get(&url);
            if let Some(a) = accept {
                req = req.set("Accept", a);
            }
            if let Some(auth) = self.tokens.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
                req = req.set("Authorization", auth);
            }
            match req.call() {
                Ok(resp) => {
                    return Ok(Fetched {
                        content_type: resp.content_type().to_string(),
                        docker_digest: resp.header("Docker-Content-Digest").map(str::to_string),
                        body: Box::new(resp.into_reader()),
                    })
                }
                Err(ureq::Error::Status(401, resp)) if !authorized => {
                    let challenge = resp.header("WWW-Authenticate").unwrap_or("").to_string();
                    let auth = self.authorize(host, repo, &challenge)?;
                    self.tokens
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key.clone(), auth);
                    authorized = true;
                }
                Err(ureq::Error::Status(code, _)) if (code == 429 || code >= 500) && attempt < 4 => {
                    std::thread::sleep(Duration::from_millis(200 << attempt));
                }
                Err(ureq::Error::Status(_, resp)) => return Err(self.status_error(host, repo, what, resp)),
                Err(ureq::Error::Transport(_)) if attempt < 4 => {
                    std::thread::sleep(Duration::from_millis(200 << attempt))
                }
                Err(e) => {
                    return Err(RegistryError::Transport {
                        registry: host.into(),
                        repository: repo.into(),
                        reason: e.to_string(),
                    })
                }
            }
        }
    }

    /// A manifest or index by tag or digest.
    pub fn manifest(&self, host: &str, repo: &str, reference: &str) -> Result<(Vec<u8>, String), RegistryError> {
        let mut fetched = self.get(
            host,
            repo,
            &format!("{repo}/manifests/{reference}"),
            Some(MANIFEST_TYPES),
            &format!("manifest {reference}"),
        )?;
        let mut body = Vec::new();
        fetched
            .body
            .read_to_end(&mut body)
            .map_err(|e| RegistryError::Transport {
                registry: host.into(),
                repository: repo.into(),
                reason: e.to_string(),
            })?;
        Ok((body, fetched.content_type))
    }

    /// A blob's body.
    pub fn blob(&self, host: &str, repo: &str, digest: &str) -> Result<Box<dyn Read + Send>, RegistryError> {
        Ok(self
            .get(
                host,
                repo,
                &format!("{repo}/blobs/{digest}"),
                None,
                &format!("blob {digest}"),
            )?
            .body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_parse() {
        let (scheme, p) = challenge_params(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        );
        assert_eq!(scheme, "bearer");
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull");
    }

    #[test]
    fn loopback_hosts_use_plain_http() {
        let c = Client::new(vec!["reg.lan:5000".into()]);
        assert_eq!(c.base("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(c.base("localhost"), "http://localhost");
        assert_eq!(c.base("reg.lan:5000"), "http://reg.lan:5000");
        assert_eq!(c.base("ghcr.io"), "https://ghcr.io");
    }
}
