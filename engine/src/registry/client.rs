//! The distribution-protocol client: plain HTTP for loopback registries (or
//! ones named insecure), HTTPS otherwise; anonymous, basic and bearer-token
//! auth (`WWW-Authenticate`), credentials from `~/.docker/config.json`;
//! retries of transient failures; errors that name the registry, the
//! repository and what it answered.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;

use super::download::{self, Bounded, Expect};
use crate::image::Descriptor;

/// A failed registry exchange.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "registry `{registry}` answered {status}{} ({what}){detail}",
        for_repository(repository)
    )]
    Status {
        registry: String,
        repository: String,
        what: String,
        status: u16,
        detail: String,
    },
    #[error("cannot reach registry `{registry}`{}: {reason}", for_repository(repository))]
    Transport {
        registry: String,
        repository: String,
        reason: String,
    },
    /// A manifest's bytes do not hash to the digest that names them.
    #[error("content of `{what}` hashes to `{actual}`, expected `{expected}`")]
    DigestMismatch {
        what: String,
        expected: crate::digest::Digest,
        actual: crate::digest::Digest,
    },
    /// A manifest or index that is not JSON of its kind.
    #[error("failed to parse {what}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// A manifest or index is not what its media type says.
    #[error("invalid image `{what}`: {reason}")]
    BadManifest { what: String, reason: String },
}

fn for_repository(repository: &str) -> String {
    if repository.is_empty() {
        String::new()
    } else {
        format!(" for `{repository}`")
    }
}

/// A client for one process; tokens are cached per (host, scope).
pub struct Client {
    agent: ureq::Agent,
    insecure: Vec<String>,
    tokens: Mutex<HashMap<String, String>>,
    /// Credentials given on the command line, used instead of `config.json`.
    login: Option<(String, String)>,
}

const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// A response body with its content type and digest header, read under
/// its bound.
pub struct Fetched {
    pub content_type: String,
    pub docker_digest: Option<String>,
    pub body: Bounded<download::Pumped>,
}

/// The `host[:port]` an absolute URL names (`None` for a relative one).
fn url_host(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    Some(authority.rsplit_once('@').map_or(authority, |(_, h)| h))
}

/// Whether `url` is on `host`, the registry the credentials are for; a
/// default port counts as none (`host` and `host:443`).
fn same_host(url: &str, host: &str) -> bool {
    let Some(at) = url_host(url) else { return true };
    let strip = |h: &str| {
        h.strip_suffix(":443")
            .or_else(|| h.strip_suffix(":80"))
            .unwrap_or(h)
            .to_ascii_lowercase()
    };
    strip(at) == strip(host)
}

/// At most `limit` bytes of an answer's body, as text (error bodies, tokens).
fn body_text(resp: ureq::Response, limit: u64) -> String {
    let mut bytes = Vec::new();
    if let Ok(body) = download::Pumped::new(resp.into_reader(), "an answer") {
        let _ = body.take(limit).read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn is_loopback(host: &str) -> bool {
    let h = host.rsplit_once(':').map_or(
        host,
        |(h, p)| if p.chars().all(|c| c.is_ascii_digit()) { h } else { host },
    );
    h == "localhost" || h.starts_with("127.") || h == "[::1]"
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

/// A request body that can be sent again after a retry.
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A file streamed from disk, with its length.
    File(&'a Path, u64),
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

impl Client {
    pub fn new(insecure: Vec<String>) -> Client {
        let agent = download::agent();
        Client {
            agent,
            insecure,
            tokens: Mutex::new(HashMap::new()),
            login: None,
        }
    }

    /// Streams the body of a plain GET of `url` into `out` under `expect`
    /// (a file of a recipe's `fetch`, not a registry call).
    pub fn download(
        &self,
        url: &str,
        expect: Expect,
        out: &mut dyn std::io::Write,
    ) -> std::result::Result<u64, String> {
        let mut body = download::get(&self.agent, url, expect).map_err(|e| match e {
            download::DownloadError::Status { status, .. } => format!("the server answered {status}"),
            download::DownloadError::Transport { reason, .. } => reason,
        })?;
        std::io::copy(&mut body, out).map_err(|e| e.to_string())
    }

    /// A client that uses these credentials instead of `config.json` (for `strata login`).
    pub fn with_credentials(insecure: Vec<String>, user: &str, pass: &str) -> Client {
        Client {
            login: Some((user.to_string(), pass.to_string())),
            ..Client::new(insecure)
        }
    }

    fn base(&self, host: &str) -> String {
        let plain = is_loopback(host) || self.insecure.iter().any(|h| h == host);
        format!("{}://{host}", if plain { "http" } else { "https" })
    }

    /// The absolute URL of `location` (an upload `Location` may be relative).
    pub fn absolute(&self, host: &str, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{location}", self.base(host))
        }
    }

    fn status_error(&self, host: &str, repo: &str, what: &str, resp: ureq::Response) -> RegistryError {
        let status = resp.status();
        let body = body_text(resp, 64 << 10);
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
        let detail = match (status, detail.is_empty()) {
            (401, true) => ": unauthorized (log in with `strata login`)".to_string(),
            _ => detail,
        };
        RegistryError::Status {
            registry: host.into(),
            repository: repo.into(),
            what: what.into(),
            status,
            detail,
        }
    }

    fn transport(host: &str, repo: &str, reason: impl ToString) -> RegistryError {
        RegistryError::Transport {
            registry: host.into(),
            repository: repo.into(),
            reason: reason.to_string(),
        }
    }

    fn credentials(&self, host: &str, repo: &str) -> Result<Option<(String, String)>, RegistryError> {
        if let Some(login) = &self.login {
            return Ok(Some(login.clone()));
        }
        super::credentials::credentials(host).map_err(|e| Self::transport(host, repo, e.to_string()))
    }

    /// Gets a token or basic header for a 401 challenge.
    fn authorize(&self, host: &str, repo: &str, challenge: &str, push: bool) -> Result<String, RegistryError> {
        let (scheme, params) = challenge_params(challenge);
        let creds = self.credentials(host, repo)?;
        if scheme == "basic" {
            let (u, p) = creds.ok_or_else(|| RegistryError::Status {
                registry: host.into(),
                repository: repo.into(),
                what: "credentials".into(),
                status: 401,
                detail: ": no credentials for this registry (run `strata login`)".into(),
            })?;
            return Ok(basic(&u, &p));
        }
        let realm = params.get("realm").cloned().unwrap_or_default();
        let actions = if push { "pull,push" } else { "pull" };
        let scope = params
            .get("scope")
            .cloned()
            .unwrap_or_else(|| format!("repository:{repo}:{actions}"));
        let mut req = self.agent.get(&realm).query("scope", &scope);
        if let Some(service) = params.get("service") {
            req = req.query("service", service);
        }
        // The token service the challenge names gets the credentials (as
        // Docker sends them), but never in the clear to another host.
        let clear_elsewhere =
            realm.starts_with("http://") && !same_host(&realm, host) && !url_host(&realm).is_some_and(is_loopback);
        if let Some((u, p)) = creds.filter(|_| !clear_elsewhere) {
            req = req.set("Authorization", &basic(&u, &p));
        }
        let resp = match download::interruptible("the token service", move || req.call().map_err(Box::new))
            .map_err(|e| Self::transport(host, repo, e))?
            .map_err(|e| *e)
        {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => return Err(self.status_error(host, repo, "token", r)),
            Err(e) => return Err(Self::transport(host, repo, e)),
        };
        let text = body_text(resp, download::MAX_DOCUMENT);
        let body: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Self::transport(host, repo, format!("bad token response: {e}")))?;
        let token = body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .unwrap_or_default();
        Ok(format!("Bearer {token}"))
    }

    /// One exchange with auth and retries: `url` is a path under `/v2/` or
    /// an absolute URL (an upload location). Answers other than 2xx are
    /// errors that name `what`.
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &self,
        method: &str,
        host: &str,
        repo: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
        what: &str,
    ) -> Result<ureq::Response, RegistryError> {
        let url = if url.contains("://") {
            url.to_string()
        } else {
            format!("{}/v2/{url}", self.base(host))
        };
        let push = !matches!(method, "GET" | "HEAD");
        let key = format!("{host} {repo} {push}");
        let mut attempt = 0;
        let mut authorized = false;
        loop {
            attempt += 1;
            let mut req = self.agent.request(method, &url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            // Credentials go to the registry that asked for them and nowhere
            // else: an upload `Location` on another host gets none (Docker's rule).
            if same_host(&url, host) {
                if let Some(auth) = self.tokens.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
                    req = req.set("Authorization", auth);
                }
            }
            // On a thread of its own, so that an interrupt ends the wait
            // for a server that never answers.
            type Exchange = Box<dyn FnOnce() -> Result<ureq::Response, Box<ureq::Error>> + Send>;
            let exchange: Exchange = match &body {
                Body::Empty if push => {
                    Box::new(move || req.set("Content-Length", "0").send_bytes(&[]).map_err(Box::new))
                }
                Body::Empty => Box::new(move || req.call().map_err(Box::new)),
                Body::Bytes(b) => {
                    let bytes = b.to_vec();
                    Box::new(move || req.send_bytes(&bytes).map_err(Box::new))
                }
                Body::File(path, len) => match std::fs::File::open(path) {
                    Ok(f) => {
                        let req = req.set("Content-Length", &len.to_string());
                        Box::new(move || {
                            req.send(std::io::BufReader::with_capacity(1 << 20, f))
                                .map_err(Box::new)
                        })
                    }
                    Err(e) => return Err(Self::transport(host, repo, format!("{}: {e}", path.display()))),
                },
            };
            let result = download::interruptible(what, exchange)
                .map_err(|e| Self::transport(host, repo, e))?
                .map_err(|e| *e);
            match result {
                Ok(resp) => return Ok(resp),
                Err(ureq::Error::Status(401, resp)) if !authorized && same_host(&url, host) => {
                    let challenge = resp.header("WWW-Authenticate").unwrap_or("").to_string();
                    let auth = self.authorize(host, repo, &challenge, push)?;
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
                Err(e) => return Err(Self::transport(host, repo, e)),
            }
        }
    }

    /// GET `path` under `/v2/` with auth and retries, its body under `expect`.
    pub fn get(
        &self,
        host: &str,
        repo: &str,
        path: &str,
        accept: Option<&str>,
        what: &str,
        expect: Expect,
    ) -> Result<Fetched, RegistryError> {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let resp = self.send("GET", host, repo, path, &headers, Body::Empty, what)?;
        let length = resp.header("Content-Length").and_then(|v| v.trim().parse::<u64>().ok());
        let shown = format!("{what} from `{host}`");
        expect
            .check_length(&shown, length)
            .map_err(|e| Self::transport(host, repo, e))?;
        Ok(Fetched {
            content_type: resp.content_type().to_string(),
            docker_digest: resp.header("Docker-Content-Digest").map(str::to_string),
            body: Bounded::network(resp.into_reader(), shown, expect).map_err(|e| Self::transport(host, repo, e))?,
        })
    }

    /// `HEAD` of a manifest or blob path: `Some(digest header)` when it
    /// exists, `None` on 404.
    pub fn exists(&self, host: &str, repo: &str, path: &str, what: &str) -> Result<Option<String>, RegistryError> {
        let headers = [("Accept", MANIFEST_TYPES)];
        match self.send("HEAD", host, repo, path, &headers, Body::Empty, what) {
            Ok(resp) => Ok(Some(resp.header("Docker-Content-Digest").unwrap_or("").to_string())),
            Err(RegistryError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A manifest or index by tag or digest (at most `MAX_DOCUMENT` bytes).
    pub fn manifest(&self, host: &str, repo: &str, reference: &str) -> Result<(Vec<u8>, String), RegistryError> {
        let fetched = self.get(
            host,
            repo,
            &format!("{repo}/manifests/{reference}"),
            Some(MANIFEST_TYPES),
            &format!("manifest {reference}"),
            Expect::document(),
        )?;
        let body = fetched.body.into_bytes().map_err(|e| Self::transport(host, repo, e))?;
        Ok((body, fetched.content_type))
    }

    /// The blob `desc` names: exactly its size, hashing to its digest, or
    /// an error at the byte that says otherwise.
    pub fn blob(&self, host: &str, repo: &str, desc: &Descriptor) -> Result<Bounded<download::Pumped>, RegistryError> {
        let digest = desc.digest.to_string();
        Ok(self
            .get(
                host,
                repo,
                &format!("{repo}/blobs/{digest}"),
                None,
                &format!("blob {digest}"),
                Expect::blob(desc.size, desc.digest.clone()),
            )?
            .body)
    }

    /// A JSON blob (a config, a cache entry, an attestation) into memory:
    /// as [`Client::blob`], and no larger than `MAX_DOCUMENT` whatever its
    /// descriptor claims.
    pub fn document(&self, host: &str, repo: &str, desc: &Descriptor) -> Result<Vec<u8>, RegistryError> {
        if desc.size > download::MAX_DOCUMENT {
            return Err(RegistryError::BadManifest {
                what: format!("blob {}", desc.digest),
                reason: format!(
                    "its descriptor says {} bytes, more than the {} a JSON document may be",
                    desc.size,
                    download::MAX_DOCUMENT
                ),
            });
        }
        self.blob(host, repo, desc)?
            .into_bytes()
            .map_err(|e| Self::transport(host, repo, e))
    }

    /// Puts a blob into `repo` unless it is there: mounted from `from` (a
    /// repository of the same registry that has it) when given, otherwise
    /// uploaded in one streamed request. Returns what happened.
    pub fn push_blob(
        &self,
        host: &str,
        repo: &str,
        digest: &str,
        body: Body<'_>,
        from: Option<&str>,
    ) -> Result<BlobPush, RegistryError> {
        let what = format!("blob {digest}");
        if self
            .exists(host, repo, &format!("{repo}/blobs/{digest}"), &what)?
            .is_some()
        {
            return Ok(BlobPush::Present);
        }
        let start = match from.filter(|f| *f != repo) {
            Some(from) => format!("{repo}/blobs/uploads/?mount={digest}&from={from}"),
            None => format!("{repo}/blobs/uploads/"),
        };
        let resp = self.send("POST", host, repo, &start, &[], Body::Empty, &what)?;
        if resp.status() == 201 {
            return Ok(BlobPush::Mounted);
        }
        let location = resp
            .header("Location")
            .ok_or_else(|| Self::transport(host, repo, "upload answered without a Location"))?;
        let mut url = self.absolute(host, location);
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("digest=");
        url.push_str(digest);
        self.send(
            "PUT",
            host,
            repo,
            &url,
            &[("Content-Type", "application/octet-stream")],
            body,
            &what,
        )?;
        Ok(BlobPush::Uploaded)
    }

    /// Puts a manifest under `reference` (a tag or its digest); returns the
    /// digest the registry reports.
    pub fn push_manifest(
        &self,
        host: &str,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String, RegistryError> {
        let resp = self.send(
            "PUT",
            host,
            repo,
            &format!("{repo}/manifests/{reference}"),
            &[("Content-Type", media_type)],
            Body::Bytes(bytes),
            &format!("manifest {reference}"),
        )?;
        Ok(resp.header("Docker-Content-Digest").unwrap_or("").to_string())
    }

    /// Checks that the registry accepts our credentials (`GET /v2/`).
    pub fn ping(&self, host: &str) -> Result<(), RegistryError> {
        self.send("GET", host, "", "", &[], Body::Empty, "login").map(|_| ())
    }
}

/// What `push_blob` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobPush {
    Present,
    Mounted,
    Uploaded,
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
    fn credentials_stay_with_their_host() {
        assert!(same_host("/v2/x/blobs/uploads/1", "reg.example"));
        assert!(same_host("https://reg.example/v2/upload", "reg.example"));
        assert!(same_host("https://reg.example:443/v2/upload", "reg.example"));
        assert!(same_host("http://127.0.0.1:5000/u", "127.0.0.1:5000"));
        assert!(!same_host("http://127.0.0.1:5001/u", "127.0.0.1:5000"));
        assert!(!same_host("http://other.example/upload/x", "reg.example"));
        assert!(!same_host("http://reg.example@other.example/x", "reg.example"));
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
