//! The engine's error type. Messages name the operation and the object
//! ("failed to read `/x`"); causes stay in `source`. The CLI renders them and
//! maps `Error::is_input` to exit code 2, everything else to 1.

use std::io;
use std::path::PathBuf;

use crate::digest::Digest;
use crate::graph::Origin;

/// Everything that can go wrong inside the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed.
    #[error("failed to {op} `{}`", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A layer tar tried to write outside its root or through a link.
    #[error("refused layer entry `{path}`: {reason}")]
    UnsafeEntry { path: String, reason: &'static str },
    /// Stored or received bytes do not match the digest that names them.
    #[error("content of `{what}` hashes to `{actual}`, expected `{expected}`")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    /// A part of the store is not what strata wrote there.
    #[error("the store's {what} is damaged ({reason}); `strata check --repair` removes what is damaged")]
    Damaged { what: String, reason: String },
    /// An input image or archive is not what its format says.
    #[error("invalid image `{what}`: {reason}")]
    BadImage { what: String, reason: String },
    /// The recipe asks for something that does not exist or is not allowed
    /// (a missing context file, a bad chown). Exit code 2.
    #[error("{}{message}", origin.prefix())]
    Input { origin: Origin, message: String },
    /// The recipe asks for something that cannot be had, with the cause (a
    /// base that cannot be read or resolved, a context path that is not
    /// there), at the position of the recipe call. Exit code 2.
    #[error("{}{source}", origin.prefix())]
    InputAt {
        origin: Origin,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A step failed while building. Exit code 1.
    #[error("{}{message}", origin.prefix())]
    Step {
        origin: Origin,
        message: String,
        detail: String,
    },
    /// An error of a step's executor (I/O, a digest, a registry…), at the
    /// recipe position of the step. The scheduler wraps every executor error
    /// that does not already carry a position.
    #[error("{}{source}", origin.prefix())]
    AtStep {
        origin: Origin,
        #[source]
        source: Box<Error>,
    },
    /// The build was cancelled (Ctrl-C, SIGTERM).
    #[error("build interrupted")]
    Interrupted,
    /// The store's JSON is unreadable.
    #[error("failed to parse `{}`", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// `strata.lock` does not match the recipe (`--locked`). Exit code 2.
    #[error("{0}")]
    Lock(String),
    /// A `debian(...)` base cannot be planned or assembled.
    /// (The cause is a `debian::DebianError`; boxed, so this module stays
    /// below the modules whose errors it carries.)
    #[error("debian({suite:?}): {source}")]
    Debian {
        suite: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A base names something that is not an image reference.
    #[error(transparent)]
    Reference(#[from] crate::registry::ReferenceError),
    /// A registry refused or could not be reached.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// A target does not exist.
    #[error(transparent)]
    Target(#[from] crate::graph::TargetError),
    /// `--load` found no docker or podman, or it refused the images.
    #[error("--load: {0}")]
    Load(String),
    /// A remote execution service refused or could not be reached.
    #[error("remote executor {endpoint}: {message}")]
    Remote { endpoint: String, message: String },
}

impl From<crate::sys::confined::UserFileError> for Error {
    fn from(e: crate::sys::confined::UserFileError) -> Error {
        Error::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        }
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the operation and path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    /// True when the user's recipe or arguments are at fault (exit code 2).
    pub fn is_input(&self) -> bool {
        match self {
            Error::AtStep { source, .. } => source.is_input(),
            e => matches!(
                e,
                Error::Input { .. } | Error::InputAt { .. } | Error::Target(_) | Error::Lock(_) | Error::Reference(_)
            ),
        }
    }

    /// The recipe's fault at `origin` (exit code 2).
    pub fn input(origin: &Origin, message: impl Into<String>) -> Error {
        Error::Input {
            origin: origin.clone(),
            message: message.into(),
        }
    }

    /// The message with every cause after it (`a: b: c`), for places that
    /// fold an error into another's text and must not drop the reason.
    pub fn chain(&self) -> String {
        chain(self)
    }

    /// The recipe's fault at `origin`, keeping the cause.
    pub fn input_at(origin: &Origin, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error::InputAt {
            origin: origin.clone(),
            source: source.into(),
        }
    }

    /// True when the build was cancelled.
    pub fn is_interrupted(&self) -> bool {
        matches!(self, Error::Interrupted)
    }

    /// The error at `origin`, unless it already names a position (or is a
    /// cancellation, which has none).
    pub fn at(self, origin: &Origin) -> Error {
        match self {
            e @ (Error::Input { .. }
            | Error::InputAt { .. }
            | Error::Step { .. }
            | Error::AtStep { .. }
            | Error::Interrupted) => e,
            e if !origin.is_known() => e,
            e => Error::AtStep {
                origin: origin.clone(),
                source: Box::new(e),
            },
        }
    }
}

/// Any error's message with every cause after it (`a: b: c`).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
