//! Start order from `depends_on`: dependencies first. Validation has already refused
//! unknown names and cycles; should one slip through, the remaining apps are appended
//! in file order rather than looping or panicking.

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
