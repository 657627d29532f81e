//! Scoring a pair of profiles: pure functions, no storage. Exact keys (identity, phone,
//! email) say "the same person"; fuzzy signals (the same name, a phone one digit apart, the
//! same email local part) say "perhaps", with a score from 0 to 100 and the reasons.

use serde::{Deserialize, Serialize};

/// What a pair of profiles was compared on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub id: String,
    /// `customers::validate::name_key` of the display name.
    pub name_key: String,
    /// E.164.
    pub phones: Vec<String>,
    /// Lowercase.
    pub emails: Vec<String>,
}

/// One reason two profiles may be the same person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// `same_phone`, `same_email`, `same_identity`, `same_name`, `phone_one_digit_apart`,
    /// `same_email_local_part`.
    pub code: String,
    /// The values involved, e.g. `+8613800138000 / +8613800138001`.
    pub detail: String,
}

impl Reason {
    pub fn new(code: &str, detail: impl Into<String>) -> Reason {
        Reason {
            code: code.to_owned(),
            detail: detail.into(),
        }
    }
}

/// The score of an exact match (same identity, phone or email).
pub const EXACT: u8 = 100;

/// Fuzzy scores by the signals present (name, near phone, email local part).
fn fuzzy_score(name: bool, phone: bool, local: bool) -> u8 {
    match (name, phone, local) {
        (true, true, true) => 95,
        (true, true, false) => 85,
        (true, false, true) | (false, true, true) => 80,
        (false, false, true) => 55,
        (false, true, false) => 40,
        (true, false, false) => 30,
        (false, false, false) => 0,
    }
}

/// Names that say nothing about who someone is (compared lowercase).
pub const PLACEHOLDER_NAMES: &[&str] = &[
    "未知", "无", "客户", "顾客", "先生", "女士", "unknown", "n/a", "na", "none", "null", "test",
    "测试", "-", "--", "?", "customer",
];

/// A name that says nothing about who someone is: a [`PLACEHOLDER_NAMES`] entry, or only
/// digits and phone punctuation.
pub fn is_placeholder_name(name: &str) -> bool {
    let n = name.trim().to_lowercase();
    n.is_empty()
        || PLACEHOLDER_NAMES.contains(&n.as_str())
        || n.chars().all(|c| c.is_ascii_digit() || "+- ()".contains(c))
}

/// Local parts shared by unrelated people (`info@…`, `service@…`).
fn is_generic_local(local: &str) -> bool {
    const GENERIC: &[&str] = &[
        "info",
        "admin",
        "service",
        "contact",
        "support",
        "sales",
        "hello",
        "office",
        "mail",
        "noreply",
        "no-reply",
        "kefu",
        "webmaster",
        "test",
        "hr",
        "team",
    ];
    local.chars().count() < 3 || GENERIC.contains(&local)
}

/// The local part of an email worth matching on, if any.
pub fn local_part(email: &str) -> Option<&str> {
    let (local, _) = email.split_once('@')?;
    (!is_generic_local(local)).then_some(local)
}

/// Two numbers of the same length differing in exactly one digit, or by swapping two
/// adjacent digits (the two commonest typing slips).
pub fn phones_one_digit_apart(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() || a == b {
        return false;
    }
    let diff: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    match diff.as_slice() {
        [_] => true,
        [i, j] => *j == i + 1 && a[*i] == b[*j] && a[*j] == b[*i],
        _ => false,
    }
}

/// How likely `a` and `b` are the same person, with the reasons; `None` when nothing links
/// them. Exact matches on phone or email score [`EXACT`].
pub fn score(a: &Profile, b: &Profile) -> Option<(u8, Vec<Reason>)> {
    let mut reasons = Vec::new();
    for p in a.phones.iter().filter(|p| b.phones.contains(p)) {
        reasons.push(Reason::new("same_phone", p.clone()));
    }
    for e in a.emails.iter().filter(|e| b.emails.contains(e)) {
        reasons.push(Reason::new("same_email", e.clone()));
    }
    if !reasons.is_empty() {
        return Some((EXACT, reasons));
    }
    let name =
        !a.name_key.is_empty() && a.name_key == b.name_key && !is_placeholder_name(&a.name_key);
    if name {
        reasons.push(Reason::new("same_name", a.name_key.clone()));
    }
    let near = a.phones.iter().find_map(|p| {
        b.phones
            .iter()
            .find(|q| phones_one_digit_apart(p, q))
            .map(|q| (p, q))
    });
    if let Some((p, q)) = near {
        reasons.push(Reason::new("phone_one_digit_apart", format!("{p} / {q}")));
    }
    let local = a.emails.iter().find_map(|e| {
        let l = local_part(e)?;
        b.emails
            .iter()
            .find(|f| local_part(f) == Some(l))
            .map(|f| (e, f))
    });
    if let Some((e, f)) = local {
        reasons.push(Reason::new("same_email_local_part", format!("{e} / {f}")));
    }
    let score = fuzzy_score(name, near.is_some(), local.is_some());
    (score > 0).then_some((score, reasons))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(name: &str, phones: &[&str], emails: &[&str]) -> Profile {
        Profile {
            id: String::new(),
            name_key: name.to_lowercase(),
            phones: phones.iter().map(|s| s.to_string()).collect(),
            emails: emails.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn check(a: Profile, b: Profile, expected: Option<(u8, &[&str])>) {
        let got =
            score(&a, &b).map(|(s, r)| (s, r.into_iter().map(|r| r.code).collect::<Vec<_>>()));
        let expected =
            expected.map(|(s, codes)| (s, codes.iter().map(|c| c.to_string()).collect()));
        assert_eq!(got, expected, "{a:?} vs {b:?}");
    }

    #[test]
    fn one_digit_apart_means_one_substitution_or_one_adjacent_swap() {
        assert!(phones_one_digit_apart("+8613800138000", "+8613800138001"));
        assert!(phones_one_digit_apart("+8613800138010", "+8613800138001"));
        assert!(!phones_one_digit_apart("+8613800138000", "+8613800138000"));
        assert!(!phones_one_digit_apart("+8613800138000", "+8613800138011"));
        assert!(!phones_one_digit_apart("+8613800138000", "+861380013800"));
        assert!(!phones_one_digit_apart("+8613800138012", "+8613800138201"));
    }

    #[test]
    fn exact_contacts_score_100() {
        check(
            profile("王芳", &["+8613800138000"], &[]),
            profile("Fang Wang", &["+8613800138000"], &[]),
            Some((100, &["same_phone"])),
        );
        check(
            profile("a", &[], &["li.na@example.com"]),
            profile("b", &[], &["li.na@example.com"]),
            Some((100, &["same_email"])),
        );
    }

    #[test]
    fn fuzzy_signals_add_up() {
        check(
            profile("王芳", &["+8613800138000"], &[]),
            profile("王芳", &["+8613800138001"], &[]),
            Some((85, &["same_name", "phone_one_digit_apart"])),
        );
        check(
            profile("王芳", &[], &["wangfang88@qq.com"]),
            profile("王芳", &[], &["wangfang88@163.com"]),
            Some((80, &["same_name", "same_email_local_part"])),
        );
        check(
            profile("Li Na", &[], &["lina.sh@qq.com"]),
            profile("Nina", &[], &["lina.sh@gmail.com"]),
            Some((55, &["same_email_local_part"])),
        );
        check(
            profile("王芳", &["+8613800138000"], &[]),
            profile("王芳", &["+8613900000000"], &[]),
            Some((30, &["same_name"])),
        );
    }

    #[test]
    fn placeholders_and_generic_mailboxes_link_nobody() {
        check(
            profile("未知", &[], &["info@a.com"]),
            profile("未知", &[], &["info@b.com"]),
            None,
        );
        assert!(is_placeholder_name("13800138000"));
        assert!(!is_placeholder_name("王芳"));
        assert_eq!(local_part("kefu@shop.cn"), None);
        assert_eq!(local_part("wangfang88@qq.com"), Some("wangfang88"));
    }
}
