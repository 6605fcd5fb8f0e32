//! The structured values: `listen` addresses, `ready` and `health` checks, `limits`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use nix::sys::resource::Resource;

use super::error::Pos;
use super::model::{CommandLine, Condition, HealthCheck, HealthSpec, Limit, ListenAddr, ReadySpec};
use super::node::{Kind, Node};
use super::read::{elem, join, Ctx};

/// `tcp://HOST:PORT` (IPv4, `[IPv6]`, `localhost`) or `unix:PATH` (relative to `base`).
pub(crate) fn listen(s: &str, base: &Path) -> Result<ListenAddr, String> {
    let shape = || {
        format!(
            "expected \"tcp://HOST:PORT\" or \"unix:PATH\", found {}",
            super::node::quote(s)
        )
    };
    if let Some(rest) = s.strip_prefix("tcp://") {
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, p) = v6.split_once("]:").ok_or_else(shape)?;
            (h, p)
        } else {
            rest.rsplit_once(':').ok_or_else(shape)?
        };
        let ip: IpAddr = match host {
            "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            h if rest.starts_with('[') => h
                .parse::<std::net::Ipv6Addr>()
                .map(IpAddr::V6)
                .map_err(|_| format!("`{h}` is not an IPv6 address"))?,
            h => h.parse::<Ipv4Addr>().map(IpAddr::V4).map_err(|_| {
                format!(
                    "`{h}` is not an IPv4 address (write an IP address, `localhost`, or [IPv6])"
                )
            })?,
        };
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("`{port}` is not a port number (1-65535)"))?;
        return Ok(ListenAddr::Tcp(SocketAddr::new(ip, port)));
    }
    if let Some(p) = s.strip_prefix("unix:") {
        if p.is_empty() {
            return Err(shape());
        }
        let full = super::read::clean(&base.join(p));
        // sun_path holds 108 bytes including the final NUL.
        if full.as_os_str().len() > 107 {
            return Err(format!(
                "unix socket path `{}` is too long (at most 107 bytes)",
                full.display()
            ));
        }
        return Ok(ListenAddr::Unix(full));
    }
    Err(shape())
}

const READY_KEYS: &[&str] = &["tcp", "http", "exec", "delay"];
const HEALTH_KEYS: &[&str] = &["http", "tcp", "exec", "interval", "timeout", "failures"];

pub(crate) fn ready(ctx: &mut Ctx, node: &Node, path: &str) -> Option<ReadySpec> {
    if let Kind::Str(s) = &node.kind {
        return match s.as_str() {
            "started" => Some(ReadySpec::Started),
            "notify" => Some(ReadySpec::Notify),
            _ => {
                ctx.expected(
                    node,
                    path,
                    "\"started\", \"notify\" or a table with one of `tcp`, `http`, `exec`, `delay`",
                );
                None
            }
        };
    }
    if node.entries().is_none() {
        ctx.expected(node, path, "\"started\", \"notify\" or a table");
        return None;
    }
    let fields = ctx.fields(node, path, READY_KEYS);
    let [e] = fields.as_slice() else {
        if !fields.is_empty() || node.entries().is_some_and(|e| e.is_empty()) {
            ctx.error(
                node.pos,
                path,
                "expected exactly one of `tcp`, `http`, `exec`, `delay`",
            );
        }
        return None;
    };
    let p = join(path, &e.key);
    match e.key.as_str() {
        "delay" => ctx.duration(&e.value, &p).map(ReadySpec::Delay),
        "exec" => exec(ctx, &e.value, &p).map(ReadySpec::Exec),
        "tcp" => tcp_target(ctx, &e.value, &p).map(ReadySpec::Tcp),
        _ => http_url(ctx, &e.value, &p).map(ReadySpec::Http),
    }
}

pub(crate) fn health(ctx: &mut Ctx, node: &Node, path: &str) -> Option<HealthSpec> {
    let fields = ctx.fields(node, path, HEALTH_KEYS);
    node.entries()?;
    let mut check = None;
    let mut checks = 0;
    let mut spec_interval = std::time::Duration::from_secs(10);
    let mut spec_timeout = std::time::Duration::from_secs(2);
    let mut failures = 3;
    let mut ok = true;
    for e in fields {
        let p = join(path, &e.key);
        let v = &e.value;
        match e.key.as_str() {
            "interval" | "timeout" => match ctx.duration(v, &p) {
                Some(d) if d.is_zero() => {
                    ctx.error(v.pos, &p, "must be more than 0s");
                    ok = false;
                }
                Some(d) if e.key == "interval" => spec_interval = d,
                Some(d) => spec_timeout = d,
                None => ok = false,
            },
            "failures" => match ctx.whole(v, &p, u32::MAX.into()) {
                Some(0) => {
                    ctx.error(v.pos, &p, "expected a whole number of at least 1, found 0");
                    ok = false;
                }
                Some(n) => failures = n as u32,
                None => ok = false,
            },
            key => {
                checks += 1;
                check = match key {
                    "http" => http_url(ctx, v, &p).map(HealthCheck::Http),
                    "tcp" => tcp_target(ctx, v, &p).map(HealthCheck::Tcp),
                    _ => exec(ctx, v, &p).map(HealthCheck::Exec),
                };
                ok &= check.is_some();
            }
        }
    }
    if checks != 1 {
        ctx.error(
            node.pos,
            path,
            "expected exactly one of `http`, `tcp`, `exec`",
        );
        return None;
    }
    if !ok {
        return None;
    }
    Some(HealthSpec {
        check: check?,
        interval: spec_interval,
        timeout: spec_timeout,
        failures,
    })
}

/// A probe command: an argv array or a shell-split string, resolved exactly like
/// `command`, relative to the file's folder.
fn exec(ctx: &mut Ctx, node: &Node, path: &str) -> Option<CommandLine> {
    let base = ctx.base.clone();
    super::resolve::command(ctx, node, path, false, &base, true)
}

fn tcp_target(ctx: &mut Ctx, node: &Node, path: &str) -> Option<String> {
    let s = ctx.string(node, path)?;
    // The shape is checked as an instance would see it (`{port}` filled in).
    let ok = super::placeholders::expand(&s, &super::placeholders::SAMPLE)
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0));
    if !ok {
        ctx.expected(node, path, "\"HOST:PORT\"");
        return None;
    }
    Some(s)
}

fn http_url(ctx: &mut Ctx, node: &Node, path: &str) -> Option<String> {
    let s = ctx.string(node, path)?;
    if s.strip_prefix("http://")
        .is_none_or(|rest| rest.is_empty() || rest.starts_with('/'))
    {
        ctx.expected(
            node,
            path,
            "an http:// URL such as \"http://127.0.0.1:3000/health\"",
        );
        return None;
    }
    Some(s)
}

const LIMITS: &[(&str, Resource)] = &[
    ("nofile", Resource::RLIMIT_NOFILE),
    ("nproc", Resource::RLIMIT_NPROC),
    ("core", Resource::RLIMIT_CORE),
    ("memlock", Resource::RLIMIT_MEMLOCK),
    ("stack", Resource::RLIMIT_STACK),
    ("as", Resource::RLIMIT_AS),
    ("fsize", Resource::RLIMIT_FSIZE),
    ("cpu", Resource::RLIMIT_CPU),
    ("data", Resource::RLIMIT_DATA),
    ("rss", Resource::RLIMIT_RSS),
    ("locks", Resource::RLIMIT_LOCKS),
    ("msgqueue", Resource::RLIMIT_MSGQUEUE),
    ("nice", Resource::RLIMIT_NICE),
    ("rtprio", Resource::RLIMIT_RTPRIO),
    ("sigpending", Resource::RLIMIT_SIGPENDING),
];

/// `settings.http = "0.0.0.0:9180"`: an IP address and a port.
pub(crate) fn http_addr(ctx: &mut Ctx, node: &Node, path: &str) -> Option<SocketAddr> {
    let text = ctx.string(node, path)?;
    let addr = text.parse().ok();
    if addr.is_none() {
        let msg = format!("expected an address such as \"0.0.0.0:9180\", found {text:?}");
        ctx.error(node.pos, path, msg);
    }
    addr
}

/// `success_exit_codes = [0, 3]`: whole numbers from 0 to 255.
pub(crate) fn exit_codes(ctx: &mut Ctx, node: &Node, path: &str) -> Vec<i32> {
    let Kind::Array(items) = &node.kind else {
        ctx.expected(node, path, "a list of exit codes such as [0, 3]");
        return vec![0];
    };
    let mut codes = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(code) = ctx.whole(item, &elem(path, i), 255) {
            codes.push(code as i32);
        }
    }
    codes
}

pub(crate) fn limits(ctx: &mut Ctx, node: &Node, path: &str) -> Vec<Limit> {
    let names: Vec<&str> = LIMITS.iter().map(|(n, _)| *n).collect();
    let mut out = Vec::new();
    for e in ctx.fields(node, path, &names) {
        let resource = LIMITS.iter().find(|(n, _)| *n == e.key).map(|(_, r)| *r);
        let p = join(path, &e.key);
        let value = match &e.value.kind {
            Kind::Int(i) if *i >= 0 => Some(Some(*i as u64)),
            Kind::Str(s) if s == "infinity" || s == "unlimited" => Some(None),
            _ => {
                ctx.expected(&e.value, &p, "a whole number or \"infinity\"");
                None
            }
        };
        if let (Some(resource), Some(value)) = (resource, value) {
            out.push(Limit { resource, value });
        }
    }
    out
}

/// `depends_on = ["db"]` (each must be ready) or `depends_on = { db = "ready", migrate =
/// "completed" }`: the app, its condition, its position and its key path.
pub(crate) fn dependencies(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
) -> Vec<(String, Condition, Pos, String)> {
    let Some(entries) = node.entries() else {
        return ctx
            .strings(node, path, true)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, (app, pos))| (app, Condition::Ready, pos, elem(path, i)))
            .collect();
    };
    entries
        .iter()
        .filter_map(|e| {
            let key = join(path, &e.key);
            let i = ctx.choice(&e.value, &key, &Condition::NAMES)?;
            Some((e.key.clone(), Condition::ALL[i], e.key_pos, key))
        })
        .collect()
}
