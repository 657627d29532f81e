//! Module versions, ordered as people read them: `1.10.0` after `1.9.2`.

/// A version's sort key: its dot-separated numbers (a part that is not a number sorts as
/// 0), then the text itself to break ties (`1.0.0-beta` vs `1.0.0`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct VersionKey(Vec<u64>, String);

impl VersionKey {
    pub fn new(version: &str) -> VersionKey {
        let core = version.split(['-', '+']).next().unwrap_or(version);
        VersionKey(
            core.split('.').map(|p| p.parse().unwrap_or(0)).collect(),
            version.to_owned(),
        )
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_by_their_numbers() {
        let mut v: Vec<VersionKey> = ["1.10.0", "1.9.2", "2.0.0", "1.9.10", "0.1"]
            .into_iter()
            .map(VersionKey::new)
            .collect();
        v.sort();
        let order: Vec<&str> = v.iter().map(VersionKey::as_str).collect();
        assert_eq!(order, ["0.1", "1.9.2", "1.9.10", "1.10.0", "2.0.0"]);
    }
}
