//! Reading a file the user named (an experiment, a model, a data set, a table, a training file,
//! a results file): only a regular file is read. A device (`/dev/zero`), a pipe or a socket would
//! be read without end or waited on, and a directory has nothing to read, so each is refused
//! before a byte is read, the error naming the path and what it is; the callers add the field.

use std::io;
use std::path::Path;

/// What `path` is when it is not a regular file (symbolic links followed), or `None` for a
/// regular file; a missing or unreadable path is left to the read, whose error says why.
fn not_regular(path: &Path) -> Option<&'static str> {
    let t = std::fs::metadata(path).ok()?.file_type();
    if t.is_file() {
        return None;
    }
    if t.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return Some("a named pipe (FIFO)");
        }
        if t.is_char_device() || t.is_block_device() {
            return Some("a device");
        }
        if t.is_socket() {
            return Some("a socket");
        }
    }
    Some("not a regular file")
}

/// Refuses a path that is not a regular file, naming it and what it is.
pub fn check_regular(path: &Path) -> io::Result<()> {
    match not_regular(path) {
        None => Ok(()),
        Some(what) => Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} is {what}, not a regular file; give the path of a file", path.display()))),
    }
}

/// [`std::fs::read`] of a regular file only ([`check_regular`]).
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    check_regular(path)?;
    std::fs::read(path)
}

/// [`std::fs::read_to_string`] of a regular file only ([`check_regular`]).
pub fn read_to_string(path: &Path) -> io::Result<String> {
    check_regular(path)?;
    std::fs::read_to_string(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_are_read() {
        let dir = std::env::temp_dir().join(format!("aimc-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.txt");
        std::fs::write(&file, "x").unwrap();
        assert_eq!(read_to_string(&file).unwrap(), "x");
        let e = read(&dir).unwrap_err().to_string();
        assert!(e.contains(&dir.display().to_string()) && e.contains("is a directory, not a regular file"), "{e}");
        #[cfg(unix)]
        {
            let e = read(Path::new("/dev/zero")).unwrap_err().to_string();
            assert!(e.contains("/dev/zero is a device"), "{e}");
        }
        // A missing file keeps the system's own error.
        assert_eq!(read(&dir.join("none")).unwrap_err().kind(), io::ErrorKind::NotFound);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
