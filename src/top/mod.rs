//! `supervise top`: a full-screen live view of a running supervisor, like `pm2 monit`
//! (SPEC §8). It is a client of the control socket and nothing more: it asks `status`
//! and `logs` about once a second while it is open (nothing samples when it is not),
//! and sends `restart`, `reload`, `stop` and `start` for the keys. The terminal goes
//! back to how it was on every way out: `q`, Ctrl-C, a signal, a closed terminal, a
//! panic.
//!
//! * [`model`]: what is shown, as data (selection, history, logs, command outcomes);
//! * [`draw`]: that data on the screen (ratatui);
//! * [`input`]: the keys and the help line;
//! * [`feed`]: the threads that bring samples, keys, signals and answers;
//! * [`terminal`]: raw mode and the alternate screen, in and out.

pub mod draw;
pub mod feed;
pub mod input;
pub mod model;
pub mod terminal;

use std::io::IsTerminal;
use std::path::Path;
use std::sync::mpsc;

use feed::Msg;
use model::{Action, Top};
use terminal::Screen;

/// How `top` ended, as the process exit status.
pub type Status = u8;

/// Run the view until the user quits; an `Err` is the message for stderr (exit 1).
pub fn run(socket: &Path) -> Result<Status, String> {
    if !std::io::stdout().is_terminal() {
        return Err("top needs a terminal: its standard output is not one \
                    (`supervise status` prints the same for scripts)"
            .into());
    }
    // Fail before the screen changes when no supervise answers.
    let mut top = Top::default();
    top.apply(feed::sample(socket, None, true)?);

    let (tx, rx) = mpsc::channel();
    feed::spawn_signals(tx.clone()).map_err(|e| format!("cannot watch signals: {e}"))?;
    let mut screen = Screen::enter().map_err(|e| format!("cannot set up the terminal: {e}"))?;
    let (wake, woken) = mpsc::channel();
    feed::spawn_sampler(socket.to_path_buf(), tx.clone(), woken);
    feed::spawn_input(tx.clone());
    let _ = wake.send(top.log_target());

    loop {
        // A write error means the terminal is gone (a closed pty gives EIO).
        if let Err(e) = screen.terminal.draw(|f| draw::draw(f, &top)) {
            drop(screen);
            return Err(format!("the terminal is gone: {e}"));
        }
        let msg = rx
            .recv()
            .expect("the signal thread holds a sender for ever");
        match msg {
            Msg::Sample(Ok(sample)) => top.apply(sample),
            Msg::Sample(Err(why)) => top.sample_failed(why),
            Msg::Resize => {}
            Msg::Done(result) => {
                top.command_done(result);
                let _ = wake.send(top.log_target());
            }
            Msg::InputEnded(why) => {
                drop(screen);
                return Err(format!("the terminal is gone: {why}"));
            }
            Msg::Signal(signal) => return Ok(128 + signal as u8),
            Msg::Key(key) => {
                let Some(action) = input::action(key) else {
                    continue;
                };
                if action == Action::Quit {
                    return Ok(0);
                }
                let before = top.log_target();
                if let Some((request, _)) = top.act(action) {
                    feed::spawn_command(socket.to_path_buf(), request, tx.clone());
                }
                if top.log_target() != before {
                    let _ = wake.send(top.log_target());
                }
            }
        }
    }
}
