//! Keys below a bucket directory, resolved without following a symbolic link, by construction: each directory of
//! a key is opened relative to the descriptor of the one before it with `O_NOFOLLOW` (`openat`), and the object is
//! opened, looked at, renamed into place or removed relative to its own directory's descriptor. A link swapped in
//! for a directory at any moment is met as a link (refused), never followed; a directory renamed after it was
//! opened is still the one used, so nothing lands, is read or is removed outside the bucket. The bucket directory
//! itself is opened by its path: it may be a link, the operator's choice of where the bucket lives.
//!
//! This replaces checking the path component by component and then using it, where a link swapped in between
//! the check and the use was followed.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// A directory of the key, opened: never through a link.
const DIR: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

/// Why a key's directories could not be opened.
#[derive(Debug)]
pub(crate) enum Blocked {
    /// One of them is a symbolic link.
    Link,
    /// One of them is missing (and not to be created), or is not a directory, or the bucket is gone.
    Absent,
    /// A file (or anything but a directory or a link) stands where one of them would be created.
    FileInTheWay,
    Io(io::Error),
}

/// The directories of a key, walked from the bucket's down to the object's, and the object's name in the last.
/// At most three descriptors are kept, whatever the key's depth (a key may have 512 directories): the bucket's,
/// the object's directory and the one above it.
pub(crate) struct KeyDirs<'k> {
    bucket: OwnedFd,
    /// The object's directory, and the one above it (None where the object's directory is the bucket).
    parent: Option<OwnedFd>,
    grandparent: Option<OwnedFd>,
    /// The directories below the bucket, by name.
    names: Vec<&'k str>,
    leaf: &'k str,
}

impl<'k> KeyDirs<'k> {
    /// Open the directories of `key` (a key with no empty, `.` or `..` segment) below the directory `bucket`,
    /// making the missing ones when `create`.
    pub(crate) fn open(bucket: &Path, key: &'k str, create: bool) -> Result<KeyDirs<'k>, Blocked> {
        let bucket = rustix::fs::open(bucket, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| match e {
                Errno::NOENT | Errno::NOTDIR => Blocked::Absent,
                e => Blocked::Io(e.into()),
            })?;
        let (names, leaf) = match key.rsplit_once('/') {
            Some((dirs, leaf)) => (dirs.split('/').collect(), leaf),
            None => (Vec::new(), key),
        };
        let (mut parent, mut grandparent): (Option<OwnedFd>, Option<OwnedFd>) = (None, None);
        for name in &names {
            let fd = open_dir(parent.as_ref().unwrap_or(&bucket), name, create)?;
            grandparent = parent.replace(fd);
        }
        Ok(KeyDirs { bucket, parent, grandparent, names, leaf })
    }

    fn parent(&self) -> &OwnedFd {
        self.parent.as_ref().unwrap_or(&self.bucket)
    }

    /// What the object's name is in its directory (a link is a link), or None where there is nothing.
    pub(crate) fn leaf_type(&self) -> io::Result<Option<FileType>> {
        match rustix::fs::statat(self.parent(), self.leaf, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The object opened for reading: `Ok(None)` where it is a link, missing, or not a regular file. Opened
    /// non-blocking, so a FIFO does not wait for a writer (nor is read: it is no object).
    pub(crate) fn open_file(&self) -> io::Result<Option<File>> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let file = match rustix::fs::openat(self.parent(), self.leaf, flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(Errno::LOOP | Errno::NOENT | Errno::NOTDIR | Errno::NXIO) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(file.metadata()?.is_file().then_some(file))
    }

    /// Rename the file at `tmp` (a path outside the bucket) to the object's name in its directory.
    pub(crate) fn rename_into(&self, tmp: &Path) -> io::Result<()> {
        rustix::fs::renameat(rustix::fs::CWD, tmp, self.parent(), self.leaf).map_err(io::Error::from)
    }

    /// Remove the object's name from its directory (whatever it is but a directory).
    pub(crate) fn remove(&self) -> io::Result<()> {
        rustix::fs::unlinkat(self.parent(), self.leaf, AtFlags::empty()).map_err(io::Error::from)
    }

    /// Remove the key's directories that are now empty, deepest first, up to (not including) the bucket. Above
    /// the object's directory, each parent is walked to again from the bucket (without following links).
    pub(crate) fn prune(&self) {
        for depth in (1..=self.names.len()).rev() {
            let name = self.names[depth - 1];
            let removed = match depth {
                _ if depth == self.names.len() => {
                    rustix::fs::unlinkat(self.grandparent.as_ref().unwrap_or(&self.bucket), name, AtFlags::REMOVEDIR)
                }
                1 => rustix::fs::unlinkat(&self.bucket, name, AtFlags::REMOVEDIR),
                _ => match self.walk_to(depth - 1) {
                    Some(dir) => rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR),
                    None => return,
                },
            };
            if removed.is_err() {
                return;
            }
        }
    }

    /// The directory `depth` levels below the bucket on the key's path (`depth >= 1`), opened again.
    fn walk_to(&self, depth: usize) -> Option<OwnedFd> {
        let mut dir = open_dir(&self.bucket, self.names[0], false).ok()?;
        for name in &self.names[1..depth] {
            dir = open_dir(&dir, name, false).ok()?;
        }
        Some(dir)
    }
}

/// The directory `name` in `parent`, not through a link; made first where missing and `create`.
fn open_dir(parent: &OwnedFd, name: &str, create: bool) -> Result<OwnedFd, Blocked> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match rustix::fs::openat(parent, name, DIR, Mode::empty()) {
            Ok(fd) => return Ok(fd),
            // Linux answers ENOTDIR for a link opened with O_DIRECTORY | O_NOFOLLOW, others ELOOP: look at it
            // (a link swapped in after this look is not followed either way).
            Err(Errno::LOOP | Errno::NOTDIR) => {
                return Err(match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => Blocked::Link,
                    _ if create => Blocked::FileInTheWay,
                    _ => Blocked::Absent,
                });
            }
            // Made, or made by a concurrent writer meanwhile: open it (again if a concurrent delete pruned it).
            Err(Errno::NOENT) if create && attempts < 5 => {
                match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o777)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    // The parent itself was pruned since it was opened.
                    Err(Errno::NOENT) => return Err(Blocked::Absent),
                    Err(e) => return Err(Blocked::Io(e.into())),
                }
            }
            Err(Errno::NOENT) => return Err(Blocked::Absent),
            Err(e) => return Err(Blocked::Io(e.into())),
        }
    }
}

/// The directory at `path` (a bucket's), opened for a walk.
pub(crate) fn open_bucket(path: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).map_err(io::Error::from)
}

/// The directories and regular files in `dir`, by name (`true` for a directory); links, anything else and names
/// that are not UTF-8 (passed to `skipped`) are left out.
pub(crate) fn entries(dir: &OwnedFd, mut skipped: impl FnMut(&[u8])) -> io::Result<Vec<(String, bool)>> {
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let Ok(name) = std::str::from_utf8(name) else {
            skipped(name);
            continue;
        };
        let kind = match entry.file_type() {
            FileType::Unknown => match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => FileType::from_raw_mode(st.st_mode),
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            },
            kind => kind,
        };
        match kind {
            FileType::Directory => out.push((name.to_string(), true)),
            FileType::RegularFile => out.push((name.to_string(), false)),
            _ => {}
        }
    }
    Ok(out)
}

/// The directory `name` in `dir` for a walk: None where it is gone, or is now a link or a file.
pub(crate) fn open_subdir(dir: &OwnedFd, name: &str) -> io::Result<Option<OwnedFd>> {
    match rustix::fs::openat(dir, name, DIR, Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::LOOP | Errno::NOTDIR | Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
