//! Platforms (`linux/arm64`): what an image is for, what a build targets,
//! what this machine runs natively. Plain data below everything else, so
//! the graph, the sandbox and images can all name one.

use serde::{Deserialize, Serialize};

/// The GOARCH name of this machine.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// A platform in an index entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// linux on this machine's architecture.
    pub fn host() -> Platform {
        Platform {
            architecture: host_arch().into(),
            os: "linux".into(),
            variant: None,
        }
    }

    /// Parses `os/arch[/variant]` (`linux/arm64`, `linux/arm/v7`).
    pub fn parse(s: &str) -> Result<Platform, PlatformError> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(PlatformError(s.to_string())),
        }
    }
}

/// Text that is not a platform.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a platform: expected OS/ARCH[/VARIANT], e.g. linux/arm64")]
pub struct PlatformError(pub String);

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}
