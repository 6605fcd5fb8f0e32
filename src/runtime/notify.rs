//! The receiving end of sd_notify (`ready = "notify"`): the NOTIFY_SOCKET, bound when
//! the first app asks for it, and its datagrams turned into facts about the instance
//! that sent them.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::time::Instant;

use mio::Interest;

use super::{Owner, Runtime, NOTIFY};
use crate::config::ReadySpec;
use crate::os;
use crate::state::{observe, Fact};

impl Runtime {
    /// Datagrams on NOTIFY_SOCKET, attributed to an instance by the sender's pid (its
    /// leader, or any process of its group, such as a shell wrapper's child).
    pub(super) fn on_notify(&mut self) {
        let Some(socket) = &self.checks.notify else {
            return;
        };
        let now = Instant::now();
        for (pid, message) in socket.receive() {
            let who = match self.leaders.get(&pid) {
                Some(Owner::Instance(id)) => self.observed.find_leader(id, pid),
                _ => os::group_of(pid).and_then(|pgid| self.observed.find_group(pgid)),
            };
            let Some((who, inst)) = who.and_then(|w| Some((w.clone(), self.observed.get(&w)?)))
            else {
                log::debug!("notify message from unknown pid {pid}: {message:?}");
                continue;
            };
            let id = inst.id.clone();
            let was_ready = inst.run().is_some_and(|r| r.ready_at.is_some());
            let ready_counts = self
                .desired
                .app(&id.app)
                .is_some_and(|a| a.ready == ReadySpec::Notify);
            let announce = ready_counts && message.ready && !was_ready;
            let fact = Fact::Notified {
                who,
                message,
                ready_counts,
            };
            observe(&mut self.observed, fact, now);
            if announce {
                self.output.event(&format!("{id} is ready (sd_notify)"));
            }
        }
    }

    /// Bind the NOTIFY_SOCKET receiver the first time an app uses `ready = "notify"`,
    /// in a private folder (0711) so only the socket itself is reachable.
    pub(super) fn ensure_notify_socket(&mut self) {
        let wanted = self
            .desired
            .eco
            .apps
            .iter()
            .any(|a| a.ready == ReadySpec::Notify);
        if !wanted || self.checks.notify.is_some() {
            return;
        }
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(std::path::PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("supervise-{}", std::process::id()));
        let result = std::fs::DirBuilder::new()
            .mode(0o711)
            .create(&dir)
            .or_else(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .and_then(|_| os::sd_notify::NotifySocket::bind(&dir.join("notify.sock")));
        match result {
            Ok(socket) => {
                let fd = socket.raw_fd();
                if let Err(e) = self.poll.registry().register(
                    &mut mio::unix::SourceFd(&fd),
                    NOTIFY,
                    Interest::READABLE,
                ) {
                    self.output
                        .event(&format!("cannot watch the notify socket: {e}"));
                }
                self.checks.notify = Some(socket);
            }
            Err(e) => self.output.event(&format!(
                "cannot create the notify socket in {}: {e}; notify apps will never be ready",
                dir.display()
            )),
        }
    }
}
