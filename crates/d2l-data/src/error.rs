//! Errors of the data layer: every message says what was expected, what came, and
//! (for files) which path.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong while finding, fetching, reading or batching data.
#[derive(Debug)]
pub enum DataError {
    /// An I/O error on a named path.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Files that are neither on disk nor downloadable (offline): what, where, from where.
    Missing {
        name: String,
        looked_in: Vec<PathBuf>,
        url: String,
    },
    /// A downloaded or found file whose SHA-1 is not the registered one.
    Checksum {
        path: PathBuf,
        expected: String,
        got: String,
    },
    /// A download that failed (HTTP status, truncated body, network error).
    Download { url: String, msg: String },
    /// A file whose content is malformed (bad magic, truncated, bad CSV).
    Format { path: PathBuf, msg: String },
    /// An archive entry that would land outside the target folder.
    UnsafeArchive { archive: PathBuf, entry: String },
    /// An invalid argument (batch size 0, empty data set, unknown name).
    Invalid(String),
    /// An error from the tensor engine.
    Tensor(d2l_tensor::Error),
}

/// The data layer's result type.
pub type Result<T> = std::result::Result<T, DataError>;

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            DataError::Missing {
                name,
                looked_in,
                url,
            } => {
                write!(f, "data file `{name}` is not available offline; looked in:")?;
                for p in looked_in {
                    write!(f, "\n  - {}", p.display())?;
                }
                write!(f, "\nfetch it by hand from {url} and put it in one of those places (or pass --data-dir)")
            }
            DataError::Checksum {
                path,
                expected,
                got,
            } => write!(
                f,
                "{}: SHA-1 mismatch: expected {expected}, got {got}",
                path.display()
            ),
            DataError::Download { url, msg } => write!(f, "download of {url} failed: {msg}"),
            DataError::Format { path, msg } => write!(f, "{}: {msg}", path.display()),
            DataError::UnsafeArchive { archive, entry } => write!(
                f,
                "{}: refusing entry `{entry}`, whose path would land outside the target folder",
                archive.display()
            ),
            DataError::Invalid(msg) => f.write_str(msg),
            DataError::Tensor(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { source, .. } => Some(source),
            DataError::Tensor(e) => Some(e),
            _ => None,
        }
    }
}

impl From<d2l_tensor::Error> for DataError {
    fn from(e: d2l_tensor::Error) -> Self {
        DataError::Tensor(e)
    }
}

/// Attaches a path to an I/O error.
pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DataError {
    let path = path.into();
    move |source| DataError::Io { path, source }
}

/// Reads the whole file at `path` as UTF-8 text (an I/O or a format error naming it).
pub(crate) fn read_text(path: &std::path::Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    String::from_utf8(bytes).map_err(|e| DataError::Format {
        path: path.to_path_buf(),
        msg: format!("not UTF-8 text: {e}"),
    })
}
