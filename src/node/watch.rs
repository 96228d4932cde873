//! Watching the state directory for changes (inotify; the caller polls when it is missing).

use std::path::Path;
use std::time::Duration;

use super::agent::private_dir;

/// inotify on the state directory, its inbox and its policy directory.
pub struct Watch {
    fd: rustix::fd::OwnedFd,
}

impl Watch {
    /// Watches `dir`, its `inbox/` and its `policy/` (created when missing).
    pub fn new(dir: &Path) -> Option<Watch> {
        use rustix::fs::inotify;
        let fd =
            inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).ok()?;
        let flags = inotify::WatchFlags::CLOSE_WRITE
            | inotify::WatchFlags::MOVED_TO
            | inotify::WatchFlags::MOVED_FROM
            | inotify::WatchFlags::CREATE
            | inotify::WatchFlags::DELETE
            | inotify::WatchFlags::ATTRIB;
        inotify::add_watch(&fd, dir, flags).ok()?;
        for sub in ["inbox", "policy"] {
            let p = dir.join(sub);
            let _ = private_dir(&p);
            inotify::add_watch(&fd, &p, flags).ok()?;
        }
        Some(Watch { fd })
    }

    /// Waits up to `timeout` for an event; drains them; true if there was one.
    pub fn wait(&self, timeout: Duration) -> bool {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let ts = Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(n) if n > 0 => {
                let mut buf = [0u8; 4096];
                while matches!(rustix::io::read(&self.fd, &mut buf), Ok(n) if n > 0) {}
                true
            }
            _ => false,
        }
    }
}
