//! The keys of `supervise top`, and the help line that lists them (one table, so the
//! help cannot drift from what the keys do).

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::model::Action;

/// The help line: each key and what it does, in the order shown.
pub const HELP: [(&str, &str); 6] = [
    ("↑↓", "move"),
    ("r", "restart"),
    ("R", "restart app"),
    ("l", "reload app"),
    ("s", "stop/start"),
    ("q", "quit"),
];

/// What a key press asks for; None for keys that do nothing (and for releases and
/// repeats of terminals that report them).
pub fn action(key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    // Raw mode turns Ctrl-C into a key: it quits, as everywhere else.
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return matches!(key.code, KeyCode::Char('c' | 'd')).then_some(Action::Quit);
    }
    Some(match key.code {
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::Home | KeyCode::Char('g') => Action::First,
        KeyCode::End | KeyCode::Char('G') => Action::Last,
        KeyCode::Char('r') => Action::Restart,
        KeyCode::Char('R') => Action::RestartApp,
        KeyCode::Char('l') => Action::ReloadApp,
        KeyCode::Char('s') => Action::StopStart,
        KeyCode::Char('q') | KeyCode::Esc => Action::Quit,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn keys() {
        assert_eq!(action(key(KeyCode::Up)), Some(Action::Up));
        assert_eq!(action(key(KeyCode::Char('j'))), Some(Action::Down));
        assert_eq!(action(key(KeyCode::Char('r'))), Some(Action::Restart));
        let shift_r = KeyEvent::new(KeyCode::Char('R'), KeyModifiers::SHIFT);
        assert_eq!(action(shift_r), Some(Action::RestartApp));
        assert_eq!(action(key(KeyCode::Char('l'))), Some(Action::ReloadApp));
        assert_eq!(action(key(KeyCode::Char('s'))), Some(Action::StopStart));
        assert_eq!(action(key(KeyCode::Char('q'))), Some(Action::Quit));
        assert_eq!(action(key(KeyCode::Esc)), Some(Action::Quit));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(action(ctrl_c), Some(Action::Quit));
        let ctrl_r = KeyEvent::new(KeyCode::Char('r'), KeyModifiers::CONTROL);
        assert_eq!(action(ctrl_r), None, "Ctrl-R is not r");
        assert_eq!(action(key(KeyCode::Char('x'))), None);
        let mut release = key(KeyCode::Char('r'));
        release.kind = KeyEventKind::Release;
        assert_eq!(action(release), None);
    }

    #[test]
    fn the_help_names_only_keys_that_act() {
        for (k, _) in HELP {
            let code = match k {
                "↑↓" => KeyCode::Up,
                k => KeyCode::Char(k.chars().next().unwrap()),
            };
            assert!(action(key(code)).is_some(), "{k}");
        }
    }
}
