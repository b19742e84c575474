//! Fencing tokens for lock files: a number per acquisition, larger than every token given out
//! before for the same lock on the same filesystem.
//!
//! # The counter
//! Beside the lock lives its counter, `.<name>.token`: a fixed header, then one byte per token
//! given out. It is created complete (published like a lease, so nobody ever sees a part of
//! it) with the header `leaselock-fence 1 <base>\n`, where `<base>` is the wall clock in
//! microseconds at creation, 20 digits. A token is `base + (offset after our byte - header)`.
//! An acquisition appends one byte (`O_APPEND`; on Windows under an exclusive range lock past the
//! header) and takes the offset its own write ended at - never a later length, which could
//! already count somebody else's byte. The counter stays open while an acquisition tries and is closed once it
//! holds; release never removes it.
//!
//! # Why tokens follow the order in which leases held the path
//! Each acquisition appends (its byte is `a`), writes its token into its lease and publishes
//! it, or takes a stale lease over with it (its lease reaches the path at `p`). Then it looks at
//! the counter (`c`). Nothing appended after its byte: done. Otherwise it appends once more -
//! now, after `p` - rewrites its lease with that token through its own file and checks that
//! the path still names that file. So for every holder, with `a` its final byte: (1) either
//! `a > p`, or no byte was appended in `(a, c)` for a look `c > p`; (2) its file was seen at the
//! path after `a`, so `a` came before its lease left the path for good.
//!
//! Let X's lease leave the path before Y's lease reaches it (at `p_Y`): by (2), `a_X < p_Y`. If
//! `a_Y > p_Y`, then `a_X < a_Y`. Otherwise no byte was appended in `(a_Y, c_Y)`, which contains
//! `p_Y`, and `a_X < p_Y` - so `a_X` is not in it, and `a_X < a_Y`. Appends to one file are
//! totally ordered, so X's token is the smaller. Bytes appended by tries that did not hold (a
//! contender that found the lock held appends too) are gaps, harmless; and since a byte after
//! `p` needs no look of its own, they cost a holder at most one more append, never a loop.
//!
//! # A counter that is deleted or replaced
//! A new counter starts at the clock, above every token handed out before - as long as the
//! clock did not go back and a counter never handed out more than one token per microsecond
//! since its creation (an append plus a publish take several). A holder that finds its counter
//! unlinked (link count zero) opens the new one and appends there, so a contender holding the
//! old file open cannot confirm a token from it after it was replaced. The window that remains:
//! the counter removed while the wall clock was set back, or a filesystem whose appends are not
//! atomic across machines (NFS) - stated in docs/design.md.
//!
//! # Several users
//! Only its owner may append to a counter (one that others could write, they could also
//! shorten). Another user replaces it with a new one of its own where the directory lets it -
//! as safe as a removed counter - and acquires without a token where it does not (a sticky
//! directory).
//!
//! # A file at the counter's name that is not ours
//! Something other than a regular file, a file without our header, or a file that others may
//! write when the lock's own mode does not let them is refused with `ELOCKNOTLEASE`, and
//! nothing is written to it.

use super::error::LockError;
use super::identity::{self, Recognise};
use super::options::Options;
use super::renew::Holding;
use super::{release, Assessment, Attempt, Inner};
use crate::sys::{self, FileKind, OwnedFile, PathError};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The counter's name beside the lock: `.<name>.<tag>`.
const TAG: &str = "token";
/// What every counter starts with; the base follows.
const MAGIC: &[u8] = b"leaselock-fence 1 ";
/// Digits of the base (zero-padded), so the header has one length.
const BASE_DIGITS: usize = 20;
const HEADER_LEN: u64 = (MAGIC.len() + BASE_DIGITS + 1) as u64;
/// How many times an acquisition moves to a new counter because its counter was unlinked while
/// it confirmed (deleted or replaced by hand, or by another user), before it gives its lease up.
const COUNTER_SWAPS: u32 = 8;

/// The counter of one lock, open for appending.
pub(super) struct Counter {
    /// The counter file and its base; `None` where this user may not use it (see
    /// [`Counter::open`]): acquisitions then carry no token.
    open: Option<(OwnedFile, u64)>,
    path: PathBuf,
    /// Created by this process (so far only to stand beside a lock that may not be ours).
    created: bool,
}

/// Why the file at the counter's name is refused.
fn not_ours(path: &Path, why: String) -> LockError {
    LockError::NotACounter {
        path: path.to_path_buf(),
        why,
    }
}

fn io(op: &'static str, path: &Path, e: std::io::Error) -> LockError {
    LockError::io(op, path, e)
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn header(base: u64) -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(format!("{base:0BASE_DIGITS$}\n").as_bytes());
    h
}

impl Counter {
    /// Opens the counter of the lock at `lock_path` (named through the lock's directory),
    /// creating it complete where there is none. `file_mode`: the lock's mode; a counter that
    /// others may write when the lock does not let them is refused.
    ///
    /// A lock shared by several users meets a counter another user created, which this user
    /// may not append to (nobody else may write a counter, or they could also shorten it). It
    /// is replaced by a new one of ours - the same as a removed counter, safe for the reasons
    /// above - where the directory allows; where it does not (a sticky directory), this user's
    /// acquisitions carry no token.
    pub fn open(lock_path: &Path, file_mode: u32) -> Result<Counter, LockError> {
        let path = sys::sibling(lock_path, TAG);
        let mut created = false;
        for _ in 0..4 {
            match sys::open_appendable(&path) {
                Ok(Some((file, len, mode))) => {
                    let mut counter = Counter::check(file, path, len, mode, file_mode)?;
                    counter.created = created;
                    return Ok(counter);
                }
                Ok(None) => {}
                Err(PathError::NotRegular(kind)) => return Err(not_ours(&path, kind_text(kind))),
                Err(PathError::Io(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    if !replace_others(&path, file_mode, e)? {
                        return Ok(Counter {
                            open: None,
                            path,
                            created: false,
                        });
                    }
                    created = true;
                    continue;
                }
                Err(PathError::Io(e)) => return Err(io("open", &path, e)),
            }
            // Created complete, with the lock's own mode; then opened again for appending (the
            // published handle is not) and checked like any other.
            match sys::publish(&path, &header(now_micros()), file_mode) {
                Ok(_) => created = true,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io("create", &path, e)),
            }
        }
        Err(io(
            "open",
            &path,
            std::io::Error::other("the token counter kept vanishing"),
        ))
    }

    /// Accepts an opened file as our counter only if it proves to be one.
    fn check(
        file: OwnedFile,
        path: PathBuf,
        len: u64,
        mode: u32,
        file_mode: u32,
    ) -> Result<Counter, LockError> {
        let extra = mode & 0o022 & !file_mode;
        if extra != 0 {
            return Err(not_ours(
                &path,
                format!(
                    "its mode {:o} lets others write it, and the lock's mode {:o} does not",
                    mode & 0o7777,
                    file_mode & 0o7777
                ),
            ));
        }
        let mut head = [0u8; HEADER_LEN as usize];
        let n = sys::read_at(&file.file, &mut head, 0).map_err(|e| io("read", &path, e))?;
        let digits = &head[MAGIC.len()..MAGIC.len() + BASE_DIGITS];
        let base = std::str::from_utf8(digits)
            .ok()
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<u64>().ok());
        match base {
            Some(base)
                if n == head.len() && head.starts_with(MAGIC) && head[head.len() - 1] == b'\n' =>
            {
                Ok(Counter {
                    open: Some((file, base)),
                    path,
                    created: false,
                })
            }
            _ => Err(not_ours(
                &path,
                format!(
                    "its {len} bytes start with \"{}\", not a counter's header",
                    super::glimpse(&head[..n.min(24)])
                ),
            )),
        }
    }

    /// Removes the counter again if this process created it: the try that made it found a file
    /// that is not a lock (or not a regular file) at the lock path, and refused it - nothing
    /// may be left beside a file that is not ours. Removing a counter is always safe: the next
    /// one starts at the clock (see the module documentation).
    pub fn discard_if_new(self) {
        let Some((file, _)) = &self.open else {
            return;
        };
        if self.created && sys::id_at(&self.path).ok().flatten() == Some(file.id) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// Appends one byte: the token it stands for (`None`: this user has no counter).
    pub fn advance(&self) -> Result<Option<u64>, LockError> {
        let Some((file, base)) = &self.open else {
            return Ok(None);
        };
        let end = sys::append_one(file, HEADER_LEN).map_err(|e| io("write", &self.path, e))?;
        Ok(Some(token_at(*base, end)))
    }

    /// The largest token given out so far; `None` when this counter was unlinked (replaced or
    /// removed) - tokens now come from another file - or this user has none.
    fn latest(&self) -> Result<Option<u64>, LockError> {
        let Some((file, base)) = &self.open else {
            return Ok(None);
        };
        let (len, links) = file.stat().map_err(|e| io("stat", &self.path, e))?;
        Ok((links > 0).then(|| token_at(*base, len)))
    }
}

fn token_at(base: u64, end: u64) -> u64 {
    base.saturating_add(end.saturating_sub(HEADER_LEN))
}

/// Replaces another user's counter at `path` (which this user may not append to) with a new
/// one of ours. `Ok(false)`: the directory does not let this user (sticky). `denied`: why it
/// could not be opened, reported if it cannot even be read - then it is not proven a counter,
/// and is never replaced.
fn replace_others(path: &Path, file_mode: u32, denied: std::io::Error) -> Result<bool, LockError> {
    let head = match sys::snapshot(path) {
        Ok(Some(s)) => s.head,
        Ok(None) => return Ok(true),
        Err(PathError::NotRegular(kind)) => return Err(not_ours(path, kind_text(kind))),
        Err(PathError::Io(_)) => return Err(io("open", path, denied)),
    };
    if head.len() < HEADER_LEN as usize || !head.starts_with(MAGIC) {
        return Err(not_ours(
            path,
            format!(
                "it starts with \"{}\", not a counter's header",
                super::glimpse(&head[..head.len().min(24)])
            ),
        ));
    }
    let (temp, _) = sys::write_private(path, &header(now_micros()), file_mode)
        .map_err(|e| io("create", path, e))?;
    match std::fs::rename(&temp, path) {
        Ok(()) => Ok(true),
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                Ok(false)
            } else {
                Err(io("rename", path, e))
            }
        }
    }
}

fn kind_text(kind: FileKind) -> String {
    format!("it is {kind}")
}

/// Makes the token in `h`'s lease (just made to hold the path `path`) one that follows the
/// order of holders - see the module documentation. `Ok(false)`: the lease is no longer at the
/// path (taken over meanwhile) or the counter kept being replaced; the caller gives it up.
pub(super) fn confirm(
    counter: &mut Counter,
    lock_path: &Path,
    h: &mut Holding,
    how: Recognise,
    file_mode: u32,
) -> Result<bool, LockError> {
    if counter.open.is_none() {
        return Ok(true);
    }
    let mine = h.lease.token.unwrap_or(0);
    match counter.latest()? {
        Some(latest) if latest == mine => return Ok(true),
        Some(_) => {}
        None => *counter = Counter::open(lock_path, file_mode)?,
    }
    for _ in 0..COUNTER_SWAPS {
        crate::faults::point("token.before-retoken");
        let mut next = h.lease.clone();
        // `None`: the new counter is another user's that this one may not use - no token.
        next.token = counter.advance()?;
        let fresh = next.token.is_some();
        if !retoken(h, lock_path, next, how, file_mode)? {
            return Ok(false);
        }
        if !fresh {
            return Ok(true);
        }
        // Our byte came after our lease reached the path: nobody else's appends matter now,
        // only that it went to the counter in use (see "A counter that is deleted").
        match counter.latest()? {
            Some(_) => return Ok(true),
            None => *counter = Counter::open(lock_path, file_mode)?,
        }
    }
    Ok(false)
}

/// Rewrites our lease as `next` (with another token) through our own file, then checks that
/// the path still names that file. `Ok(false)`: it does not (taken over while we were away).
fn retoken(
    h: &mut Holding,
    path: &Path,
    next: crate::lease::Lease,
    how: Recognise,
    file_mode: u32,
) -> Result<bool, LockError> {
    h.how = how;
    match h.replace(path, next, file_mode) {
        Ok(()) => {}
        Err(LockError::NotHeld) => return Ok(false),
        Err(e) => return Err(e),
    }
    identity::names_ours(path, &h.file, &h.lease.owner_id, how).map_err(|e| io("stat", path, e))
}

/// The acquisition's side: what `Inner::attempt` does with the counter.
impl Inner {
    /// Our lease is at the path: make sure its token follows every earlier holder's (see this
    /// module), or give the lease up again - it is never kept with a token out of order. Once
    /// the lock is ours the counter is closed: a held lock keeps no descriptor it does not need
    /// (a thousand held locks would keep a thousand counters open); tries that wait keep it.
    pub(super) fn confirm_token(
        &self,
        path: &Path,
        slot: &mut Option<Counter>,
        holding: Box<Holding>,
        reclaimed: Option<Box<Assessment>>,
        how: Recognise,
    ) -> Result<Attempt, LockError> {
        match confirm_or_give_up(slot.as_mut(), path, holding, how, &self.opts)? {
            Some(holding) => {
                *slot = None;
                Ok(Attempt::Acquired(holding, reclaimed))
            }
            None => Ok(Attempt::Contended { pause: true }),
        }
    }
}

/// Confirms the token of a lease just published at `path` (see [`confirm`]; no counter: no
/// token to confirm), or releases the lease again. `None`: given up.
pub(super) fn confirm_or_give_up(
    counter: Option<&mut Counter>,
    path: &Path,
    mut holding: Box<Holding>,
    how: Recognise,
    opts: &Options,
) -> Result<Option<Box<Holding>>, LockError> {
    let confirmed = match counter {
        Some(counter) => confirm(counter, path, &mut holding, how, opts.file_mode),
        None => Ok(true),
    };
    if let Ok(true) = confirmed {
        return Ok(Some(holding));
    }
    holding.how = how;
    let _ = release::release(path, holding, opts);
    confirmed.map(|_| None)
}

/// `e`, after letting go of the counter - and removing it if this try created it beside a
/// file that is not a lock, which must be left alone with nothing new beside it.
pub(super) fn refused(slot: &mut Option<Counter>, e: LockError) -> LockError {
    if let Some(c) = slot.take() {
        c.discard_if_new();
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "leaselock-token-{}-{}",
            std::process::id(),
            now_micros()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn tokens_grow_from_the_clock_and_survive_reopening() {
        let d = dir();
        let lock = d.join("x.lock");
        let before = now_micros();
        let c = Counter::open(&lock, 0o644).unwrap();
        let a = c.advance().unwrap().unwrap();
        let b = c.advance().unwrap().unwrap();
        assert!(a > before && b == a + 1);
        drop(c);
        let c = Counter::open(&lock, 0o644).unwrap();
        assert_eq!(c.advance().unwrap(), Some(b + 1));
        // Removed: the next counter starts at the clock, above every token so far.
        std::fs::remove_file(sys::sibling(&lock, TAG)).unwrap();
        assert_eq!(c.latest().unwrap(), None);
        let c = Counter::open(&lock, 0o644).unwrap();
        assert!(c.advance().unwrap() > Some(b + 1));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_foreign_file_is_refused_untouched() {
        let d = dir();
        let lock = d.join("y.lock");
        let at = sys::sibling(&lock, TAG);
        std::fs::write(&at, b"precious data\n").unwrap();
        let e = Counter::open(&lock, 0o644).err().unwrap();
        assert!(matches!(e, LockError::NotACounter { .. }), "{e}");
        assert!(e.to_string().contains("precious data"), "{e}");
        assert_eq!(std::fs::read(&at).unwrap(), b"precious data\n");
        std::fs::remove_file(&at).unwrap();
        std::fs::create_dir(&at).unwrap();
        let e = Counter::open(&lock, 0o644).err().unwrap();
        assert!(e.to_string().contains("directory"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[cfg(unix)]
    #[test]
    fn a_counter_others_may_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = dir();
        let lock = d.join("z.lock");
        let c = Counter::open(&lock, 0o644).unwrap();
        let at = sys::sibling(&lock, TAG);
        let before = std::fs::read(&at).unwrap();
        std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o666)).unwrap();
        drop(c);
        let e = Counter::open(&lock, 0o644).err().unwrap();
        assert!(e.to_string().contains("lets others write"), "{e}");
        assert_eq!(std::fs::read(&at).unwrap(), before);
        // The rule is relative to the lock's own mode.
        assert!(Counter::open(&lock, 0o666).is_ok());
        let _ = std::fs::remove_dir_all(&d);
    }
}
