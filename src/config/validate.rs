//! Checks across apps: `depends_on` names known apps and has no cycle; `listen`
//! addresses are unique in the whole file.

use std::collections::HashMap;

use super::error::Pos;
use super::model::ListenAddr;
use super::read::{elem, join, Ctx};
use super::schema::Draft;

/// Whether a `listen` address can be bound now; injected so this module stays pure.
/// Its error names the address (`tcp://127.0.0.1:80: permission denied ...`).
pub type BindCheck<'a> = &'a dyn Fn(&ListenAddr) -> Result<(), String>;

pub(crate) fn cross_checks(ctx: &mut Ctx, drafts: &[Draft], can_bind: Option<BindCheck>) {
    dependencies(ctx, drafts);
    duplicate_listen(ctx, drafts);
    if let Some(can_bind) = can_bind {
        bindable(ctx, drafts, can_bind);
    }
}

/// Each address (once, at its first use) can be bound: port in use and permission
/// errors are located like any other.
fn bindable(ctx: &mut Ctx, drafts: &[Draft], can_bind: BindCheck) {
    let mut seen: Vec<&ListenAddr> = Vec::new();
    for d in drafts {
        let path = join(&join("apps", &d.spec.name), "listen");
        for (i, (addr, pos)) in d.spec.listen.iter().zip(&d.listen_pos).enumerate() {
            if seen.contains(&addr) {
                continue;
            }
            seen.push(addr);
            if let Err(e) = can_bind(addr) {
                ctx.error(
                    *pos,
                    &elem(&path, i),
                    // The check's message names the address itself.
                    format!("cannot listen on {e}"),
                );
            }
        }
    }
}

/// How many unknown `depends_on` names get a "did you mean" (a search over all names).
const DEPENDENCY_HINTS: usize = 16;

fn dependencies(ctx: &mut Ctx, drafts: &[Draft]) {
    let index: HashMap<&str, usize> = drafts
        .iter()
        .enumerate()
        .map(|(i, d)| (d.spec.name.as_str(), i))
        .collect();
    // Edges to known apps only; unknown names are reported here. Each "did you mean"
    // searches every name: only the first few unknown names get one, so a file with
    // thousands of them costs linear time (a reload runs on the loop).
    let names: Vec<&str> = drafts.iter().map(|d| d.spec.name.as_str()).collect();
    let mut hints_left = DEPENDENCY_HINTS;
    let mut edges: Vec<Vec<(usize, usize, Pos)>> = Vec::new();
    for d in drafts {
        let mut out = Vec::new();
        for (i, (dep, pos, key)) in d.depends_on.iter().enumerate() {
            match index.get(dep.as_str()) {
                Some(&to) => out.push((to, i, *pos)),
                None => {
                    let searched = (hints_left > 0).then(|| {
                        hints_left -= 1;
                        super::read::suggest(dep, &names)
                    });
                    let hint = match searched.flatten() {
                        Some(s) => format!("; did you mean `{s}`?"),
                        None => String::new(),
                    };
                    let msg = format!("unknown app `{dep}`{hint}");
                    ctx.error(*pos, key, msg);
                }
            }
        }
        edges.push(out);
    }
    // Depth-first search; each back edge closes one cycle, reported at that edge.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    let mut mark = vec![Mark::New; drafts.len()];
    for start in 0..drafts.len() {
        if mark[start] != Mark::New {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        mark[start] = Mark::OnStack;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let Some(&(to, i, pos)) = edges[node].get(*next) else {
                mark[node] = Mark::Done;
                stack.pop();
                continue;
            };
            *next += 1;
            match mark[to] {
                Mark::New => {
                    mark[to] = Mark::OnStack;
                    stack.push((to, 0));
                }
                Mark::OnStack => {
                    let from = stack.iter().position(|(n, _)| *n == to).unwrap_or(0);
                    let mut names: Vec<&str> = stack[from..]
                        .iter()
                        .map(|(n, _)| drafts[*n].spec.name.as_str())
                        .collect();
                    names.push(drafts[to].spec.name.as_str());
                    let msg = format!("dependency cycle: {}", names.join(" -> "));
                    ctx.error(pos, &drafts[node].depends_on[i].2, msg);
                }
                Mark::Done => {}
            }
        }
    }
}

fn duplicate_listen(ctx: &mut Ctx, drafts: &[Draft]) {
    let mut seen: HashMap<&ListenAddr, String> = HashMap::new();
    for d in drafts {
        let path = join(&join("apps", &d.spec.name), "listen");
        for (i, (addr, pos)) in d.spec.listen.iter().zip(&d.listen_pos).enumerate() {
            let here = elem(&path, i);
            match seen.get(addr) {
                Some(first) => {
                    let msg = format!(
                        "duplicate listen address {}, already used by {first}",
                        show(addr)
                    );
                    ctx.error(*pos, &here, msg);
                }
                None => {
                    seen.insert(addr, here);
                }
            }
        }
    }
}

fn show(addr: &ListenAddr) -> String {
    match addr {
        ListenAddr::Tcp(a) => format!("tcp://{a}"),
        ListenAddr::Unix(p) => format!("unix:{}", p.display()),
    }
}
