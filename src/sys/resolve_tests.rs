//! Tests of the path walk (`resolve.rs`): links, `..`, creation, other users' directories.

use super::*;

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("leaselock-resolve-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_default();
    d.canonicalize().unwrap_or(d)
}

#[test]
fn own_links_and_dot_dot_resolve_to_the_real_directory() {
    let d = temp("own");
    let real = d.join("real");
    std::fs::create_dir_all(real.join("sub")).unwrap_or_default();
    let _ = std::os::unix::fs::symlink(&real, d.join("abs"));
    let _ = std::os::unix::fs::symlink("real/sub", d.join("rel"));
    for p in [
        d.join("abs"),
        d.join("rel").join(".."),
        d.join("abs/sub/.."),
    ] {
        let dir = open_lock_dir(&p, None, false).map_err(|e| format!("{e:?}"));
        assert_eq!(
            dir.as_ref().map(|d| d.physical().to_path_buf()),
            Ok(real.clone()),
            "{p:?}"
        );
    }
    let dir = open_lock_dir(&d.join("rel"), None, false).map_err(|e| format!("{e:?}"));
    let joined = dir.map(|d| std::fs::metadata(d.join(OsStr::new("."))).is_ok());
    assert_eq!(joined, Ok(true));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn missing_directories_are_created_only_when_asked() {
    let d = temp("create");
    let p = d.join("a/b/c");
    assert!(
        matches!(open_lock_dir(&p, None, false), Err(ResolveError::Io(e, _)) if e.kind() == io::ErrorKind::NotFound)
    );
    assert!(open_lock_dir(&p, Some(0o755), false).is_ok());
    assert!(p.is_dir());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_file_on_the_way_is_not_a_directory() {
    let d = temp("file");
    let _ = std::fs::write(d.join("f"), b"x");
    assert!(
        matches!(open_lock_dir(&d.join("f/x"), Some(0o755), false), Err(ResolveError::Io(e, _)) if e.raw_os_error() == Some(libc::ENOTDIR))
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// Root may test the ownership rules on its own: a link or directory given to another uid.
#[test]
fn other_users_links_and_open_directories_are_refused_unless_trusted() {
    if euid() != 0 {
        return;
    }
    let d = temp("owners");
    let real = d.join("real");
    std::fs::create_dir_all(&real).unwrap_or_default();
    let link = d.join("theirs");
    let _ = std::os::unix::fs::symlink(&real, &link);
    let _ = std::os::unix::fs::lchown(&link, Some(65534), Some(65534));
    let refused = open_lock_dir(&link.join("sub"), Some(0o755), false);
    assert!(
        matches!(&refused, Err(ResolveError::Untrusted(Untrusted::Symlink { path, owner: 65534 })) if *path == link),
        "{refused:?}"
    );
    assert!(!real.join("sub").exists(), "nothing created through it");
    assert!(open_lock_dir(&link, None, true).is_ok());

    let open = d.join("open");
    std::fs::create_dir_all(&open).unwrap_or_default();
    let _ = std::os::unix::fs::chown(&open, Some(65534), Some(65534));
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777));
    let refused = open_lock_dir(&open, None, false);
    assert!(
        matches!(
            &refused,
            Err(ResolveError::Untrusted(Untrusted::Directory {
                owner: 65534,
                ..
            }))
        ),
        "{refused:?}"
    );
    let _ = std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777));
    assert!(open_lock_dir(&open, None, false).is_ok(), "sticky is fine");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
#[cfg(target_os = "linux")]
fn names_in_a_held_directory_become_at_arguments() {
    let dir = temp("held");
    let held = open_lock_dir(&dir, None, false).map_err(|e| format!("{e:?}"));
    let Ok(held) = held else { return };
    let joined = held.join(OsStr::new("x.lock"));
    if cfg!(target_os = "linux") && joined.starts_with("/proc/self/fd") {
        let fd = held.raw_fd();
        assert_eq!(
            held_dir_name(&joined),
            Some((fd, Some(OsStr::new("x.lock"))))
        );
        let dir_only = PathBuf::from(format!("/proc/self/fd/{fd}"));
        assert_eq!(held_dir_name(&dir_only), Some((fd, None)));
    }
    for other in [
        "/proc/self/fd/",
        "/proc/self/fd/3/a/b",
        "/proc/self/fdx/3/a",
        "/tmp/x.lock",
        "/proc/self/fd/3x/a",
    ] {
        assert_eq!(held_dir_name(Path::new(other)), None, "{other}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_link_loop_ends() {
    let d = temp("loop");
    let _ = std::os::unix::fs::symlink("b", d.join("a"));
    let _ = std::os::unix::fs::symlink("a", d.join("b"));
    assert!(
        matches!(open_lock_dir(&d.join("a"), None, false), Err(ResolveError::Io(e, _)) if e.raw_os_error() == Some(libc::ELOOP))
    );
    let _ = std::fs::remove_dir_all(&d);
}
