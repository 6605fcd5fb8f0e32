//! Start order from `depends_on`: dependencies first. Validation has already refused
//! unknown names and cycles; should one slip through, the remaining apps are appended
//! in file order rather than looping or panicking.

use std::time::Duration;

use crate::config::units::format_duration;
use crate::config::Ecosystem;

/// Indices into `eco.apps`, every app after the apps it depends on.
pub fn start_order(eco: &Ecosystem) -> Vec<usize> {
    let mut order: Vec<usize> = Vec::with_capacity(eco.apps.len());
    let mut placed = vec![false; eco.apps.len()];
    loop {
        let mut progressed = false;
        for (i, app) in eco.apps.iter().enumerate() {
            if placed[i] {
                continue;
            }
            let deps_placed = app.depends_on.iter().all(|dep| {
                match eco.apps.iter().position(|a| a.name == dep.app) {
                    Some(j) => placed[j],
                    None => true,
                }
            });
            if deps_placed {
                placed[i] = true;
                order.push(i);
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    order.extend((0..eco.apps.len()).filter(|i| !placed[*i]));
    order
}

/// Names of the apps that depend on `name`.
pub fn dependents<'a>(eco: &'a Ecosystem, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    eco.apps
        .iter()
        .filter(move |a| a.depends_on.iter().any(|d| d.app == name))
        .map(|a| a.name.as_str())
}

/// The longest chain of `stop_timeout`s a graceful stop can take, in stop order
/// (dependents first, each app waiting until the ones that depend on it are gone),
/// with its total.
pub fn longest_stop_chain(eco: &Ecosystem) -> (Duration, Vec<&str>) {
    // Reverse start order visits every dependent before the apps it depends on.
    let mut best: Vec<(Duration, Vec<usize>)> = vec![Default::default(); eco.apps.len()];
    for i in start_order(eco).into_iter().rev() {
        let name = &eco.apps[i].name;
        let (before, mut chain) = eco
            .apps
            .iter()
            .enumerate()
            .filter(|(_, a)| a.depends_on.iter().any(|d| &d.app == name))
            .map(|(j, _)| best[j].clone())
            .max_by_key(|(total, _)| *total)
            .unwrap_or_default();
        chain.push(i);
        best[i] = (before + eco.apps[i].stop_timeout, chain);
    }
    let (total, chain) = best
        .into_iter()
        .max_by_key(|(total, _)| *total)
        .unwrap_or_default();
    let names = chain
        .into_iter()
        .map(|i| eco.apps[i].name.as_str())
        .collect();
    (total, names)
}

/// `check --grace`: `shutdown_delay` plus the longest stop chain must fit in `grace`;
/// the error names the chain.
pub fn fits_grace(eco: &Ecosystem, grace: Duration) -> Result<(), String> {
    let (chain_total, chain) = longest_stop_chain(eco);
    let delay = eco.settings.shutdown_delay;
    let total = delay + chain_total;
    if total <= grace {
        return Ok(());
    }
    let timeouts: Vec<String> = chain
        .iter()
        .filter_map(|name| eco.app(name))
        .map(|a| format_duration(a.stop_timeout))
        .collect();
    Err(format!(
        "stopping may take {} but --grace is {}: shutdown_delay {} + the stop_timeouts of \
         {} ({})",
        format_duration(total),
        format_duration(grace),
        format_duration(delay),
        chain.join(" -> "),
        timeouts.join(" + ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AppSpec, Dependency, Settings};

    fn app(name: &str, stop: u64, deps: &[&str]) -> AppSpec {
        let mut a = AppSpec::new(name, "/bin/true", &["true"]);
        a.stop_timeout = Duration::from_secs(stop);
        a.depends_on = deps.iter().map(|d| Dependency::from(*d)).collect();
        a
    }

    fn eco(apps: Vec<AppSpec>, delay: u64) -> Ecosystem {
        let settings = Settings {
            shutdown_delay: Duration::from_secs(delay),
            ..Default::default()
        };
        Ecosystem {
            path: "/tmp/e.toml".into(),
            settings,
            apps,
        }
    }

    #[test]
    fn the_longest_chain_runs_from_the_last_dependent_to_the_deepest_dependency() {
        // api -> db, worker -> api, cron -> db: stop worker, then api, then db.
        let e = eco(
            vec![
                app("db", 10, &[]),
                app("api", 5, &["db"]),
                app("worker", 20, &["api"]),
                app("cron", 30, &["db"]),
            ],
            0,
        );
        let (total, chain) = longest_stop_chain(&e);
        assert_eq!(
            (total, chain),
            (Duration::from_secs(40), vec!["cron", "db"])
        );
        let e = eco(vec![app("a", 3, &[]), app("b", 4, &[])], 0);
        assert_eq!(longest_stop_chain(&e), (Duration::from_secs(4), vec!["b"]));
    }

    #[test]
    fn grace_counts_the_delay_and_names_the_chain() {
        let e = eco(vec![app("web", 10, &[]), app("worker", 5, &["web"])], 5);
        assert!(fits_grace(&e, Duration::from_secs(20)).is_ok());
        let err = fits_grace(&e, Duration::from_secs(19)).unwrap_err();
        assert_eq!(
            err,
            "stopping may take 20s but --grace is 19s: shutdown_delay 5s + the \
             stop_timeouts of worker -> web (5s + 10s)"
        );
    }
}
