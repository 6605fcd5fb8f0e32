use std::os::unix::fs::PermissionsExt;

use super::*;

fn app(program: &Path, listen: bool) -> AppSpec {
    let mut spec = AppSpec::new("web", program.to_str().unwrap(), &["x", "app.js"]);
    if listen {
        spec.listen = vec![ListenAddr::Tcp("0.0.0.0:3000".parse().unwrap())];
    }
    spec.instances = 3;
    spec
}

fn script(dir: &Path, name: &str, first_line: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{first_line}\nconsole.log(1)\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn node_by_name_or_shebang_with_listen() {
    let dir = tempfile::tempdir().unwrap();
    assert!(applies(&app(Path::new("/usr/bin/node"), true)));
    assert!(applies(&app(Path::new("/opt/node/bin/nodejs"), true)));
    assert!(!applies(&app(Path::new("/usr/bin/node"), false)));
    let env_node = script(dir.path(), "serve", "#!/usr/bin/env node");
    let env_s = script(dir.path(), "serve2", "#!/usr/bin/env -S node --no-warnings");
    let direct = script(dir.path(), "serve3", "#!/usr/local/bin/node");
    let python = script(dir.path(), "serve4", "#!/usr/bin/env python3");
    for p in [&env_node, &env_s, &direct] {
        assert!(applies(&app(p, true)), "{p:?}");
    }
    assert!(!applies(&app(&python, true)));
    let mut off = app(Path::new("/usr/bin/node"), true);
    off.listen_adapter = false;
    assert!(!applies(&off));
}

#[test]
fn check_warns_for_launchers_and_adapter_off_only() {
    let dir = tempfile::tempdir().unwrap();
    let npm = script(dir.path(), "npm", "#!/usr/bin/env node");
    let w = check_warning(&app(&npm, true)).expect("npm binds in a child");
    assert!(
        w.starts_with("apps.web: the program starts your server in a child"),
        "{w}"
    );
    assert!(
        w.contains("3 instances will each try to bind port 3000"),
        "{w}"
    );
    let mut off = app(Path::new("/usr/bin/node"), true);
    off.listen_adapter = false;
    assert!(check_warning(&off)
        .unwrap()
        .contains("listen_adapter = false"));
    let mut shell = app(Path::new("/bin/sh"), true);
    shell.shell = true;
    shell.command.argv = vec!["/bin/sh".into(), "-c".into(), "node app.js".into()];
    assert!(check_warning(&shell).is_some());
    // No warning: the adapter applies, one instance, no listen, not a known binder.
    assert_eq!(check_warning(&app(Path::new("/usr/bin/node"), true)), None);
    let mut one = off.clone();
    one.instances = 1;
    assert_eq!(check_warning(&one), None);
    assert_eq!(check_warning(&app(&npm, false)), None);
    assert_eq!(
        check_warning(&app(Path::new("/usr/bin/gunicorn"), true)),
        None
    );
}

#[test]
fn env_appends_to_their_node_options_and_module_is_readable() {
    let mut spec = app(Path::new("/usr/bin/node"), true);
    spec.listen.push(ListenAddr::Unix("/run/web.sock".into()));
    // The environment as launch.rs built it: the app's own NODE_OPTIONS is in it.
    let mut env: Vec<(OsString, OsString)> = vec![
        ("NODE_OPTIONS".into(), "--max-old-space-size=64".into()),
        ("PATH".into(), "/usr/bin".into()),
    ];
    let mut preload = Preload::new();
    preload.apply(&spec, &mut env).unwrap();
    let path = preload.path().unwrap().to_path_buf();
    assert_eq!(env.len(), 4, "{env:?}");
    let get = |k: &str| {
        let found: Vec<_> = env.iter().filter(|(n, _)| n == k).collect();
        assert_eq!(found.len(), 1, "{k} in {env:?}");
        found[0].1.to_string_lossy().into_owned()
    };
    assert_eq!(
        get("NODE_OPTIONS"),
        format!("--max-old-space-size=64 --require \"{}\"", path.display())
    );
    assert_eq!(
        get("SUPERVISE_LISTEN"),
        r#"["tcp://0.0.0.0:3000","unix:/run/web.sock"]"#
    );
    assert_eq!(get("SUPERVISE_STOP_SIGNAL"), "SIGTERM");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), MODULE);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o644);
    let dir = path.parent().unwrap().to_path_buf();
    assert_eq!(mode(&dir), 0o755);
    // Written once; rewritten when something removed it; removed on drop.
    let mut fresh = Vec::new();
    preload.apply(&spec, &mut fresh).unwrap();
    assert_eq!(preload.path().unwrap(), path);
    assert_eq!(
        fresh[0].1,
        OsString::from(format!("--require \"{}\"", path.display()))
    );
    std::fs::remove_file(&path).unwrap();
    preload.apply(&spec, &mut Vec::new()).unwrap();
    let again = preload.path().unwrap().to_path_buf();
    assert!(again.is_file());
    drop(preload);
    assert!(!again.exists() && !again.parent().unwrap().exists());
}

#[test]
fn no_env_when_the_adapter_does_not_apply() {
    let mut preload = Preload::new();
    let mut env = Vec::new();
    let spec = app(Path::new("/usr/bin/node"), false);
    preload.apply(&spec, &mut env).unwrap();
    assert!(env.is_empty());
    assert!(preload.path().is_none());
}
