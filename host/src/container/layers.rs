//! Applying OCI image layers to a root filesystem directory, as root,
//! against hostile tar entries.
//!
//! Every path inside the root is resolved by [`pathrs::Root`] (openat2 with
//! `RESOLVE_IN_ROOT`), so a symlink planted by an earlier entry or layer
//! (`a -> /`, `up -> ..`) is followed as if the root were `/` and never
//! leads out of it. The last component of an entry's path is never followed:
//! whatever is there is removed and replaced, and modes, owners and times are
//! set through descriptors of the new inode itself. The `tar` crate is only
//! the parser; its `unpack` trusts the paths it is given.
//!
//! What an image may carry is applied as containerd's applier does it:
//! character and block devices and FIFOs (root filesystems made by
//! debootstrap or mmdebstrap have `/dev/console`, `/dev/null`, ...;
//! skipped, and counted, where they cannot be made: no `CAP_MKNOD`), extended
//! attributes from PAX `SCHILY.xattr.*` records (file capabilities such
//! as ping's `security.capability`), setuid and setgid bits, hard links,
//! PAX and GNU long names, GNU sparse files (holes stay holes). What
//! devices are usable inside is the runtime's business: its own `/dev`
//! and a device cgroup that denies every other.

#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, FileTimes, Permissions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{fchown, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use pathrs::error::{Error as PathrsError, ErrorKind as PathrsErrorKind};
use pathrs::flags::OpenFlags;
use pathrs::{Handle, InodeType, Root};
use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
use sha2::{Digest as _, Sha256};
use tar::{Archive, Entry, EntryType, Header};

/// Name prefix that marks a whiteout (OCI image spec, "Whiteouts").
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Whiteout name that makes its directory opaque.
const OPAQUE_WHITEOUT: &[u8] = b".wh..wh..opq";
/// Prefix of aufs' own bookkeeping entries (`.wh..wh.plnk`, ...), which
/// layers exported by old Docker versions may carry.
const AUFS_META_PREFIX: &[u8] = b".wh..wh.";
/// The xattr overlayfs reads to treat a directory as opaque.
const OVERLAY_OPAQUE_XATTR: &std::ffi::CStr = c"trusted.overlay.opaque";
/// Mode of an overlay whiteout device, as containerd makes them: nobody
/// needs to open it, overlayfs only looks at its type and number.
const WHITEOUT_DEVICE_MODE: u32 = 0o000;
/// Mode of parent directories a layer does not list itself; containerd and
/// umoci use the same.
const IMPLICIT_DIR_MODE: u32 = 0o755;
/// PAX record prefix of an extended attribute (as GNU tar and Go's
/// archive/tar write them).
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";
/// Extended attributes a layer may not set: overlayfs reads its own
/// (`trusted.overlay.opaque`, `.redirect`, `.metacopy`) from the layer
/// directories, and only whiteout entries decide those.
const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";
/// Chunk in which regular files are copied; an all-zero chunk becomes a
/// hole instead of a write.
const COPY_CHUNK: usize = 128 << 10;

/// How a layer's compression is recognised from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip; several members in a row (as pigz writes) are one stream.
    Gzip,
    /// zstd; several frames in a row are one stream.
    Zstd,
}

/// tar, tar+gzip, tar+zstd media types (OCI
/// `application/vnd.oci.image.layer.v1.tar[+gzip|+zstd]`, Docker
/// `application/vnd.docker.image.rootfs.diff.tar[.gzip]`); error naming the
/// media type otherwise.
///
/// The same list as [`crate::oci::media::IMAGE_LAYERS`], so every layer a
/// pull accepts can be unpacked.
pub fn compression_of(media_type: &str) -> Result<Compression> {
    match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Ok(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip" => Ok(Compression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd" => Ok(Compression::Zstd),
        other => bail!(
            "layer media type `{other}` is not a tar layer this host unpacks \
             (plain, gzip or zstd tar)"
        ),
    }
}

/// What a whiteout becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// Each layer unpacked into its own directory for overlayfs: `.wh.NAME`
    /// becomes a 0:0 character device NAME, `.wh..wh..opq` sets xattr
    /// `trusted.overlay.opaque=y` on its directory (containerd's overlay
    /// snapshotter format).
    Overlay,
    /// Layers applied one after another into a single directory: `.wh.NAME`
    /// removes NAME (recursively), `.wh..wh..opq` empties its directory of
    /// what earlier layers put there, keeping this layer's own entries there
    /// whether they come before or after the marker in the tar.
    Delete,
}

/// What applying a layer gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// `sha256:<hex>` of the uncompressed tar stream.
    pub diff_id: String,
    /// Device nodes and FIFOs that could not be made here (EPERM: no
    /// `CAP_MKNOD`, as in a user namespace), skipped as containerd skips
    /// them there; the first one's path, for the log line.
    pub skipped_nodes: u64,
    pub first_skipped: Option<String>,
}

/// Applies the layer blob at `blob` (compressed as `compression`) onto the
/// existing directory `root`. Returns the layer's diff_id: `sha256:<hex>` of
/// the uncompressed tar stream (computed while streaming, over every byte
/// including padding/trailer the decoder yields), and the nodes skipped.
/// Errors name the offending tar entry path.
///
/// On error the root is left part-applied: callers unpack into a directory
/// they throw away on failure.
pub fn apply_layer(
    root: &Path,
    blob: &Path,
    compression: Compression,
    whiteouts: Whiteouts,
) -> Result<Applied> {
    let file = File::open(blob).with_context(|| format!("open layer blob `{}`", blob.display()))?;
    let mut stream = HashingReader::new(decompressed(file, compression));
    let mut applier = Applier::open(root, whiteouts)?;
    applier
        .apply_tar(&mut stream)
        .with_context(|| format!("apply layer `{}` to `{}`", blob.display(), root.display()))?;
    // The tar parser stops at the end-of-archive marker; the diff_id covers
    // the rest of the stream too (the second zero block, record padding).
    io::copy(&mut stream, &mut io::sink())
        .with_context(|| format!("read the end of layer `{}`", blob.display()))?;
    Ok(Applied {
        diff_id: stream.diff_id(),
        skipped_nodes: applier.skipped_nodes,
        first_skipped: applier.first_skipped,
    })
}

/// The uncompressed tar stream of a layer blob.
fn decompressed(file: File, compression: Compression) -> Box<dyn Read> {
    let buffered = BufReader::new(file);
    match compression {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(ZstdFrames::new(buffered)),
    }
}

/// Hashes every byte read through it, so the diff_id is computed in the same
/// pass that unpacks the layer.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// `sha256:<hex>` of everything read so far.
    fn diff_id(self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.hasher.update(&buf[..read]);
        Ok(read)
    }
}

/// Decodes a zstd stream of any number of frames, skipping skippable ones:
/// ruzstd's `StreamingDecoder` stops after the first frame, and parallel
/// compressors write several.
struct ZstdFrames<R> {
    source: R,
    decoder: FrameDecoder,
    in_frame: bool,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(source: R) -> Self {
        Self {
            source,
            decoder: FrameDecoder::new(),
            in_frame: false,
        }
    }

    /// Reads the next frame's header; false at the end of the stream.
    fn start_frame(&mut self) -> io::Result<bool> {
        loop {
            if self.source.fill_buf()?.is_empty() {
                return Ok(false);
            }
            match self.decoder.reset(&mut self.source) {
                Ok(()) => return Ok(true),
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let length = u64::from(length);
                    let skipped = io::copy(&mut (&mut self.source).take(length), &mut io::sink())?;
                    if skipped != length {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "zstd skippable frame is cut short",
                        ));
                    }
                }
                Err(err) => return Err(io::Error::new(io::ErrorKind::InvalidData, err)),
            }
        }
    }

    /// Compares a finished frame's content checksum, when it has one.
    fn check_frame(&self) -> io::Result<()> {
        match (
            self.decoder.get_checksum_from_data(),
            self.decoder.get_calculated_checksum(),
        ) {
            (Some(stored), Some(computed)) if stored != computed => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "zstd frame checksum does not match its content",
            )),
            _ => Ok(()),
        }
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if !self.start_frame()? {
                    return Ok(0);
                }
                self.in_frame = true;
            }
            while self.decoder.can_collect() == 0 && !self.decoder.is_finished() {
                self.decoder
                    .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBlocks(1))
                    .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
            }
            let read = self.decoder.read(buf)?;
            if read > 0 {
                return Ok(read);
            }
            if !self.decoder.is_finished() {
                return Err(io::Error::other("zstd decoder made no progress"));
            }
            self.check_frame()?;
            self.in_frame = false;
        }
    }
}

/// One layer being applied to one root.
struct Applier {
    root: Root,
    whiteouts: Whiteouts,
    /// Paths this layer has created, as its entries spell them relative to
    /// the root, with their ancestors: what an opaque marker that comes
    /// after its siblings must keep.
    ours: HashSet<PathBuf>,
    /// Directory times, set last because creating entries inside a
    /// directory changes its mtime.
    dir_times: Vec<(PathBuf, SystemTime)>,
    /// Device nodes and FIFOs that could not be made (see [`Applied`]).
    skipped_nodes: u64,
    first_skipped: Option<String>,
}

impl Applier {
    fn open(root: &Path, whiteouts: Whiteouts) -> Result<Self> {
        // pathrs wants a root path without symlinks; the caller's path is
        // trusted, so resolving it on the host is fine.
        let canonical = fs::canonicalize(root)
            .with_context(|| format!("resolve root directory `{}`", root.display()))?;
        let root = Root::open(&canonical)
            .with_context(|| format!("open root directory `{}`", canonical.display()))?;
        Ok(Self {
            root,
            whiteouts,
            ours: HashSet::new(),
            dir_times: Vec::new(),
            skipped_nodes: 0,
            first_skipped: None,
        })
    }

    fn apply_tar(&mut self, stream: impl Read) -> Result<()> {
        let mut archive = Archive::new(stream);
        // A corrupt header has no path to name; the entry before it helps.
        let mut previous: Option<String> = None;
        for entry in archive.entries().context("read the layer's tar stream")? {
            let mut entry = entry.with_context(|| match &previous {
                Some(path) => format!("read the tar entry after `{path}`"),
                None => "read the first tar entry".to_owned(),
            })?;
            let shown = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            self.apply_entry(&mut entry)
                .with_context(|| format!("tar entry `{shown}`"))?;
            previous = Some(shown);
        }
        self.set_dir_times()
    }

    fn apply_entry<R: Read>(&mut self, entry: &mut Entry<'_, R>) -> Result<()> {
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            // Archive-wide pax metadata (`git archive` writes a commit id
            // there); it names no file.
            return Ok(());
        }
        let path = in_root(&entry.path_bytes())?;
        if let Some(whiteout) = whiteout_of(&path)? {
            return self.apply_whiteout(whiteout, entry.header());
        }
        if path.as_os_str().is_empty() && kind != EntryType::Directory {
            bail!("the path names the root itself, which only a directory entry may");
        }
        let xattrs = xattrs_of(entry)?;
        match kind {
            // The tar parser expands a GNU sparse entry's map: its reads
            // give the holes as zeros, which `write_file` skips over.
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let meta = Meta::of(entry.header())?;
                self.write_file(&path, entry, &meta, &xattrs)?;
            }
            EntryType::Directory => {
                self.make_dir(&path, &Meta::of(entry.header())?, &xattrs)?
            }
            EntryType::Symlink => {
                let target = symlink_target(entry)?;
                self.make_symlink(&path, &target, &Meta::of(entry.header())?)?;
            }
            EntryType::Link => {
                let raw = entry
                    .link_name_bytes()
                    .context("hard link entry has no target")?;
                self.make_hardlink(&path, &raw)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                if !self.make_node(&path, kind, entry.header())? {
                    return Ok(());
                }
            }
            other => bail!("tar entry type {other:?} is not supported in image layers"),
        }
        self.remember(&path);
        Ok(())
    }

    fn apply_whiteout(&mut self, whiteout: Whiteout, header: &Header) -> Result<()> {
        match (whiteout, self.whiteouts) {
            (Whiteout::AufsMeta, _) => Ok(()),
            (Whiteout::Remove(path), Whiteouts::Overlay) => {
                self.make_whiteout_device(&path, &Meta::of(header)?)?;
                self.remember(&path);
                Ok(())
            }
            (Whiteout::Remove(path), Whiteouts::Delete) => self.remove_lower(&path),
            (Whiteout::Opaque(dir), Whiteouts::Overlay) => self.mark_opaque(&dir),
            (Whiteout::Opaque(dir), Whiteouts::Delete) => {
                self.make_dirs(&dir)?;
                self.empty_lower(&dir)
            }
        }
    }

    /// Records `path` and its ancestors as this layer's.
    fn remember(&mut self, path: &Path) {
        for ancestor in path.ancestors() {
            if !self.ours.insert(ancestor.to_path_buf()) {
                // Its ancestors went in with it.
                break;
            }
        }
    }

    fn write_file(
        &self,
        path: &Path,
        contents: &mut impl Read,
        meta: &Meta,
        xattrs: &[Xattr],
    ) -> Result<()> {
        self.prepare(path, false)?;
        let mut file = self
            .root
            .create_file(
                path,
                OpenFlags::O_WRONLY | OpenFlags::O_EXCL | OpenFlags::O_NOFOLLOW,
                &Permissions::from_mode(0o600),
            )
            .context("create file")?;
        copy_sparse(contents, &mut file).context("write file contents")?;
        set_owner_and_mode(&file, meta)?;
        // After chown, which clears `security.capability`.
        set_xattrs(&file, xattrs)?;
        file.set_times(file_times(meta.mtime))
            .context("set file times")
    }

    /// Makes a character or block device or a FIFO; false when it cannot
    /// be made here (EPERM), which is counted and otherwise skipped.
    fn make_node(&mut self, path: &Path, kind: EntryType, header: &Header) -> Result<bool> {
        let meta = Meta::of(header)?;
        let permissions = Permissions::from_mode(meta.mode);
        let device = || -> Result<u64> {
            let major = header.device_major().context("read device major")?;
            let minor = header.device_minor().context("read device minor")?;
            Ok(libc::makedev(major.unwrap_or(0), minor.unwrap_or(0)))
        };
        let inode = match kind {
            EntryType::Char => InodeType::CharacterDevice(permissions, device()?),
            EntryType::Block => InodeType::BlockDevice(permissions, device()?),
            _ => InodeType::Fifo(permissions),
        };
        self.prepare(path, false)?;
        match self.root.create(path, &inode) {
            Ok(()) => {}
            Err(err) if is_errno(&err, libc::EPERM) => {
                self.skipped_nodes += 1;
                self.first_skipped
                    .get_or_insert_with(|| path.display().to_string());
                return Ok(false);
            }
            Err(err) => return Err(err).context("create device node or FIFO"),
        }
        let node = self
            .root
            .resolve_nofollow(path)
            .context("open new device node or FIFO")?;
        set_unopenable_metadata(&node, &meta)?;
        // mknod applied the umask. chmod through the handle's /proc link
        // reaches this very inode and opens nothing (a FIFO would block,
        // a device would be opened).
        fs::set_permissions(
            format!("/proc/self/fd/{}", node.as_fd().as_raw_fd()),
            Permissions::from_mode(meta.mode),
        )
        .context("set mode")?;
        Ok(true)
    }

    fn make_dir(&mut self, path: &Path, meta: &Meta, xattrs: &[Xattr]) -> Result<()> {
        if !self.prepare(path, true)? {
            self.root
                .create(path, &InodeType::Directory(Permissions::from_mode(0o700)))
                .context("create directory")?;
        }
        let dir = self
            .root
            .open_subpath(
                at(path),
                OpenFlags::O_RDONLY | OpenFlags::O_DIRECTORY | OpenFlags::O_NOFOLLOW,
            )
            .context("open directory")?;
        set_owner_and_mode(&dir, meta)?;
        set_xattrs(&dir, xattrs)?;
        self.dir_times.push((path.to_path_buf(), meta.mtime));
        Ok(())
    }

    fn make_symlink(&self, path: &Path, target: &Path, meta: &Meta) -> Result<()> {
        self.prepare(path, false)?;
        self.root
            .create(path, &InodeType::Symlink(target.to_path_buf()))
            .context("create symlink")?;
        let link = self
            .root
            .resolve_nofollow(path)
            .context("open new symlink")?;
        set_unopenable_metadata(&link, meta)
    }

    /// Links to an inode already in the root; `raw` is the entry's link
    /// name, resolved inside the root like any entry path.
    fn make_hardlink(&self, path: &Path, raw: &[u8]) -> Result<()> {
        let shown = String::from_utf8_lossy(raw);
        let target = in_root(raw).with_context(|| format!("hard link target `{shown}`"))?;
        if target.as_os_str().is_empty() {
            bail!("hard link target `{shown}` is the root directory");
        }
        // Checked before `path` is cleared, so a bad link leaves the lower
        // file in place.
        self.root
            .resolve_nofollow(&target)
            .with_context(|| format!("hard link target `{shown}` is not in the root filesystem"))?;
        self.prepare(path, false)?;
        self.root
            .create(path, &InodeType::Hardlink(target))
            .with_context(|| format!("hard link to `{shown}`"))
    }

    fn make_whiteout_device(&self, path: &Path, meta: &Meta) -> Result<()> {
        self.prepare(path, false)?;
        self.root
            .create(
                path,
                &InodeType::CharacterDevice(Permissions::from_mode(WHITEOUT_DEVICE_MODE), 0),
            )
            .context("create whiteout device")?;
        let device = self
            .root
            .resolve_nofollow(path)
            .context("open whiteout device")?;
        set_unopenable_metadata(&device, meta)
    }

    fn mark_opaque(&self, dir: &Path) -> Result<()> {
        self.make_dirs(dir)?;
        let dir = self
            .root
            .open_subpath(at(dir), OpenFlags::O_RDONLY | OpenFlags::O_DIRECTORY)
            .context("open opaque directory")?;
        super::sys::set_xattr(dir.as_fd(), OVERLAY_OPAQUE_XATTR, b"y")
            .context("set trusted.overlay.opaque")?;
        Ok(())
    }

    /// Removes what lower layers put at `path`; nothing there is fine.
    fn remove_lower(&self, path: &Path) -> Result<()> {
        match self.root.remove_all(path) {
            Err(err) if !is_absent(&err) => {
                Err(err).with_context(|| format!("remove whited-out `{}`", path.display()))
            }
            _ => Ok(()),
        }
    }

    /// Removes everything in `dir` this layer did not put there, walking
    /// into this layer's directories: lower content below them is hidden
    /// by the opaque marker too.
    fn empty_lower(&self, dir: &Path) -> Result<()> {
        for (name, is_dir) in self.list_dir(dir)? {
            let child = dir.join(name);
            if !self.ours.contains(&child) {
                self.remove_lower(&child)?;
            } else if is_dir {
                self.empty_lower(&child)?;
            }
        }
        Ok(())
    }

    /// Names in a directory inside the root, each with whether it is a
    /// directory (not following symlinks).
    fn list_dir(&self, dir: &Path) -> Result<Vec<(OsString, bool)>> {
        let opened = self
            .root
            .open_subpath(at(dir), OpenFlags::O_RDONLY | OpenFlags::O_DIRECTORY)
            .with_context(|| format!("open `{}`", dir.display()))?;
        // std lists directories by path only; this path is the descriptor
        // pathrs just opened, not a fresh lookup inside the root.
        let proc_path = format!("/proc/self/fd/{}", opened.as_raw_fd());
        let mut names = Vec::new();
        for item in fs::read_dir(&proc_path).with_context(|| format!("list `{}`", dir.display()))? {
            let item = item.with_context(|| format!("list `{}`", dir.display()))?;
            let is_dir = item
                .file_type()
                .with_context(|| format!("inspect `{}`", dir.join(item.file_name()).display()))?
                .is_dir();
            names.push((item.file_name(), is_dir));
        }
        Ok(names)
    }

    /// Creates `path`'s missing parent directories.
    fn make_parents(&self, path: &Path) -> Result<()> {
        match path.parent() {
            Some(parent) => self.make_dirs(parent),
            None => Ok(()),
        }
    }

    /// Creates `dir` and its missing ancestors, following symlinks inside
    /// the root only.
    fn make_dirs(&self, dir: &Path) -> Result<()> {
        self.root
            .mkdir_all(at(dir), &Permissions::from_mode(IMPLICIT_DIR_MODE))
            .with_context(|| format!("create directory `{}`", at(dir).display()))?;
        Ok(())
    }

    /// Makes room for a new entry at `path`: creates its parents and removes
    /// what is there, unless both it and the new entry are directories (a
    /// directory entry updates an existing directory). Returns whether a
    /// directory was kept.
    fn prepare(&self, path: &Path, new_is_dir: bool) -> Result<bool> {
        self.make_parents(path)?;
        let existing = match self.root.resolve_nofollow(at(path)) {
            Ok(handle) => File::from(OwnedFd::from(handle))
                .metadata()
                .context("inspect existing path")?
                .file_type(),
            Err(err) if is_absent(&err) => return Ok(false),
            Err(err) => return Err(err).context("inspect existing path"),
        };
        if existing.is_dir() {
            if new_is_dir {
                return Ok(true);
            }
            self.root
                .remove_all(path)
                .context("remove existing directory")?;
        } else {
            self.root
                .remove_file(path)
                .context("remove existing file")?;
        }
        Ok(false)
    }

    fn set_dir_times(&self) -> Result<()> {
        for (path, mtime) in &self.dir_times {
            let opened = self.root.open_subpath(
                at(path),
                OpenFlags::O_RDONLY | OpenFlags::O_DIRECTORY | OpenFlags::O_NOFOLLOW,
            );
            let dir = match opened {
                Ok(dir) => dir,
                // A later entry of this layer removed or replaced it.
                Err(err) if is_absent(&err) || is_errno(&err, libc::ELOOP) => continue,
                Err(err) => {
                    return Err(err).with_context(|| format!("open directory `{}`", path.display()))
                }
            };
            dir.set_times(file_times(*mtime))
                .with_context(|| format!("set times of directory `{}`", path.display()))?;
        }
        Ok(())
    }
}

/// What a whiteout entry asks for.
enum Whiteout {
    /// `.wh.NAME`: hide NAME.
    Remove(PathBuf),
    /// `.wh..wh..opq`: hide everything lower layers have in this directory.
    Opaque(PathBuf),
    /// aufs bookkeeping (`.wh..wh.plnk`, ...); ignored, as containerd does.
    AufsMeta,
}

/// The whiteout an entry path is, if any.
fn whiteout_of(path: &Path) -> Result<Option<Whiteout>> {
    let Some(name) = path.file_name() else {
        return Ok(None);
    };
    let name = name.as_bytes();
    let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) else {
        return Ok(None);
    };
    let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
    if name == OPAQUE_WHITEOUT {
        return Ok(Some(Whiteout::Opaque(dir)));
    }
    if name.starts_with(AUFS_META_PREFIX) {
        return Ok(Some(Whiteout::AufsMeta));
    }
    if matches!(hidden, b"" | b"." | b"..") {
        bail!("whiteout hides no valid name");
    }
    Ok(Some(Whiteout::Remove(dir.join(OsStr::from_bytes(hidden)))))
}

/// An entry's path as normal components relative to the root. A leading
/// `/` and `.` components are dropped (tar writers prefix `./`); `..` is
/// refused outright: no well-formed layer needs it.
fn in_root(raw: &[u8]) -> Result<PathBuf> {
    let mut path = PathBuf::new();
    for part in raw.split(|&byte| byte == b'/') {
        match part {
            b"" | b"." => {}
            b".." => bail!("path has a `..` component"),
            _ if part.contains(&0) => bail!("path has a NUL byte"),
            _ => path.push(OsStr::from_bytes(part)),
        }
    }
    Ok(path)
}

/// pathrs' spelling of a relative path: the root itself is `.`.
fn at(path: &Path) -> &Path {
    if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    }
}

/// A symlink entry's target, verbatim: creating a symlink is harmless,
/// only following one could escape, and pathrs resolves inside the root.
fn symlink_target<R: Read>(entry: &Entry<'_, R>) -> Result<PathBuf> {
    match entry.link_name_bytes() {
        Some(raw) if !raw.is_empty() => Ok(PathBuf::from(OsStr::from_bytes(&raw))),
        _ => bail!("symlink entry has no target"),
    }
}

/// Owner, permission bits and time a header gives its inode.
struct Meta {
    uid: u32,
    gid: u32,
    /// Permission bits including setuid, setgid and sticky: we unpack as
    /// root, as runc does.
    mode: u32,
    mtime: SystemTime,
    /// The same time for the raw `utimensat` call.
    mtime_secs: libc::time_t,
}

impl Meta {
    fn of(header: &Header) -> Result<Self> {
        let uid = header.uid().context("read uid")?;
        let gid = header.gid().context("read gid")?;
        let mtime = header.mtime().context("read mtime")?;
        Ok(Self {
            uid: u32::try_from(uid).with_context(|| format!("uid {uid} is out of range"))?,
            gid: u32::try_from(gid).with_context(|| format!("gid {gid} is out of range"))?,
            mode: header.mode().context("read mode")? & 0o7777,
            mtime: UNIX_EPOCH
                .checked_add(Duration::from_secs(mtime))
                .with_context(|| format!("mtime {mtime} is out of range"))?,
            mtime_secs: libc::time_t::try_from(mtime)
                .with_context(|| format!("mtime {mtime} is out of range"))?,
        })
    }
}

/// An extended attribute an entry carries: name, value.
type Xattr = (std::ffi::CString, Vec<u8>);

/// The extended attributes of an entry's PAX records, but those of
/// overlayfs ([`OVERLAY_XATTR_PREFIX`]).
fn xattrs_of<R: Read>(entry: &mut Entry<'_, R>) -> Result<Vec<Xattr>> {
    let Some(records) = entry.pax_extensions().context("read PAX records")? else {
        return Ok(Vec::new());
    };
    let mut xattrs = Vec::new();
    for record in records {
        let record = record.context("read a PAX record")?;
        let Ok(key) = record.key() else { continue };
        let Some(name) = key.strip_prefix(PAX_XATTR_PREFIX) else {
            continue;
        };
        if name.starts_with(OVERLAY_XATTR_PREFIX) {
            continue;
        }
        let name = std::ffi::CString::new(name)
            .with_context(|| format!("xattr name `{name}` has a NUL byte"))?;
        xattrs.push((name, record.value_bytes().to_vec()));
    }
    Ok(xattrs)
}

/// Sets `xattrs` on an open file or directory. One the file system does
/// not support (EOPNOTSUPP) is skipped, as containerd skips it; any other
/// failure fails the layer.
fn set_xattrs(file: &File, xattrs: &[Xattr]) -> Result<()> {
    for (name, value) in xattrs {
        match super::sys::set_xattr(file.as_fd(), name, value) {
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                tracing::debug!("xattr `{}` not supported here: skipped", name.to_string_lossy());
            }
            other => other.with_context(|| format!("set xattr `{}`", name.to_string_lossy()))?,
        }
    }
    Ok(())
}

/// Copies `contents` into the new, empty `file`, seeking over all-zero
/// chunks instead of writing them: a sparse file's holes (and long zero
/// runs of any file) take no space, as with `cp --sparse`.
fn copy_sparse(contents: &mut impl Read, file: &mut File) -> io::Result<()> {
    use std::io::{Seek as _, SeekFrom, Write as _};
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut length = 0u64;
    let mut hole = false;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match contents.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            break;
        }
        let chunk = &buf[..filled];
        if chunk.iter().all(|&b| b == 0) {
            file.seek(SeekFrom::Current(filled as i64))?;
            hole = true;
        } else {
            file.write_all(chunk)?;
            hole = false;
        }
        length += filled as u64;
    }
    if hole {
        // A file ending in a hole: its length, without writing it.
        file.set_len(length)?;
    }
    Ok(())
}

/// Owner, then mode: chown clears setuid and setgid bits.
fn set_owner_and_mode(file: &File, meta: &Meta) -> Result<()> {
    fchown(file, Some(meta.uid), Some(meta.gid)).context("set owner")?;
    file.set_permissions(Permissions::from_mode(meta.mode))
        .context("set mode")
}

/// Access and modification time both set to the entry's mtime.
fn file_times(mtime: SystemTime) -> FileTimes {
    FileTimes::new().set_accessed(mtime).set_modified(mtime)
}

/// Owner and times of an inode that cannot be opened for I/O (a symlink, a
/// whiteout device), through its `O_PATH` handle: with `AT_EMPTY_PATH` the
/// calls act on that very inode and follow nothing. Symlinks have no mode
/// of their own and whiteout devices keep mode 0.
fn set_unopenable_metadata(handle: &Handle, meta: &Meta) -> Result<()> {
    super::sys::set_owner_and_mtime(handle.as_fd(), meta.uid, meta.gid, meta.mtime_secs)
        .context("set owner and times")
}

/// Whether a pathrs error means "nothing there": the path or one of its
/// parents does not exist, or a parent is not a directory.
fn is_absent(err: &PathrsError) -> bool {
    is_errno(err, libc::ENOENT) || is_errno(err, libc::ENOTDIR)
}

fn is_errno(err: &PathrsError, errno: i32) -> bool {
    err.kind() == PathrsErrorKind::OsError(Some(errno))
}

#[cfg(test)]
mod tests {
    //! Run as root (ownership, device nodes, trusted xattrs). Hostile cases
    //! keep host files beside the root in the same temp dir and check that
    //! none of them changed.

    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    use std::process::Command;

    use tar::Builder;
    use tempfile::TempDir;

    use super::*;

    /// Every entry's mtime, so tests can check it was applied.
    const MTIME: u64 = 1_600_000_000;

    /// A layer written entry by entry. Paths and link names go into the raw
    /// header bytes, so hostile ones (`..`, `/`) are written as given.
    struct Layer {
        builder: Builder<Vec<u8>>,
        owner: (u64, u64),
    }

    impl Layer {
        fn new() -> Self {
            Self {
                builder: Builder::new(Vec::new()),
                owner: (0, 0),
            }
        }

        /// Owner of the entries appended after this.
        fn owner(mut self, uid: u64, gid: u64) -> Self {
            self.owner = (uid, gid);
            self
        }

        fn header(&self, kind: EntryType, mode: u32, size: usize) -> Header {
            let mut header = Header::new_gnu();
            header.set_entry_type(kind);
            header.set_mode(mode);
            header.set_uid(self.owner.0);
            header.set_gid(self.owner.1);
            header.set_mtime(MTIME);
            header.set_size(size as u64);
            header
        }

        fn entry(
            mut self,
            kind: EntryType,
            path: &str,
            link: &str,
            mode: u32,
            data: &[u8],
        ) -> Self {
            let mut header = self.header(kind, mode, data.len());
            let old = header.as_old_mut();
            old.name[..path.len()].copy_from_slice(path.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
            header.set_cksum();
            self.builder
                .append(&header, data)
                .expect("append to an in-memory tar");
            self
        }

        fn file(self, path: &str, mode: u32, data: &[u8]) -> Self {
            self.entry(EntryType::Regular, path, "", mode, data)
        }

        fn dir(self, path: &str, mode: u32) -> Self {
            self.entry(EntryType::Directory, path, "", mode, b"")
        }

        fn symlink(self, path: &str, target: &str) -> Self {
            self.entry(EntryType::Symlink, path, target, 0o777, b"")
        }

        fn hardlink(self, path: &str, target: &str) -> Self {
            self.entry(EntryType::Link, path, target, 0o644, b"")
        }

        /// A file whose path is too long for the header: the tar crate
        /// writes a GNU long-name entry before it.
        fn long_file(mut self, path: &str, data: &[u8]) -> Self {
            let mut header = self.header(EntryType::Regular, 0o644, data.len());
            self.builder
                .append_data(&mut header, path, data)
                .expect("append to an in-memory tar");
            self
        }

        fn bytes(self) -> Vec<u8> {
            self.builder.into_inner().expect("finish an in-memory tar")
        }
    }

    /// A root to apply layers to and, beside it, host files that hostile
    /// layers aim at.
    struct Fixture {
        tmp: TempDir,
        blobs: TempDir,
        root: PathBuf,
        /// A host file (think `/etc/passwd`), mode 0600, owned by root.
        sentinel: PathBuf,
        /// A host directory holding one file, mode 0700.
        sentinel_dir: PathBuf,
    }

    impl Fixture {
        fn new() -> Self {
            let tmp = tempfile::tempdir().expect("temp dir");
            let root = tmp.path().join("root");
            fs::create_dir(&root).expect("create root");
            let sentinel = tmp.path().join("sentinel");
            fs::write(&sentinel, "host secret\n").expect("write sentinel");
            fs::set_permissions(&sentinel, Permissions::from_mode(0o600)).expect("chmod");
            let sentinel_dir = tmp.path().join("sentinel-dir");
            fs::create_dir(&sentinel_dir).expect("create sentinel dir");
            fs::write(sentinel_dir.join("inside"), "host file\n").expect("write");
            fs::set_permissions(&sentinel_dir, Permissions::from_mode(0o700)).expect("chmod");
            Self {
                tmp,
                blobs: tempfile::tempdir().expect("temp dir"),
                root,
                sentinel,
                sentinel_dir,
            }
        }

        fn apply(&self, tar: &[u8], whiteouts: Whiteouts) -> Result<String> {
            self.apply_blob(tar, Compression::None, whiteouts)
        }

        fn apply_blob(
            &self,
            blob: &[u8],
            compression: Compression,
            whiteouts: Whiteouts,
        ) -> Result<String> {
            let path = self.blobs.path().join("layer");
            fs::write(&path, blob).expect("write blob");
            apply_layer(&self.root, &path, compression, whiteouts).map(|a| a.diff_id)
        }

        /// Everything in the temp dir outside the root, with metadata and
        /// contents, in a stable order.
        fn outside(&self) -> Vec<String> {
            let mut seen = Vec::new();
            describe(self.tmp.path(), self.tmp.path(), &mut seen);
            let mut walk = vec![self.tmp.path().to_path_buf()];
            while let Some(dir) = walk.pop() {
                let mut children: Vec<PathBuf> = fs::read_dir(&dir)
                    .expect("list temp dir")
                    .map(|child| child.expect("list temp dir").path())
                    .filter(|child| *child != self.root)
                    .collect();
                children.sort();
                for child in children {
                    if describe(self.tmp.path(), &child, &mut seen) {
                        walk.push(child);
                    }
                }
            }
            seen
        }

        /// Applies a layer that must be refused, naming `entry`, and checks
        /// that nothing outside the root changed.
        fn assert_refused(&self, tar: &[u8], entry: &str) {
            let before = self.outside();
            let err = self
                .apply(tar, Whiteouts::Delete)
                .expect_err("a hostile layer must be refused");
            let message = format!("{err:#}");
            assert!(
                message.contains(&format!("`{entry}`")),
                "error does not name `{entry}`: {message}"
            );
            assert_eq!(self.outside(), before, "something outside the root changed");
        }

        /// Applies a layer that must succeed without touching anything
        /// outside the root.
        fn assert_contained(&self, tar: &[u8]) {
            let before = self.outside();
            self.apply(tar, Whiteouts::Delete).expect("apply layer");
            assert_eq!(self.outside(), before, "something outside the root changed");
        }
    }

    /// One line about `path`; true when it is a directory to walk into.
    fn describe(base: &Path, path: &Path, seen: &mut Vec<String>) -> bool {
        let meta = fs::symlink_metadata(path).expect("stat");
        let content = if meta.is_file() {
            format!("{:?}", fs::read(path).expect("read"))
        } else if meta.file_type().is_symlink() {
            format!("-> {:?}", fs::read_link(path).expect("readlink"))
        } else {
            String::new()
        };
        seen.push(format!(
            "{:?} mode={:o} owner={}:{} links={} mtime={} {content}",
            path.strip_prefix(base).expect("under base"),
            meta.mode(),
            meta.uid(),
            meta.gid(),
            meta.nlink(),
            meta.mtime(),
        ));
        meta.is_dir()
    }

    fn sha256(bytes: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }

    fn mode_of(path: &Path) -> u32 {
        fs::symlink_metadata(path).expect("stat").mode() & 0o7777
    }

    fn owner_of(path: &Path) -> (u32, u32) {
        let meta = fs::symlink_metadata(path).expect("stat");
        (meta.uid(), meta.gid())
    }

    fn mtime_of(path: &Path) -> i64 {
        fs::symlink_metadata(path).expect("stat").mtime()
    }

    /// A small layer with end-of-archive padding, as `tar` pads records.
    fn sample_tar() -> Vec<u8> {
        let mut tar = Layer::new()
            .dir("./", 0o755)
            .dir("./etc/", 0o755)
            .file("./etc/hosts", 0o644, b"127.0.0.1 localhost\n")
            .bytes();
        tar.extend([0u8; 8192]);
        tar
    }

    #[test]
    fn media_types_map_to_their_compression() {
        let cases = [
            ("application/vnd.oci.image.layer.v1.tar", Compression::None),
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Compression::Gzip,
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+zstd",
                Compression::Zstd,
            ),
            (
                "application/vnd.docker.image.rootfs.diff.tar",
                Compression::None,
            ),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Compression::Gzip,
            ),
        ];
        for (media_type, expected) in cases {
            assert_eq!(compression_of(media_type).expect(media_type), expected);
        }
        let err = compression_of("application/vnd.oci.image.config.v1+json").unwrap_err();
        assert!(err
            .to_string()
            .contains("`application/vnd.oci.image.config.v1+json`"));
    }

    #[test]
    fn a_plain_layer_creates_files_directories_and_links_with_their_metadata() {
        let fx = Fixture::new();
        fs::write(fx.root.join("replaced"), "lower\n").unwrap();
        fs::create_dir(fx.root.join("kept")).unwrap();
        fs::write(fx.root.join("kept/lower"), "lower\n").unwrap();
        let long = format!("deep/{}/file", "n".repeat(150));
        let tar = Layer::new()
            .dir("./", 0o755)
            .owner(1000, 1000)
            .dir("./etc/", 0o2775)
            .file("./etc/hosts", 0o644, b"127.0.0.1 localhost\n")
            .file("./bin/su", 0o4755, b"#!/bin/sh\n")
            .symlink("./etc/passwd-link", "/etc/passwd")
            .symlink("./up", "../../etc/hosts")
            .hardlink("./etc/hosts.hard", "./etc/hosts")
            .symlink("./replaced", "etc/hosts")
            .dir("./kept/", 0o700)
            .file("/absolute", 0o600, b"abs\n")
            .long_file(&long, b"long\n")
            .bytes();

        let diff_id = fx.apply(&tar, Whiteouts::Delete).expect("apply");

        assert_eq!(diff_id, sha256(&tar));
        let root = &fx.root;
        assert_eq!(
            fs::read(root.join("etc/hosts")).unwrap(),
            b"127.0.0.1 localhost\n"
        );
        assert_eq!(mode_of(&root.join("etc/hosts")), 0o644);
        assert_eq!(owner_of(&root.join("etc/hosts")), (1000, 1000));
        assert_eq!(mtime_of(&root.join("etc/hosts")), MTIME as i64);
        assert_eq!(
            mode_of(&root.join("bin/su")),
            0o4755,
            "setuid kept after chown"
        );
        assert_eq!(mode_of(&root.join("etc")), 0o2775, "setgid on a directory");
        assert_eq!(owner_of(&root.join("etc")), (1000, 1000));
        assert_eq!(
            mtime_of(&root.join("etc")),
            MTIME as i64,
            "set after its entries"
        );
        assert_eq!(mode_of(&root.join("bin")), 0o755, "implicit parent");
        assert_eq!(owner_of(&root.join("bin")), (0, 0));
        assert_eq!(
            fs::read_link(root.join("etc/passwd-link")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(owner_of(&root.join("etc/passwd-link")), (1000, 1000));
        assert_eq!(mtime_of(&root.join("etc/passwd-link")), MTIME as i64);
        assert_eq!(
            fs::read_link(root.join("up")).unwrap(),
            Path::new("../../etc/hosts")
        );
        let hard = fs::metadata(root.join("etc/hosts.hard")).unwrap();
        assert_eq!(
            hard.ino(),
            fs::metadata(root.join("etc/hosts")).unwrap().ino()
        );
        assert_eq!(hard.nlink(), 2);
        assert_eq!(
            fs::read_link(root.join("replaced")).unwrap(),
            Path::new("etc/hosts")
        );
        assert_eq!(mode_of(&root.join("kept")), 0o700);
        assert!(
            root.join("kept/lower").exists(),
            "an existing directory keeps its content"
        );
        assert_eq!(fs::read(root.join("absolute")).unwrap(), b"abs\n");
        assert_eq!(fs::read(root.join(&long)).unwrap(), b"long\n");
    }

    #[test]
    fn gzip_and_zstd_layers_have_the_diff_id_of_their_tar() {
        let tar = sample_tar();
        let expected = sha256(&tar);
        let (first, second) = tar.split_at(tar.len() / 2);

        let gzip = |part: &[u8]| {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            io::Write::write_all(&mut encoder, part).unwrap();
            encoder.finish().unwrap()
        };
        let zstd = |part: &[u8]| {
            ruzstd::encoding::compress_to_vec(part, ruzstd::encoding::CompressionLevel::Fastest)
        };
        // A skippable frame between two data frames: magic, length, bytes.
        let mut skippable = 0x184D_2A50u32.to_le_bytes().to_vec();
        skippable.extend(3u32.to_le_bytes());
        skippable.extend(b"abc");

        let mut blobs = vec![
            ("plain", Compression::None, tar.clone()),
            ("gzip", Compression::Gzip, gzip(&tar)),
            (
                "gzip, two members",
                Compression::Gzip,
                [gzip(first), gzip(second)].concat(),
            ),
            ("zstd", Compression::Zstd, zstd(&tar)),
            (
                "zstd, two frames and a skippable one",
                Compression::Zstd,
                [zstd(first), skippable, zstd(second)].concat(),
            ),
        ];
        blobs.push(("zstd CLI", Compression::Zstd, zstd_cli(&tar)));

        for (name, compression, blob) in blobs {
            let fx = Fixture::new();
            let diff_id = fx
                .apply_blob(&blob, compression, Whiteouts::Delete)
                .expect(name);
            assert_eq!(diff_id, expected, "{name}");
            assert_eq!(
                fs::read(fx.root.join("etc/hosts")).unwrap(),
                b"127.0.0.1 localhost\n",
                "{name}"
            );
        }
    }

    /// `tar` compressed by the reference zstd (what image builders use;
    /// `scripts/install-test-deps.sh` installs it): a missing tool fails
    /// the test rather than skipping the case.
    fn zstd_cli(tar: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("layer.tar");
        let output = dir.path().join("layer.tar.zst");
        fs::write(&input, tar).unwrap();
        let status = Command::new("zstd")
            .args(["-q", "-19", "--check", "-o"])
            .arg(&output)
            .arg(&input)
            .status()
            .expect("run `zstd` (scripts/install-test-deps.sh installs it)");
        assert!(status.success(), "zstd failed: {status}");
        fs::read(output).unwrap()
    }

    #[test]
    fn a_corrupt_zstd_blob_is_an_error() {
        let fx = Fixture::new();
        let mut blob = ruzstd::encoding::compress_to_vec(
            sample_tar().as_slice(),
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        blob.truncate(blob.len() / 2);
        assert!(fx
            .apply_blob(&blob, Compression::Zstd, Whiteouts::Delete)
            .is_err());
    }

    #[test]
    fn overlay_whiteouts_become_character_devices_and_opaque_xattrs() {
        let fx = Fixture::new();
        let tar = Layer::new()
            .dir("dir/", 0o755)
            .file("dir/.wh..wh..opq", 0o644, b"")
            .file("dir/keep", 0o644, b"keep\n")
            .owner(1000, 1000)
            .file(".wh.gone", 0o644, b"")
            .file("new/.wh.hidden", 0o644, b"")
            .bytes();

        fx.apply(&tar, Whiteouts::Overlay).expect("apply");

        for (path, owner) in [("gone", (1000, 1000)), ("new/hidden", (1000, 1000))] {
            let meta = fs::symlink_metadata(fx.root.join(path)).expect(path);
            assert!(
                meta.file_type().is_char_device(),
                "{path} is a character device"
            );
            assert_eq!(meta.rdev(), 0, "{path} is device 0:0");
            assert_eq!((meta.uid(), meta.gid()), owner, "{path}");
        }
        assert!(!fx.root.join(".wh.gone").exists());
        assert!(!fx.root.join("dir/.wh..wh..opq").exists());
        assert!(fx.root.join("dir/keep").exists());
        assert_eq!(
            xattr(&fx.root.join("dir"), "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..])
        );
        assert_eq!(xattr(&fx.root, "trusted.overlay.opaque"), None);
    }

    /// An xattr's value, or None when it is not set.
    fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
        super::super::sys::get_xattr(path, &std::ffi::CString::new(name).unwrap())
    }

    #[test]
    fn delete_whiteouts_remove_lower_files_and_opaque_markers_keep_this_layers_entries() {
        let fx = Fixture::new();
        let lower = Layer::new()
            .file("gone", 0o644, b"lower\n")
            .file("gonedir/x", 0o644, b"lower\n")
            .file("keep", 0o644, b"lower\n")
            .file("d/old", 0o644, b"lower\n")
            .file("d/sub/deep", 0o644, b"lower\n")
            .file("d/mixed/lower", 0o644, b"lower\n")
            .bytes();
        fx.apply(&lower, Whiteouts::Delete).expect("lower layer");
        // This layer's entries in `d` come before its opaque marker.
        let upper = Layer::new()
            .file(".wh.gone", 0o644, b"")
            .file(".wh.gonedir", 0o644, b"")
            .file(".wh.never-existed", 0o644, b"")
            .dir("d/", 0o755)
            .file("d/new", 0o644, b"upper\n")
            .dir("d/mixed/", 0o755)
            .file("d/sub/fresh", 0o644, b"upper\n")
            .file("d/.wh..wh..opq", 0o644, b"")
            .file("d/after", 0o644, b"upper\n")
            .bytes();

        fx.apply(&upper, Whiteouts::Delete).expect("upper layer");

        let root = &fx.root;
        for gone in [
            "gone",
            "gonedir",
            "d/old",
            "d/sub/deep",
            "d/mixed/lower",
            "d/.wh..wh..opq",
            ".wh.gone",
        ] {
            assert!(!root.join(gone).exists(), "{gone} should be gone");
        }
        for kept in ["keep", "d/new", "d/mixed", "d/sub/fresh", "d/after"] {
            assert!(root.join(kept).exists(), "{kept} should be kept");
        }
    }

    #[test]
    fn dotdot_paths_are_refused_and_nothing_outside_changes() {
        for path in [
            "../escape",
            "a/../../escape",
            "./../escape",
            "/../escape",
            "..",
        ] {
            let fx = Fixture::new();
            let tar = Layer::new()
                .file("ok", 0o644, b"ok\n")
                .file(path, 0o644, b"pwned\n")
                .bytes();
            fx.assert_refused(&tar, path);
            assert!(!fx.tmp.path().join("escape").exists(), "{path}");
        }
        let fx = Fixture::new();
        let tar = Layer::new()
            .file("ok", 0o644, b"ok\n")
            .hardlink("h", "../sentinel")
            .bytes();
        fx.assert_refused(&tar, "h");
    }

    #[test]
    fn an_absolute_symlink_is_followed_inside_the_root() {
        let fx = Fixture::new();
        let tar = Layer::new()
            .symlink("link", "/")
            .file("link/pwned-by-layer-test", 0o644, b"pwned\n")
            .bytes();
        fx.assert_contained(&tar);
        assert_eq!(
            fs::read(fx.root.join("pwned-by-layer-test")).unwrap(),
            b"pwned\n"
        );
        assert!(!Path::new("/pwned-by-layer-test").exists());

        // A symlink to the host directory's absolute path: inside the root
        // that path does not exist, so the entry is refused or lands inside.
        let fx = Fixture::new();
        let target = fx.sentinel_dir.to_str().unwrap().to_owned();
        let tar = Layer::new()
            .symlink("into", &target)
            .file("into/pwned", 0o644, b"pwned\n")
            .bytes();
        let before = fx.outside();
        if let Err(err) = fx.apply(&tar, Whiteouts::Delete) {
            assert!(format!("{err:#}").contains("`into/pwned`"), "{err:#}");
        } else {
            assert!(fx
                .root
                .join(target.trim_start_matches('/'))
                .join("pwned")
                .exists());
        }
        assert_eq!(fx.outside(), before);
        assert!(!fx.sentinel_dir.join("pwned").exists());
    }

    #[test]
    fn entries_naming_the_root_are_refused_unless_directories() {
        let cases = [
            ("symlink `.`", Layer::new().symlink(".", "/").bytes(), "."),
            (
                "symlink `/`",
                Layer::new().symlink("/", "/tmp").bytes(),
                "/",
            ),
            (
                "symlink `./`",
                Layer::new().symlink("./", "..").bytes(),
                "./",
            ),
            ("file `/`", Layer::new().file("/", 0o644, b"x").bytes(), "/"),
            ("file `.`", Layer::new().file(".", 0o644, b"x").bytes(), "."),
            (
                "hard link `.`",
                Layer::new()
                    .file("f", 0o644, b"x")
                    .hardlink(".", "f")
                    .bytes(),
                ".",
            ),
        ];
        for (name, tar, entry) in cases {
            let fx = Fixture::new();
            let root_before = describe_root(&fx.root);
            fx.assert_refused(&tar, entry);
            assert_eq!(describe_root(&fx.root), root_before, "{name}: root changed");
        }
    }

    fn describe_root(root: &Path) -> String {
        let meta = fs::symlink_metadata(root).unwrap();
        format!(
            "dir={} mode={:o} ino={}",
            meta.is_dir(),
            meta.mode(),
            meta.ino()
        )
    }

    #[test]
    fn a_symlink_to_dotdot_is_followed_inside_the_root() {
        let fx = Fixture::new();
        let tar = Layer::new()
            .symlink("up", "..")
            .file("up/x", 0o644, b"x\n")
            .symlink("deep/up3", "../../..")
            .file("deep/up3/y", 0o644, b"y\n")
            .dir("up/d/", 0o777)
            .file("deep/up3/sentinel", 0o666, b"pwned\n")
            .bytes();
        fx.assert_contained(&tar);
        assert_eq!(fs::read(fx.root.join("x")).unwrap(), b"x\n");
        assert_eq!(fs::read(fx.root.join("y")).unwrap(), b"y\n");
        assert_eq!(fs::read(fx.root.join("sentinel")).unwrap(), b"pwned\n");
        assert_eq!(mode_of(&fx.root.join("d")), 0o777);
    }

    #[test]
    fn a_hardlink_to_a_host_path_is_refused() {
        let fx = Fixture::new();
        let target = fx.sentinel.to_str().unwrap().to_owned();
        let tar = Layer::new().hardlink("h", &target).bytes();
        fx.assert_refused(&tar, "h");
        assert!(!fx.root.join("h").exists());
        assert_eq!(fs::metadata(&fx.sentinel).unwrap().nlink(), 1);
    }

    #[test]
    fn a_hardlink_through_an_escaping_symlink_is_refused() {
        let tmp_abs = |fx: &Fixture| fx.tmp.path().to_str().unwrap().to_owned();
        let fx = Fixture::new();
        let tar = Layer::new()
            .symlink("esc", &tmp_abs(&fx))
            .hardlink("h", "esc/sentinel")
            .bytes();
        fx.assert_refused(&tar, "h");

        let fx = Fixture::new();
        let through_dotdot = format!("up{}", fx.sentinel.to_str().unwrap());
        let tar = Layer::new()
            .symlink("up", "../../../../../../..")
            .hardlink("h", &through_dotdot)
            .bytes();
        fx.assert_refused(&tar, "h");
        assert_eq!(fs::metadata(&fx.sentinel).unwrap().nlink(), 1);
    }

    #[test]
    fn chmod_and_chown_through_a_symlink_do_not_reach_outside() {
        let fx = Fixture::new();
        let file = fx.sentinel.to_str().unwrap().to_owned();
        let dir = fx.sentinel_dir.to_str().unwrap().to_owned();
        let tar = Layer::new()
            .owner(1000, 1000)
            .symlink("evil", &file)
            .dir("evil", 0o777)
            .symlink("evil-dir", &dir)
            .dir("evil-dir/", 0o777)
            .symlink("evil-file", &file)
            .file("evil-file", 0o4777, b"pwned\n")
            .bytes();
        fx.assert_contained(&tar);
        assert!(fs::symlink_metadata(fx.root.join("evil")).unwrap().is_dir());
        assert_eq!(mode_of(&fx.root.join("evil")), 0o777);
        assert!(fs::symlink_metadata(fx.root.join("evil-dir"))
            .unwrap()
            .is_dir());
        assert_eq!(fs::read(fx.root.join("evil-file")).unwrap(), b"pwned\n");
        assert_eq!(mode_of(&fx.sentinel), 0o600);
        assert_eq!(mode_of(&fx.sentinel_dir), 0o700);
        assert_eq!(owner_of(&fx.sentinel), (0, 0));
    }

    /// mmdebstrap's and debootstrap's root filesystems carry `/dev`
    /// nodes; containerd makes them (the runtime's own `/dev` and device
    /// cgroup decide what is usable).
    #[test]
    fn device_nodes_and_fifos_are_made_with_their_numbers_modes_and_owners() {
        let fx = Fixture::new();
        let mut layer = Layer::new().dir("dev/", 0o755);
        for (kind, path, major, minor) in [
            (EntryType::Char, "dev/console", 5, 1),
            (EntryType::Block, "dev/loop0", 7, 0),
            (EntryType::Fifo, "run/initctl", 0, 0),
        ] {
            let mut header = layer.header(kind, 0o620, 0);
            header.set_device_major(major).unwrap();
            header.set_device_minor(minor).unwrap();
            header.set_uid(0);
            header.set_gid(5);
            layer.builder.append_data(&mut header, path, &b""[..]).unwrap();
        }
        fx.apply(&layer.bytes(), Whiteouts::Overlay).unwrap();
        let console = fs::symlink_metadata(fx.root.join("dev/console")).unwrap();
        assert!(console.file_type().is_char_device());
        assert_eq!(console.rdev(), libc::makedev(5, 1));
        assert_eq!(console.mode() & 0o7777, 0o620, "the umask does not apply");
        assert_eq!((console.uid(), console.gid()), (0, 5));
        let disk = fs::symlink_metadata(fx.root.join("dev/loop0")).unwrap();
        assert!(disk.file_type().is_block_device());
        assert_eq!(disk.rdev(), libc::makedev(7, 0));
        let fifo = fs::symlink_metadata(fx.root.join("run/initctl")).unwrap();
        assert!(fifo.file_type().is_fifo());
    }

    /// A device entry whose path leads through a symlink out of the root
    /// is made inside it, as every other entry.
    #[test]
    fn a_device_node_through_an_escaping_symlink_stays_inside() {
        let fx = Fixture::new();
        let mut layer = Layer::new().symlink("dev", "../../..");
        let mut header = layer.header(EntryType::Fifo, 0o644, 0);
        layer
            .builder
            .append_data(&mut header, "dev/evil-fifo", &b""[..])
            .unwrap();
        fx.assert_contained(&layer.bytes());
        assert!(fs::symlink_metadata(fx.root.join("evil-fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
    }

    /// File capabilities (`setcap cap_net_raw+ep`), user xattrs and
    /// setuid bits survive; overlayfs' own xattrs are not taken from a
    /// layer.
    #[test]
    fn xattrs_file_capabilities_and_setuid_bits_are_kept() {
        let fx = Fixture::new();
        // VFS_CAP_REVISION_2, effective, CAP_NET_RAW (bit 13) permitted.
        let mut capability = vec![0u8; 20];
        capability[..4].copy_from_slice(&0x0200_0001u32.to_le_bytes());
        capability[4..8].copy_from_slice(&(1u32 << 13).to_le_bytes());
        let mut layer = Layer::new();
        layer
            .builder
            .append_pax_extensions([
                ("SCHILY.xattr.security.capability", &capability[..]),
                ("SCHILY.xattr.user.origin", &b"debian"[..]),
                ("SCHILY.xattr.trusted.overlay.redirect", &b"/etc"[..]),
            ])
            .unwrap();
        let mut header = layer.header(EntryType::Regular, 0o4755, 4);
        layer
            .builder
            .append_data(&mut header, "bin/ping", &b"ping"[..])
            .unwrap();
        let tar = layer.owner(0, 0).file("bin/su", 0o4755, b"su").bytes();
        fx.apply(&tar, Whiteouts::Overlay).unwrap();
        let ping = fx.root.join("bin/ping");
        assert_eq!(xattr(&ping, "security.capability"), Some(capability));
        assert_eq!(xattr(&ping, "user.origin").as_deref(), Some(&b"debian"[..]));
        assert_eq!(xattr(&ping, "trusted.overlay.redirect"), None);
        assert_eq!(mode_of(&ping), 0o4755);
        assert_eq!(mode_of(&fx.root.join("bin/su")), 0o4755);
    }

    /// PAX `path` records name files past the 100 bytes of a header;
    /// GNU sparse entries and long zero runs become holes.
    #[test]
    fn pax_long_names_and_sparse_files_are_unpacked() {
        let fx = Fixture::new();
        let long = format!("usr/share/{}/file", "d".repeat(180));
        let mut layer = Layer::new();
        layer
            .builder
            .append_pax_extensions([("path", long.as_bytes())])
            .unwrap();
        let mut header = layer.header(EntryType::Regular, 0o644, 5);
        layer
            .builder
            .append_data(&mut header, "short-name", &b"pax!\n"[..])
            .unwrap();
        // 8 MiB of zeros with a byte at each end.
        let mut big = vec![0u8; 8 << 20];
        big[0] = 1;
        *big.last_mut().unwrap() = 2;
        let tar = layer.file("var/lib/sparse.img", 0o644, &big).bytes();
        fx.apply(&tar, Whiteouts::Overlay).unwrap();
        assert_eq!(fs::read(fx.root.join(&long)).unwrap(), b"pax!\n");
        assert!(!fx.root.join("short-name").exists());
        let image = fx.root.join("var/lib/sparse.img");
        assert_eq!(fs::read(&image).unwrap(), big);
        let blocks = fs::metadata(&image).unwrap().blocks();
        assert!(blocks * 512 < 1 << 20, "holes are not written: {blocks} blocks");
    }
}
