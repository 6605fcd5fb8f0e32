//! The generated documentation in `man/` is kept equal to the command line it is generated
//! from (`supervise::cli::Cli`, the one definition `main` parses): the man pages with
//! clap_mangen, the shell completion scripts as `supervise completions SHELL` prints them. This test regenerates them in
//! memory and compares; `UPDATE_DOCS=1 cargo test --test tests docs` writes them instead.
//!
//! It also checks that the hand-written `man/supervise.toml.5` documents every key the
//! schema accepts, read from the schema's source text (`src/config/schema.rs`,
//! `src/config/structured.rs`), so a new key cannot be added without its documentation.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use supervise::cli::CompletionShell;

const UPDATE_COMMAND: &str = "UPDATE_DOCS=1 cargo test --test tests docs";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every generated file: its path under the repository and its contents.
fn generated() -> Vec<(PathBuf, Vec<u8>)> {
    let mut cmd = supervise::cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();

    // The main page, then one page per subcommand (`supervise-status.1`, ...).
    // Each page ends with a SEE ALSO section pointing at the others and at the file format.
    let subs: Vec<&clap::Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    let source = format!("supervise {}", cmd.get_version().unwrap_or_default());
    let mut main = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut main)
        .expect("render supervise.1");
    let pages: Vec<String> = subs
        .iter()
        .map(|s| format!("\\fBsupervise\\-{}\\fR(1)", s.get_name()))
        .collect();
    main.extend_from_slice(
        format!(
            ".SH \"SEE ALSO\"\n\\fBsupervise.toml\\fR(5) for the ecosystem file;\n{};\n\
             \\fBsystemd.socket\\fR(5), \\fBsd_notify\\fR(3)\n",
            pages.join(",\n")
        )
        .as_bytes(),
    );
    out.push((PathBuf::from("man/supervise.1"), main));
    for sub in subs {
        let man = clap_mangen::Man::new(sub.clone()).source(source.clone());
        let mut page = Vec::new();
        man.render(&mut page).expect("render a subcommand page");
        page.extend_from_slice(
            b".SH \"SEE ALSO\"\n\\fBsupervise\\fR(1), \\fBsupervise.toml\\fR(5)\n",
        );
        out.push((PathBuf::from("man").join(man.get_filename()), page));
    }

    // The completion scripts are what `supervise completions SHELL` prints.
    for (shell, file) in [
        (CompletionShell::Bash, "supervise.bash"),
        (CompletionShell::Zsh, "_supervise"),
        (CompletionShell::Fish, "supervise.fish"),
    ] {
        let text = supervise::cli::completion_script(shell);
        out.push((PathBuf::from("man/completions").join(file), text));
    }
    out
}

#[test]
fn docs_are_generated_from_the_cli() {
    let update = std::env::var_os("UPDATE_DOCS").is_some_and(|v| v == "1");
    let root = root();
    let mut stale = Vec::new();
    let files = generated();
    // A page of a subcommand that no longer exists.
    let man_dir = root.join("man");
    for entry in std::fs::read_dir(&man_dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = PathBuf::from("man").join(&name);
        if name.ends_with(".1") && !files.iter().any(|(p, _)| *p == rel) {
            if update {
                std::fs::remove_file(entry.path())
                    .unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
            } else {
                stale.push(format!("{} is not generated any more", rel.display()));
            }
        }
    }
    for (rel, content) in files {
        let path = root.join(&rel);
        if update {
            std::fs::create_dir_all(path.parent().expect("a folder"))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            std::fs::write(&path, &content).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            continue;
        }
        match std::fs::read(&path) {
            Ok(committed) if committed == content => {}
            Ok(_) => stale.push(format!("{} differs from the CLI definition", rel.display())),
            Err(e) => stale.push(format!("{}: {e}", rel.display())),
        }
    }
    assert!(
        stale.is_empty(),
        "the generated docs are out of date:\n  {}\nregenerate them with `{UPDATE_COMMAND}` \
         and commit the result",
        stale.join("\n  ")
    );
}

#[test]
fn docs_every_subcommand_has_a_page() {
    let cmd = supervise::cli::Cli::command();
    let files: Vec<PathBuf> = generated().into_iter().map(|(p, _)| p).collect();
    for sub in cmd.get_subcommands() {
        let page = PathBuf::from(format!("man/supervise-{}.1", sub.get_name()));
        assert!(files.contains(&page), "no {}", page.display());
    }
}

/// The quoted strings of the `const NAME: ... = &[ ... ];` array in a source file.
fn const_strings(file: &Path, name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let start = text
        .find(&format!("const {name}:"))
        .unwrap_or_else(|| panic!("no `const {name}` in {}", file.display()));
    let body = &text[start..];
    let open = body.find("= &[").expect("an array") + 4;
    let close = body[open..].find("];").expect("the array's end") + open;
    let strings: Vec<String> = body[open..close]
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert!(
        !strings.is_empty(),
        "`{name}` in {} looks empty",
        file.display()
    );
    strings
}

#[test]
fn docs_file_format_page_names_every_key() {
    let root = root();
    let page_path = root.join("man/supervise.toml.5");
    let page = std::fs::read_to_string(&page_path)
        .unwrap_or_else(|e| panic!("{}: {e}", page_path.display()));
    let schema = root.join("src/config/schema.rs");
    let structured = root.join("src/config/structured.rs");
    let lists = [
        ("settings", const_strings(&schema, "SETTINGS_KEYS")),
        ("apps.NAME", const_strings(&schema, "APP_KEYS")),
        ("ready", const_strings(&structured, "READY_KEYS")),
        ("health", const_strings(&structured, "HEALTH_KEYS")),
        ("limits", const_strings(&structured, "LIMITS")),
    ];
    let mut missing = Vec::new();
    for (table, keys) in &lists {
        for key in keys {
            // Documented as a bold term of its own: `\fBkey\fR`, with roff's `\-` for `-`.
            let term = format!("\\fB{}\\fR", key.replace('-', "\\-"));
            if !page.contains(&term) {
                missing.push(format!("{table}.{key}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "man/supervise.toml.5 does not document (as \\fBKEY\\fR): {}",
        missing.join(", ")
    );
}
