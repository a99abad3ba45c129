//! `wasi:filesystem@0.2.0-rc-2023-10-18` over the 0.2 host's filesystem,
//! on the same preopens (Spin's `files`, volumes) and the same descriptors.
//! `open-at`'s `modes` is ignored, as 0.2 dropped it; `access-at`,
//! `change-file-permissions-at`, `change-directory-permissions-at` and the
//! locks are gone from 0.2 and answer `unsupported`.

use wasmtime::component::Resource;
use wasmtime_wasi::filesystem::WasiFilesystemCtxView;

use super::latest::filesystem::types as latest;
use super::returned;
use super::snapshot::filesystem::{preopens, types};
use types::{
    AccessType, Advice, Descriptor, DescriptorFlags, DescriptorStat, DescriptorType,
    DirectoryEntry, DirectoryEntryStream, ErrorCode, Filesize, MetadataHashValue, Modes,
    NewTimestamp, OpenFlags, PathFlags,
};

type InputStream = super::latest::io::streams::InputStream;
type OutputStream = super::latest::io::streams::OutputStream;
type IoError = super::latest::io::error::Error;

type FsResult<T> = wasmtime::Result<Result<T, ErrorCode>>;

super::same_cases!(latest::ErrorCode, ErrorCode:
    Access, WouldBlock, Already, BadDescriptor, Busy, Deadlock, Quota, Exist, FileTooLarge,
    IllegalByteSequence, InProgress, Interrupted, Invalid, Io, IsDirectory, Loop, TooManyLinks,
    MessageSize, NameTooLong, NoDevice, NoEntry, NoLock, InsufficientMemory, InsufficientSpace,
    NotDirectory, NotEmpty, NotRecoverable, Unsupported, NoTty, NoSuchDevice, Overflow,
    NotPermitted, Pipe, ReadOnly, InvalidSeek, TextFileBusy, CrossDevice,
);

super::same_cases!(latest::DescriptorType, DescriptorType:
    Unknown, BlockDevice, CharacterDevice, Directory, Fifo, SymbolicLink, RegularFile, Socket,
);

super::same_cases!(latest::Advice, Advice:
    Normal, Sequential, Random, WillNeed, DontNeed, NoReuse,
);

super::same_cases!(latest::NewTimestamp, NewTimestamp: NoChange, Now, Timestamp(time));

/// `From` both ways between two flags types with the same flags.
macro_rules! same_flags {
    ($a:ty, $b:ty: $($flag:ident),* $(,)?) => {
        same_flags!(@one $a => $b: $($flag),*);
        same_flags!(@one $b => $a: $($flag),*);
    };
    (@one $from:ty => $to:ty: $($flag:ident),*) => {
        impl From<$from> for $to {
            fn from(flags: $from) -> $to {
                let mut to = <$to>::empty();
                $(if flags.contains(<$from>::$flag) { to |= <$to>::$flag; })*
                to
            }
        }
    };
}

same_flags!(latest::DescriptorFlags, DescriptorFlags:
    READ, WRITE, FILE_INTEGRITY_SYNC, DATA_INTEGRITY_SYNC, REQUESTED_WRITE_SYNC, MUTATE_DIRECTORY,
);
same_flags!(latest::PathFlags, PathFlags: SYMLINK_FOLLOW);
same_flags!(latest::OpenFlags, OpenFlags: CREATE, DIRECTORY, EXCLUSIVE, TRUNCATE);

impl From<latest::DescriptorStat> for DescriptorStat {
    fn from(stat: latest::DescriptorStat) -> Self {
        Self {
            type_: stat.type_.into(),
            link_count: stat.link_count,
            size: stat.size,
            data_access_timestamp: stat.data_access_timestamp.map(Into::into),
            data_modification_timestamp: stat.data_modification_timestamp.map(Into::into),
            status_change_timestamp: stat.status_change_timestamp.map(Into::into),
        }
    }
}

impl From<latest::MetadataHashValue> for MetadataHashValue {
    fn from(hash: latest::MetadataHashValue) -> Self {
        Self {
            lower: hash.lower,
            upper: hash.upper,
        }
    }
}

impl From<latest::DirectoryEntry> for DirectoryEntry {
    fn from(entry: latest::DirectoryEntry) -> Self {
        Self {
            type_: entry.type_.into(),
            name: entry.name,
        }
    }
}

/// What a function 0.2 no longer has answers.
fn gone<T>() -> FsResult<T> {
    Ok(Err(ErrorCode::Unsupported))
}

impl types::Host for WasiFilesystemCtxView<'_> {
    fn filesystem_error_code(
        &mut self,
        error: Resource<IoError>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        Ok(latest::Host::filesystem_error_code(self, error)?.map(Into::into))
    }
}

impl types::HostDescriptor for WasiFilesystemCtxView<'_> {
    fn read_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: Filesize,
    ) -> FsResult<Resource<InputStream>> {
        returned(latest::HostDescriptor::read_via_stream(self, fd, offset))
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: Filesize,
    ) -> FsResult<Resource<OutputStream>> {
        returned(latest::HostDescriptor::write_via_stream(self, fd, offset))
    }

    fn append_via_stream(&mut self, fd: Resource<Descriptor>) -> FsResult<Resource<OutputStream>> {
        returned(latest::HostDescriptor::append_via_stream(self, fd))
    }

    async fn advise(
        &mut self,
        fd: Resource<Descriptor>,
        offset: Filesize,
        length: Filesize,
        advice: Advice,
    ) -> FsResult<()> {
        returned(latest::HostDescriptor::advise(self, fd, offset, length, advice.into()).await)
    }

    async fn sync_data(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        returned(latest::HostDescriptor::sync_data(self, fd).await)
    }

    async fn get_flags(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorFlags> {
        returned(latest::HostDescriptor::get_flags(self, fd).await)
    }

    async fn get_type(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorType> {
        returned(latest::HostDescriptor::get_type(self, fd).await)
    }

    async fn set_size(&mut self, fd: Resource<Descriptor>, size: Filesize) -> FsResult<()> {
        returned(latest::HostDescriptor::set_size(self, fd, size).await)
    }

    async fn set_times(
        &mut self,
        fd: Resource<Descriptor>,
        atime: NewTimestamp,
        mtime: NewTimestamp,
    ) -> FsResult<()> {
        returned(latest::HostDescriptor::set_times(self, fd, atime.into(), mtime.into()).await)
    }

    async fn read(
        &mut self,
        fd: Resource<Descriptor>,
        length: Filesize,
        offset: Filesize,
    ) -> FsResult<(Vec<u8>, bool)> {
        returned(latest::HostDescriptor::read(self, fd, length, offset).await)
    }

    async fn write(
        &mut self,
        fd: Resource<Descriptor>,
        buffer: Vec<u8>,
        offset: Filesize,
    ) -> FsResult<Filesize> {
        returned(latest::HostDescriptor::write(self, fd, buffer, offset).await)
    }

    async fn read_directory(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<DirectoryEntryStream>> {
        returned(latest::HostDescriptor::read_directory(self, fd).await)
    }

    async fn sync(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        returned(latest::HostDescriptor::sync(self, fd).await)
    }

    async fn create_directory_at(
        &mut self,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        returned(latest::HostDescriptor::create_directory_at(self, fd, path).await)
    }

    async fn stat(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorStat> {
        returned(latest::HostDescriptor::stat(self, fd).await)
    }

    async fn stat_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
    ) -> FsResult<DescriptorStat> {
        returned(latest::HostDescriptor::stat_at(self, fd, path_flags.into(), path).await)
    }

    async fn set_times_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        atime: NewTimestamp,
        mtime: NewTimestamp,
    ) -> FsResult<()> {
        let flags = path_flags.into();
        returned(
            latest::HostDescriptor::set_times_at(self, fd, flags, path, atime.into(), mtime.into())
                .await,
        )
    }

    async fn link_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path_flags: PathFlags,
        old_path: String,
        new_descriptor: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let flags = old_path_flags.into();
        returned(
            latest::HostDescriptor::link_at(self, fd, flags, old_path, new_descriptor, new_path)
                .await,
        )
    }

    async fn open_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        open_flags: OpenFlags,
        flags: DescriptorFlags,
        _modes: Modes,
    ) -> FsResult<Resource<Descriptor>> {
        let (path_flags, open_flags, flags) = (path_flags.into(), open_flags.into(), flags.into());
        returned(
            latest::HostDescriptor::open_at(self, fd, path_flags, path, open_flags, flags).await,
        )
    }

    async fn readlink_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<String> {
        returned(latest::HostDescriptor::readlink_at(self, fd, path).await)
    }

    async fn remove_directory_at(
        &mut self,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        returned(latest::HostDescriptor::remove_directory_at(self, fd, path).await)
    }

    async fn rename_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path: String,
        new_descriptor: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        returned(
            latest::HostDescriptor::rename_at(self, fd, old_path, new_descriptor, new_path).await,
        )
    }

    async fn symlink_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path: String,
        new_path: String,
    ) -> FsResult<()> {
        returned(latest::HostDescriptor::symlink_at(self, fd, old_path, new_path).await)
    }

    fn access_at(
        &mut self,
        _fd: Resource<Descriptor>,
        _path_flags: PathFlags,
        _path: String,
        _type: AccessType,
    ) -> FsResult<()> {
        gone()
    }

    async fn unlink_file_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        returned(latest::HostDescriptor::unlink_file_at(self, fd, path).await)
    }

    fn change_file_permissions_at(
        &mut self,
        _fd: Resource<Descriptor>,
        _path_flags: PathFlags,
        _path: String,
        _modes: Modes,
    ) -> FsResult<()> {
        gone()
    }

    fn change_directory_permissions_at(
        &mut self,
        _fd: Resource<Descriptor>,
        _path_flags: PathFlags,
        _path: String,
        _modes: Modes,
    ) -> FsResult<()> {
        gone()
    }

    fn lock_shared(&mut self, _fd: Resource<Descriptor>) -> FsResult<()> {
        gone()
    }

    fn lock_exclusive(&mut self, _fd: Resource<Descriptor>) -> FsResult<()> {
        gone()
    }

    fn try_lock_shared(&mut self, _fd: Resource<Descriptor>) -> FsResult<()> {
        gone()
    }

    fn try_lock_exclusive(&mut self, _fd: Resource<Descriptor>) -> FsResult<()> {
        gone()
    }

    fn unlock(&mut self, _fd: Resource<Descriptor>) -> FsResult<()> {
        gone()
    }

    async fn is_same_object(
        &mut self,
        fd: Resource<Descriptor>,
        other: Resource<Descriptor>,
    ) -> wasmtime::Result<bool> {
        latest::HostDescriptor::is_same_object(self, fd, other).await
    }

    async fn metadata_hash(&mut self, fd: Resource<Descriptor>) -> FsResult<MetadataHashValue> {
        returned(latest::HostDescriptor::metadata_hash(self, fd).await)
    }

    async fn metadata_hash_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
    ) -> FsResult<MetadataHashValue> {
        returned(latest::HostDescriptor::metadata_hash_at(self, fd, path_flags.into(), path).await)
    }

    fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        latest::HostDescriptor::drop(self, fd)
    }
}

impl types::HostDirectoryEntryStream for WasiFilesystemCtxView<'_> {
    async fn read_directory_entry(
        &mut self,
        stream: Resource<DirectoryEntryStream>,
    ) -> FsResult<Option<DirectoryEntry>> {
        let entry = latest::HostDirectoryEntryStream::read_directory_entry(self, stream).await;
        returned(entry.map(|entry| entry.map(DirectoryEntry::from)))
    }

    fn drop(&mut self, stream: Resource<DirectoryEntryStream>) -> wasmtime::Result<()> {
        latest::HostDirectoryEntryStream::drop(self, stream)
    }
}

impl preopens::Host for WasiFilesystemCtxView<'_> {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Descriptor>, String)>> {
        super::latest::filesystem::preopens::Host::get_directories(self)
    }
}
