//! Incarnations: which process start of a node a message belongs to.
//!
//! A node's overlay numbers the requests it forwards from 1 in every process. After a restart,
//! a reply still in flight to the previous process (a late `GET` value, a `CAS` `:1`) would
//! carry an id the new process has given to another request, and would answer the wrong
//! client. So each process start takes a new [`Incarnation`], strictly greater than every
//! earlier one of the same data directory; forwarded requests carry it, replies echo it, and a
//! reply for another incarnation is dropped (see [`crate::overlay`]).
//!
//! The number is kept in the data directory's `incarnation` file (decimal, as the epoch files),
//! replaced atomically and fsynced before the node starts, so that even after a machine crash
//! the next start cannot reuse it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The name of the file that holds a data directory's last incarnation.
pub const INCARNATION_FILE: &str = "incarnation";

/// The number of one process start of a node; 0 for a node that keeps none (simulations).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Incarnation(pub u64);

impl fmt::Display for Incarnation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "incarnation {}", self.0)
    }
}

/// Why a data directory's incarnation could not be advanced. The node must not start: it could
/// otherwise reuse a number and take replies meant for an earlier process.
#[derive(Debug)]
pub enum IncarnationError {
    /// The file cannot be read or written.
    Io(PathBuf, io::Error),
    /// The file holds something other than a number (the text found, cut short).
    Corrupt(PathBuf, String),
    /// The number cannot grow any more.
    Exhausted(PathBuf),
}

impl fmt::Display for IncarnationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IncarnationError::Io(path, e) => write!(f, "{}: {e}", path.display()),
            IncarnationError::Corrupt(path, found) => write!(
                f,
                "{} does not hold an incarnation number (found {found:?}); write into it a \
                 number larger than any this node used (e.g. the current time in seconds)",
                path.display()
            ),
            IncarnationError::Exhausted(path) => {
                write!(f, "{}: the incarnation number cannot grow any more", path.display())
            }
        }
    }
}

impl std::error::Error for IncarnationError {}

/// Takes the next incarnation of the node whose data directory is `data_dir`: one more than the
/// number in its `incarnation` file (1 if there is none), written back durably before it is
/// returned. Leaves the file unchanged on error.
pub fn advance(data_dir: &Path) -> Result<Incarnation, IncarnationError> {
    let path = data_dir.join(INCARNATION_FILE);
    let previous = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let digits = text.strip_suffix('\n').unwrap_or(&text);
            match digits.parse::<u64>() {
                Ok(n) if !digits.starts_with('+') => n,
                _ => {
                    let found = text.chars().take(40).collect();
                    return Err(IncarnationError::Corrupt(path, found));
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(IncarnationError::Io(path, e)),
    };
    let next = previous.checked_add(1).ok_or_else(|| IncarnationError::Exhausted(path.clone()))?;
    zab_components::wal::files::write_atomic(&path, format!("{next}\n").as_bytes(), true)
        .map_err(|e| IncarnationError::Io(path.clone(), io::Error::other(e.to_string())))?;
    Ok(Incarnation(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TempDir;

    #[test]
    fn each_start_takes_a_larger_number_than_every_earlier_one() {
        let scratch = TempDir::new("incarnation-grow");
        let dir = scratch.path();
        assert_eq!(advance(dir).unwrap(), Incarnation(1));
        assert_eq!(advance(dir).unwrap(), Incarnation(2));
        std::fs::write(dir.join(INCARNATION_FILE), "41\n").unwrap();
        assert_eq!(advance(dir).unwrap(), Incarnation(42));
        assert_eq!(std::fs::read_to_string(dir.join(INCARNATION_FILE)).unwrap(), "42\n");
    }

    #[test]
    fn a_damaged_file_is_refused_and_left_as_it_is() {
        let scratch = TempDir::new("incarnation-bad");
        let dir = scratch.path();
        let file = dir.join(INCARNATION_FILE);
        for bad in ["", "x\n", "-1\n", "+3\n", "3 \n"] {
            std::fs::write(&file, bad).unwrap();
            let error = advance(dir).unwrap_err();
            assert!(matches!(error, IncarnationError::Corrupt(..)), "{bad:?}: {error}");
            assert_eq!(std::fs::read_to_string(&file).unwrap(), bad);
        }
        std::fs::write(&file, format!("{}\n", u64::MAX)).unwrap();
        assert!(matches!(advance(dir), Err(IncarnationError::Exhausted(_))));
    }
}
