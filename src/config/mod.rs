//! What every section of the settings shares: [`ConfigError`], which names
//! the key to change; enums spelled as words (`words!`); and [`Secret`]s.
//!
//! The settings tree itself is [`crate::settings`]; each section's type
//! lives beside the stage that uses it (`ingress::settings`,
//! `spool::settings`, `sink::kafka::config`, ...), and none of them imports
//! the tree.
//!
//! Secrets (`kafka.sasl_password`, `rabbitmq.password`, ...) are [`Secret`]s:
//! their `Debug` prints `***`, so `--check-config`, logs and errors never
//! show them. Each can instead name a file (`*_file`), read once at startup
//! (a trailing newline is dropped), which is how Kubernetes and Docker
//! secrets are mounted. The OAUTHBEARER token file is read again at every
//! token refresh, so a rotated token is picked up without a restart.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `TryFrom<String>` for a settings enum spelled as lowercase words, with an
/// error that lists the allowed words, and `word()`, the way back.
macro_rules! words {
    ($enum:ident: $($word:literal => $variant:ident),+) => {
        impl TryFrom<String> for $enum {
            type Error = String;
            fn try_from(value: String) -> Result<Self, String> {
                $crate::config::choose(&value, &[$(($word, Self::$variant)),+])
            }
        }

        impl $enum {
            /// The word this value is written as in the settings.
            pub fn word(self) -> &'static str {
                match self {
                    $(Self::$variant => $word),+
                }
            }
        }

        impl serde::Serialize for $enum {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.word())
            }
        }

        // One of the words (docs/configuration-reference.md lists them).
        impl schemars::JsonSchema for $enum {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($enum).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({"type": "string", "enum": [$($word),+]})
            }
        }
    };
}
pub(crate) use words;

/// Prefix of the environment variables that override settings.
pub const ENV_PREFIX: &str = "OPENIM_BRIDGE";

/// A configuration that could not be loaded or is not usable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be read or has the wrong shape.
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A key has a value the bridge cannot work with.
    #[error("configuration key `{key}`: {problem}")]
    Invalid {
        /// Dotted key, as written in the TOML file.
        key: &'static str,
        /// What is wrong and what to change.
        problem: String,
        /// The error behind `problem` (a file that cannot be read, a
        /// certificate rustls refused), when there is one.
        #[source]
        cause: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl ConfigError {
    /// `key` has a value that cannot work, for the reason `problem` (which
    /// says what to change).
    pub(crate) fn invalid(key: &'static str, problem: impl Into<String>) -> Self {
        Self::Invalid {
            key,
            problem: problem.into(),
            cause: None,
        }
    }

    /// As [`ConfigError::invalid`], and `cause` is the error behind it
    /// (kept as the `source()`; `problem` should still say it in words).
    pub(crate) fn invalid_because(
        key: &'static str,
        problem: impl Into<String>,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Invalid {
            key,
            problem: problem.into(),
            cause: Some(cause.into()),
        }
    }
}

/// Parses one of a fixed set of words, or says which words are allowed.
pub(crate) fn choose<T: Copy>(value: &str, choices: &[(&str, T)]) -> Result<T, String> {
    let found = choices
        .iter()
        .find(|(word, _)| word.eq_ignore_ascii_case(value.trim()));
    found.map(|(_, choice)| *choice).ok_or_else(|| {
        let words: Vec<_> = choices
            .iter()
            .map(|(word, _)| format!("`{word}`"))
            .collect();
        format!(
            "unknown value `{value}`, expected one of {}",
            words.join(", ")
        )
    })
}

/// A password or token. `Debug` and `Serialize` never show it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Secret(String);

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the broker client only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// Reads a secret file: the whole file, less one trailing newline.
pub(crate) fn read_secret_file(path: &Path) -> std::io::Result<Secret> {
    let mut text = std::fs::read_to_string(path)?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(Secret(text))
}

/// Fills `value` from `file` when the file is given (and clears `file`, so
/// resolving twice is harmless); both at once is an error, as is a file
/// that cannot be read.
pub(crate) fn resolve(
    value: &mut Option<Secret>,
    file: &mut Option<PathBuf>,
    key: &'static str,
    file_key: &'static str,
) -> Result<(), ConfigError> {
    let Some(path) = file.take() else {
        return Ok(());
    };
    if value.is_some() {
        return Err(ConfigError::invalid(
            key,
            format!("and {file_key} are both set; keep one"),
        ));
    }
    *value = Some(read_secret_file(&path).map_err(|err| unreadable(file_key, &path, err))?);
    Ok(())
}

/// `path`, named by `key`, cannot be read.
fn unreadable(key: &'static str, path: &Path, err: std::io::Error) -> ConfigError {
    ConfigError::invalid_because(key, format!("cannot read {}: {err}", path.display()), err)
}

/// A PEM file a TLS setting names must be readable now, not at the first
/// connection attempt.
pub(crate) fn readable(path: Option<&PathBuf>, key: &'static str) -> Result<(), ConfigError> {
    let Some(path) = path else { return Ok(()) };
    std::fs::File::open(path)
        .map(drop)
        .map_err(|err| unreadable(key, path, err))
}
