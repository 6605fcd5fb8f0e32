//! The container and systemd examples (issue 12 item 7): the Kubernetes manifest holds
//! the example ecosystem file, validates against the Kubernetes schemas
//! (`kubernetes-validate` from PyPI) and its terminationGracePeriodSeconds passes `supervise
//! check --grace`; the systemd unit passes `systemd-analyze verify`. The Dockerfile cannot
//! be built here (no Docker engine); its ENTRYPOINT, STOPSIGNAL and static build are
//! checked as text. Each external tool is skipped with a note where it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use saphyr::{LoadableYamlNode, Yaml};

fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config-examples")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(example(path)).unwrap()
}

fn key<'a>(node: &'a Yaml<'a>, path: &[&str]) -> &'a Yaml<'a> {
    path.iter().fold(node, |n, k| &n[*k])
}

#[test]
fn the_kubernetes_manifest_carries_the_ecosystem_and_a_grace_period_that_passes_check() {
    let text = read("container/kubernetes.yaml");
    let docs = Yaml::load_from_str(&text).expect("the manifest is YAML");
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["ConfigMap", "Deployment"]);
    let eco = key(&docs[0], &["data", "ecosystem.toml"]).as_str().unwrap();
    assert_eq!(
        eco,
        read("container/ecosystem.toml"),
        "the ConfigMap holds config-examples/container/ecosystem.toml"
    );
    let pod = key(&docs[1], &["spec", "template", "spec"]);
    let grace = pod["terminationGracePeriodSeconds"].as_integer().unwrap();
    let container = &pod["containers"][0];
    assert_eq!(
        key(container, &["livenessProbe", "httpGet", "path"]).as_str(),
        Some("/livez")
    );
    assert_eq!(
        key(container, &["readinessProbe", "httpGet", "path"]).as_str(),
        Some("/readyz")
    );
    // Mounted as a folder (no subPath), so the ..data swap is seen.
    let mount = &container["volumeMounts"][0];
    let mut no_comments = text.lines().filter(|l| !l.trim_start().starts_with('#'));
    assert!(no_comments.all(|l| !l.contains("subPath")), "no subPath");
    assert_eq!(mount["mountPath"].as_str(), Some("/etc/supervise"));

    let check = |grace: String| {
        Command::new(crate::support::supervise_bin())
            .args(["check", "--grace", &grace])
            .arg(example("container/ecosystem.toml"))
            .output()
            .unwrap()
    };
    let out = check(format!("{grace}s"));
    assert!(
        out.status.success(),
        "supervise check --grace {grace}s: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = check("15s".into());
    assert!(!out.status.success(), "20s of stopping does not fit in 15s");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("worker -> web"), "the chain is named: {err}");

    match Command::new("kubernetes-validate")
        .arg("--strict")
        .arg(example("container/kubernetes.yaml"))
        .output()
    {
        Err(e) => eprintln!(
            "note: kubernetes-validate not available ({e}); pip install kubernetes-validate"
        ),
        Ok(out) => assert!(
            out.status.success(),
            "kubernetes-validate: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[test]
fn the_systemd_unit_verifies() {
    let unit = read("systemd/supervise.service");
    for line in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillMode=mixed",
    ] {
        assert!(unit.contains(line), "{line} missing");
    }
    // verify checks that ExecStart's program exists: point it at the built binary.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("supervise.service");
    let unit = unit.replace("/usr/local/bin/supervise", crate::support::supervise_bin());
    std::fs::write(&path, unit).unwrap();
    match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
    {
        Err(e) => eprintln!("note: systemd-analyze not available ({e}); unit not verified"),
        Ok(out) => {
            let said = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && said.trim().is_empty(),
                "systemd-analyze verify: {said}"
            );
        }
    }
}

#[test]
fn the_dockerfile_runs_the_static_build_as_pid_1() {
    let text = read("container/Dockerfile");
    let from = text.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(from >= 2, "multi-stage");
    for line in [
        "RUN rustup target add x86_64-unknown-linux-musl",
        "--target x86_64-unknown-linux-musl",
        "STOPSIGNAL SIGTERM",
        "ENTRYPOINT [\"/usr/local/bin/supervise\"]",
        "COPY config-examples/container/ecosystem.toml /etc/supervise/ecosystem.toml",
    ] {
        assert!(text.contains(line), "{line} missing");
    }
    let mut code = text.lines().filter(|l| !l.trim_start().starts_with('#'));
    assert!(
        code.all(|l| !l.contains("tini") && !l.contains("dumb-init")),
        "no init needed"
    );
}
