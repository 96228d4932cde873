//! The one permission check and the one atomic write, used by every path that reads secrets or
//! writes state (spec §4.6 "Files").

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A file-system failure, naming the path and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The input does not exist.
    #[error("{path}: no such file{}", missing_hint(path))]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// An output's directory does not exist: rn creates files, never directories.
    #[error(
        "cannot write {path}: directory {dir} does not exist; create it first (mkdir -p -m 700 {dir})"
    )]
    NoDir {
        /// The output path.
        path: PathBuf,
        /// Its missing directory.
        dir: PathBuf,
    },
    /// Unsafe ownership, mode or type.
    #[error("{path}: {problem}; fix: {fix}")]
    Unsafe {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        problem: String,
        /// The command that fixes it.
        fix: String,
    },
    /// The output exists and overwriting was not asked for.
    #[error("{path} already exists; pass --force to replace it")]
    Exists {
        /// The path.
        path: PathBuf,
    },
    /// The output path names something other than a regular file (a device, FIFO, socket,
    /// directory or symlink): rn replaces only regular files, `--force` or not.
    #[error(
        "{path} is {kind}, not a regular file; rn writes only regular files (write to a file path, or -o - for standard output)"
    )]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is, with its article ("a character device").
        kind: &'static str,
    },
    /// Larger than allowed; refused before reading it all.
    #[error("{path} is larger than the {cap}-byte cap for this input")]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// The cap.
        cap: usize,
    },
    /// Any other I/O error.
    #[error("{path}: {error}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
}

/// What a missing input's error adds: whether its directory exists, so a typo in the name
/// and a wrong directory read differently.
fn missing_hint(path: &Path) -> String {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) if dir.is_dir() => format!(" (directory {} has no such entry)", dir.display()),
        Some(dir) => format!(" (directory {} does not exist either)", dir.display()),
        None => String::from(" in the current directory"),
    }
}

impl FileError {
    fn io(path: &Path, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::NotFound => FileError::Missing {
                path: path.to_owned(),
            },
            io::ErrorKind::AlreadyExists => FileError::Exists {
                path: path.to_owned(),
            },
            io::ErrorKind::PermissionDenied => FileError::Unsafe {
                path: path.to_owned(),
                problem: "permission denied".into(),
                fix: "run as the user that owns it".into(),
            },
            _ => FileError::Io {
                path: path.to_owned(),
                error: source,
            },
        }
    }
}

/// The path a positional "-" (standard input) arrives as.
pub const STDIN: &str = "/dev/stdin";

/// True for standard input ("-" or [`STDIN`]).
pub fn is_stdin(path: &Path) -> bool {
    path == Path::new("-") || path == Path::new(STDIN)
}

/// Reads at most `cap` bytes from `path` ("-" is standard input), refusing larger inputs.
pub fn read_capped(path: &Path, cap: usize) -> Result<Vec<u8>, FileError> {
    let mut buf = Vec::new();
    let limit = cap as u64 + 1;
    if is_stdin(path) {
        io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut buf)
            .map_err(|e| FileError::io(path, e))?;
    } else {
        File::open(path)
            .and_then(|f| f.take(limit).read_to_end(&mut buf))
            .map_err(|e| FileError::io(path, e))?;
    }
    if buf.len() > cap {
        return Err(FileError::TooLarge {
            path: path.to_owned(),
            cap,
        });
    }
    Ok(buf)
}

/// Like ssh's StrictModes: `path` must not be a symlink, must be owned by the effective uid,
/// and must grant nothing to group or others. `dir` selects directory (`0700`) or regular file
/// (`0600`) expectations.
pub fn check_private(path: &Path, dir: bool) -> Result<(), FileError> {
    let meta = fs::symlink_metadata(path).map_err(|e| FileError::io(path, e))?;
    let unsafe_ = |problem: String, fix: String| FileError::Unsafe {
        path: path.to_owned(),
        problem,
        fix,
    };
    let shown = path.display();
    if meta.file_type().is_symlink() {
        return Err(unsafe_(
            "is a symlink".into(),
            format!(
                "replace it with the real {}",
                if dir { "directory" } else { "file" }
            ),
        ));
    }
    if dir && !meta.is_dir() {
        return Err(unsafe_(
            "is not a directory".into(),
            format!("remove {shown}"),
        ));
    }
    if !dir && !meta.is_file() {
        return Err(unsafe_(
            "is not a regular file".into(),
            format!("remove {shown}"),
        ));
    }
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(unsafe_(
            format!(
                "is owned by uid {}, not by the running uid {euid}",
                meta.uid()
            ),
            format!("chown {euid} {shown}"),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        let want = if dir { "700" } else { "600" };
        return Err(unsafe_(
            format!("has mode {mode:04o}, open to group or others"),
            format!("chmod {want} {shown}"),
        ));
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory with `mode`,
/// fsync, rename over `path` (refused if it exists unless `overwrite`), fsync the directory.
/// A crash leaves either the old file or the new one. "-" writes to standard output.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    overwrite: bool,
) -> Result<(), FileError> {
    write_atomic_with(path, bytes, mode, overwrite, || {})
}

/// [`write_atomic`] with a hook run after the temporary file is durable and before it is
/// renamed into place (fault injection uses it to crash "mid-write").
pub fn write_atomic_with(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    overwrite: bool,
    before_rename: impl FnOnce(),
) -> Result<(), FileError> {
    if path == Path::new("-") {
        let mut out = io::stdout().lock();
        return match out.write_all(bytes).and_then(|()| out.flush()) {
            // The reader stopped early (`… -o - | head`): it has what it wanted.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            r => r.map_err(|e| FileError::io(path, e)),
        };
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| FileError::Io {
            path: path.to_owned(),
            error: io::Error::new(io::ErrorKind::InvalidInput, "not a file path"),
        })?
        .to_string_lossy()
        .into_owned();
    if let Ok(meta) = fs::symlink_metadata(path) {
        let kind = file_kind(&meta.file_type());
        if kind != "a regular file" {
            return Err(FileError::NotRegular {
                path: path.to_owned(),
                kind,
            });
        }
        if !overwrite {
            return Err(FileError::Exists {
                path: path.to_owned(),
            });
        }
    }
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| FileError::Io {
        path: path.to_owned(),
        error: io::Error::other(e.to_string()),
    })?;
    let tmp = dir.join(format!(".{name}.tmp-{}", crate::text::hex(&nonce)));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        before_rename();
        if overwrite {
            fs::rename(&tmp, path)?;
        } else {
            rustix::fs::renameat_with(
                rustix::fs::CWD,
                &tmp,
                rustix::fs::CWD,
                path,
                rustix::fs::RenameFlags::NOREPLACE,
            )
            .map_err(io::Error::from)?;
        }
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound && !dir.is_dir() {
            FileError::NoDir {
                path: path.to_owned(),
                dir: dir.clone(),
            }
        } else {
            FileError::io(path, e)
        }
    })
}

/// What a directory entry is, for messages.
fn file_kind(t: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_file() {
        "a regular file"
    } else if t.is_symlink() {
        "a symlink"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_refuses_to_clobber_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one", 0o600, false).unwrap();
        assert!(matches!(
            write_atomic(&p, b"two", 0o600, false),
            Err(FileError::Exists { .. })
        ));
        assert_eq!(fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"two", 0o600, true).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn only_regular_files_are_replaced() {
        use std::os::unix::net::UnixListener;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, b"keep").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let sock = dir.path().join("sock");
        let _listener = UnixListener::bind(&sock).unwrap();
        let cases = [
            (Path::new("/dev/null"), "a character device"),
            (link.as_path(), "a symlink"),
            (sub.as_path(), "a directory"),
            (fifo.as_path(), "a FIFO"),
            (sock.as_path(), "a socket"),
        ];
        for (path, kind) in cases {
            for overwrite in [false, true] {
                let err = write_atomic(path, b"x", 0o600, overwrite).unwrap_err();
                assert!(
                    matches!(&err, FileError::NotRegular { kind: k, .. } if *k == kind),
                    "{}: {err}",
                    path.display()
                );
            }
        }
        let null = fs::symlink_metadata("/dev/null").unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(
            &null.file_type()
        ));
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            5,
            "no temporary file left"
        );
    }

    #[test]
    fn private_check_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        fs::write(&p, b"x").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        let err = check_private(&p, false).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        check_private(&p, false).unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(
            check_private(&link, false)
                .unwrap_err()
                .to_string()
                .contains("symlink")
        );
    }
}
