//! The one bounded writer thread behind supervise's stdout ([`super::output`]) and the log
//! files ([`super::files`]) (DESIGN "Output").
//!
//! The event loop must never wait for a slow reader or a slow disk, so it only queues items
//! under a short lock; a dedicated thread takes the whole queue at once and hands it to a
//! [`Drain`], which formats and writes with ordinary blocking writes. The queue is bounded in
//! bytes: [`Writer::try_push`] refuses an item once [`Writer::bound`] bytes wait, and the
//! refusal asks the thread to wake the loop's waker as soon as it has taken the queue, so the
//! caller stops reading its pipe meanwhile (backpressure, SPEC §5). Items that must not be
//! refused (supervise's own events, settings) go through [`Writer::push`], capped in number:
//! past the cap they are counted and the drain is told how many were lost.
//!
//! The loop may [`Writer::hold`] the thread's wake-ups during its turn and release them
//! before it sleeps: a line printed while an instance is being
//! respawned then does not wake the writer thread (on 2 CPUs, often preempting the loop or
//! the new child) before the spawn is done.
//!
//! A drain that fails (disk full) keeps what it could not write; the thread retries after a
//! growing delay (at most [`RETRY_MAX`]), taking nothing more from the queue meanwhile, so the
//! bound holds and the instances are held back. [`Writer::urgent`] items (a new directory,
//! reopen) reach the drain even then. The thread sleeps on a condition variable when there is
//! nothing to do: no timers while idle.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// First and longest delay between attempts while the drain fails.
const RETRY_FIRST: Duration = Duration::from_millis(100);
pub const RETRY_MAX: Duration = Duration::from_secs(1);

/// A drain could not write everything: try again later.
#[derive(Debug)]
pub struct Retry;

/// The writing end, run on the writer thread.
pub trait Drain: Send + 'static {
    type Item: Send + 'static;

    /// Writes `items` from the front, removing each once it is taken care of. `Err`: the
    /// rest stays in `items` (or in the drain) and is tried again later, with the items
    /// left; nothing more is taken from the queue until a call returns `Ok`.
    fn write(&mut self, items: &mut VecDeque<Self::Item>) -> Result<(), Retry>;

    /// The queue is empty: write out what is buffered before sleeping.
    fn flush(&mut self) {}

    /// An [`Writer::urgent`] item, taken before what waits in the queue.
    fn urgent(&mut self, _item: Self::Item) {}

    /// `n` capped items were dropped since the last call.
    fn dropped(&mut self, _n: usize, _items: &mut VecDeque<Self::Item>) {}

    /// The thread is ending.
    fn close(&mut self) {}
}

struct State<T> {
    queue: VecDeque<T>,
    /// Bytes of bounded items in `queue`.
    bytes: usize,
    /// Capped items in `queue`, and those dropped past the cap.
    capped: usize,
    dropped: usize,
    urgent: Vec<T>,
    /// An item was refused (or `has_room` said no): wake the waker when there is room.
    want_wake: bool,
    /// Wake-ups of the thread are held (see [`Writer::hold`]), and one is owed.
    held: bool,
    owed: bool,
    stop: bool,
    /// Give up on what cannot be written and end.
    abandon: bool,
    done: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// The thread waits here for work.
    work: Condvar,
    /// `finish` waits here for `done`.
    done: Condvar,
    bound: usize,
    cap: usize,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Handle to a writer thread, owned by the event loop. Every method is cheap and never
/// waits for the drain.
pub struct Writer<T: Send + 'static> {
    shared: Arc<Shared<T>>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Writer<T> {
    /// Spawns the thread `name`. `bound`: bytes of bounded items the queue holds at most;
    /// `cap`: capped items it holds at most. `waker` is woken when there is room again after
    /// a refusal.
    pub fn start<D: Drain<Item = T>>(
        name: &str,
        drain: D,
        bound: usize,
        cap: usize,
        waker: Option<Arc<mio::Waker>>,
    ) -> std::io::Result<Writer<T>> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                bytes: 0,
                capped: 0,
                dropped: 0,
                urgent: Vec::new(),
                want_wake: false,
                held: false,
                owed: false,
                stop: false,
                abandon: false,
                done: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            bound,
            cap,
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(&s, drain, waker))?;
        Ok(Writer {
            shared,
            thread: Some(thread),
        })
    }

    fn push_locked(&self, mut st: MutexGuard<'_, State<T>>, item: T) {
        let was_empty = st.queue.is_empty();
        st.queue.push_back(item);
        if was_empty && st.held {
            st.owed = true;
            return;
        }
        drop(st);
        if was_empty {
            self.shared.work.notify_one();
        }
    }

    /// `true`: from now on, queued items wait for `hold(false)` to wake the thread.
    /// `false`: wakes it if items came meanwhile; items wake it at once again.
    pub fn hold(&self, held: bool) {
        let mut st = self.shared.lock();
        st.held = held;
        if !held && std::mem::take(&mut st.owed) {
            drop(st);
            self.shared.work.notify_one();
        }
    }

    /// Queues an item counting `bytes` against the bound; gives it back when the bound is
    /// reached (the waker fires once there is room).
    pub fn try_push(&self, item: T, bytes: usize) -> Result<(), T> {
        let mut st = self.shared.lock();
        if st.bytes >= self.shared.bound {
            st.want_wake = true;
            return Err(item);
        }
        st.bytes += bytes;
        self.push_locked(st, item);
        Ok(())
    }

    /// Queues an item outside the bound. With `capped`, at most `cap` such items wait: the
    /// rest are counted and reported to the drain. False when it was dropped.
    pub fn push(&self, item: T, capped: bool) -> bool {
        let mut st = self.shared.lock();
        if capped {
            if st.capped >= self.shared.cap {
                st.dropped += 1;
                return false;
            }
            st.capped += 1;
        }
        self.push_locked(st, item);
        true
    }

    /// Hands an item to the drain at the thread's next turn, before the queue and even
    /// while the drain is failing.
    pub fn urgent(&self, item: T) {
        self.shared.lock().urgent.push(item);
        self.shared.work.notify_one();
    }

    /// Whether `try_push` would take an item now. When it says no, the waker will fire once
    /// there is room, as after a refusal.
    pub fn has_room(&self) -> bool {
        let mut st = self.shared.lock();
        if st.bytes < self.shared.bound {
            true
        } else {
            st.want_wake = true;
            false
        }
    }

    /// Bytes of bounded items waiting in the queue.
    #[cfg(test)]
    pub(crate) fn queued_bytes(&self) -> usize {
        self.shared.lock().bytes
    }

    fn stop(&self, abandon: bool) {
        let mut st = self.shared.lock();
        st.held = false;
        st.stop = true;
        st.abandon |= abandon;
        drop(st);
        self.shared.work.notify_one();
    }

    /// Writes out what is queued and stops the thread, waiting at most `deadline`: past it,
    /// what could not be written is given up and the thread is left to end alone.
    pub fn finish(mut self, deadline: Duration) {
        self.stop(false);
        let st = self.shared.lock();
        let (st, _) = self
            .shared
            .done
            .wait_timeout_while(st, deadline, |s| !s.done)
            .unwrap_or_else(PoisonError::into_inner);
        let done = st.done;
        drop(st);
        if let Some(thread) = self.thread.take() {
            if done {
                let _ = thread.join();
            }
        }
        // `drop` then tells a left-behind thread to give up.
    }
}

impl<T: Send + 'static> Drop for Writer<T> {
    /// Without `finish`, the thread still writes out what is queued, giving up at the first
    /// failure, then ends.
    fn drop(&mut self) {
        self.stop(true);
    }
}

/// The writer thread.
fn run<D: Drain>(shared: &Shared<D::Item>, mut drain: D, waker: Option<Arc<mio::Waker>>) {
    let mut pending = VecDeque::new();
    let mut retry: Option<Duration> = None;
    let mut dirty = false;
    loop {
        let mut st = shared.lock();
        if let Some(delay) = retry {
            // The drain fails: wait, unless something that may help comes.
            st = shared
                .work
                .wait_timeout_while(st, delay, |s| !s.abandon && s.urgent.is_empty())
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            if st.abandon {
                break;
            }
        } else {
            if st.queue.is_empty() && st.urgent.is_empty() && !st.stop && dirty {
                // Idle: show everything before sleeping.
                drop(st);
                drain.flush();
                dirty = false;
                continue;
            }
            st = shared
                .work
                .wait_while(st, |s| s.queue.is_empty() && s.urgent.is_empty() && !s.stop)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let urgent = std::mem::take(&mut st.urgent);
        let mut wake = false;
        let mut dropped = 0;
        if pending.is_empty() && retry.is_none() {
            // Take more only once everything taken is written: that keeps the bound.
            std::mem::swap(&mut st.queue, &mut pending);
            st.bytes = 0;
            st.capped = 0;
            dropped = std::mem::take(&mut st.dropped);
            wake = std::mem::take(&mut st.want_wake);
        }
        let finished = st.stop && pending.is_empty() && urgent.is_empty() && retry.is_none();
        drop(st);
        if wake {
            if let Some(w) = &waker {
                let _ = w.wake();
            }
        }
        for item in urgent {
            drain.urgent(item);
        }
        if finished {
            break;
        }
        if dropped > 0 {
            drain.dropped(dropped, &mut pending);
        }
        dirty = true;
        retry = match drain.write(&mut pending) {
            Ok(()) => None,
            Err(Retry) => Some(retry.map_or(RETRY_FIRST, |d| (d * 2).min(RETRY_MAX))),
        };
    }
    drain.flush();
    drain.close();
    shared.lock().done = true;
    shared.done.notify_all();
}
