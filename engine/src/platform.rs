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

    /// Parses `os/arch[/variant]` (`linux/arm64`, `linux/arm/v7`), as
    /// containerd's `platforms` package normalizes it (BuildKit's): names
    /// lowercased, `aarch64` is `arm64`, `x86_64` is `amd64`, `armhf` is
    /// `arm/v7`; `arm` alone is `arm/v7`; `arm64/v8` is `arm64` (v8 is what
    /// arm64 means) and `amd64/v1` is `amd64`. An OS other than linux, an
    /// architecture Go does not know or a variant it does not take is an
    /// error that lists the known ones.
    pub fn parse(s: &str) -> Result<Platform, PlatformError> {
        let lower = s.to_ascii_lowercase();
        let parts: Vec<&str> = lower.split('/').collect();
        let (os, arch, variant) = match parts.as_slice() {
            [os, arch] => (*os, *arch, ""),
            [os, arch, variant] if !variant.is_empty() => (*os, *arch, *variant),
            _ => return Err(PlatformError::Form(s.to_string())),
        };
        if os != "linux" {
            return Err(PlatformError::Os(s.to_string(), os.to_string()));
        }
        let (arch, variant) = normalize_arch(arch, variant);
        if !KNOWN_ARCH.contains(&arch.as_str()) {
            return Err(PlatformError::Arch {
                given: s.to_string(),
                arch,
            });
        }
        let known_variants: &[&str] = match arch.as_str() {
            "arm" => &["v5", "v6", "v7", "v8"],
            "arm64" => &[
                "v9", "v8.1", "v8.2", "v8.3", "v8.4", "v8.5", "v8.6", "v8.7", "v8.8", "v8.9", "v9.1", "v9.2",
            ],
            "amd64" => &["v2", "v3", "v4"],
            _ => &[],
        };
        if !variant.is_empty() && !known_variants.contains(&variant.as_str()) {
            return Err(PlatformError::Variant(s.to_string(), arch, variant));
        }
        Ok(Platform {
            os: os.to_string(),
            architecture: arch,
            variant: (!variant.is_empty()).then_some(variant),
        })
    }

    /// This platform as [`Platform::parse`] would have it (for one an index
    /// or a config names as it likes: `arm64/v8`, `arm` with no variant).
    pub fn normalized(&self) -> Platform {
        let (architecture, variant) = normalize_arch(
            &self.architecture.to_ascii_lowercase(),
            &self.variant.clone().unwrap_or_default().to_ascii_lowercase(),
        );
        Platform {
            os: self.os.to_ascii_lowercase(),
            architecture,
            variant: (!variant.is_empty()).then_some(variant),
        }
    }

    /// Whether an image for `self` is one for `wanted` (a variant `wanted`
    /// leaves open matches any).
    pub fn serves(&self, wanted: &Platform) -> bool {
        let (have, want) = (self.normalized(), wanted.normalized());
        have.os == want.os
            && have.architecture == want.architecture
            && (wanted.variant.is_none() || have.variant == want.variant)
    }
}

/// The architectures a platform may name (Go's, as containerd knows them).
pub const KNOWN_ARCH: &[&str] = &[
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "ppc64",
    "ppc64le",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

/// containerd's `normalizeArch`: the names people and uname use, and each
/// architecture's default variant.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let (arch, variant) = match (arch, variant) {
        ("i386", _) => ("386", ""),
        ("x86_64" | "x86-64" | "amd64", "v1") => ("amd64", ""),
        ("x86_64" | "x86-64", v) => ("amd64", v),
        ("aarch64" | "arm64", "8" | "v8" | "v8.0") => ("arm64", ""),
        ("aarch64" | "arm64", "9" | "9.0" | "v9.0") => ("arm64", "v9"),
        ("aarch64", v) => ("arm64", v),
        ("armhf", _) => ("arm", "v7"),
        ("armel", _) => ("arm", "v6"),
        ("arm", "" | "7") => ("arm", "v7"),
        ("arm", "5") => ("arm", "v5"),
        ("arm", "6") => ("arm", "v6"),
        ("arm", "8") => ("arm", "v8"),
        (a, v) => (a, v),
    };
    (arch.to_string(), variant.to_string())
}

/// Text that is not a platform strata can build for.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlatformError {
    #[error("`{0}` is not a platform: expected OS/ARCH[/VARIANT], e.g. linux/arm64")]
    Form(String),
    #[error("`{0}`: strata builds Linux images, and `{1}` is not linux")]
    Os(String, String),
    #[error("`{given}`: unknown architecture `{arch}`; known: {known}", known = KNOWN_ARCH.join(", "))]
    Arch { given: String, arch: String },
    #[error("`{0}`: {1} has no variant `{2}`")]
    Variant(String, String, String),
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_normalize_as_containerd_and_unknown_names_are_listed() {
        let p = |s: &str| Platform::parse(s).map(|p| p.to_string());
        assert_eq!(p("linux/arm64").unwrap(), "linux/arm64");
        assert_eq!(p("linux/arm64/v8").unwrap(), "linux/arm64");
        assert_eq!(p("linux/aarch64").unwrap(), "linux/arm64");
        assert_eq!(p("Linux/x86_64").unwrap(), "linux/amd64");
        assert_eq!(p("linux/arm").unwrap(), "linux/arm/v7");
        assert_eq!(p("linux/armhf").unwrap(), "linux/arm/v7");
        assert_eq!(p("linux/arm/v6").unwrap(), "linux/arm/v6");
        assert_eq!(p("linux/amd64/v1").unwrap(), "linux/amd64");
        let e = Platform::parse("linux/amd46").unwrap_err().to_string();
        assert!(
            e.starts_with("`linux/amd46`: unknown architecture `amd46`; known: 386, amd64, amd64p32, arm,"),
            "{e}"
        );
        assert_eq!(
            Platform::parse("windows/amd64").unwrap_err().to_string(),
            "`windows/amd64`: strata builds Linux images, and `windows` is not linux"
        );
        assert_eq!(
            Platform::parse("linux/arm/v9").unwrap_err().to_string(),
            "`linux/arm/v9`: arm has no variant `v9`"
        );
        assert_eq!(
            Platform::parse("linux").unwrap_err().to_string(),
            "`linux` is not a platform: expected OS/ARCH[/VARIANT], e.g. linux/arm64"
        );
    }

    #[test]
    fn an_index_entry_serves_the_platform_however_it_spells_it() {
        let entry = |arch: &str, variant: Option<&str>| Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: variant.map(str::to_string),
        };
        let arm64 = Platform::parse("linux/arm64").unwrap();
        assert!(entry("arm64", Some("v8")).serves(&arm64));
        assert!(entry("arm64", None).serves(&arm64));
        let arm = Platform::parse("linux/arm").unwrap();
        assert!(entry("arm", None).serves(&arm), "arm alone is v7");
        assert!(!entry("arm", Some("v6")).serves(&arm));
        assert!(!entry("amd64", None).serves(&arm64));
    }
}
