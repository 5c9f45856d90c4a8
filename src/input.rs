//! Reading input files that someone else wrote: regular files only, with a size limit.
//!
//! A scenario, manifest, target profile or bundle can come from a release page, the
//! fuzzer or a colleague. Named as a file, a FIFO would block forever and `/dev/zero`
//! would read until memory runs out; a gzip member can inflate a thousandfold; a symlink
//! inside a bundle can point anywhere on the machine. Every command reads input through
//! here, so each of those is refused at once with the path and the limit.

use anyhow::{anyhow, bail, Context};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest scenario, target, manifest or key file read, in bytes.
pub const MAX_TEXT_BYTES: u64 = lifeboat_model::limits::MAX_INPUT_BYTES;

/// The largest single file inside a snapshot bundle, compressed or not, in bytes.
pub const MAX_BUNDLE_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The most bytes all of a bundle's files may hold together, after decompression.
pub const MAX_BUNDLE_BYTES: u64 = 256 * 1024 * 1024;

/// Reads a whole regular file of at most `limit` bytes; `what` says what the file should
/// be, for the error. Symlinks given on the command line are followed (the user named
/// them); FIFOs, devices, sockets and directories are refused before they are opened.
pub fn read_bytes(path: &Path, what: &str, limit: u64) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    refuse_unless_regular(path, what, &meta)?;
    read_open_file(path, what, limit, false)
}

/// [`read_bytes`] as UTF-8 text, a leading byte-order mark removed; invalid UTF-8 is
/// reported with its line, column and byte offset.
pub fn read_text(path: &Path, what: &str, limit: u64) -> anyhow::Result<String> {
    let bytes = read_bytes(path, what, limit)?;
    text_from_bytes(path, what, bytes)
}

/// Decodes UTF-8 text from `path`'s bytes, naming the position of the first bad byte.
pub fn text_from_bytes(path: &Path, what: &str, bytes: Vec<u8>) -> anyhow::Result<String> {
    match String::from_utf8(bytes) {
        Ok(mut text) => {
            if text.starts_with('\u{feff}') {
                text.drain(..'\u{feff}'.len_utf8());
            }
            Ok(text)
        }
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let good = &e.as_bytes()[..at];
            let line = good.iter().filter(|b| **b == b'\n').count() + 1;
            let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let column = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
            bail!(
                "{}:{line}:{column}: invalid UTF-8 at byte {at} (0x{:02x}): expected {what} as UTF-8 text",
                path.display(),
                e.as_bytes()[at]
            )
        }
    }
}

fn refuse_unless_regular(path: &Path, what: &str, meta: &std::fs::Metadata) -> anyhow::Result<()> {
    if meta.is_file() {
        return Ok(());
    }
    bail!(
        "{}: expected {what} as a regular file, found {}",
        path.display(),
        kind_name(meta.file_type())
    )
}

fn kind_name(kind: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else {
        "something other than a file"
    }
}

/// Opens without blocking (a FIFO swapped in after the check must not hang the open) and
/// optionally without following a final symlink, checks again what was opened, and reads
/// at most `limit` bytes.
fn read_open_file(path: &Path, what: &str, limit: u64, no_follow: bool) -> anyhow::Result<Vec<u8>> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut flags = libc::O_NONBLOCK;
        if no_follow {
            flags |= libc::O_NOFOLLOW;
        }
        opts.custom_flags(flags);
    }
    let file = opts
        .open(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    refuse_unless_regular(path, what, &meta)?;
    if meta.len() > limit {
        bail!(
            "{}: {what} is {} bytes: the limit is {limit} bytes",
            path.display(),
            meta.len()
        );
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if bytes.len() as u64 > limit {
        bail!(
            "{}: {what} grew past the limit of {limit} bytes while being read",
            path.display()
        );
    }
    Ok(bytes)
}

/// `root` joined with the `/`-separated relative `rel`, refusing to follow a symlink at
/// any step: every directory on the way must be a real directory inside `root`. The
/// caller has already refused `..`, absolute paths, backslashes and NUL.
pub fn path_in_bundle(root: &Path, rel: &str) -> anyhow::Result<PathBuf> {
    let mut path = root.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() || *part == "." || *part == ".." {
            bail!("`{rel}`: expected a relative path of plain names");
        }
        path.push(part);
        let last = i + 1 == parts.len();
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => bail!(
                "{}: a symbolic link; a bundle holds regular files only and is never read through a link",
                path.display()
            ),
            Ok(meta) if !last && !meta.is_dir() => {
                bail!("{}: expected a directory", path.display())
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("{}: missing", path.display())
            }
            Err(e) => return Err(anyhow!("cannot read {}: {e}", path.display())),
        }
    }
    Ok(path)
}

/// Reads `rel` inside the bundle at `root`: no symlink on the way, a regular file, at
/// most `limit` bytes.
pub fn read_in_bundle(root: &Path, rel: &str, what: &str, limit: u64) -> anyhow::Result<Vec<u8>> {
    let path = path_in_bundle(root, rel)?;
    read_open_file(&path, what, limit, true)
}

/// Inflates gzip `compressed` to at most `limit` bytes; a bomb stops at the limit instead
/// of filling memory. `Err` says "not gzip" or "larger than".
pub fn gunzip_limited(compressed: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(compressed)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("not gzip: {e}"))?;
    if out.len() as u64 > limit {
        return Err(format!(
            "inflates to more than {limit} bytes (the limit for one file); refused as a likely gzip bomb"
        ));
    }
    Ok(out)
}

/// `text` with control characters escaped (`\n`, `\u{1b}`), for printing text that came
/// from a file on a terminal: an escape sequence in a manifest must not repaint it.
pub fn escape_control(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_and_a_device_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("scenario.toml");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let e = read_text(&fifo, "a scenario", MAX_TEXT_BYTES).unwrap_err();
        assert!(format!("{e:#}").contains("found a FIFO"), "{e:#}");
        let e = read_text(Path::new("/dev/zero"), "a scenario", MAX_TEXT_BYTES).unwrap_err();
        assert!(format!("{e:#}").contains("found a device"), "{e:#}");
    }

    #[test]
    fn a_file_over_the_limit_is_refused_with_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; 2000]).unwrap();
        let e = read_text(&big, "a scenario", 1000).unwrap_err();
        assert!(
            format!("{e:#}").contains("the limit is 1000 bytes"),
            "{e:#}"
        );
    }

    #[test]
    fn invalid_utf8_has_a_position_and_a_bom_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, b"name = \"x\"\nab\xffc\n").unwrap();
        let e = read_text(&bad, "a scenario", 1000).unwrap_err();
        assert!(
            format!("{e:#}").contains("bad.toml:2:3: invalid UTF-8 at byte 13 (0xff)"),
            "{e:#}"
        );
        std::fs::write(&bad, "\u{feff}name = 1\n").unwrap();
        assert_eq!(read_text(&bad, "a scenario", 1000).unwrap(), "name = 1\n");
    }

    #[test]
    #[cfg(unix)]
    fn a_symlink_in_a_bundle_is_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        let bundle = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), bundle.path().join("files")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), bundle.path().join("key.gz"))
            .unwrap();
        for rel in ["files/secret", "key.gz"] {
            let e = read_in_bundle(bundle.path(), rel, "a file", 100).unwrap_err();
            assert!(format!("{e:#}").contains("symbolic link"), "{rel}: {e:#}");
        }
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0u8; 8 * 1024 * 1024]).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
        let e = gunzip_limited(&bomb, 1024 * 1024).unwrap_err();
        assert!(e.contains("more than 1048576 bytes"), "{e}");
        assert!(gunzip_limited(b"plain text", 100)
            .unwrap_err()
            .contains("not gzip"));
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_control("ok"), "ok");
        assert_eq!(escape_control("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\n");
    }
}
