//! Who an app runs as: its `user` and `group` names turned into ids, supplementary
//! groups and the account's name and home.
//!
//! These lookups go through NSS (files, but also LDAP or SSSD, which can block for
//! seconds), so they are made once per config load and kept: spawning an instance or an
//! exec probe never asks the name service.

use std::ffi::{CString, OsString};
use std::io;

use nix::unistd::{Gid, Group, Uid, User};

/// The credentials a child switches to before exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// None with only `group` set: the child keeps supervise's uid.
    pub uid: Option<u32>,
    pub gid: u32,
    /// Supplementary groups (the user's, from the group database; or just `gid`).
    pub groups: Vec<u32>,
}

/// The account `user` names, for the USER, LOGNAME and HOME variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub home: OsString,
}

/// What `user` and `group` resolve to; the default (neither set) changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub ids: Option<Ids>,
    pub account: Option<Account>,
}

fn missing(what: &str, name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{what} {name:?} does not exist"),
    )
}

/// A user name, or a numeric uid (which must still exist: its home is needed).
fn lookup_user(name: &str) -> io::Result<User> {
    let found = match name.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(name),
    };
    found
        .map_err(io::Error::from)?
        .ok_or_else(|| missing("user", name))
}

/// A group name, or a numeric gid (taken as is).
fn lookup_group(name: &str) -> io::Result<u32> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    Group::from_name(name)
        .map_err(io::Error::from)?
        .map(|g| g.gid.as_raw())
        .ok_or_else(|| missing("group", name))
}

/// Look `user` and `group` up (this may block on the name service).
pub fn resolve(user: Option<&str>, group: Option<&str>) -> io::Result<Identity> {
    let user = user.map(lookup_user).transpose()?;
    let group = group.map(lookup_group).transpose()?;
    Ok(match (user, group) {
        (None, None) => Identity::default(),
        (Some(user), group) => {
            let gid = group.unwrap_or(user.gid.as_raw());
            let cname = CString::new(user.name.as_bytes()).map_err(io::Error::other)?;
            let groups = nix::unistd::getgrouplist(&cname, Gid::from_raw(gid))
                .map(|g| g.into_iter().map(Gid::as_raw).collect())
                .unwrap_or_else(|_| vec![gid]);
            Identity {
                ids: Some(Ids {
                    uid: Some(user.uid.as_raw()),
                    gid,
                    groups,
                }),
                account: Some(Account {
                    home: user.dir.into_os_string(),
                    name: user.name,
                }),
            }
        }
        (None, Some(gid)) => Identity {
            ids: Some(Ids {
                uid: None,
                gid,
                groups: vec![gid],
            }),
            account: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_set_is_no_change() {
        assert_eq!(resolve(None, None).unwrap(), Identity::default());
    }

    #[test]
    fn root_by_name_and_by_number() {
        let by_name = resolve(Some("root"), None).unwrap();
        let by_number = resolve(Some("0"), None).unwrap();
        assert_eq!(by_name, by_number);
        let ids = by_name.ids.unwrap();
        assert_eq!((ids.uid, ids.gid), (Some(0), 0));
        assert!(ids.groups.contains(&0));
        assert_eq!(by_name.account.unwrap().name, "root");
    }

    #[test]
    fn group_only_keeps_the_uid() {
        let id = resolve(None, Some("12345")).unwrap();
        assert_eq!(
            id.ids,
            Some(Ids {
                uid: None,
                gid: 12345,
                groups: vec![12345]
            })
        );
        assert_eq!(id.account, None);
    }

    #[test]
    fn unknown_names_are_reported() {
        let e = resolve(Some("no-such-user-supervise"), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "user \"no-such-user-supervise\" does not exist"
        );
        let e = resolve(None, Some("no-such-group-supervise")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "group \"no-such-group-supervise\" does not exist"
        );
    }
}
