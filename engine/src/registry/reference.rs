//! Image references: `[registry/]repository[:tag][@sha256:…]`, with Docker's
//! habits: no registry means Docker Hub, and a one-part name there means
//! `library/NAME`.

use std::fmt;

use crate::digest::Digest;

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]` as written (`docker.io` for Docker Hub).
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

/// Text that is not an image reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{text}` is not an image reference: {why}")]
pub struct ReferenceError {
    pub text: String,
    pub why: String,
}

impl Reference {
    /// Parses `[registry/]repository[:tag][@digest]`.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let bad = |why: &str| ReferenceError {
            text: s.to_string(),
            why: why.to_string(),
        };
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.parse::<Digest>().map_err(|e| bad(&e.to_string()))?)),
            None => (s, None),
        };
        let (name, tag) = match rest.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, Some(t.to_string())),
            _ => (rest, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_string(), rest.to_string())
            }
            Some(_) => ("docker.io".to_string(), name.to_string()),
            None => ("docker.io".to_string(), format!("library/{name}")),
        };
        let valid_part = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        };
        if !repository.split('/').all(valid_part) {
            return Err(bad(
                "repository names are lowercase letters, digits, `.`, `_`, `-` and `/`",
            ));
        }
        if let Some(t) = &tag {
            let ok =
                !t.is_empty() && t.len() <= 128 && t.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !ok {
                return Err(bad("bad tag"));
            }
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The host to talk to (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }

    /// What to ask the registry for: the digest if pinned, else the tag.
    pub fn target(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_mean_docker_hubs_library() {
        let r = Reference::parse("debian:bookworm").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "library/debian", Some("bookworm"))
        );
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = Reference::parse("grafana/grafana").unwrap();
        assert_eq!(
            (r.repository.as_str(), r.tag.as_deref()),
            ("grafana/grafana", Some("latest"))
        );
    }

    #[test]
    fn registries_ports_and_digests_parse() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = Reference::parse(&format!("127.0.0.1:5000/team/app:1.2@{d}")).unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "team/app", Some("1.2"))
        );
        assert_eq!(r.target(), d);
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/team/app:1.2@{d}"));
        let r = Reference::parse("localhost/app").unwrap();
        assert_eq!(r.registry, "localhost");
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in ["", "UPPER/case", "app:bad tag", "app@sha256:short", "a//b"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
