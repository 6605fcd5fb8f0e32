//! The full screen: raw mode and the alternate screen on the way in, and the terminal as
//! it was on every way out: a normal return (the [`Screen`] guard), a panic (the hook),
//! a signal or a closed terminal (the caller returns, the guard drops).

use std::io::{self, Stdout};
use std::sync::atomic::{AtomicBool, Ordering};

use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::cursor::{Hide, Show};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::Terminal;

/// Whether the terminal is in our mode now, so that restoring happens once whichever
/// way out comes first (a panic inside a draw, then the guard's drop).
static ENTERED: AtomicBool = AtomicBool::new(false);

/// The terminal in full-screen mode; dropping it restores the terminal.
pub struct Screen {
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Screen {
    /// Raw mode, the alternate screen, no cursor; the panic hook is installed first.
    pub fn enter() -> io::Result<Screen> {
        install_panic_hook(restore);
        ENTERED.store(true, Ordering::SeqCst);
        let entered = enable_raw_mode()
            .and_then(|()| execute!(io::stdout(), EnterAlternateScreen, Hide))
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match entered {
            Ok(terminal) => Ok(Screen { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Leave raw mode and the alternate screen and show the cursor, once. Errors are
/// ignored: on a closed terminal there is nothing left to restore.
pub fn restore() {
    if ENTERED.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let _ = execute!(io::stdout(), LeaveAlternateScreen, Show);
    }
}

/// Run `restore` before the previous hook prints the panic, so that the message lands
/// on the normal screen, readable, in a terminal that echoes again.
fn install_panic_hook(restore: fn()) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    static RESTORED: AtomicUsize = AtomicUsize::new(0);

    fn count() {
        RESTORED.fetch_add(1, Ordering::SeqCst);
    }

    #[test]
    fn a_panic_restores_first() {
        let before = std::panic::take_hook();
        install_panic_hook(count);
        let caught = std::panic::catch_unwind(|| panic!("drawing failed"));
        std::panic::set_hook(before);
        assert!(caught.is_err());
        assert!(RESTORED.load(Ordering::SeqCst) >= 1);
    }

    #[test]
    fn restoring_twice_or_never_entered_is_harmless() {
        restore();
        restore();
        assert!(!ENTERED.load(Ordering::SeqCst));
    }
}
