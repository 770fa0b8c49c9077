//! What a target file is, checked from its first 100 bytes before SQLite opens it. SQLite's own
//! answer for a file that is not a healthy database is "file is not a database" (or, for a file
//! with no bytes, an empty database); these checks say why, so an operator can act.
//!
//! Must not open the file with SQLite: that is the sandbox's job.

use std::io::Read as _;
use std::path::Path;

use crate::{ToolError, ToolErrorCode};

const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Facts from a healthy-looking header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub page_size: u32,
    /// `PRAGMA journal_mode = WAL` was set when the file was last written.
    pub wal: bool,
}

fn unavailable(message: String) -> ToolError {
    ToolError::new(ToolErrorCode::DatabaseUnavailable, message)
}

/// Checks that `path` holds a SQLite database: not missing, not empty, the SQLite header, a
/// valid page size, and not shorter than the header says (a truncated copy).
pub fn check_header(path: &Path) -> Result<Header, ToolError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| unavailable(format!("its file cannot be read ({e})")).retryable())?;
    if meta.is_dir() {
        return Err(unavailable("its path names a directory, not a file".into()));
    }
    if meta.len() == 0 {
        return Err(unavailable(
            "its file is empty (0 bytes): not a SQLite database. Point the target at the \
             database file, or remove the empty file"
                .into(),
        ));
    }
    let mut head = [0u8; 100];
    let mut file = std::fs::File::open(path)
        .map_err(|e| unavailable(format!("its file cannot be opened ({e})")).retryable())?;
    let read = read_up_to(&mut file, &mut head)
        .map_err(|e| unavailable(format!("its file cannot be read ({e})")).retryable())?;
    if read < 100 || &head[..16] != MAGIC {
        let text = head[..read].iter().all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
        return Err(unavailable(format!(
            "its file is not a SQLite database: it does not start with the SQLite header{}. \
             An encrypted database (SQLCipher, SEE) must be decrypted first",
            if text { " (it looks like a text file)" } else { "" }
        )));
    }
    let raw_size = u32::from(u16::from_be_bytes([head[16], head[17]]));
    let page_size = if raw_size == 1 { 65536 } else { raw_size };
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(unavailable(format!(
            "its file is corrupt: the header gives an invalid page size ({raw_size})"
        )));
    }
    let be32 = |at: usize| u32::from_be_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    let pages = u64::from(be32(28));
    // The page count is valid only when written by SQLite 3.7.0+ (version-valid-for matches the
    // change counter). With a -wal file, pages past the count live in the WAL; with a -journal,
    // a write may be under way (page 1 is written before the file grows).
    let sibling = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        std::fs::metadata(name).is_ok_and(|m| m.len() > 0)
    };
    let wal_file = sibling("-wal") || sibling("-journal");
    let expected = pages * u64::from(page_size);
    if be32(92) == be32(24) && pages > 0 && !wal_file && meta.len() < expected {
        return Err(unavailable(format!(
            "its file is truncated: the header says {expected} bytes, the file has {}. Copy the \
             whole file again",
            meta.len()
        )));
    }
    Ok(Header { page_size, wal: head[18] == 2 || head[19] == 2 })
}

fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: &[u8], expected: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        std::fs::write(&path, bytes).unwrap();
        let message = match check_header(&path) {
            Ok(h) => format!("ok {h:?}"),
            Err(e) => e.model_message,
        };
        assert!(message.contains(expected), "{message:?} should contain {expected:?}");
    }

    #[test]
    fn headers_as_data() {
        check(b"", "empty (0 bytes)");
        check(b"id,name\n1,ann\n", "looks like a text file");
        check(&[0x9au8; 4096], "must be decrypted first");
        let mut good = vec![0u8; 4096];
        good[..16].copy_from_slice(MAGIC);
        good[16..18].copy_from_slice(&4096u16.to_be_bytes());
        good[18] = 1;
        good[19] = 1;
        good[24..28].copy_from_slice(&7u32.to_be_bytes());
        good[92..96].copy_from_slice(&7u32.to_be_bytes());
        good[28..32].copy_from_slice(&1u32.to_be_bytes());
        check(&good, "ok Header { page_size: 4096, wal: false }");
        let mut truncated = good.clone();
        truncated[28..32].copy_from_slice(&3u32.to_be_bytes());
        check(&truncated, "truncated: the header says 12288 bytes, the file has 4096");
        let mut odd = good.clone();
        odd[16..18].copy_from_slice(&1000u16.to_be_bytes());
        check(&odd, "invalid page size (1000)");
        let mut wal = good;
        wal[18] = 2;
        wal[19] = 2;
        check(&wal, "wal: true");
    }
}
