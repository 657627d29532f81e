//! The department tree of a tenant (HQ → region → store → team).

use std::collections::{HashMap, HashSet};

use sqlx::{AnyConnection, Row};

/// Every department of one tenant, by id, with its parent.
#[derive(Debug, Clone, Default)]
pub struct Departments {
    parent: HashMap<String, Option<String>>,
}

impl Departments {
    pub async fn load(
        conn: &mut AnyConnection,
        tenant_id: &str,
    ) -> Result<Departments, sqlx::Error> {
        let rows = sqlx::query("SELECT id, parent_id FROM departments WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_all(conn)
            .await?;
        let mut parent = HashMap::new();
        for r in rows {
            parent.insert(r.try_get("id")?, r.try_get("parent_id")?);
        }
        Ok(Departments { parent })
    }

    /// A tree from `(id, parent)` pairs.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Departments {
        Departments {
            parent: pairs
                .into_iter()
                .map(|(id, p)| (id.to_owned(), p.map(str::to_owned)))
                .collect(),
        }
    }

    pub fn ids(&self) -> HashSet<String> {
        self.parent.keys().cloned().collect()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.parent.contains_key(id)
    }

    pub fn parent_of(&self, id: &str) -> Option<&str> {
        self.parent.get(id).and_then(|p| p.as_deref())
    }

    /// `id` and every department below it (just `id` when the tree does not know it, so a
    /// user's department string still scopes before the tree is declared).
    pub fn subtree(&self, id: &str) -> Vec<String> {
        let mut out = vec![id.to_owned()];
        let mut i = 0;
        while i < out.len() {
            let at = out[i].clone();
            for (child, parent) in &self.parent {
                if parent.as_deref() == Some(at.as_str()) && !out.contains(child) {
                    out.push(child.clone());
                }
            }
            i += 1;
        }
        out
    }

    /// Would making `parent` the parent of `id` put `id` below itself?
    pub fn would_cycle(&self, id: &str, parent: &str) -> bool {
        let mut at = Some(parent);
        let mut steps = 0;
        while let Some(p) = at {
            if p == id || steps > self.parent.len() {
                return true;
            }
            at = self.parent_of(p);
            steps += 1;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Departments {
        Departments::from_pairs([
            ("hq", None),
            ("east", Some("hq")),
            ("store-1", Some("east")),
            ("team-1a", Some("store-1")),
            ("west", Some("hq")),
        ])
    }

    #[test]
    fn a_subtree_holds_the_department_and_everything_below_it() {
        let mut east = tree().subtree("east");
        east.sort();
        assert_eq!(east, ["east", "store-1", "team-1a"]);
        assert_eq!(tree().subtree("west"), ["west"]);
        assert_eq!(tree().subtree("unknown"), ["unknown"]);
    }

    #[test]
    fn moving_a_department_below_itself_is_a_cycle() {
        let t = tree();
        assert!(t.would_cycle("east", "team-1a"));
        assert!(t.would_cycle("east", "east"));
        assert!(!t.would_cycle("team-1a", "west"));
    }
}
