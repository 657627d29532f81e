//! Module versions, ordered as semantic versions: `1.10.0` after `1.9.2`, and a
//! pre-release before its release (`2.0.0-rc.1` < `2.0.0`).

use std::cmp::Ordering;

/// A parsed version; the order is SemVer's (build metadata after `+` is ignored, and
/// versions equal in that order are told apart by their text, so none collide).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionKey {
    core: [u64; 3],
    pre: Vec<String>,
    text: String,
}

impl VersionKey {
    /// `MAJOR.MINOR.PATCH[-PRE][+BUILD]`, or `None`.
    pub fn parse(version: &str) -> Option<VersionKey> {
        let (without_build, build) = match version.split_once('+') {
            Some((v, build)) => (v, Some(build)),
            None => (version, None),
        };
        // build metadata is ignored in the order, but must be SemVer too: versions name
        // folders and files
        if let Some(build) = build
            && !identifiers(build)
        {
            return None;
        }
        let (core, pre) = match without_build.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (without_build, None),
        };
        let mut parts = core.split('.');
        let mut number = || -> Option<u64> {
            let p = parts.next()?;
            (!p.is_empty() && p.chars().all(|c| c.is_ascii_digit())).then(|| p.parse().ok())?
        };
        let core = [number()?, number()?, number()?];
        if parts.next().is_some() {
            return None;
        }
        let pre = match pre {
            None => Vec::new(),
            Some(pre) if identifiers(pre) => pre.split('.').map(str::to_owned).collect(),
            Some(_) => return None,
        };
        Some(VersionKey {
            core,
            pre,
            text: version.to_owned(),
        })
    }

    /// A key for any text (a manifest's version is checked when read; this orders the
    /// unparseable last-resort way, before every valid version).
    pub fn new(version: &str) -> VersionKey {
        VersionKey::parse(version).unwrap_or(VersionKey {
            core: [0, 0, 0],
            pre: vec![String::new()],
            text: version.to_owned(),
        })
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether it is a pre-release (`-rc.1`).
    pub fn is_pre_release(&self) -> bool {
        !self.pre.is_empty()
    }
}

/// Dot-separated non-empty identifiers of `[0-9A-Za-z-]` (SemVer's pre-release and build).
fn identifiers(text: &str) -> bool {
    text.split('.')
        .all(|i| !i.is_empty() && i.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

fn compare_pre(a: &[String], b: &[String]) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    for (x, y) in a.iter().zip(b) {
        let order = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            (Err(_), Err(_)) => x.cmp(y),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

impl Ord for VersionKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.core
            .cmp(&other.core)
            .then_with(|| compare_pre(&self.pre, &other.pre))
            .then_with(|| self.text.cmp(&other.text))
    }
}

impl PartialOrd for VersionKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_as_semver() {
        let mut v: Vec<VersionKey> = [
            "1.10.0",
            "1.9.2",
            "2.0.0",
            "2.0.0-rc.1",
            "2.0.0-beta.11",
            "2.0.0-beta.2",
            "1.9.10",
            "0.1.0",
        ]
        .into_iter()
        .map(|t| VersionKey::parse(t).unwrap())
        .collect();
        v.sort();
        let order: Vec<&str> = v.iter().map(VersionKey::as_str).collect();
        assert_eq!(
            order,
            [
                "0.1.0",
                "1.9.2",
                "1.9.10",
                "1.10.0",
                "2.0.0-beta.2",
                "2.0.0-beta.11",
                "2.0.0-rc.1",
                "2.0.0"
            ]
        );
    }

    #[test]
    fn what_is_not_a_version_is_refused() {
        for bad in [
            "",
            "1",
            "1.0",
            "v1.0.0",
            "1.0.0.0",
            "1.0.0/../..",
            "1.0.x",
            "1.0.0-",
            "1.0.0-a..b",
            "1.0.0+../../x",
            "1.0.0+",
        ] {
            assert!(VersionKey::parse(bad).is_none(), "{bad}");
        }
        assert!(VersionKey::parse("1.0.0+build.5").is_some());
    }
}
