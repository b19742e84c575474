//! What kind of filesystem a path lives on: a local disk, a network filesystem, FUSE, or a type
//! we do not know.
//!
//! Why it matters: on a local disk (ext4, xfs, btrfs, tmpfs, APFS, NTFS on a fixed drive...) a
//! file operation takes microseconds, inode numbers stay with a file across names, and change
//! notifications (inotify, FSEvents) report what other processes do. On network filesystems
//! (NFS, SMB, 9p, Ceph...) and FUSE (sshfs, rclone, cloud drives, virtiofs, many container tools)
//! any operation can take seconds or hang on a dead server, inode numbers may be invented per
//! path, and notifications miss changes made elsewhere. A type this table does not know is
//! treated like those: assuming slow costs a thread hop, assuming fast can freeze a program.
//!
//! The answer comes from the kernel's description of the filesystem (`statfs` type on Linux,
//! `f_fstypename` and `MNT_LOCAL` on macOS, the drive type on Windows). Asking can itself block
//! on a hung mount, so callers that must never wait run it off the JS thread.

use std::io;
use std::path::Path;

/// The kind of filesystem, as far as speed and trustworthiness of its answers go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FsKind {
    /// A local disk or memory filesystem: fast, stable inode numbers, reliable notifications.
    Local,
    /// A network filesystem: may be slow or hang; other clients' changes are not notified.
    Network,
    /// A filesystem in userspace: may be slow or hang, inode numbers may be per path.
    Fuse,
    /// A type not in the table: treated like network and FUSE.
    Unknown,
}

impl FsKind {
    /// Whether file operations there can be trusted to be quick, inode numbers to stay with a
    /// file, and change notifications to see other processes' changes.
    pub fn is_local(self) -> bool {
        self == FsKind::Local
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FsKind::Local => "local",
            FsKind::Network => "network",
            FsKind::Fuse => "fuse",
            FsKind::Unknown => "unknown",
        }
    }
}

/// A classified filesystem: its kind and the platform's name for its type (`ext4`, `nfs`,
/// `fuse`, `apfs`, `NTFS`, or the raw type number in hex where the name is unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsInfo {
    pub kind: FsKind,
    pub name: String,
}

/// Classifies the filesystem that holds `path`, or would hold it: for a path that does not
/// exist yet, its nearest existing ancestor (a lock's missing parent directories are created
/// on that filesystem). Follows symlinks, so a link into a network mount counts as network.
pub fn of_path(path: &Path) -> io::Result<FsInfo> {
    let mut at = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    loop {
        match platform::of_path(at) {
            Err(e) if is_missing(&e) => match at.parent() {
                Some(p) if !p.as_os_str().is_empty() => at = p,
                Some(_) => at = Path::new("."),
                None => return Err(e),
            },
            other => return other,
        }
    }
}

/// Classifies the filesystem of an open file.
pub fn of_file(file: &std::fs::File) -> io::Result<FsInfo> {
    platform::of_file(file)
}

fn is_missing(e: &io::Error) -> bool {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ENOTDIR) {
        return true;
    }
    e.kind() == io::ErrorKind::NotFound
}

#[cfg(target_os = "linux")]
mod platform {
    use super::{FsInfo, FsKind};
    use std::io;
    use std::os::fd::AsRawFd;
    use std::path::Path;

    /// `statfs` magic numbers (linux/magic.h and the filesystems' own headers). ext2, ext3
    /// and ext4 share one. FUSE covers fuseblk and virtiofs too. Overlay counts as local: it
    /// is how container root filesystems are stacked on the host's disk.
    const TYPES: &[(u32, &str, FsKind)] = &[
        (0xEF53, "ext4", FsKind::Local),
        (0x5846_5342, "xfs", FsKind::Local),
        (0x9123_683E, "btrfs", FsKind::Local),
        (0x0102_1994, "tmpfs", FsKind::Local),
        (0x8584_58F6, "ramfs", FsKind::Local),
        (0xF2F5_2010, "f2fs", FsKind::Local),
        (0x2FC1_2FC1, "zfs", FsKind::Local),
        (0xCA45_1A4E, "bcachefs", FsKind::Local),
        (0x794C_7630, "overlay", FsKind::Local),
        (0x3153_464A, "jfs", FsKind::Local),
        (0x5265_4973, "reiserfs", FsKind::Local),
        (0x3434, "nilfs", FsKind::Local),
        (0x4D44, "vfat", FsKind::Local),
        (0x2011_BAB0, "exfat", FsKind::Local),
        (0x7366_746E, "ntfs3", FsKind::Local),
        (0x5346_544E, "ntfs", FsKind::Local),
        (0x482B, "hfsplus", FsKind::Local),
        (0x9660, "iso9660", FsKind::Local),
        (0x1501_3346, "udf", FsKind::Local),
        (0x7371_7368, "squashfs", FsKind::Local),
        (0xE0F5_E1E2, "erofs", FsKind::Local),
        (0x9584_58F6, "hugetlbfs", FsKind::Local),
        (0x6969, "nfs", FsKind::Network),
        (0xFF53_4D42, "cifs", FsKind::Network),
        (0xFE53_4D42, "smb2", FsKind::Network),
        (0x517B, "smb", FsKind::Network),
        (0x00C3_6400, "ceph", FsKind::Network),
        (0x6B41_4653, "afs", FsKind::Network),
        (0x5346_414F, "openafs", FsKind::Network),
        (0x7375_7245, "coda", FsKind::Network),
        (0x0102_1997, "9p", FsKind::Network),
        (0x0116_1970, "gfs2", FsKind::Network),
        (0x7461_636F, "ocfs2", FsKind::Network),
        (0x0BD0_0BD0, "lustre", FsKind::Network),
        (0x4750_4653, "gpfs", FsKind::Network),
        (0x1366_1366, "orangefs", FsKind::Network),
        (0x564C, "ncp", FsKind::Network),
        (0x6573_5546, "fuse", FsKind::Fuse),
    ];

    pub(super) fn classify(magic: u32) -> FsInfo {
        match TYPES.iter().find(|(m, _, _)| *m == magic) {
            Some((_, name, kind)) => FsInfo {
                kind: *kind,
                name: (*name).into(),
            },
            None => FsInfo {
                kind: FsKind::Unknown,
                name: format!("0x{magic:x}"),
            },
        }
    }

    fn from_statfs(st: &libc::statfs) -> FsInfo {
        // `f_type` is signed on some architectures and wider than the 32-bit magic on others.
        classify((st.f_type as u64 & 0xFFFF_FFFF) as u32)
    }

    pub(super) fn of_path(path: &Path) -> io::Result<FsInfo> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL"))?;
        // SAFETY: an all-zero statfs is a valid value; `c` is NUL-terminated and outlives the call.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(from_statfs(&st))
    }

    pub(super) fn of_file(file: &std::fs::File) -> io::Result<FsInfo> {
        // SAFETY: as above; the descriptor is open for the duration of the call.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(from_statfs(&st))
    }
}

#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
mod platform {
    use super::{FsInfo, FsKind};
    use std::io;
    use std::os::fd::AsRawFd;
    use std::path::Path;

    const NETWORK: &[&str] = &["nfs", "smbfs", "afpfs", "webdav", "cifs", "ftp", "9p"];

    /// macFUSE and FUSE-T name their type after the library or the filesystem (`macfuse`,
    /// `osxfuse`, `fusefs.sshfs`); some set `MNT_LOCAL`, so the name is checked first.
    pub(super) fn classify(name: &str, local_flag: bool) -> FsKind {
        let lower = name.to_ascii_lowercase();
        if lower.contains("fuse") {
            FsKind::Fuse
        } else if NETWORK.contains(&lower.as_str()) {
            FsKind::Network
        } else if local_flag {
            FsKind::Local
        } else {
            FsKind::Unknown
        }
    }

    fn from_statfs(st: &libc::statfs) -> FsInfo {
        let raw = &st.f_fstypename;
        let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
        let bytes: Vec<u8> = raw[..end].iter().map(|&c| c as u8).collect();
        let name = String::from_utf8_lossy(&bytes).into_owned();
        let local = (st.f_flags as u64) & (libc::MNT_LOCAL as u64) != 0;
        FsInfo {
            kind: classify(&name, local),
            name,
        }
    }

    pub(super) fn of_path(path: &Path) -> io::Result<FsInfo> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL"))?;
        // SAFETY: an all-zero statfs is a valid value; `c` is NUL-terminated and outlives the call.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(from_statfs(&st))
    }

    pub(super) fn of_file(file: &std::fs::File) -> io::Result<FsInfo> {
        // SAFETY: as above; the descriptor is open for the duration of the call.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(from_statfs(&st))
    }
}

#[cfg(windows)]
mod platform {
    use super::{FsInfo, FsKind};
    use std::io;
    use std::os::windows::ffi::OsStrExt;
    use std::os::windows::io::AsRawHandle;
    use std::path::Path;
    use windows_sys::Win32::Storage::FileSystem::{
        FileRemoteProtocolInfo, GetDriveTypeW, GetFileInformationByHandleEx,
        GetVolumeInformationByHandleW, GetVolumeInformationW, GetVolumePathNameW,
        FILE_REMOTE_PROTOCOL_INFO,
    };

    // GetDriveTypeW's answers (WinBase.h).
    const DRIVE_REMOVABLE: u32 = 2;
    const DRIVE_FIXED: u32 = 3;
    const DRIVE_REMOTE: u32 = 4;
    const DRIVE_CDROM: u32 = 5;
    const DRIVE_RAMDISK: u32 = 6;

    /// WinFsp filesystems (sshfs-win, rclone mount) report a `FUSE`-prefixed type name,
    /// sometimes on a drive that calls itself fixed.
    pub(super) fn classify(remote: bool, drive: Option<u32>, name: &str) -> FsKind {
        if name.to_ascii_uppercase().contains("FUSE") {
            return FsKind::Fuse;
        }
        if remote {
            return FsKind::Network;
        }
        match drive {
            Some(DRIVE_REMOTE) => FsKind::Network,
            Some(DRIVE_FIXED | DRIVE_RAMDISK | DRIVE_REMOVABLE | DRIVE_CDROM) => FsKind::Local,
            Some(_) => FsKind::Unknown,
            // Through a handle, a file that has no remote protocol is on a local volume.
            None => FsKind::Local,
        }
    }

    fn name_of(buf: &[u16]) -> String {
        let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
        String::from_utf16_lossy(&buf[..end])
    }

    pub(super) fn of_path(path: &Path) -> io::Result<FsInfo> {
        // A missing path answers NotFound, so the caller walks up to an existing ancestor.
        std::fs::metadata(path)?;
        let p: Vec<u16> = path.as_os_str().encode_wide().chain([0]).collect();
        let mut root = vec![0u16; 1024];
        // SAFETY: `p` is NUL-terminated; `root` is writable for the length passed.
        if unsafe { GetVolumePathNameW(p.as_ptr(), root.as_mut_ptr(), root.len() as u32) } == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `root` now holds a NUL-terminated volume root.
        let drive = unsafe { GetDriveTypeW(root.as_ptr()) };
        let mut fs_name = [0u16; 64];
        // SAFETY: out-buffers are writable for their lengths; the others may be null.
        let ok = unsafe {
            GetVolumeInformationW(
                root.as_ptr(),
                std::ptr::null_mut(),
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                fs_name.as_mut_ptr(),
                fs_name.len() as u32,
            )
        };
        let name = if ok != 0 {
            name_of(&fs_name)
        } else {
            String::new()
        };
        Ok(FsInfo {
            kind: classify(false, Some(drive), &name),
            name,
        })
    }

    pub(super) fn of_file(file: &std::fs::File) -> io::Result<FsInfo> {
        let handle = file.as_raw_handle() as _;
        // Only files on a network redirector (SMB, WebDAV...) have a remote protocol.
        // SAFETY: the handle is open; the buffer is a zeroed struct of the size passed.
        let remote = unsafe {
            let mut info: FILE_REMOTE_PROTOCOL_INFO = std::mem::zeroed();
            GetFileInformationByHandleEx(
                handle,
                FileRemoteProtocolInfo,
                (&mut info as *mut FILE_REMOTE_PROTOCOL_INFO).cast(),
                std::mem::size_of::<FILE_REMOTE_PROTOCOL_INFO>() as u32,
            ) != 0
        };
        let mut fs_name = [0u16; 64];
        // SAFETY: the handle is open; out-buffers are writable for their lengths.
        let ok = unsafe {
            GetVolumeInformationByHandleW(
                handle,
                std::ptr::null_mut(),
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                fs_name.as_mut_ptr(),
                fs_name.len() as u32,
            )
        };
        let name = if ok != 0 {
            name_of(&fs_name)
        } else {
            String::new()
        };
        Ok(FsInfo {
            kind: classify(remote, None, &name),
            name,
        })
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    windows
)))]
mod platform {
    use super::{FsInfo, FsKind};
    use std::io;
    use std::path::Path;

    fn unknown() -> FsInfo {
        FsInfo {
            kind: FsKind::Unknown,
            name: String::new(),
        }
    }

    pub(super) fn of_path(path: &Path) -> io::Result<FsInfo> {
        std::fs::metadata(path).map(|_| unknown())
    }

    pub(super) fn of_file(_file: &std::fs::File) -> io::Result<FsInfo> {
        Ok(unknown())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn known_types_have_their_kind_and_others_are_unknown() {
        assert_eq!(platform::classify(0xEF53).kind, FsKind::Local);
        assert_eq!(platform::classify(0x0102_1994).name, "tmpfs");
        assert_eq!(platform::classify(0x6969).kind, FsKind::Network);
        assert_eq!(platform::classify(0xFF53_4D42).kind, FsKind::Network);
        assert_eq!(platform::classify(0x6573_5546).kind, FsKind::Fuse);
        let odd = platform::classify(0x1234_5678);
        assert_eq!(odd.kind, FsKind::Unknown);
        assert_eq!(odd.name, "0x12345678");
        assert!(FsKind::Local.is_local());
        for k in [FsKind::Network, FsKind::Fuse, FsKind::Unknown] {
            assert!(!k.is_local(), "{k:?}");
        }
    }

    #[test]
    fn a_missing_path_is_classified_by_its_nearest_existing_ancestor() {
        let dir = std::env::temp_dir();
        let here = of_path(&dir).unwrap();
        let deep = of_path(&dir.join("leaselock-fskind-missing/a/b/c.lock")).unwrap();
        assert_eq!(here, deep);
        assert_eq!(
            of_path(Path::new("")).unwrap(),
            of_path(Path::new(".")).unwrap()
        );
        // A file in the way of a missing path (ENOTDIR) is walked past the same way.
        let file = dir.join(format!("leaselock-fskind-{}", std::process::id()));
        std::fs::write(&file, b"x").unwrap();
        let through = of_path(&file.join("below.lock")).unwrap();
        let f = std::fs::File::open(&file).unwrap();
        assert_eq!(through, of_file(&f).unwrap());
        std::fs::remove_file(&file).unwrap();
    }

    #[test]
    fn the_kernel_types_of_this_machine_are_read() {
        // /proc is a pseudo filesystem with its own magic, not in the table.
        let proc_fs = of_path(Path::new("/proc/self")).unwrap();
        assert_eq!(proc_fs.kind, FsKind::Unknown);
        assert_eq!(proc_fs.name, "0x9fa0");
        // /dev/shm is tmpfs wherever it exists (glibc's shm_open relies on it).
        if let Ok(shm) = of_path(Path::new("/dev/shm")) {
            if shm.name == "tmpfs" {
                assert_eq!(shm.kind, FsKind::Local);
            }
        }
    }
}
